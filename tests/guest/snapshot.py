"""Snapshots of the default guest (docs/snapshots.md), checked from boot 1.

take(g, tmp): at the root shell a variable is exported and a background counter started; Ctrl-A s
writes a snapshot (one line on stderr with its timings), the directory has its files and no
temporary left, and the guest carries on.

start_after(snap, tmp): while boot 1's guest goes on and after it is off (two workers, see
Jobs), `--restore` resumes the snapshot in a new process: the same shell session (the
variable is still set, typing works), the counter keeps counting, `date` reads the host's
time, a file written in the clone is in the clone's private disk and not in the snapshot's
copy, Ctrl-A x ends it.  Then damaged copies of the snapshot (one flipped byte in `state`, a
truncated `state`, a truncated `memory`, another format version, an unknown record type, a
device record of another kind) are each refused with one clear line and exit status 1, never
a crash; so is a snapshot written by a process killed with SIGKILL while writing one (its
target is absent or whole; the .tmp- directory is no snapshot).

clones(snap, tmp): four restores of the snapshot run at once, each its own machine (a new MAC,
its own /dev/urandom, lease, NAT and hostfwd, a private disk); see clones() below."""
import http.server
import os
import re
import shutil
import struct
import subprocess
import threading
import time
import urllib.request
import zlib

import layers

from guest_test import (CMD_TIMEOUT, Guest, IGNITION, check, debugfs_cat, phase, result, sized,
                        sh_wait_default_route, sh_wait_dhcp_log, sock_dir)

SNAP_LINE = re.compile(r"snapshot (\S+)(?: \(Diff: \d+ dirty pages\))? written in (\d+) ms \(paused (\d+) us, state (\d+) us, "
                       r"memory (\d+) of (\d+) MiB in (\d+) ms, disks (\d+) ms\)")


def ctrl_a_s(g):
    """Press Ctrl-A s in guest `g`; the match of its "snapshot ... written" line, or None."""
    start = len(g.stderr_text())
    g.send(b"\x01s")
    deadline = time.monotonic() + sized(kvm=60, pvm=120)
    m = None
    while m is None and time.monotonic() < deadline:
        g._read(0.5)
        m = SNAP_LINE.search(g.stderr_text()[start:])
    return m


def take(g, tmp):
    """Snapshot the running guest `g` (started with --snapshot-dir tmp/snap1). Returns the
    snapshot directory or None."""
    snap = os.path.join(tmp, "snap1")
    # The counter waits with `read -t` on a FIFO rather than `sleep`: a process a second is
    # a good part of a host core on kvm_pvm hosts, and the clones run four of these at once.
    # It overwrites the file in place (`1<>`, no truncation; the numbers only grow longer):
    # with `>` a snapshot taken between the truncation and the write restored an empty file
    # (seen once, on a loaded host).
    st, _ = g.run("export IGN_MARK=warm-$$; mkfifo /tmp/ign-tick; (exec 3<>/tmp/ign-tick; "
                  "i=0; while :; do i=$((i+1)); echo $i 1<>/tmp/ign-counter; read -t 1 _ <&3; "
                  "done) >/dev/null 2>&1 & true")
    # The counter has started (a fork is seconds of emulated work on kvm_pvm hosts), and how
    # far the guest's clock is from the host's before the snapshot (the boot allows 120 s).
    st, out = g.run("while [ ! -s /tmp/ign-counter ]; do usleep 200000; done; date +%s",
                    timeout=sized(kvm=60, pvm=300))
    try:
        g.clock_skew = int(out.split()[-1]) - time.time()
    except (ValueError, IndexError):
        g.clock_skew = None
    start = len(g.stderr_text())
    m = ctrl_a_s(g)
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
    st, out = g.run("cat /sys/class/net/eth0/address")
    with open(os.path.join(tmp, "mac"), "w") as f:
        f.write(out.strip() + "\n")
    return snap


def _ignition_restore(snap, timeout=30):
    p = subprocess.run([IGNITION, "run", "--restore", snap], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


def _damaged(snap, tmp, name, damage):
    """A copy of the snapshot with `damage(dir)` applied (reflinked where the file system can,
    holes kept: `memory` is the guest's whole RAM with only the used part written)."""
    d = os.path.join(tmp, f"bad-{name}")
    subprocess.run(["cp", "-a", "--reflink=auto", "--sparse=always", snap, d], check=True)
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


def _host_http(body):
    """A throwaway HTTP server on host loopback serving `body` as /blob; (server, port)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, srv.server_address[1]


# In a clone: wait until ign-netwatch has re-probed eth0 after the restore's link bounce (the
# snapshot was taken before any bounce, so any "reprobed" line is this clone's), then print
# eth0's MAC and 32 bytes of /dev/urandom.
CLONE_IDENTITY = (sh_wait_dhcp_log(["reprobed"], 300) +
                  "read -r a </sys/class/net/eth0/address; echo $a; "
                  "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; "
                  "dmesg | grep -c 'reseeded due to virtual machine fork'")


def _on_all(rs, cmds, timeout=CMD_TIMEOUT):
    """Type cmds[i] into guest rs[i], all before waiting for any (the guests work at once);
    their (status, output)s."""
    for r, c in zip(rs, cmds):
        r.start_cmd(c)
    return [r.finish_cmd(timeout) for r in rs]


def clones(snap, tmp, n=4):
    """n clones of one snapshot at once, each its own machine: a MAC of its own (not the
    snapshot's), its own 32 bytes of /dev/urandom (VMGenID reseeds the guest's RNG), its own
    user network (a lease, HTTP to the host, a hostfwd into the clone) and a private disk (a
    file written in one clone is in no other clone and not in the snapshot's disk)."""
    import dev_net
    try:
        with open(os.path.join(tmp, "mac")) as f:
            orig_mac = f.read().strip()
    except OSError:
        orig_mac = ""
    token = os.urandom(16).hex().encode()
    srv, port = _host_http(token)
    fwd = [dev_net.free_port() for _ in range(n)]
    # Clone 0 has a control socket: its status counts the guest's "network configured" marks.
    ctl_path = os.path.join(sock_dir(), "clone0.sock")
    rs = [Guest(f"boot1-clone{i}", ["--restore", snap, "--net",
                                    f"user,host-loopback=on,hostfwd=tcp:127.0.0.1:{fwd[i]}-:8080"]
                + (["--control", ctl_path] if i == 0 else []))
          for i in range(n)]
    try:
        t0 = time.monotonic()
        for r in rs:
            r.send("\n")
        for r in rs:
            r.expect(rb"# ", sized(kvm=30, pvm=180))
        print(f"  info  {n} clones at their shell prompts {time.monotonic() - t0:.2f} s after "
              "the first was started", flush=True)
        ids = []
        # Bounds for a wedged guest, not durations: four clones re-probing their NICs at once
        # on a slow kvm_pvm host (emulated driver work) take a minute or more.
        for i, (st, out) in enumerate(_on_all(rs, [CLONE_IDENTITY] * n,
                                              timeout=sized(kvm=150, pvm=600))):
            f = out.split()
            ids.append(tuple(f[-3:]) if len(f) >= 3 else (f"?{i}", f"?{i}", "0"))
        macs = [x[0] for x in ids]
        rnds = [x[1] for x in ids]
        # The guest's RNG would drift apart by itself sooner or later (interrupt timing); the
        # VMGenID notification makes it reseed at once: Linux logs it.
        check("clones-vmgenid-reseeded", all(x[2] == "1" for x in ids),
              f"'reseeded due to virtual machine fork' counts {[x[2] for x in ids]}")
        check("clones-distinct-macs", len(set(macs)) == n and orig_mac not in macs
              and all(re.fullmatch(r"([0-9a-f]{2}:){5}[0-9a-f]{2}", m) for m in macs),
              f"snapshot {orig_mac}, clones {macs}")
        check("clones-distinct-urandom", len(set(rnds)) == n and
              all(re.fullmatch(r"[0-9a-f]{64}", x) for x in rnds), f"{rnds}")
        _on_all(rs, [f"echo clone-{i}-{token.decode()} > /root/clone-{i}.txt && sync"
                     for i in range(n)])
        listing = _on_all(rs, ["ls /root | grep '^clone-' | tr '\\n' ' '"] * n)
        for i, (st, out) in enumerate(listing):
            check(f"clone{i}-private-disk", st == 0 and out.split() == [f"clone-{i}.txt"], out)
        # Its own lease (ign-netwatch took it after the re-probe), HTTP to the host through
        # its own NAT, and the host into the clone through its own hostfwd.
        net = _on_all(rs, [
            sh_wait_dhcp_log(["reprobed", "lease"], 240) + sh_wait_default_route(60) +
            f"wget -q -O - http://10.0.2.2:{port}/blob; echo; "
            f"mkdir -p /tmp/www && echo clone-{i} > /tmp/www/who && httpd -p 8080 -h /tmp/www"
            " && echo httpd-up" for i in range(n)], timeout=sized(kvm=120, pvm=600))
        for i, (st, out) in enumerate(net):
            check(f"clone{i}-http-to-host", st == 0 and token.decode() in out, out[-200:])
            body = b""
            for _ in range(30):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{fwd[i]}/who",
                                                timeout=10) as resp:
                        body = resp.read()
                    break
                except OSError:
                    time.sleep(1)
            check(f"clone{i}-hostfwd", body.strip() == f"clone-{i}".encode(), repr(body[:100]))
        # The clone's lease was announced to ignition (udhcpc's default.script pokes the
        # boot-timer device); the count is this run's, the snapshot's own lease not in it.
        from gui import Control
        ctl = Control(ctl_path, guest=rs[0])
        st = ctl.raw({"cmd": "status"})
        ctl.close()
        check("clone0-net-ready", st.get("ok") is True and
              isinstance(st.get("net_ready"), int) and st["net_ready"] >= 1, f"status {st}")
        for i, r in enumerate(rs):
            r.send(b"\x01x")
        for i, r in enumerate(rs):
            rc = r.wait_exit(60)
            check(f"clone{i}-ctrl-a-x-exit-0", rc == 0, f"exit status {rc}")
        leaked = debugfs_cat(os.path.join(snap, "disk0"), "/root/clone-0.txt")
        check("clones-snapshot-disk-untouched", token.decode() not in leaked, leaked[-100:])
    except Exception as e:
        result("FAIL", "snapshot-clones", "; ".join(r.why(e) for r in rs))
    finally:
        for r in rs:
            r.close()
        srv.shutdown()


def resume(snap, tmp):
    """The snapshot resumed in a new process: the guest carries on. Returns the directory of
    the snapshot the resumed guest asks for."""
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
        # The counter ticks once a second: read it (a shell builtin, no process) each second
        # until it moves, the last time once 3 s have passed (the fixed wait this replaced).
        counting, out2, deadline = False, "", time.monotonic() + 3
        while not counting:
            time.sleep(1)
            last = time.monotonic() >= deadline
            st, out2 = r.run("read c < /tmp/ign-counter; echo $c")
            try:
                counting = int(out2.split()[-1]) > int(m.group(2))
            except (ValueError, IndexError, AttributeError):
                break
            if last:
                break
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
    return snap2


class Jobs:
    """Independent groups of checks worked through by two workers: a thread started here, and
    the caller's thread once it calls join() (boot 1's guest has one vCPU, the host at least
    two cores).  Until join() the caller counts as a running job.  An exclusive job (the four
    clones, four guests at once) waits until nothing else runs and runs alone, so no guest
    gets less than half a core.  A job that raises is a FAIL line with its reason; the others
    still run."""

    def __init__(self, jobs):
        self.jobs = list(jobs)  # (name, fn, exclusive)
        self.cv = threading.Condition()
        self.running = 1  # the caller's own guest, until join()
        self.alone = False
        self.thread = None
        # One CPU: no second worker, join() runs every job in turn.
        if len(os.sched_getaffinity(0)) >= 2:
            self.thread = threading.Thread(target=self._work, daemon=True)
            self.thread.start()

    def _next(self):
        with self.cv:
            while self.jobs:
                exclusive = self.jobs[0][2]
                if not self.alone and not (exclusive and self.running):
                    name, fn, self.alone = self.jobs.pop(0)
                    self.running += 1
                    return name, fn
                self.cv.wait()
            return None

    def _done(self):
        with self.cv:
            self.running -= 1
            self.alone = False
            self.cv.notify_all()

    def _work(self):
        while True:
            job = self._next()
            if job is None:
                return
            name, fn = job
            try:
                with phase(name):
                    fn()
            except Exception as e:  # a bug in a job fails that job, not the others
                result("FAIL", f"snapshot-job-{name.replace(' ', '-')}",
                       f"{type(e).__name__}: {e}")
            finally:
                self._done()

    def join(self):
        self._done()  # the caller's guest is off: this thread is a worker now
        self._work()
        if self.thread:
            self.thread.join()


def start_after(snap, tmp):
    """Start the checks of boot 1's snapshot, each in new processes restored from it: resumed
    (and its own snapshot resumed again, and a restore killed while snapshotting), four clones,
    the Diff chain, reset, the damaged copies refused.  Returns the Jobs; join() waits (and
    helps)."""
    def restore_chain():
        snap2 = resume(snap, tmp)
        if os.path.exists(os.path.join(snap2, "state")):
            second_generation(snap2)
        # In this job: the only other one that writes a snapshot next to boot 1's in tmp.
        killed_midway(snap, tmp)

    return Jobs([("restore", restore_chain, False),
                 ("Diff snapshot chain", lambda: layers.diff_chain(snap, tmp), False),
                 ("reset", lambda: layers.reset(snap, tmp), False),
                 ("damaged snapshots refused", lambda: refusals(snap, tmp), False),
                 ("four clones", lambda: clones(snap, tmp), True)])


def devices_snapshot(g, tmp):
    """Ctrl-A s in the device boot (boot 4); returns the directory or None."""
    snap = os.path.join(tmp, "snap4")
    start = len(g.stderr_text())
    m = ctrl_a_s(g)
    check("devices-snapshot", m is not None and os.path.isdir(snap),
          f"stderr: {g.stderr_text()[start:][-300:]!r}")
    return snap if m else None


def check_cpus(r, smp, tag):
    """nproc in the restored guest `r` is smp, and a busy loop pinned to each CPU ends."""
    st, out = r.run("nproc")
    check(f"{tag}-nproc-{smp}", st == 0 and out == str(smp), out)
    st, out = r.run("for c in $(seq 0 %d); do taskset -c $c sh -c 'i=0; while [ $i -lt "
                    "3000 ]; do i=$((i+1)); done; echo cpu$1-ok' sh $c & done; wait"
                    % (smp - 1),
                    timeout=sized(kvm=60, pvm=300))
    ok = [f"cpu{c}-ok" in out for c in range(smp)]
    check(f"{tag}-busy-loop-on-every-cpu", st == 0 and all(ok), out[-300:])


def snapshot_now(g, snap, tag):
    """Ctrl-A s in guest `g` (started with --snapshot-dir snap); True once it is written."""
    start = len(g.stderr_text())
    m = ctrl_a_s(g)
    return check(f"{tag}-snapshot", m is not None and os.path.isdir(snap),
                 f"stderr: {g.stderr_text()[start:][-300:]!r}")


def smp_restore(snap, smp, tag):
    """A snapshot of an SMP guest resumed: every CPU works; Ctrl-A x ends it."""
    r = Guest(f"{tag}-restored", ["--restore", snap])
    try:
        r.send("\n")
        r.expect(rb"# ", sized(kvm=30, pvm=120))
        check_cpus(r, smp, tag)
        r.send(b"\x01x")
        rc = r.wait_exit(60)
        check(f"{tag}-restored-ctrl-a-x-exit-0", rc == 0, f"exit status {rc}")
    except Exception as e:
        result("FAIL", f"{tag}-restore", r.why(e))
    finally:
        r.close()


def devices_restore(snap, smp, ctx):
    import dev_balloon
    import dev_net
    import dev_vsock
    """The device boot's snapshot resumed: every vCPU runs a busy loop pinned to it; eth0
    comes back with a new MAC and a lease from the new user-mode NAT; vsock works both ways
    after the transport reset; the balloon inflates again."""
    # A snapshot keeps MMDS's configuration, not its store, and a command-line restore serves
    # MMDS only with --mmds (docs/mmds.md): the clone gets a store of its own, V1 this time.
    mmds_args = []
    if "mmds_tap_skip" in ctx:
        mmds = os.path.join(ctx["tmp"], "mmds-clone.json")
        with open(mmds, "w") as f:
            f.write('{"latest": {"meta-data": {"ami-id": "ami-clone"}}}')
        mmds_args = ["--mmds", f"{mmds},v1"]
        # boot 4 has two or three interfaces: eth3 is none of them.
        p = subprocess.run([IGNITION, "run", "--restore", snap, "--mmds", f"{mmds},eth=3"],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
        check("restore-mmds-absent-interface-refused", p.returncode == 1 and
              b"MMDS: eth3 has no network device" in p.stderr,
              f"exit {p.returncode}: {p.stderr[-300:]!r}")
    r = Guest(f"boot4-restored-smp{smp}", ["--restore", snap, *mmds_args])
    try:
        r.send("\n")
        r.expect(rb"# ", sized(kvm=30, pvm=120))
        check_cpus(r, smp, "restore")
        # The restore bounced every link with a new MAC: ign-netwatch re-probes eth0 (a new
        # interface, no address) and takes a lease through the new user-mode NAT.
        old = " ".join((dev_net.USER_MAC, dev_net.USER2_MAC, dev_net.TAP_MAC))
        # (The MAC read with a builtin: a process each second is emulated work on kvm_pvm.)
        st, out = r.run("n=0; while read -r a < /sys/class/net/eth0/address; case \" %s \" in "
                        "*\" $a \"*) true;; *) false;; esac && [ $n -lt 120 ]; do sleep 1; "
                        "n=$((n+1)); done; "
                        "until ip -4 addr show eth0 | grep -q 'inet 10.0.2.15' || [ $n -ge 180 ]; "
                        "do sleep 1; n=$((n+1)); done; read -r a < /sys/class/net/eth0/address; "
                        "echo $a; ip -4 addr show eth0 | grep -c 'inet 10.0.2.15'" % old,
                        timeout=sized(kvm=200, pvm=400))
        f = out.split()
        check("restore-new-mac", st == 0 and len(f) >= 2 and f[-2] not in old.split(),
              out[-300:])
        check("restore-dhcp-renews", st == 0 and f[-1:] == ["1"], out[-300:])
        if mmds_args:
            st, out = r.run("wget -q -O - http://169.254.169.254/latest/meta-data/ami-id 2>&1")
            check("restore-mmds-v1-store-of-clone", st == 0 and out == "ami-clone",
                  f"status {st}: {out!r}")
        # vsock after the transport reset: an echo server started in the restored guest
        # takes a new connection from the host, and the guest connects out.
        path = ctx.get("vsock_path")
        if path:
            r.run("socat VSOCK-LISTEN:6000,fork EXEC:cat </dev/null >/dev/null 2>&1 & true")
            s_, line = dev_vsock.host_connect_retry(path, 6000)
            ok = s_ is not None and re.fullmatch(rb"OK \d+\n", line) is not None
            if ok:
                s_.sendall(b"after restore\n")
                ok = dev_vsock.recv_exact(s_, 14) == b"after restore\n"
            if s_ is not None:
                s_.close()
            check("restore-vsock-host-to-guest", ok, f"line {line!r}")
            lst = dev_vsock.unix_listener(f"{path}_5000")
            got = {}

            def serve_once():
                try:
                    c, _ = lst.accept()
                    c.settimeout(120)
                    got["data"] = c.recv(64)
                    c.sendall(b"host here\n")
                    c.close()
                except OSError as e:
                    got["error"] = str(e)

            t = threading.Thread(target=serve_once, daemon=True)
            t.start()
            st, out = r.run("echo again | socat -t 60 - VSOCK-CONNECT:2:5000",
                            timeout=sized(kvm=60, pvm=180))
            t.join(60)
            lst.close()
            os.unlink(f"{path}_5000")
            check("restore-vsock-guest-to-host", st == 0 and got.get("data") == b"again\n"
                  and "host here" in out, f"status {st}: {out!r}, host got {got!r}")
        # The balloon resumes where it was (deflated): it inflates to its step again.
        if ctx.get("balloon") is not None:
            line, reached = dev_balloon.toggle(r, dev_balloon.STEP_MIB)
            check("restore-balloon-inflates", line is not None and reached is not None and
                  int(line.group(1)) == dev_balloon.STEP_MIB and int(line.group(2)) == 0,
                  f"{line.group(0) if line else None!r}")
        r.send(b"\x01x")
        rc = r.wait_exit(60)
        check("restore-devices-ctrl-a-x-exit-0", rc == 0, f"exit status {rc}")
    except Exception as e:
        result("FAIL", "snapshot-devices-restore", r.why(e))
    finally:
        r.close()
