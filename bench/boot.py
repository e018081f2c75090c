#!/usr/bin/env python3
"""Boot benchmark: ignition vs QEMU microvm on the same kernel, command line and disk.

Two kernel configurations, each booted by both VMMs: the uncompressed ELF vmlinux-min (ignition's
64-bit ELF entry, QEMU's PVH entry) and the compressed bzImage-min.  For each VMM and kernel,
boots the default guest RUNS times and prints the median of:
  guest-boot   ms from VMM start to the guest's boot-timer poke (ignition only: QEMU has no
               boot-timer device)
  to-login     s from launch to the "login:" prompt on the serial console
  vmm-rss      MiB of the VMM's own memory at the login prompt: resident set minus the
               resident part of the guest-RAM mapping (smaps), i.e. what the VMM costs on top
               of the memory the guest touched
and the ratio ignition/QEMU.  KERNELS=elf or KERNELS=bzimage runs just one.  The command lines
are launcher.py's.  On this project's development hosts (nested KVM) guests are slow; compare
ratios, not absolute figures.
"""
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import launcher  # noqa: E402
from launcher import guest_test, med  # noqa: E402

RUNS = int(os.environ.get("RUNS", "3"))
MEM_MIB = launcher.MEM_MIB
CONFIGS = [k.strip().lower() for k in os.environ.get("KERNELS", "elf,bzimage").split(",")
           if k.strip()]


def boot(vmm, kind, i, disk):
    g = launcher.start(vmm, f"bench-{vmm}-{kind}-{i}", [disk], launcher.kernel_path(kind))
    try:
        g.expect(rb"login: ", guest_test.LOGIN_TIMEOUT)
        login = time.monotonic() - g.start
        rss = launcher.vmm_rss_mib(g.proc.pid)
        if vmm != "ignition":
            return login, None, rss
        m = re.search(r"Guest-boot-time = (\d+) ms", g.stderr_text())
        return login, (int(m.group(1)) if m else None), rss
    finally:
        if vmm == "ignition":
            g.send(b"\x01x")
            g.wait_exit(20)
        g.close()


def fmt(v, unit):
    return "n/a" if v is None else f"{v:.1f} {unit}"


def main():
    if not launcher.need_kvm("boot"):
        return 2
    for kind in CONFIGS:
        launcher.kernel_path(kind)  # KERNELS=typo fails here, before any boot
    vmms = [v for v in launcher.VMMS if v != "qemu" or launcher.have_qemu()]
    tmp = tempfile.mkdtemp(prefix="ign-bench-")
    res = {(kind, v): [] for kind in CONFIGS for v in launcher.VMMS}
    try:
        for i in range(RUNS):
            for kind in CONFIGS:
                for vmm in vmms:
                    disk = launcher.copy_rootfs(tmp, f"{vmm}{i}")
                    try:
                        r = boot(vmm, kind, i, disk)
                    except guest_test.Timeout as e:
                        print(f"run {i} {vmm} {kind}: {e}", file=sys.stderr)
                        r = (None, None, None)
                    res[(kind, vmm)].append(r)
                    print(f"run {i + 1}/{RUNS} {launcher.KERNELS[kind]:12s} {vmm:8s} "
                          f"to-login {fmt(r[0], 's')}, guest-boot {fmt(r[1], 'ms')}, "
                          f"vmm-rss {fmt(r[2], 'MiB')}", flush=True)
                    os.unlink(disk)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for kind in CONFIGS:
        print()
        print(f"{launcher.KERNELS[kind]}: median of {RUNS} boots, {MEM_MIB} MiB guest, 1 vCPU, "
              "same kernel/cmdline/disk")
        print(f"{'':10s} {'guest-boot':>12s} {'to-login':>10s} {'vmm-rss':>10s}")
        rows = {}
        for vmm in launcher.VMMS:
            rs = res[(kind, vmm)]
            rows[vmm] = (med([r[1] for r in rs]), med([r[0] for r in rs]),
                         med([r[2] for r in rs]))
            gb, tl, rss = rows[vmm]
            print(f"{vmm:10s} {fmt(gb, 'ms'):>12s} {fmt(tl, 's'):>10s} {fmt(rss, 'MiB'):>10s}")
        a, b = rows["ignition"], rows["qemu"]
        print(f"{'ratio':10s} {'':>12s} {launcher.ratio(a[1], b[1]):>10s} "
              f"{launcher.ratio(a[2], b[2]):>10s}   (ignition / qemu; lower is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
