#!/usr/bin/env python3
"""Block benchmark: virtio-blk throughput and IOPS, ignition vs QEMU microvm, same kernel,
command line, root disk and guest user space (launcher.py has both command lines).

Each VMM boots the default guest once with a second disk: a fresh sparse raw file of DISK_MIB
MiB (default 256) on the host, /dev/vdb in the guest.  Then, RUNS times (default 1), the
guest's ign-blkbench (guest/rootfs/ign-blkbench.c: O_DIRECT, queue depth 1, CLOCK_MONOTONIC)
runs on /dev/vdb:
  seq-write   SEQ_MIB MiB (default 32) in 1-MiB writes from offset 0, then fdatasync
  seq-read    the same range in 1-MiB reads
  rand-write  RAND_OPS (default 500) 4-KiB writes at random 4-KiB-aligned offsets within the
              first SEQ_MIB MiB, then fdatasync
  rand-read   RAND_OPS 4-KiB reads, likewise
and the script prints the median MB/s (10^6 bytes/s) or IOPS per test and the ratio
ignition/QEMU (higher is better).  The random offsets come from a fixed seed: both VMMs see the
same sequence, within the range the sequential pass has written (so reads find data in the
host's page cache on both, not holes).  QEMU's drives use cache=writeback, like ignition the
host page cache without O_DIRECT.  A root file system without ign-blkbench (built before it
existed) gets the sequential tests through busybox dd (oflag/iflag=direct, conv=fsync, timed
with /proc/uptime) and no random ones.

On this project's nested-KVM development hosts guest kernel code is emulated and every figure
is small; compare ratios, not absolute figures, and keep the sizes small (env vars above).
"""
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import launcher  # noqa: E402
from launcher import ROOT, guest_test  # noqa: E402

RUNS = int(os.environ.get("RUNS", "1"))
SEQ_MIB = int(os.environ.get("SEQ_MIB", "32"))
RAND_OPS = int(os.environ.get("RAND_OPS", "500"))
DISK_MIB = max(int(os.environ.get("DISK_MIB", "256")), SEQ_MIB)
MEM_MIB = launcher.MEM_MIB
# (name, ign-blkbench mode, unit); the order matters: the reads follow the writes.
TESTS = (("seq-write 1M", "seqwrite", "MB/s"), ("seq-read 1M", "seqread", "MB/s"),
         ("rand-write 4K", "randwrite", "IOPS"), ("rand-read 4K", "randread", "IOPS"))
TIMEOUT = float(os.environ.get("BLK_CMD_TIMEOUT", "1800"))


def scratch_dev(g):
    """The guest's name for the scratch disk: the vd* whose size is DISK_MIB (vdb, normally)."""
    st, out = g.run("for d in /sys/block/vd*; do echo ${d##*/} $(cat $d/size); done")
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and f[1] == str(DISK_MIB * 2048):
            return "/dev/" + f[0]
    raise RuntimeError(f"no {DISK_MIB} MiB virtio disk in the guest: {out!r}")


def blkbench(g, dev, mode):
    """One ign-blkbench pass -> MB/s or IOPS, or None."""
    if mode.startswith("seq"):
        cmd = f"ign-blkbench {mode} {dev} {SEQ_MIB}"
    else:
        cmd = f"ign-blkbench {mode} {dev} {RAND_OPS} {SEQ_MIB}"
    st, out = g.run(cmd, timeout=TIMEOUT)
    m = re.search(r"ops=(\d+) bytes=(\d+) ns=(\d+)", out)
    if st != 0 or not m or int(m.group(3)) == 0:
        print(f"  {mode} failed: status {st} {out[-200:]!r}", file=sys.stderr)
        return None
    ops, nbytes, secs = int(m.group(1)), int(m.group(2)), int(m.group(3)) / 1e9
    return nbytes / secs / 1e6 if mode.startswith("seq") else ops / secs


def dd(g, dev, mode):
    """The sequential tests with busybox dd, for a root file system without ign-blkbench."""
    if mode == "seqwrite":
        cmd = f"dd if=/dev/zero of={dev} bs=1M count={SEQ_MIB} oflag=direct conv=fsync"
    elif mode == "seqread":
        cmd = f"dd if={dev} of=/dev/null bs=1M count={SEQ_MIB} iflag=direct"
    else:
        return None
    # busybox dd prints no rate; /proc/uptime has 10 ms resolution, enough for whole MiBs.
    st, out = g.run(f"a=$(cut -d' ' -f1 /proc/uptime); {cmd} 2>/dev/null && "
                    "b=$(cut -d' ' -f1 /proc/uptime) && "
                    "awk -v a=$a -v b=$b 'BEGIN { printf \"ns=%.0f\\n\", (b - a) * 1e9 }'",
                    timeout=TIMEOUT)
    m = re.search(r"ns=(\d+)", out)
    if st != 0 or not m or int(m.group(1)) == 0:
        print(f"  dd {mode} failed: status {st} {out[-200:]!r}", file=sys.stderr)
        return None
    return (SEQ_MIB << 20) / (int(m.group(1)) / 1e9) / 1e6


def run(vmm, tmp):
    """Boot `vmm` with the root disk and a scratch disk; {test name: [samples]}."""
    root = launcher.copy_rootfs(tmp, vmm)
    scratch = os.path.join(tmp, f"{vmm}-scratch.img")
    with open(scratch, "wb") as f:
        f.truncate(DISK_MIB << 20)
    print(f"{vmm}:", flush=True)
    res = {name: [] for name, _, _ in TESTS}
    g = launcher.start(vmm, f"bench-blk-{vmm}", [root, scratch])
    try:
        g.login()
        print(f"  login after {g.login_s:.0f} s", flush=True)
        dev = scratch_dev(g)
        st, _ = g.run("command -v ign-blkbench")
        fn = blkbench if st == 0 else dd
        if fn is dd:
            print("  this root file system has no ign-blkbench (rebuild it: make -C guest "
                  "rootfs): sequential tests with busybox dd, no random ones", flush=True)
        for i in range(RUNS):
            for name, mode, unit in TESTS:
                v = fn(g, dev, mode)
                res[name].append(v)
                if v is not None:
                    print(f"  run {i + 1}/{RUNS} {name:14s} {v:10.1f} {unit}", flush=True)
    except (guest_test.Timeout, RuntimeError) as e:
        print(f"{vmm}: {e}", file=sys.stderr)
    finally:
        launcher.poweroff(g)
        os.unlink(root)
        os.unlink(scratch)
    return res


def main():
    if not launcher.need_kvm("blk"):
        return 2
    tmp = tempfile.mkdtemp(prefix="ign-bench-blk-", dir=os.path.join(ROOT, "build"))
    res = {}
    try:
        for vmm in launcher.VMMS:
            if vmm == "qemu" and not launcher.have_qemu():
                print("qemu: not run, qemu-system-x86_64 not found", flush=True)
                continue
            res[vmm] = run(vmm, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    kernel = os.path.basename(launcher.kernel_path())
    print()
    print(f"virtio-blk on a {DISK_MIB} MiB raw file (QEMU cache=writeback), O_DIRECT in the "
          f"guest, queue depth 1; sequential {SEQ_MIB} MiB, random {RAND_OPS} ops in "
          f"{SEQ_MIB} MiB; median of {RUNS}; {MEM_MIB} MiB guest, 1 vCPU, {kernel}")
    print(f"{'test':14s} {'ignition':>14s} {'qemu':>14s} {'ratio':>7s}")
    for name, _, unit in TESTS:
        cols = [launcher.med(res[v][name]) if v in res else None for v in launcher.VMMS]
        cells = ["n/a" if c is None else f"{c:.1f} {unit}" for c in cols]
        print(f"{name:14s} {cells[0]:>14s} {cells[1]:>14s} {launcher.ratio(*cols):>7s}")
    print("(ratio: ignition / qemu; higher is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
