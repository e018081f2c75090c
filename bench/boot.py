#!/usr/bin/env python3
"""Boot benchmark: ignition vs QEMU microvm on the same kernel, command line and disk.

For each VMM, boots the default guest RUNS times and prints the median of:
  guest-boot   ms from VMM start to the guest's boot-timer poke (ignition only: QEMU has no
               boot-timer device)
  to-login     s from launch to the "login:" prompt on the serial console
  vmm-rss      MiB of the VMM's own memory at the login prompt: resident set minus the
               resident part of the guest-RAM mapping (smaps), i.e. what the VMM costs on top
               of the memory the guest touched
and the ratio ignition/QEMU.  On this project's development hosts (nested KVM) guests are
slow; compare ratios, not absolute figures.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "guest"))
import guest_test  # noqa: E402  (the pty driver the guest tests use)

RUNS = int(os.environ.get("RUNS", "3"))
MEM_MIB = int(os.environ.get("MEM_MIB", "256"))
GUEST_DIR = guest_test.GUEST_DIR


def vmm_rss_mib(pid, guest_mib):
    """Total RSS minus the resident part of the guest-RAM mapping (the mapping of that size)."""
    total = guest = 0
    size = None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    size = None
                elif line.startswith("Size:"):
                    size = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
                    total += rss
                    if size is not None and size >= guest_mib * 1024 and \
                            size <= guest_mib * 1024 + 4096:
                        guest += rss
    except OSError:
        return None
    return (total - guest) / 1024.0


def qemu_pid(proc):
    return proc.pid


class QemuGuest(guest_test.Guest):
    def __init__(self, name, cmd):
        os.makedirs(guest_test.LOG_DIR, exist_ok=True)
        self.name = name
        self.master, self.slave = os.openpty()
        import termios
        self.termios_before = termios.tcgetattr(self.slave)
        self.console_log = open(os.path.join(guest_test.LOG_DIR, f"{name}.console.log"), "wb")
        self.stderr_path = os.path.join(guest_test.LOG_DIR, f"{name}.stderr.log")
        self.stderr = open(self.stderr_path, "wb")
        self.buf = b""
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=self.slave, stdout=self.slave,
                                     stderr=self.stderr, start_new_session=True)


def cmdline():
    """The default guest's complete command line (what ignition uses by default too)."""
    try:
        with open(os.path.join(GUEST_DIR, "cmdline-min")) as f:
            return " ".join(f.read().split())
    except OSError:
        return "console=ttyS0 reboot=k root=/dev/vda rw"


def run_ignition(i, disk):
    g = guest_test.Guest(f"bench-ignition-{i}",
                         ["--mem", str(MEM_MIB), "--disk", disk, "--cmdline", cmdline()])
    try:
        g.expect(rb"login: ", guest_test.LOGIN_TIMEOUT)
        login = time.monotonic() - g.start
        rss = vmm_rss_mib(g.proc.pid, MEM_MIB)
        m = re.search(r"Guest-boot-time = (\d+) ms", g.stderr_text())
        return login, (int(m.group(1)) if m else None), rss
    finally:
        g.send(b"\x01x")
        g.wait_exit(20)
        g.close()


def run_qemu(i, disk):
    cmd = ["qemu-system-x86_64", "-M", "microvm,acpi=on,rtc=on", "-accel", "kvm", "-cpu", "host",
           "-m", str(MEM_MIB), "-smp", "1", "-nographic", "-nodefaults", "-no-reboot",
           "-serial", "stdio", "-kernel", os.path.join(GUEST_DIR, "bzImage-min"),
           "-append", cmdline(),
           "-drive", f"id=root,file={disk},format=raw,if=none",
           "-device", "virtio-blk-device,drive=root"]
    g = QemuGuest(f"bench-qemu-{i}", cmd)
    try:
        g.expect(rb"login: ", guest_test.LOGIN_TIMEOUT)
        login = time.monotonic() - g.start
        return login, None, vmm_rss_mib(g.proc.pid, MEM_MIB)
    finally:
        g.close()


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, unit):
    return "n/a" if v is None else f"{v:.1f} {unit}"


def main():
    if not os.path.exists("/dev/kvm"):
        print("bench/boot: needs /dev/kvm (on hosts without it, run it inside the nested "
              "harness: tests/nested/run.sh bench/boot.sh)", file=sys.stderr)
        return 2
    have_qemu = shutil.which("qemu-system-x86_64") is not None
    tmp = tempfile.mkdtemp(prefix="ign-bench-")
    res = {"ignition": [], "qemu": []}
    try:
        for i in range(RUNS):
            for name, fn in (("ignition", run_ignition), ("qemu", run_qemu)):
                if name == "qemu" and not have_qemu:
                    continue
                disk = os.path.join(tmp, f"{name}{i}.ext4")
                shutil.copyfile(os.path.join(GUEST_DIR, "rootfs.ext4"), disk)
                try:
                    r = fn(i, disk)
                except guest_test.Timeout as e:
                    print(f"run {i} {name}: {e}", file=sys.stderr)
                    r = (None, None, None)
                res[name].append(r)
                print(f"run {i + 1}/{RUNS} {name:8s} to-login {fmt(r[0], 's')}, "
                      f"guest-boot {fmt(r[1], 'ms')}, vmm-rss {fmt(r[2], 'MiB')}", flush=True)
                os.unlink(disk)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"median of {RUNS} boots, {MEM_MIB} MiB guest, 1 vCPU, same kernel/cmdline/disk")
    print(f"{'':10s} {'guest-boot':>12s} {'to-login':>10s} {'vmm-rss':>10s}")
    rows = {}
    for name in ("ignition", "qemu"):
        rs = res[name]
        rows[name] = (med([r[1] for r in rs]), med([r[0] for r in rs]), med([r[2] for r in rs]))
        gb, tl, rss = rows[name]
        print(f"{name:10s} {fmt(gb, 'ms'):>12s} {fmt(tl, 's'):>10s} {fmt(rss, 'MiB'):>10s}")
    a, b = rows["ignition"], rows["qemu"]
    ratio = lambda x, y: "n/a" if x is None or y is None or y == 0 else f"{x / y:.2f}"
    print(f"{'ratio':10s} {'':>12s} {ratio(a[1], b[1]):>10s} {ratio(a[2], b[2]):>10s}"
          "   (ignition / qemu; lower is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
