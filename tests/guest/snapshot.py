"""Snapshots of the default guest (docs/snapshots.md), checked from boot 1.

take(g, tmp): at the root shell a variable is exported and a background counter started; Ctrl-A s
writes a snapshot (one line on stderr with its timings), the directory has its files and no
temporary left, and the guest carries on.

after(snap, tmp): once boot 1 has powered off, `--restore` resumes the snapshot in a new
process: the same shell session (the variable is still set, typing works), the counter keeps
counting, `date` reads the host's time, a file written in the clone is in the clone's private
disk and not in the snapshot's copy, Ctrl-A x ends it.  Then damaged copies of the snapshot
(one flipped byte in `state`, a truncated `state`, a truncated `memory`, another format version,
an unknown record type, a device record of another kind) are each refused with one clear
line and exit status 1, never a crash; so is a snapshot written by a process killed with
SIGKILL while writing one (its target is absent or whole; the .tmp- directory is no snapshot)."""
import os
import re
import shutil
import struct
import subprocess
import time
import zlib

from guest_test import Guest, IGNITION, check, debugfs_cat, result, sized

SNAP_LINE = re.compile(r"snapshot (\S+) written in (\d+) ms \(paused (\d+) us, state (\d+) us, "
                       r"memory (\d+) of (\d+) MiB in (\d+) ms, disks (\d+) ms\)")


def take(g, tmp):
    """Snapshot the running guest `g` (started with --snapshot-dir tmp/snap1). Returns the
    snapshot directory or None."""
    snap = os.path.join(tmp, "snap1")
    st, _ = g.run("export IGN_MARK=warm-$$; (i=0; while :; do i=$((i+1)); echo $i > "
                  "/tmp/ign-counter; sleep 1; done) >/dev/null 2>&1 & true")
    # The counter has started (a fork is seconds of emulated work on kvm_pvm hosts), and how
    # far the guest's clock is from the host's before the snapshot (the boot allows 120 s).
    st, out = g.run("while [ ! -s /tmp/ign-counter ]; do usleep 200000; done; date +%s",
                    timeout=sized(kvm=60, pvm=300))
    try:
        g.clock_skew = int(out.split()[-1]) - time.time()
    except (ValueError, IndexError):
        g.clock_skew = None
    start = len(g.stderr_text())
    g.send(b"\x01s")
    deadline = time.monotonic() + sized(kvm=60, pvm=120)
    m = None
    while m is None and time.monotonic() < deadline:
        g._read(0.5)
        m = SNAP_LINE.search(g.stderr_text()[start:])
    if not check("snapshot-ctrl-a-s-line", m is not None,
                 f"no 'snapshot ... written' line; stderr: {g.stderr_text()[start:][-300:]!r}"):
        return None
    print(f"  info  snapshot: {m.group(0)}", flush=True)
    files = sorted(os.listdir(snap)) if os.path.isdir(snap) else []
    leftovers = [f for f in os.listdir(tmp) if ".tmp-" in f]
    check("snapshot-directory-complete",
          m.group(1) == snap and files == ["disk0", "manifest.json", "memory", "state"]
          and not leftovers, f"{m.group(1)}: {files}, leftovers {leftovers}")
    st, out = g.run("echo carries-on-$IGN_MARK")
    check("snapshot-guest-carries-on", st == 0 and out.startswith("carries-on-warm-"), out)
    if g.clock_skew is not None:
        with open(os.path.join(tmp, "clock-skew"), "w") as f:
            f.write(f"{g.clock_skew:.1f}\n")
    return snap


def _ignition_restore(snap, timeout=30):
    p = subprocess.run([IGNITION, "run", "--restore", snap], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


def _damaged(snap, tmp, name, damage):
    """A copy of the snapshot with `damage(dir)` applied (memory reflinked or copied)."""
    d = os.path.join(tmp, f"bad-{name}")
    shutil.copytree(snap, d)
    damage(d)
    return d


def _rewrite_state(d, fn):
    """Apply fn to the state bytes (without the CRC), then re-seal it with a valid CRC so
    that only the check under test can refuse it."""
    p = os.path.join(d, "state")
    with open(p, "rb") as f:
        data = bytearray(f.read())
    body = fn(bytearray(data[:-4]))
    with open(p, "wb") as f:
        f.write(body + struct.pack("<I", zlib.crc32(bytes(body)) & 0xffffffff))


def _records(body):
    """Offsets and (type, id) of every record of a state body (without the CRC)."""
    off, out = 16, []
    count = struct.unpack_from("<I", body, 12)[0]
    for _ in range(count):
        typ, ver = struct.unpack_from("<HH", body, off)
        rid = bytes(body[off + 4:off + 36]).split(b"\0")[0].decode()
        length = struct.unpack_from("<I", body, off + 36)[0]
        out.append((off, typ, rid, length))
        off += 40 + length
    return out


def refusals(snap, tmp):
    def flip(d):
        p = os.path.join(d, "state")
        with open(p, "r+b") as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 0x40]))

    def truncate_state(d):
        p = os.path.join(d, "state")
        os.truncate(p, os.path.getsize(p) // 2)

    def truncate_memory(d):
        p = os.path.join(d, "memory")
        os.truncate(p, os.path.getsize(p) - 4096)

    def version(d):
        _rewrite_state(d, lambda b: b[:8] + struct.pack("<I", 99) + b[12:])

    def unknown_record(d):
        def add(b):
            count = struct.unpack_from("<I", b, 12)[0]
            rec = struct.pack("<HH", 999, 1) + b"mystery".ljust(32, b"\0") + struct.pack("<I", 0)
            return b[:12] + struct.pack("<I", count + 1) + b[16:] + rec
        _rewrite_state(d, add)

    def wrong_device(d):
        # Make the serial port's slot record claim another window.
        def move(b):
            for off, typ, rid, length in _records(b):
                if typ == 6 and rid == "serial0":
                    base = off + 40 + 1
                    val = struct.unpack_from("<Q", b, base)[0]
                    struct.pack_into("<Q", b, base, val + 8)
            return b
        _rewrite_state(d, move)

    cases = (("state-bit-flip", flip, r"checksum mismatch"),
             ("state-truncated", truncate_state, r"checksum mismatch|too short|runs past"),
             ("memory-truncated", truncate_memory, r"memory file has \d+ bytes"),
             ("format-version", version, r"format version 99"),
             ("unknown-record", unknown_record, r"unknown record type 999 \('mystery'\)"),
             ("device-mismatch", wrong_device, r"device 'serial0'.*snapshot has it at"))
    for name, damage, want in cases:
        d = _damaged(snap, tmp, name, damage)
        try:
            rc, err = _ignition_restore(d)
        except subprocess.TimeoutExpired:
            rc, err = None, "timed out"
        lines = [l for l in err.splitlines() if l.strip()]
        check(f"restore-refuses-{name}",
              rc == 1 and len(lines) == 1 and lines[0].startswith("ignition: error: ")
              and re.search(want, lines[0]) is not None, f"exit {rc}: {err[-300:]!r}")
        shutil.rmtree(d, ignore_errors=True)


def killed_midway(snap, tmp):
    """A clone is killed with SIGKILL while Ctrl-A s writes: its target either does not exist
    or is a complete snapshot; the temporary directory left behind is not listed as one."""
    target = os.path.join(tmp, "snap-killed")
    r = Guest("boot1-killed-while-snapshotting", ["--restore", snap, "--snapshot-dir", target])
    try:
        r.send("\n")
        r.expect(rb"# ", sized(kvm=30, pvm=120))
        r.send(b"\x01s")
        time.sleep(0.05)
        r.proc.kill()
        r.proc.wait()
        info = subprocess.run([IGNITION, "snapshot", "info", target], capture_output=True)
        listed = subprocess.run([IGNITION, "snapshot", "list", tmp], capture_output=True)
        complete = info.returncode == 0 and b"state: ok" in info.stdout
        check("snapshot-killed-leaves-none-or-whole",
              (not os.path.exists(target) or complete) and b".tmp-" not in listed.stdout,
              f"exists {os.path.exists(target)}, info exit {info.returncode}: "
              f"{info.stdout[-200:]!r}")
    except Exception as e:
        result("FAIL", "snapshot-killed", r.why(e))
    finally:
        r.close()


def second_generation(snap2):
    """The clone's own snapshot resumes too: inside ign-snapshot, with the clone's disk."""
    r = Guest("boot1-restored-twice", ["--restore", snap2])
    try:
        r.send("\n")
        r.expect(rb"# ", sized(kvm=30, pvm=120))
        st, out = r.run("echo mark=$IGN_MARK; cat /root/clone.txt")
        check("restore-of-a-clone-snapshot", st == 0 and "mark=warm-" in out and
              "from-the-clone" in out, out)
        r.send(b"\x01x")
        r.wait_exit(60)
    except Exception as e:
        result("FAIL", "snapshot-restore-twice", r.why(e))
    finally:
        r.close()


def after(snap, tmp):
    """Resume the snapshot in a new process and check the guest continued."""
    snap2 = os.path.join(tmp, "snap2")
    r = Guest("boot1-restored", ["--restore", snap, "--snapshot-dir", snap2])
    try:
        t0 = time.monotonic()
        r.send("\n")
        r.expect(rb"# ", sized(kvm=30, pvm=120))
        print(f"  info  restore to shell prompt {time.monotonic() - t0:.2f} s", flush=True)
        st, out = r.run("echo mark=$IGN_MARK; cat /tmp/ign-counter")
        m = re.search(r"mark=(\S+)\s+(\d+)", out)
        check("restore-same-shell-session", st == 0 and m is not None and
              m.group(1).startswith("warm-"), out)
        time.sleep(3)
        st, out2 = r.run("cat /tmp/ign-counter")
        try:
            counting = int(out2.split()[-1]) > int(m.group(2))
        except (ValueError, IndexError, AttributeError):
            counting = False
        check("restore-background-counter-keeps-counting", st == 0 and counting,
              f"{out!r} then {out2!r}")
        # Wall-clock time is brought forward over the downtime (KVM_CLOCK_REALTIME): the
        # guest is as far from the host's clock as it was before the snapshot (a clock that
        # resumed where it stopped would be behind by the whole downtime, a minute or more).
        try:
            with open(os.path.join(tmp, "clock-skew")) as f:
                before = float(f.read())
        except (OSError, ValueError):
            before = 0.0
        st, out = r.run("date +%s")
        try:
            skew = int(out) - time.time()
        except ValueError:
            skew = 1e9
        print(f"  info  guest clock minus host clock: {before:.1f} s before the snapshot, "
              f"{skew:.1f} s after the restore", flush=True)
        check("restore-date-is-now", st == 0 and abs(skew - before) < 5,
              f"guest {out!r}: {skew:.0f} s from the host's clock, {before:.0f} s before")
        st, out = r.run("echo from-the-clone > /root/clone.txt && sync && cat /root/clone.txt")
        check("restore-disk-writes", st == 0 and out == "from-the-clone", out)
        # The guest asks for a snapshot of itself (the boot-timer register): a snapshot of a
        # restored VM (file-backed memory, a private disk), and the command ends in both.
        st, out = r.run("ign-snapshot && echo snapped-$IGN_MARK", timeout=sized(kvm=60, pvm=180))
        check("guest-requested-snapshot", st == 0 and out.startswith("snapped-warm-") and
              os.path.exists(os.path.join(snap2, "state")), f"{out!r}")
        r.send(b"\x01x")
        rc = r.wait_exit(60)
        check("restore-ctrl-a-x-exit-0", rc == 0, f"exit status {rc}")
        check("restore-snapshot-disk-untouched",
              "from-the-clone" not in debugfs_cat(os.path.join(snap, "disk0"),
                                                  "/root/clone.txt"))
    except Exception as e:  # a timeout or ignition dying: a FAIL with its reason
        result("FAIL", "snapshot-restore", r.why(e))
    finally:
        r.close()
    if os.path.exists(os.path.join(snap2, "state")):
        second_generation(snap2)
    refusals(snap, tmp)
    killed_midway(snap, tmp)


def devices_snapshot(g, tmp):
    """Ctrl-A s in the device boot (boot 4); returns the directory or None."""
    snap = os.path.join(tmp, "snap4")
    start = len(g.stderr_text())
    g.send(b"\x01s")
    deadline = time.monotonic() + sized(kvm=60, pvm=120)
    m = None
    while m is None and time.monotonic() < deadline:
        g._read(0.5)
        m = SNAP_LINE.search(g.stderr_text()[start:])
    check("devices-snapshot", m is not None and os.path.isdir(snap),
          f"stderr: {g.stderr_text()[start:][-300:]!r}")
    return snap if m else None


def devices_restore(snap, smp):
    """The device boot's snapshot resumed: every vCPU runs a busy loop pinned to it, the first
    network device renews its DHCP lease through the new user-mode NAT."""
    r = Guest(f"boot4-restored-smp{smp}", ["--restore", snap])
    try:
        r.send("\n")
        r.expect(rb"# ", sized(kvm=30, pvm=120))
        st, out = r.run("nproc")
        check(f"restore-nproc-{smp}", st == 0 and out == str(smp), out)
        st, out = r.run("for c in $(seq 0 %d); do taskset -c $c sh -c 'i=0; while [ $i -lt "
                        "3000 ]; do i=$((i+1)); done; echo cpu$1-ok' sh $c & done; wait"
                        % (smp - 1),
                        timeout=sized(kvm=60, pvm=300))
        ok = [f"cpu{c}-ok" in out for c in range(smp)]
        check(f"restore-busy-loop-on-every-cpu", st == 0 and all(ok), out[-300:])
        st, out = r.run("udhcpc -i eth0 -n -q -t 5 2>&1 | tail -2; ip -4 addr show eth0 | "
                        "grep -c 'inet 10.0.2.15'", timeout=sized(kvm=60, pvm=300))
        check("restore-dhcp-renews", st == 0 and out.strip().endswith("1"), out[-300:])
        r.send(b"\x01x")
        rc = r.wait_exit(60)
        check("restore-devices-ctrl-a-x-exit-0", rc == 0, f"exit status {rc}")
    except Exception as e:
        result("FAIL", "snapshot-devices-restore", r.why(e))
    finally:
        r.close()
