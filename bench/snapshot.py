#!/usr/bin/env python3
"""Snapshot benchmark: ignition vs QEMU microvm on the same guest, in one run.

Each VMM boots the default guest once (launcher.py's command lines), logs in as root and is
snapshotted at the shell:
  ignition  Ctrl-A s (the line on stderr says how long it took, and how)
  QEMU      `stop` then `migrate "exec:cat > FILE"` on its monitor socket, timed until
            `info migrate` says completed
Then, RUNS times each (medians printed):
  to-running   ms from launch (the Popen) until the guest runs again: ignition's first
               KVM_RUN of the restored vCPU 0 (IGNITION_LOG=info gives its CLOCK_MONOTONIC
               time), QEMU's `info status` = running on its monitor after -incoming (polled
               every 2 ms, so + 0-2 ms)
  to-shell     ms from launch until the guest's shell answers: a newline is sent on the
               console until a prompt comes back (the guest's own work included)
and the ratios ignition/QEMU; ignition's restore timeline in µs (state file, private disk, VM
+ memory mapping + devices, irqchip/PIT/clock, device state, vCPUs, first instruction); the
memory that idle clones cost: the proportional set size (PSS) of 1 and of CLONES (default 8)
ignition clones of one snapshot running at once, per clone; and boot-to-shell against
restore-to-shell.  On kvm_pvm hosts guest kernel code is emulated: compare ratios, not absolute
figures (README, "Host notes").
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import launcher  # noqa: E402
from launcher import guest_test, med  # noqa: E402

RUNS = int(os.environ.get("RUNS", "3"))
CLONES = int(os.environ.get("CLONES", "8"))
SNAP_LINE = re.compile(r"snapshot (\S+) written in (\d+) ms \(paused (\d+) us, state (\d+) us, "
                       r"memory (\d+) of (\d+) MiB in (\d+) ms, disks (\d+) ms\)")
TIMELINE = re.compile(r"restore timeline \(us since start\): begin (\d+), state file read and "
                      r"checked \+(\d+), private disks \+(\d+), VM \+ memory mapping \+ devices "
                      r"\+(\d+) \(of which KVM memory slots (\d+)\), irqchip/PIT/clock \+(\d+), device state \+(\d+), vCPUs \+(\d+)")
FIRST_RUN = re.compile(r"vCPU 0: first KVM_RUN at (\d+) us since start \(CLOCK_MONOTONIC (\d+) us\)")


def shell_answers(g, timeout):
    """Send newlines until the shell prints a prompt; seconds since g started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        g.send("\n")
        try:
            g.expect(rb"# ", 0.5)
            return time.monotonic() - g.start
        except guest_test.Timeout:
            continue
    raise guest_test.Timeout(f"no shell prompt within {timeout} s")


def wait_stderr(g, rx, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = rx.search(g.stderr_text())
        if m:
            return m
        g._read(0.05)
    return None


class Monitor:
    """QEMU's human monitor on a Unix socket."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
        self.s.settimeout(timeout)
        self._until(b"(qemu) ")

    def _until(self, token):
        buf = b""
        while token not in buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("monitor closed")
            buf += chunk
        return buf.decode(errors="replace")

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\n")
        return self._until(b"(qemu) ")

    def quit(self):
        """`quit` ends QEMU; the monitor closes without another prompt."""
        try:
            self.s.sendall(b"quit\n")
        except OSError:
            pass
        self.s.close()

    def close(self):
        self.s.close()


def ignition_round(tmp, disk):
    """Boot ignition, snapshot at the shell; returns (boot-to-shell s, snapshot dir, line)."""
    snap = os.path.join(tmp, "ign-snap")
    g = launcher.start("ignition", "bench-snap-ignition-boot", [disk],
                       ignition_extra=["--snapshot-dir", snap])
    try:
        g.login()
        boot_shell = time.monotonic() - g.start
        g.send(b"\x01s")
        m = wait_stderr(g, SNAP_LINE, 120)
        g.send(b"\x01x")
        g.wait_exit(30)
        return boot_shell, (snap if m else None), m
    finally:
        g.close()


def qemu_round(tmp, disk):
    """Boot QEMU, stop and migrate to a file at the shell; returns (boot-to-shell s, file,
    write ms)."""
    mon = os.path.join(tmp, "qemu-mon.sock")
    out = os.path.join(tmp, "qemu-state")
    g = launcher.start("qemu", "bench-snap-qemu-boot", [disk],
                       qemu_extra=["-monitor", f"unix:{mon},server=on,wait=off"])
    try:
        g.login()
        boot_shell = time.monotonic() - g.start
        m = Monitor(mon)
        t0 = time.monotonic()
        m.cmd("stop")
        m.cmd(f'migrate "exec:cat > {out}"')
        while "completed" not in m.cmd("info migrate"):
            time.sleep(0.002)
        write_ms = (time.monotonic() - t0) * 1000
        m.quit()
        g.wait_exit(30)
        return boot_shell, out, write_ms
    finally:
        g.close()


def ignition_restore(snap, i):
    # The restore timeline and the first KVM_RUN are info-level lines (Guest passes the
    # environment on to ignition).
    old = os.environ.get("IGNITION_LOG")
    os.environ["IGNITION_LOG"] = "info"
    try:
        g = guest_test.Guest(f"bench-snap-ignition-restore-{i}", ["--restore", snap])
    finally:
        if old is None:
            del os.environ["IGNITION_LOG"]
        else:
            os.environ["IGNITION_LOG"] = old
    try:
        shell = shell_answers(g, 120)
        err = g.stderr_text()
        first = FIRST_RUN.search(err)
        tl = TIMELINE.search(err)
        pid = g.proc.pid
        g.send(b"\x01x")
        g.wait_exit(30)
        # From the launch, as QEMU's: the same clock as g.start (time.monotonic() is
        # CLOCK_MONOTONIC), so the exec and the dynamic loading before main() count too.
        running = int(first.group(2)) / 1000 - g.start * 1000 if first else None
        return (shell * 1000, running, [int(x) for x in tl.groups()] if tl else None,
                int(first.group(1)) if first else None, pid)
    finally:
        g.close()


def qemu_restore(state, disk, tmp, i):
    mon = os.path.join(tmp, f"qemu-mon-r{i}.sock")
    g = launcher.start("qemu", f"bench-snap-qemu-restore-{i}", [disk],
                       qemu_extra=["-monitor", f"unix:{mon},server=on,wait=off",
                                   "-incoming", f"exec:cat {state}"])
    try:
        m = Monitor(mon)
        # The source was stopped before it migrated, so the incoming VM ends paused: `cont`
        # it once the migration is in (status leaves "inmigrate").
        while True:
            st = m.cmd("info status")
            if "running" in st:
                break
            if "inmigrate" not in st:
                m.cmd("cont")
            time.sleep(0.002)
        running = (time.monotonic() - g.start) * 1000
        shell = shell_answers(g, 120) * 1000
        m.quit()
        g.wait_exit(30)
        return shell, running
    finally:
        g.close()


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def clone_split_kib(pid, snap):
    """(guest pages this clone dirtied, its share of the snapshot's clean pages it reads, the
    VMM's own PSS) in KiB: Private_Dirty of its mapping of the snapshot's memory file
    (copy-on-write copies), the rest of that mapping's PSS (page cache shared by the clones),
    and everything else (heap, stacks, its share of the binary and libraries)."""
    mem = os.path.realpath(os.path.join(snap, "memory"))
    dirty = mem_pss = other = 0
    in_mem = False
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                fields = line.split()
                if not fields:
                    continue
                if not fields[0].endswith(":") or "-" in fields[0]:
                    in_mem = len(fields) >= 6 and fields[5] == mem
                    continue
                if fields[0] == "Private_Dirty:" and in_mem:
                    dirty += int(fields[1])
                elif fields[0] == "Pss:":
                    if in_mem:
                        mem_pss += int(fields[1])
                    else:
                        other += int(fields[1])
    except OSError:
        return None
    return dirty, mem_pss - dirty, other


def clones_pss(snap, n):
    """Start n clones at once, wait for each shell; the mean PSS per clone in MiB and the mean
    (dirtied guest pages, the rest) split in MiB."""
    gs = []
    try:
        for i in range(n):
            gs.append(guest_test.Guest(f"bench-snap-clone{n}-{i}", ["--restore", snap]))
        for g in gs:
            shell_answers(g, 300)
        time.sleep(1)
        vals = [pss_kib(g.proc.pid) for g in gs]
        vals = [v for v in vals if v is not None]
        splits = [clone_split_kib(g.proc.pid, snap) for g in gs]
        splits = [v for v in splits if v is not None]
        split = tuple(sum(s[k] for s in splits) / len(splits) / 1024
                      for k in range(3)) if splits else (None, None, None)
        return (sum(vals) / len(vals) / 1024 if vals else None), split
    finally:
        for g in gs:
            try:
                g.send(b"\x01x")
                g.wait_exit(30)
            finally:
                g.close()


def fmt(v, unit, digits=1):
    return "n/a" if v is None else f"{v:.{digits}f} {unit}"


def main():
    if not launcher.need_kvm("snapshot"):
        return 2
    have_qemu = launcher.have_qemu()
    tmp = tempfile.mkdtemp(prefix="ign-bench-snap-", dir=os.path.join(launcher.ROOT, "build"))
    try:
        print(f"snapshot benchmark: {launcher.MEM_MIB} MiB, 1 vCPU, {RUNS} restores each; "
              f"host {'kvm_pvm' if launcher.kvm_pvm() else 'KVM'}", flush=True)
        ign_disk = launcher.copy_rootfs(tmp, "ign")
        ign_boot, snap, line = ignition_round(tmp, ign_disk)
        if not snap:
            print("ignition: the snapshot failed (see build/guest-logs/)", file=sys.stderr)
            return 1
        print(f"  ignition boot to shell {ign_boot:.1f} s; snapshot written in "
              f"{line.group(2)} ms (paused {line.group(3)} us, state {line.group(4)} us, "
              f"memory {line.group(5)} of {line.group(6)} MiB in {line.group(7)} ms, disk "
              f"{line.group(8)} ms)", flush=True)
        ign = [ignition_restore(snap, i) for i in range(RUNS)]
        q = []
        if have_qemu:
            q_disk = launcher.copy_rootfs(tmp, "qemu")
            q_boot, q_state, q_write = qemu_round(tmp, q_disk)
            print(f"  QEMU     boot to shell {q_boot:.1f} s; stop + migrate to a file "
                  f"{q_write:.0f} ms ({os.path.getsize(q_state) >> 20} MiB)", flush=True)
            q = [qemu_restore(q_state, q_disk, tmp, i) for i in range(RUNS)]
        i_shell, i_run = med([x[0] for x in ign]), med([x[1] for x in ign])
        print("\nrestore (median of %d)      ignition        QEMU    ratio" % RUNS)
        q_shell = med([x[0] for x in q]) if q else None
        q_run = med([x[1] for x in q]) if q else None
        print(f"  launch -> guest running  {fmt(i_run, 'ms'):>10}  {fmt(q_run, 'ms'):>10}  "
              f"{launcher.ratio(q_run, i_run)}x faster")
        print(f"  launch -> shell answers  {fmt(i_shell, 'ms'):>10}  {fmt(q_shell, 'ms'):>10}  "
              f"{launcher.ratio(q_shell, i_shell)}x faster")
        tls = [x[2] for x in ign if x[2]]
        if tls:
            names = ("process start -> restore begins", "state file read and checked",
                     "private disks (reflink or overlay)", "VM + memory mapping + devices",
                     "  of which KVM memory slots", "irqchip, PIT, clock", "device state",
                     "vCPU create + state")
            print("\nignition restore timeline (median µs)")
            for k, name in enumerate(names):
                print(f"  {name:34} {med([t[k] for t in tls]):>8.0f}")
            firsts = [x[3] for x in ign if x[3] is not None]
            if firsts:
                f_us = med(firsts)
                slot_us = med([t[4] for t in tls])
                pre = med([x[1] * 1000 - x[3] for x in ign if x[3] is not None])
                print(f"  {'first guest instruction at':34} {f_us:>8.0f}")
                print(f"  {'VMM work (without memory slots)':34} {f_us - slot_us:>8.0f}"
                      "   (goal: <= 5000)")
                print(f"  {'launch -> process start (exec, ld.so)':34} {pre:>8.0f}"
                      "   (not in the times above)")
        one, one_split = clones_pss(snap, 1)
        many, many_split = clones_pss(snap, CLONES)
        print(f"\nidle clones: PSS per clone {fmt(one, 'MiB')} alone, {fmt(many, 'MiB')} with "
              f"{CLONES} running")
        for label, s in ((f"{CLONES} running", many_split), ("alone", one_split)):
            print(f"  per clone, {label}: guest pages it dirtied {fmt(s[0], 'MiB')}, its share "
                  f"of the snapshot pages it reads {fmt(s[1], 'MiB')}, the VMM itself "
                  f"{fmt(s[2], 'MiB')}")
        print("  (goal: per idle clone <= its dirtied pages + 3 MiB)")
        print(f"boot to shell {ign_boot:.1f} s vs restore to shell {i_shell / 1000:.2f} s "
              f"({ign_boot * 1000 / i_shell:.0f}x)")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
