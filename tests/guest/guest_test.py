#!/usr/bin/env python3
"""Guest tests: boot real kernels under KVM with ignition and check what a user sees.

Boots as few times as possible (each boot is ~35-60 s on nested KVM) and checks many things
per boot.  Every check appends "PASS|FAIL|SKIP name (reason)" to $IGN_RESULTS.

Boot 1  default guest (ELF vmlinux-min), --smp 1, ACPI: login as root, nproc = 1, date
        matches the host (CMOS RTC), root found through the DSDT (no virtio_mmio.device= on
        the command line), every process runs with the guest's AVX mask and pipelines give
        the right digests many times over, Ctrl-A s snapshot at the shell, boot-timer line,
        write + sync a file, poweroff -> exit 0, file found on the image; and from the
        snapshot on, on a second worker beside the guest: the snapshot resumed in new
        processes, started as four clones at once (each its own MAC, /dev/urandom, network
        and disk), damaged copies of it refused (tests/guest/snapshot.py, layers.py).
Boot 2  bzImage, --smp 2 --no-acpi: virtio_mmio.device= on the command line, the vCPUs
        found through the MP table (nproc = 2), Ctrl-A s, reboot -> exit 0; the snapshot
        resumed with both vCPUs working (a busy loop pinned to each).
Boot 3  Debian's stock cloud kernel + initramfs, stdin/stdout are pipes: login, ACPI
        discovery, poweroff -> exit 0.  SKIP on kvm_pvm hosts (a host fact: an unpatched
        kernel cannot run 64-bit user space there, see guest/README.md).
Boot 4  the rest of the device set, --smp 4 (2 on kvm_pvm hosts and in tests/nested, see
        SMP_WIDE): nproc, then each tests/guest/dev_*.py module adds arguments and checks to
        one shared boot; Ctrl-A x -> exit 0 and the terminal settings restored.
Boot 5  the snapshot fuzzer (`ignition fuzz`, the planted-bug harness): the crash found within a
        bounded number of runs, it replays from the session's --checkpoint (no second boot),
        coverage stable over 100 resets, a checkpoint older than its harness refused; the exits
        harness:
        a guest panic and a poweroff are crashes 512 and 513, every thread is filtered
        (tests/guest/fuzz.py).
Boot 6  the control plane: Firecracker's REST API with curl (tests/api/curl_test.py): errors,
        1000 connections, a --config-file boot, then configure + InstanceStart + shell, pause,
        snapshot, load into a second process; that snapshot (its guest agent up) is the base of
        the MCP test: sandboxes cloned by `ignition mcp`, driven by the MCP SDK client.
Boot 7  the desktop guest (guest/out/rootfs-gui.ext4: sway + foot on virtio-gpu, virtio-input
        keyboard and tablet), booted once, headless with VNC (tests/guest/gui.py): the screen
        drawn, the input commands, a resize to 1024x768 and back shown in screenshots of
        those sizes, VNC grab, a serial shell; its snapshot then
        restored with an SDL window on Xvfb: the screen there at once, VNC, the shell, an
        in-place reset showing the screen at once again; then the same desktop booted on
        Debian's generic stock kernel (`--guest gui-stock`; SKIP on kvm_pvm hosts).
Boot 8  the disposable browser (guest/out/rootfs-browser.ext4: Firefox ESR in cage;
        tests/guest/browser.py; alone: `make test-browser`): `ignition browser --make-base`
        (one cold boot), then two sessions cloned from that base: the restored start page at
        once, the session's URL loaded from a server on the host and read back by OCR,
        nothing kept after SIGTERM.

Every boot runs once, in its own process; on a host with two or more cores boots 1 and 5 run
side by side (the others alone: BOOT_PAIRS says why; IGN_GUEST_LANES=1 runs the boots in
order in this process).
A timeout, a crash of this script inside a boot, a boot's process dying or outliving
IGN_BOOT_BOUND, or ignition dying is a FAIL line for that boot; the remaining boots still run.
Workloads are sized by host kind (HOST_KIND: "kvm", "pvm" for kvm_pvm, where guest kernel code
is emulated, or "nested" inside tests/nested); waits are for readiness, never fixed sleeps.
"""
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import termios
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IGNITION = os.environ.get("IGNITION", os.path.join(ROOT, "build", "ignition"))
GUEST_DIR = os.environ.get("IGNITION_GUEST_DIR", os.path.join(ROOT, "guest", "out"))
RESULTS = os.environ.get("IGN_RESULTS", "/dev/null")
LOG_DIR = os.environ.get("IGN_GUEST_LOGS", os.path.join(ROOT, "build", "guest-logs"))


def host_kind():
    """"pvm" on a kvm_pvm host (guest kernel code emulated), "nested" inside tests/nested,
    "kvm" otherwise."""
    if os.path.exists("/sys/module/kvm_pvm"):
        return "pvm"
    if os.environ.get("IGN_NESTED"):
        return "nested"
    return "kvm"


HOST_KIND = host_kind()


def sized(kvm, pvm, nested=None):
    """A workload size for this host kind (kernel-heavy guest work is slow under kvm_pvm)."""
    return {"kvm": kvm, "pvm": pvm, "nested": kvm if nested is None else nested}[HOST_KIND]


# Bounds on a wedged guest, not expected durations (the same on every host kind: the slow
# kvm_pvm workloads are made smaller instead, see sized()).
LOGIN_TIMEOUT = float(os.environ.get("IGN_LOGIN_TIMEOUT", "420"))
CMD_TIMEOUT = float(os.environ.get("IGN_CMD_TIMEOUT", "120"))
# `ignition mcp --ready-timeout` for the MCP sessions (tests/mcp): the server's default (60 s
# for a clone) is for a host that runs one guest per core; here two parallel clones share two
# cores with another boot's guest.
MCP_READY_S = os.environ.get("IGN_MCP_READY_S", "300")
# Boot 1's guest works while its snapshot's restores run beside it (two guests on two cores):
# its kernel-heavy steps (reading every process's environment, sync, poweroff) get a larger
# bound on kvm_pvm hosts, where 120 s was seen exceeded on a loaded host.
SLOW_CMD_TIMEOUT = sized(kvm=CMD_TIMEOUT, pvm=max(CMD_TIMEOUT, 300))


# Where the time goes: every result is also written with its time since this script started
# to build/guest-logs/check-times.log, and phase() prints how long each part of a boot took.
# (Wall-clock based and shared through the environment: the modules import this file again.)
T0 = float(os.environ.setdefault("IGN_GUEST_T0", str(time.time())))


def result(status, name, reason=""):
    line = f"{status} guest/{name}" + (f" ({reason})" if reason else "")
    with open(RESULTS, "a") as f:
        f.write(line + "\n")
    try:
        os.makedirs(LOG_DIR, exist_ok=True)
        with open(os.path.join(LOG_DIR, "check-times.log"), "a") as f:
            f.write(f"{time.time() - T0:8.1f} s  {status} guest/{name}\n")
    except OSError:
        pass
    tag = {"PASS": "ok  ", "FAIL": "FAIL", "SKIP": "skip"}[status]
    print(f"  {tag}  guest/{name}" + (f": {reason}" if reason else ""), flush=True)


class phase:
    """`with phase("name"):` prints "info  name: N s" when the block ends (also on errors)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, *exc):
        print(f"  info  {self.name}: {time.monotonic() - self.t0:.1f} s", flush=True)
        return False


def check(name, cond, reason=""):
    result("PASS" if cond else "FAIL", name, "" if cond else reason)
    return cond


class Timeout(Exception):
    pass


class Guest:
    """ignition on a pseudo-terminal, as a person at a terminal would run it."""

    def __init__(self, name, args, pipes=False):
        """pipes=False: stdin/stdout are a pseudo-terminal; True: two pipes."""
        os.makedirs(LOG_DIR, exist_ok=True)
        self.name = name
        self.console_log = open(os.path.join(LOG_DIR, f"{name}.console.log"), "wb")
        self.stderr_path = os.path.join(LOG_DIR, f"{name}.stderr.log")
        self.stderr = open(self.stderr_path, "wb")
        self.buf = b""
        self.start = time.monotonic()
        if pipes:
            self.slave = None
            self.proc = subprocess.Popen(
                [IGNITION, "run", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self.stderr, start_new_session=True, close_fds=True)
            self.master = self.proc.stdout.fileno()
            self.wfd = self.proc.stdin.fileno()
            return
        self.master, self.slave = os.openpty()
        self.wfd = self.master
        self.termios_before = termios.tcgetattr(self.slave)
        self.proc = subprocess.Popen(
            [IGNITION, "run", *args],
            stdin=self.slave, stdout=self.slave, stderr=self.stderr,
            start_new_session=True, close_fds=True)

    def _read(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        if not data:
            return False
        self.console_log.write(data)
        self.console_log.flush()
        self.buf += data
        return True

    def expect(self, pattern, timeout):
        """Wait for regex `pattern` (bytes) in the console output; consume up to its end."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(f"timed out after {timeout:.0f}s waiting for {pattern!r}")
            if not self._read(min(left, 1.0)) and self.proc.poll() is not None:
                # Drain whatever is left, then give up.
                while self._read(0.1):
                    pass
                m = rx.search(self.buf)
                if m:
                    self.buf = self.buf[m.end():]
                    return m
                raise Timeout(f"ignition exited ({self.proc.returncode}) before {pattern!r}")

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        for i in range(0, len(data), 16):  # the UART FIFO is small; be gentle
            os.write(self.wfd, data[i:i + 16])
            time.sleep(0.02)

    def login(self, echo=True):
        """Log in as root.  echo=False then turns the terminal's echo off (`stty -echo`): the
        shell reads each command as one line from the kernel instead of a character at a time
        in its line editor, which echoes every character back through the emulated UART.
        The serial console costs milliseconds of emulated guest kernel work per character on
        kvm_pvm hosts: the echo of a typed command was a good part of a command's cost.
        Commands and their output are the same (run() never matched the echo).  The prompt
        becomes "# " (was "root@ignition:~# "): 15 characters less on every command; waits
        for a prompt look for "# " either way.
        The price: with echo off busybox ash (1.35) reads a command with fgets(), which gives
        up when a signal interrupts it, and ash takes that for the end of its input.  So a
        background job of this shell that ends while the shell waits at its prompt (SIGCHLD)
        ends the shell: getty's login prompt follows.  Every job a check starts with `&` must
        run until the guest ends or be waited for (`wait`) in the command that ends it; that
        includes the moment a snapshot is taken, or the restored shell exits in its place."""
        self.expect(rb"login: ", LOGIN_TIMEOUT)
        self.login_s = time.monotonic() - self.start
        self.send("root\n")
        self.expect(rb"# ", CMD_TIMEOUT)
        if not echo:
            self.send("stty -echo; PS1='# '; echo __Q''UIET__\n")
            self.expect(rb"__QUIET__\r*\n", CMD_TIMEOUT)
            self.expect(rb"# ", CMD_TIMEOUT)

    def run(self, cmd, timeout=CMD_TIMEOUT):
        """Run a shell command in the guest; return (status, output)."""
        self.start_cmd(cmd)
        return self.finish_cmd(timeout)

    def start_cmd(self, cmd):
        """Type a command (finish_cmd collects it): several guests can work at once."""
        # The markers are quoted in the command so the echo of the typed line does not match.
        self.send(f"echo __B''EGIN__; {cmd}; echo __E''ND__$?\n")

    def finish_cmd(self, timeout=CMD_TIMEOUT):
        """(status, output) of the command start_cmd typed."""
        self.expect(rb"__BEGIN__\r*\n", timeout)
        m = self.expect(rb"([\s\S]*?)__END__(\d+)", timeout)
        out = m.group(1).decode(errors="replace").replace("\r", "")
        return int(m.group(2)), out.strip()

    def wait_exit(self, timeout):
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self._read(0.5)
        if self.proc.poll() is None:
            return None
        while self._read(0.1):
            pass
        return self.proc.returncode

    def stderr_text(self):
        self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def why(self, e):
        """A failure's reason: the timeout, plus ignition's own last words if it ended
        (a triple-fault or emulation-failure line with its register dump) and the console's
        last lines."""
        msg = str(e)
        rc = self.proc.poll()
        if rc is not None:
            err = [l for l in self.stderr_text().splitlines() if l.strip()]
            msg += f"; ignition exit status {rc}" + (f": {' | '.join(err[-4:])}" if err else "")
        tail = [l for l in self.buf.decode(errors="replace").replace("\r", "").splitlines()
                if l.strip()]
        if tail:
            # The last lines, not only the last one: a shell that died says why above the
            # prompt that replaced it (a segfault line, a kernel message).
            msg += f"; console: {' | '.join(l[-160:] for l in tail[-5:])!r}"
            if tail[-1].endswith("login: "):
                msg += " (the login shell exited: see Guest.login on background jobs)"
        return msg

    def terminal_restored(self):
        return termios.tcgetattr(self.slave) == self.termios_before

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if self.slave is not None:
            for fd in (self.master, self.slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.console_log.close()
        self.stderr.close()


# Shell code: fd 8 is a FIFO nobody writes, so `read -t 1 _ <&8` waits a second without
# starting a process (the waits below).
SH_TICK_FD8 = "[ -p /tmp/ign-wait ] || mkfifo /tmp/ign-wait; exec 8<>/tmp/ign-wait; "


def sh_wait_dhcp_log(events, limit_s):
    """Shell code (busybox ash) that waits until /run/dhcp.log (ign-netwatch's and udhcpc's
    log, guest/README.md "Networking") has lines whose second word is events[0], then one
    after it that is events[1], ... , for at most limit_s seconds; $f is then 1 when they came.
    Builtins only: the log is read with `read`, and a second's wait is `read -t 1` on a FIFO
    nobody writes.  A `grep` and a `sleep` a second are two process starts, each seconds of
    emulated guest kernel work on kvm_pvm hosts when four clones share the host."""
    steps = " ".join(f"{i}:{e}) i={i + 1};;" for i, e in enumerate(events))
    return (SH_TICK_FD8 + ": >>/run/dhcp.log; n=0; f=; until [ -n \"$f\" ] || [ $n -ge %d ]; do i=0; "
            "while read -r _ w _; do case $i:$w in %s esac; done </run/dhcp.log; "
            "[ $i = %d ] && f=1 || read -t 1 _ <&8; n=$((n+1)); done; " %
            (limit_s, steps, len(events)))


def sock_dir():
    """A new directory for Unix sockets (control, vsock) on a local file system (/tmp): the
    scratch directory under build/ is 9p inside tests/nested, where a socket cannot be bound
    (ENXIO).  Left for the system's /tmp clean-up: a restore may bind the same path again."""
    return tempfile.mkdtemp(prefix="ign-sock-")


def sh_wait_default_route(limit_s):
    """Shell code that waits (builtins only, as sh_wait_dhcp_log) until the guest has a
    default route, for at most limit_s seconds: in the nested harness a clone whose log said
    "lease" once had no route for its HTTP request (cause not found)."""
    return (SH_TICK_FD8 + "n=0; r=; "
            "until [ -n \"$r\" ] || [ $n -ge %d ]; do while read -r _ d _; do "
            "[ \"$d\" = 00000000 ] && r=1; done </proc/net/route; [ -n \"$r\" ] || "
            "read -t 1 _ <&8; n=$((n+1)); done; " % limit_s)


def debugfs_cat(image, path):
    p = subprocess.run(["debugfs", "-R", f"cat {path}", image], capture_output=True)
    return p.stdout.decode(errors="replace")


AVX_MASK = ("glibc.cpu.hwcaps=-AVX,-AVX2,-AVX512F,-AVX512BW,-AVX512VL,-AVX512DQ,-AVX512CD,-FMA,"
            "-AVX_Fast_Unaligned_Load")


def check_avx_mask(g):
    """Every guest process carries the GLIBC_TUNABLES mask (guest/README.md: on kvm_pvm hosts
    AVX state leaks between guest processes), and pipelines of static (busybox) and dynamic
    (socat) programs give the right answers many times over, with no process crashing."""
    # Two greps over all of /proc (a process per /proc entry took > 120 s on a slow kvm_pvm
    # host): user processes are those with a command line; which environments lack the mask.
    st, out = g.run("nomask=\" $(grep -zLxsF 'GLIBC_TUNABLES=%s' /proc/[0-9]*/environ | "
                    "tr '\\n' ' ') \"; n=0; bad=; "
                    "for f in $(grep -lzs . /proc/[0-9]*/cmdline); do p=${f%%/cmdline}; "
                    "n=$((n+1)); case \"$nomask\" in *\" $p/environ \"*) "
                    "bad=\"$bad [$(tr '\\0' ' ' < $f)]\";; esac; done; "
                    "echo procs=$n unmasked=$bad" % AVX_MASK, timeout=SLOW_CMD_TIMEOUT)
    m = re.search(r"procs=(\d+) unmasked=(.*)", out)
    check("avx-mask-in-every-process", st == 0 and m is not None and int(m.group(1)) >= 3
          and not m.group(2).strip(), out[-400:])
    # Every process start is dozens of emulated page faults on kvm_pvm hosts (socat maps a
    # dozen shared libraries): a round of these pipelines takes 25-50 s there.
    rounds = sized(kvm=60, pvm=3)
    st, out = g.run(
        "set -o pipefail; nbin=$(ls /bin | wc -l); i=0; bad=0; while [ $i -lt %d ]; do "
        "i=$((i+1)); "
        "[ \"$(echo abc | md5sum)\" = '0bee89b07a248e27c83fc3d5951213c1  -' ] || bad=$((bad+1)); "
        "[ \"$(ls /bin | wc -l)\" = \"$nbin\" ] || bad=$((bad+1)); "
        "cat /proc/loadavg > /dev/null || bad=$((bad+1)); "
        "[ \"$(echo ignition | socat - - | sha1sum | cut -c1-8)\" = f55dba53 ] || bad=$((bad+1)); "
        "done; echo rounds=$i bad=$bad" % rounds, timeout=sized(kvm=120, pvm=900))
    m = re.search(r"rounds=(\d+) bad=(\d+)", out)
    crashed = re.search(r"Segmentation fault|Illegal instruction|core dumped|Bus error", out)
    check("pipelines-stable", st == 0 and m is not None and int(m.group(1)) == rounds and
          m.group(2) == "0" and not crashed, out[-400:])


def boot1(rootfs, tmp):
    """Default guest (with a user-mode NIC for the clones), 1 vCPU, ACPI discovery, login,
    RTC, a snapshot at the shell, AVX mask and pipelines, disk write, boot-timer, poweroff; the
    snapshot resumed, started as four clones at once, written as Diff layers and reset
    (tests/guest/snapshot.py, layers.py), while the guest goes on and after it is off."""
    import snapshot
    snap = after = None
    g = Guest("boot1-smp1", ["--smp", "1", "--disk", rootfs, "--net", "user",
                             "--snapshot-dir", os.path.join(tmp, "snap1")])
    try:
        with phase("boot 1 launch to login"):
            g.login(echo=False)
        result("PASS", "login-root")
        # Each command is a round trip over the serial console (milliseconds of emulated
        # guest kernel work per character on kvm_pvm hosts) and each process start more:
        # one command line for three programs, files read and sysfs listed with builtins.
        st, out = g.run("nproc; uname -sr; date +%s")
        lines = out.splitlines() if st == 0 else []
        lines += [""] * (3 - len(lines))
        check("nproc-smp1", lines[0] == "1", f"nproc said {lines[0]!r}")
        check("shell-runs-commands", lines[1].startswith("Linux"), out)
        try:
            skew = abs(int(lines[2]) - time.time())
        except ValueError:
            skew = 1e9
        check("rtc-date-is-host-time", skew < 120, f"guest {lines[2]!r}, skew {skew}")
        st, cl = g.run("read -r cl < /proc/cmdline; echo \"$cl\"")
        check("acpi-no-virtio-cmdline", st == 0 and "virtio_mmio.device" not in cl, cl)
        st, out = g.run("n=0; for d in /sys/bus/acpi/devices/*LNRO0005*; do "
                        "[ -e \"$d\" ] && n=$((n+1)); done; echo $n")
        check("acpi-dsdt-virtio-node", st == 0 and out.strip() not in ("", "0"), out)
        # /proc/mounts says /dev/root; compare the root's st_dev with vda's major:minor.
        st, out = g.run("read -r v < /sys/block/vda/dev; while read -r d m t r; do "
                        "[ \"$m\" = / ] && fs=$t; done < /proc/mounts; "
                        "echo $(stat -c %D /) $v $fs")
        f = out.split()
        ok = st == 0 and len(f) == 3 and f[2] == "ext4"
        if ok:
            d = int(f[0], 16)  # Linux new_encode_dev: minor low byte, major, minor high bits
            ok = f"{(d >> 8) & 0xfff}:{(d & 0xff) | ((d >> 12) & 0xfff00)}" == f[1]
        check("root-on-virtio-blk", ok, out)
        with phase("boot 1 snapshot"):
            snap = snapshot.take(g, tmp)
        if snap:
            # The snapshot's checks restore it in new processes (no boot of their own): they
            # start now on a thread of their own, while this one-vCPU guest goes on; this
            # thread takes its share once the guest is off (after.join below).
            after = snapshot.start_after(snap, tmp)
        with phase("boot 1 AVX mask and pipelines"):
            check_avx_mask(g)
        st, _ = g.run("echo ignition-was-here > /root/persist.txt && sync",
                      timeout=SLOW_CMD_TIMEOUT)
        check("write-file-and-sync", st == 0)
        g.send("poweroff\n")
        rc = g.wait_exit(SLOW_CMD_TIMEOUT)
        check("poweroff-exit-0", rc == 0, f"exit status {rc}")
        err = g.stderr_text()
        check("boot-timer-line", re.search(r"Guest-boot-time = \d+ ms", err) is not None,
              "no 'Guest-boot-time = N ms' on stderr")
        check("boot-timer-once", len(re.findall(r"Guest-boot-time", err)) == 1, err[-300:])
        check("file-on-image-after-poweroff",
              "ignition-was-here" in debugfs_cat(rootfs, "/root/persist.txt"))
        print(f"    launch-to-login {g.login_s:.1f} s", flush=True)
    except Timeout as e:
        result("FAIL", "boot1", g.why(e))
    finally:
        g.close()
        if after:
            after.join()


# More vCPUs than the host's 2 cores on kvm_pvm hosts livelocks the emulated guest kernel at
# its clocksource switch: each vCPU's periodic tick (TSC-deadline timer, so tick_handle_periodic
# replays every missed tick) takes longer than the tick period at half a core, and the guest
# never catches up (seen 2026-11-30; profiles in pvclock_clocksource_read/timekeeping_advance).
# Inside tests/nested two as well: its L1 has one vCPU (NESTED_SMP, tests/nested/README.md
# "QEMU" says why), so two guest vCPUs already share it; the SMP paths need no more.
SMP_WIDE = sized(kvm=4, pvm=2, nested=2)


def guest_cmdline(flavour):
    try:
        with open(os.path.join(GUEST_DIR, f"cmdline-{flavour}")) as f:
            return " ".join(f.read().split())
    except OSError:
        return ""


def boot2(rootfs, tmp):
    """bzImage, no ACPI: devices on the command line, CPUs and the IOAPIC from the MP table;
    a snapshot of the 2-vCPU guest, resumed after the reboot with both CPUs working; reboot
    ends ignition."""
    import snapshot
    snap = os.path.join(tmp, "snap2-smp2")
    snapped = False
    args = ["--kernel", os.path.join(GUEST_DIR, "bzImage-min"), "--smp", "2", "--no-acpi",
            "--disk", rootfs, "--snapshot-dir", snap]
    cl = guest_cmdline("min")
    if cl:
        args += ["--cmdline", cl]
    g = Guest("boot2-bzimage-smp2-noacpi", args)
    try:
        g.login()
        st, out = g.run("nproc")
        check("no-acpi-mptable-nproc-2", st == 0 and out == "2", f"nproc said {out!r}")
        st, out = g.run("dmesg | grep -c -e 'MPTABLE: OEM ID: IGNITION' -e 'IOAPIC\\[0\\]'")
        check("no-acpi-mptable-ioapic", st == 0 and out == "2", f"dmesg matches: {out!r}")
        st, cl = g.run("cat /proc/cmdline")
        check("no-acpi-virtio-cmdline", "virtio_mmio.device=4K@0xc000" in cl, cl)
        snapped = snapshot.snapshot_now(g, snap, "smp2-no-acpi")
        g.send("reboot\n")
        rc = g.wait_exit(CMD_TIMEOUT)
        check("reboot-exit-0", rc == 0, f"exit status {rc}")
    except Timeout as e:
        result("FAIL", "boot2", g.why(e))
    finally:
        g.close()
    if snapped:
        snapshot.smp_restore(snap, 2, "smp2-no-acpi")


def boot3(rootfs):
    """Debian's stock cloud kernel + initramfs, console on pipes (not a terminal)."""
    if HOST_KIND == "pvm":
        for n in ("stock-kernel-login-over-pipes", "stock-kernel-runs",
                  "stock-kernel-acpi-virtio", "stock-kernel-poweroff-exit-0"):
            result("SKIP", n, "kvm_pvm host (/sys/module/kvm_pvm): an unpatched kernel cannot "
                   "run 64-bit user space there (guest/README.md)")
        return
    g = Guest("boot3-stock-pipes", ["--guest", "stock", "--smp", "2", "--disk", rootfs],
              pipes=True)
    try:
        g.login()
        result("PASS", "stock-kernel-login-over-pipes")
        st, out = g.run("uname -r")
        check("stock-kernel-runs", st == 0 and out.endswith("-cloud-amd64"), out)
        st, out = g.run("ls /sys/bus/acpi/devices/ | grep -c LNRO0005")
        check("stock-kernel-acpi-virtio", st == 0 and out.strip() not in ("", "0"), out)
        g.send("poweroff\n")
        rc = g.wait_exit(CMD_TIMEOUT)
        check("stock-kernel-poweroff-exit-0", rc == 0, f"exit status {rc}")
    except Timeout as e:
        result("FAIL", "boot3", g.why(e))
    finally:
        g.close()


def boot4(rootfs, tmp):
    """One boot for the rest of the device set: every tests/guest/dev_*.py module adds its
    ignition arguments (args(ctx) -> list), runs host-side set-up, and checks the guest
    (checks(g, ctx) using g.run / result / check).  ctx is a dict with "tmp" (a scratch
    directory both sides can use) and whatever the modules put there."""
    import importlib
    import glob
    mods = []
    for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "dev_*.py"))):
        name = os.path.basename(path)[:-3]
        if name.split("_", 1)[1] not in os.environ.get("IGN_DEV_ONLY", name.split("_", 1)[1]):
            continue
        mods.append(importlib.import_module(name))
    if not mods:
        return
    boot4_once(mods, rootfs, tmp)


def boot4_once(mods, rootfs, tmp):
    ctx = {"tmp": os.path.join(tmp, "boot4"), "rootfs": rootfs}
    os.makedirs(ctx["tmp"], exist_ok=True)
    import snapshot
    snap = None
    args = ["--smp", str(SMP_WIDE), "--disk", rootfs, "--snapshot-dir",
            os.path.join(tmp, "snap4")]
    for m in mods:
        args += m.args(ctx)
    g = Guest(f"boot4-devices-smp{SMP_WIDE}", args)
    try:
        with phase("boot 4 launch to login"):
            g.login(echo=False)
        st, out = g.run("nproc")
        check(f"nproc-smp{SMP_WIDE}", st == 0 and out == str(SMP_WIDE), f"nproc said {out!r}")
        for m in mods:
            try:
                with phase(m.__name__):
                    m.checks(g, ctx)
            except Timeout as e:
                result("FAIL", f"{m.__name__}", g.why(e))
            except Exception as e:  # a bug in a module fails that module, not the boot
                result("FAIL", f"{m.__name__}", f"{type(e).__name__}: {e}")
        snap = snapshot.devices_snapshot(g, tmp)
        # Boot 1 checks poweroff; this boot ends the way a person at the console would, with
        # every device still open.
        g.send(b"\x01x")
        rc = g.wait_exit(60)
        check("devices-ctrl-a-x-exit-0", rc == 0, f"exit status {rc}")
        check("terminal-restored", g.terminal_restored(), "termios differs after exit")
    except Timeout as e:
        result("FAIL", "boot4", g.why(e))
    finally:
        g.close()
        if snap:  # before the modules' clean-up: the vsock directory must still be there
            with phase("boot 4 restore"):
                snapshot.devices_restore(snap, SMP_WIDE, ctx)
        for m in mods:
            if hasattr(m, "cleanup"):
                m.cleanup(ctx)


def boot5(rootfs, tmp):
    """The snapshot fuzzer: the planted-bug harness image under `ignition fuzz`
    (tests/guest/fuzz.py)."""
    import fuzz
    del rootfs  # the harness boots from its own initramfs
    fuzz.fuzz_checks(tmp)
    fuzz.exits_checks(tmp)


def boot6(rootfs, tmp):
    """The control plane (tests/api/curl_test.py): Firecracker's REST API driven with curl --
    every error case, 1000 connections, a --config-file boot, then configure, InstanceStart,
    a shell, pause, snapshot, load into a second process, resume."""
    del rootfs  # the API test copies its own
    sys.path.insert(0, os.path.join(ROOT, "tests", "api"))
    import curl_test
    curl_test.RESULTS = RESULTS
    base = os.path.join(tmp, "api-snapshot")
    if curl_test.main(keep_snapshot=base) != 0:
        print("    (boot 6: see the FAIL lines above)", flush=True)
    # MCP: sandboxes cloned from that snapshot (its guest agent was up), driven by the
    # official MCP SDK client (tests/mcp/mcp_test.sh).
    if not os.path.exists(os.path.join(base, "state")):
        result("FAIL", "mcp", "no base snapshot: the API boot session did not write one")
        return
    t0 = time.monotonic()
    p = subprocess.run([os.path.join(ROOT, "tests", "mcp", "mcp_test.sh"), base],
                       env=dict(os.environ, IGN_RESULTS=RESULTS, IGN_MCP_READY_S=MCP_READY_S),
                       timeout=900)
    print(f"    MCP test: {time.monotonic() - t0:.0f} s (exit {p.returncode})", flush=True)


def boot7(rootfs, tmp):
    """The desktop guest (tests/guest/gui.py): one boot headless + VNC, then its snapshot
    restored with an SDL window on Xvfb."""
    del rootfs  # the GUI test copies the desktop image itself
    import gui
    gui.RESULTS = RESULTS
    gui.gui_checks(tmp)


def boot8(rootfs, tmp):
    """The disposable browser (tests/guest/browser.py): its warm base made by one cold boot,
    then two sessions cloned from it."""
    del rootfs  # the browser guest has its own (read-only) image
    import browser
    browser.browser_checks(tmp)


BOOTS = {"1": boot1, "2": boot2, "3": boot3, "4": boot4, "5": boot5, "6": boot6, "7": boot7,
         "8": boot8}
# Boot 8 (the browser) took 4.9 and 5.4 min inside tests/nested (2026-12-03), most of it
# Firefox's cold start for the warm base; on kvm_pvm hosts it has not run yet (its waits are
# sized for them: browser.py).
DEFAULT_BOOTS = "1,2,3,4,5,6,7,8"
# The order boots are started in, and which boots may run beside which (both ways; a boot
# named in no pair runs alone), measured on a 2-core kvm_pvm host, where every guest is bound
# by one core's emulation of its kernel:
# - the SMP guests (2, 3, 4) run alone: an SMP guest whose vCPUs lose their host core stalls
#   on its own spinlocks (boot 4 beside two guests: RCU stall warnings, no login prompt in
#   420 s);
# - the desktop guest (7) runs alone: beside boot 1 its cage start took more than 420 s; so
#   does the browser (8), whose Firefox is heavier still;
# - the REST API + MCP boot (6) runs alone: its MCP test restores two sandboxes at once and
#   bounds each at 60 s (the MCP server's own READY_RESTORE_MS); beside the desktop guest on
#   a slow day one sandbox's agent did not answer in time (2026-12-02: side by side the pair
#   passed twice, 357 s for both, then failed once when the host ran ~50% slower);
# - boot 1 (which runs its own second guest beside its first, snapshot.Jobs) shares the host
#   with boot 5, the fuzzer's one small harness VM.
BOOT_ORDER = ("4", "7", "8", "6", "1", "5", "2", "3")
BOOT_PAIRS = {frozenset(("1", "5"))}
# A lane's boot that has not ended after this long is killed and is a FAIL: a bound on a wedged
# boot (every wait inside has its own), so that a hang is a FAIL line, not a CI time-out.
BOOT_BOUND = float(os.environ.get("IGN_BOOT_BOUND", "2700"))
# Exit status of a boot worker whose failure is already recorded as a FAIL line.
RECORDED_FAILURE = 3


def lane_count(boots):
    """IGN_GUEST_LANES, else one lane per host core up to 2 (each lane's guest mostly keeps
    one core busy; a third would slow every guest)."""
    v = os.environ.get("IGN_GUEST_LANES", "")
    n = int(v) if v.isdigit() and int(v) > 0 else min(2, os.cpu_count() or 1)
    return max(1, min(n, len(boots)))


def run_boot(n, tmp):
    """Boot n in this process.  0, or RECORDED_FAILURE with a FAIL line written."""
    fn = BOOTS[n]
    rootfs = os.path.join(tmp, f"rootfs{n}.ext4")
    t0 = time.monotonic()
    status = 0
    try:
        shutil.copyfile(os.path.join(GUEST_DIR, "rootfs.ext4"), rootfs)
        if fn is boot3:
            fn(rootfs)
        else:
            fn(rootfs, tmp)
    except Exception as e:  # a crash here fails this boot; the others still run
        import traceback
        where = traceback.extract_tb(e.__traceback__)[-1]
        result("FAIL", f"boot{n}", f"{type(e).__name__}: {e} "
               f"(guest_test.py:{where.lineno} in {where.name})")
        status = RECORDED_FAILURE
    finally:
        try:
            os.unlink(rootfs)
        except OSError:
            pass
    print(f"    boot {n}: {time.monotonic() - t0:.0f} s", flush=True)
    return status


def may_start(n, running, lanes):
    """Whether boot n may start beside the running boots: a free lane, and n paired with each
    of them in BOOT_PAIRS."""
    return len(running) < lanes and all(frozenset((n, b)) in BOOT_PAIRS for b in running)


def run_lanes(boots, lanes):
    """Run the boots in worker processes (this script with IGN_GUEST_WORKER=N), in BOOT_ORDER,
    up to `lanes` at once and only as BOOT_PAIRS allows, each boot's output kept in
    build/guest-logs/bootN.out and printed when the boot ends, so that its lines stay
    together.  A worker that dies, or outlives BOOT_BOUND, is a FAIL line for its boot (its
    process group is killed: its guests too)."""
    queue = [n for n in BOOT_ORDER if n in boots]
    running = {}  # pid -> (boot, Popen, start time, output file)
    status = 0
    pairs = ", ".join("+".join(sorted(p)) for p in sorted(BOOT_PAIRS, key=sorted))
    print(f"    {len(queue)} boots, up to {lanes} at once (side by side only {pairs})",
          flush=True)
    while queue or running:
        # In order: a boot waits until it may run beside every running one.
        while queue and may_start(queue[0], [b for b, *_ in running.values()], lanes):
            n = queue.pop(0)
            out = open(os.path.join(LOG_DIR, f"boot{n}.out"), "w+")
            env = dict(os.environ, IGN_GUEST_WORKER=n)
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__)], env=env,
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
            running[p.pid] = (n, p, time.monotonic(), out)
            print(f"    boot {n}: started ({time.time() - T0:.0f} s into the guest tests)",
                  flush=True)
        time.sleep(1)
        for pid, (n, p, t0, out) in list(running.items()):
            rc = p.poll()
            late = rc is None and time.monotonic() - t0 > BOOT_BOUND
            if rc is None and not late:
                continue
            if late:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                rc = p.returncode
            else:
                try:  # whatever the worker left behind in its session (guests) goes too
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            del running[pid]
            out.seek(0)
            sys.stdout.write(f"  --- boot {n} ---\n" + out.read())
            out.close()
            if late:
                result("FAIL", f"boot{n}", f"not finished after {BOOT_BOUND:.0f} s: killed "
                       f"(see build/guest-logs/boot{n}.out)")
            elif rc not in (0, RECORDED_FAILURE):
                result("FAIL", f"boot{n}", f"the boot's test process ended with status {rc} "
                       f"(see build/guest-logs/boot{n}.out)")
            if rc != 0:
                status = 1
    return status


def main():
    if not os.path.exists("/dev/kvm"):
        # tests/guest/run.sh runs this inside the nested harness where /dev/kvm is absent;
        # reaching here without it is a broken set-up, not a reason to skip.
        result("FAIL", "kvm", "no /dev/kvm: run tests/guest/run.sh, which uses tests/nested")
        return 1
    worker = os.environ.get("IGN_GUEST_WORKER")
    if not worker:
        for f in ("vmlinux-min", "bzImage-min", "rootfs.ext4"):
            if not os.path.exists(os.path.join(GUEST_DIR, f)):
                result("FAIL", "guest-assets", f"{GUEST_DIR}/{f} missing: run make guest")
                return 1
        print(f"    host kind: {HOST_KIND}", flush=True)
        os.makedirs(LOG_DIR, exist_ok=True)
        open(os.path.join(LOG_DIR, "check-times.log"), "w").close()
    # Scratch space under build/ (not /tmp): inside the nested harness L1 has its own /tmp.
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ign-guest-", dir=os.path.join(ROOT, "build"))
    try:
        if worker:
            return run_boot(worker, tmp)
        only = os.environ.get("IGN_GUEST_ONLY", DEFAULT_BOOTS).split(",")
        boots = [n for n in BOOT_ORDER if n in only]
        lanes = lane_count(boots)
        if lanes > 1:
            return run_lanes(boots, lanes)
        status = 0
        for n in sorted(boots):
            if run_boot(n, tmp) != 0:
                status = 1
        return status
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
