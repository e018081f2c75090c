#!/usr/bin/env python3
"""Boot a guest kernel with the ignition root file system under QEMU (TCG by
default, so no /dev/kvm is needed), log in on the serial console as root, run a
few commands and power off. Checks the guest assets, not ignition.

The virtio-blk disk sits on QEMU microvm's virtio-mmio bus, which QEMU describes
in its ACPI DSDT (LNRO0005): the guest finds it through ACPI, as under ignition.
The image is booted from a temporary copy, so out/rootfs.ext4 stays pristine.

Under TCG the kernel's PIT-based TSC calibration sometimes fails (QEMU's timing
depends on host load) and the guest then stalls before the console comes up;
with KVM the TSC frequency comes from kvmclock and this never happens. So for
TCG the host's TSC frequency (QEMU TCG's guest TSC runs at the host's rate) is
passed as tsc_early_khz= unless --no-tsc-hint is given.

Exit status 0 when the login, the commands and the poweroff all worked.
"""
import argparse
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

COMMANDS = ["uname -a", "nproc", "date", "cat /proc/cmdline", "mount | grep ' / '",
            "ls /sys/bus/virtio/devices", "hostname", "id",
            "devmem 0xc0000000 8 123; echo devmem-status=$?"]


class Console:
    """The guest's serial console, through QEMU's stdio."""

    def __init__(self, proc, echo):
        self.proc = proc
        self.buf = b""
        self.echo = echo
        self.t0 = time.monotonic()

    def expect(self, needle, timeout):
        needle = needle.encode()
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(needle.decode())
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if not ready:
                continue
            data = os.read(self.proc.stdout.fileno(), 4096)
            if not data:
                raise EOFError(needle.decode())
            if self.echo:
                sys.stdout.write(data.decode(errors="replace").replace("\r", ""))
                sys.stdout.flush()
            self.buf += data
        head, _, self.buf = self.buf.partition(needle)
        return head.decode(errors="replace")

    def send(self, text):
        # The 16550 receive FIFO is small: feed the guest a few bytes at a time.
        for i in range(0, len(text), 8):
            self.proc.stdin.write(text[i:i + 8].encode())
            self.proc.stdin.flush()
            time.sleep(0.02)

    def elapsed(self):
        return time.monotonic() - self.t0


def host_tsc_khz():
    """The host's TSC rate in kHz, from /proc/cpuinfo; None if unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":")[1]) * 1000)
    except (OSError, ValueError):
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd")
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--cmdline-file", help="file with the kernel command line")
    ap.add_argument("--append", default="", help="more kernel parameters")
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--mem", type=int, default=256, help="MiB")
    ap.add_argument("--accel", default="tcg")
    ap.add_argument("--cpu", default="max")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per step")
    ap.add_argument("--quiet", action="store_true", help="do not echo the console")
    ap.add_argument("--no-tsc-hint", action="store_true",
                    help="do not add tsc_early_khz= under TCG")
    args = ap.parse_args()

    cmdline = ""
    if args.cmdline_file:
        with open(args.cmdline_file) as f:
            cmdline = " ".join(f.read().split())
    cmdline = (cmdline + " " + args.append).strip()
    if args.accel == "tcg" and not args.no_tsc_hint:
        khz = host_tsc_khz()
        if khz:
            cmdline += " tsc_early_khz=%d" % khz

    tmp = tempfile.mkdtemp(prefix="ignition-guest-check.")
    disk = os.path.join(tmp, "rootfs.ext4")
    shutil.copyfile(args.rootfs, disk)
    qemu = ["qemu-system-x86_64", "-M", "microvm,acpi=on", "-accel", args.accel,
            "-cpu", args.cpu, "-smp", str(args.smp), "-m", str(args.mem),
            "-nographic", "-no-reboot", "-kernel", args.kernel, "-append", cmdline,
            "-drive", "id=root,file=%s,format=raw,if=none" % disk,
            "-device", "virtio-blk-device,drive=root"]
    if args.initrd:
        qemu += ["-initrd", args.initrd]
    print("+ " + " ".join(qemu if " " not in cmdline else
                          [a if a != cmdline else "'%s'" % a for a in qemu]), flush=True)

    proc = subprocess.Popen(qemu, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    con = Console(proc, not args.quiet)
    ok = False
    marks = {}
    try:
        con.expect("login:", args.timeout)
        marks["login prompt"] = con.elapsed()
        con.send("root\n")
        con.expect("# ", args.timeout)
        marks["shell"] = con.elapsed()
        for i, cmd in enumerate(COMMANDS):
            con.send("%s; echo __done%d__\n" % (cmd, i))
            # skip the echo of the command line itself, then wait for the marker
            con.expect("__done%d__" % i, args.timeout)
            con.expect("__done%d__" % i, args.timeout)
        con.send("poweroff\n")
        rc = proc.wait(timeout=args.timeout)
        marks["powered off"] = con.elapsed()
        ok = rc == 0
        if rc != 0:
            print("\nqemu-check: QEMU exited with status %d" % rc)
    except (TimeoutError, EOFError) as e:
        what = "timed out" if isinstance(e, TimeoutError) else "console closed"
        print("\nqemu-check: %s waiting for %r" % (what, str(e)))
        print("qemu-check: unread console output: %r" % con.buf[-2000:].decode(errors="replace"))
    except subprocess.TimeoutExpired:
        print("\nqemu-check: the guest did not power off")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nqemu-check: %s; %s" % ("PASS" if ok else "FAIL",
          ", ".join("%s at %.1f s" % kv for kv in marks.items())))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
