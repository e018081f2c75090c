"""What every benchmark shares: launching ignition and QEMU microvm on the same guest.

Both VMMs get the same kernel (KERNEL=elf: guest/out/vmlinux-min, the default; KERNEL=bzimage:
bzImage-min), the default guest's command line (guest/out/cmdline-min), the same disks in the
same order, memory and vCPU count (BENCH_APPEND="..." is appended to C for both):

  ignition   build/ignition run --kernel K --cmdline C --mem M --smp N --disk D...
  QEMU       qemu-system-x86_64 -M microvm,acpi=on,rtc=on -accel kvm -cpu CPU -m M -smp N
             -nodefaults -serial stdio -kernel K -append C
             -drive id=dI,file=D,format=raw,if=none,cache=writeback -device virtio-blk-device...

QEMU boots the ELF kernel through its PVH entry (the kernel has CONFIG_PVH), ignition through
its 64-bit ELF entry; neither decompresses.  cache=writeback is QEMU's default, spelled out:
like ignition's virtio-blk it goes through the host page cache (no O_DIRECT) and a guest flush
becomes fdatasync() on the image.

CPU: on a software-assisted nested KVM (/sys/module/kvm_pvm) QEMU's `-cpu host` has been seen
to abort ("failed to set MSR 0x10a": IA32_ARCH_CAPABILITIES), and guest hypercalls fault; so
there QEMU gets `host` without arch-capabilities and without the KVM paravirtual features
ignition's `--cpu-template auto` hides on that host (PV unhalt, TLB flush, send IPI, sched
yield: README, "CPU templates").  Elsewhere both get the host CPU.

Guests are driven through tests/guest/guest_test.py's pseudo-terminal Guest class.
"""
import os
import re
import shutil
import statistics
import subprocess
import sys
import termios
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "guest"))
import guest_test  # noqa: E402  (the pty driver the guest tests use)

GUEST_DIR = guest_test.GUEST_DIR
# Boots on a loaded kvm_pvm host (several guests on 2 cores) take minutes: wait longer for the
# login prompt than the guest tests' default, unless IGN_LOGIN_TIMEOUT says otherwise.
if "IGN_LOGIN_TIMEOUT" not in os.environ:
    guest_test.LOGIN_TIMEOUT = 1200.0
MEM_MIB = int(os.environ.get("MEM_MIB", "256"))
KERNELS = {"elf": "vmlinux-min", "bzimage": "bzImage-min"}
KERNEL = os.environ.get("KERNEL", "elf").lower()
VMMS = ("ignition", "qemu")
Timeout = guest_test.Timeout
KVM_PV_HYPERCALL_FEATURES = ("kvm-pv-unhalt", "kvm-pv-tlb-flush", "kvm-pv-ipi",
                             "kvm-pv-sched-yield")


def need_kvm(bench):
    """False (after one line on stderr) when there is no /dev/kvm."""
    if os.path.exists("/dev/kvm"):
        return True
    print(f"bench/{bench}: needs /dev/kvm (on hosts without it, run it inside the nested "
          f"harness: tests/nested/run.sh bench/{bench}.sh)", file=sys.stderr)
    return False


def have_qemu():
    return shutil.which("qemu-system-x86_64") is not None


def kernel_path(kind=None):
    """The default guest's kernel: kind "elf" (vmlinux-min) or "bzimage" (bzImage-min)."""
    kind = (kind or KERNEL).lower()
    if kind not in KERNELS:
        raise ValueError(f"KERNEL={kind}: elf or bzimage")
    return os.path.join(GUEST_DIR, KERNELS[kind])


def cmdline():
    """The default guest's complete command line (what ignition uses by default too), plus
    $BENCH_APPEND for both VMMs."""
    try:
        with open(os.path.join(GUEST_DIR, "cmdline-min")) as f:
            cl = " ".join(f.read().split())
    except OSError:
        cl = "console=ttyS0 reboot=k root=/dev/vda rw"
    extra = os.environ.get("BENCH_APPEND", "").strip()
    return f"{cl} {extra}" if extra else cl


def copy_rootfs(tmp, name):
    """A private copy of the default guest's root file system."""
    disk = os.path.join(tmp, f"{name}.ext4")
    shutil.copyfile(os.path.join(GUEST_DIR, "rootfs.ext4"), disk)
    return disk


def kvm_pvm():
    return os.path.exists("/sys/module/kvm_pvm")


def qemu_cpu():
    if not kvm_pvm():
        return "host"
    return ",".join(["host", "arch-capabilities=off"] +
                    [f"{f}=off" for f in KVM_PV_HYPERCALL_FEATURES])


def ignition_args(disks, kernel=None, mem=None, smp=1, extra=()):
    """`ignition run` arguments (without the program and verb)."""
    args = ["--kernel", kernel or kernel_path(), "--cmdline", cmdline(),
            "--mem", str(mem or MEM_MIB), "--smp", str(smp)]
    for d in disks:
        args += ["--disk", d]
    return args + list(extra)


def qemu_args(disks, kernel=None, mem=None, smp=1, extra=()):
    """The complete QEMU microvm command line."""
    cmd = ["qemu-system-x86_64", "-M", "microvm,acpi=on,rtc=on", "-accel", "kvm",
           "-cpu", qemu_cpu(), "-m", str(mem or MEM_MIB), "-smp", str(smp), "-nographic",
           "-nodefaults", "-no-reboot", "-serial", "stdio",
           "-kernel", kernel or kernel_path(), "-append", cmdline()]
    for i, d in enumerate(disks):
        cmd += ["-drive", f"id=d{i},file={d},format=raw,if=none,cache=writeback",
                "-device", f"virtio-blk-device,drive=d{i}"]
    return cmd + list(extra)


class QemuGuest(guest_test.Guest):
    """guest_test.Guest's pty driver around a QEMU command line instead of ignition."""

    def __init__(self, name, cmd):
        os.makedirs(guest_test.LOG_DIR, exist_ok=True)
        self.name = name
        self.master, self.slave = os.openpty()
        self.wfd = self.master
        self.termios_before = termios.tcgetattr(self.slave)
        self.console_log = open(os.path.join(guest_test.LOG_DIR, f"{name}.console.log"), "wb")
        self.stderr_path = os.path.join(guest_test.LOG_DIR, f"{name}.stderr.log")
        self.stderr = open(self.stderr_path, "wb")
        self.buf = b""
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=self.slave, stdout=self.slave,
                                     stderr=self.stderr, start_new_session=True,
                                     close_fds=True)


def start(vmm, name, disks, kernel=None, mem=None, smp=1, ignition_extra=(), qemu_extra=()):
    """Launch `vmm` ("ignition" or "qemu") on a pty; returns the Guest (not yet logged in)."""
    if vmm == "ignition":
        return guest_test.Guest(name, ignition_args(disks, kernel, mem, smp, ignition_extra))
    if vmm == "qemu":
        return QemuGuest(name, qemu_args(disks, kernel, mem, smp, qemu_extra))
    raise ValueError(vmm)


def poweroff(g, timeout=60):
    """Power the guest off from its shell, then make sure the VMM is gone."""
    try:
        g.send("poweroff\n")
        g.wait_exit(timeout)
    finally:
        g.close()


def vmm_rss_mib(pid, guest_mib=None):
    """Total RSS minus the resident part of the guest-RAM mapping (the mapping of that size)."""
    guest_mib = guest_mib or MEM_MIB
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


def med(xs):
    """Median of the values that are not None, or None."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def ratio(x, y):
    """x / y formatted, or n/a."""
    return "n/a" if x is None or not y else f"{x / y:.2f}"
