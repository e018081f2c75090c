"""Dirty tracking: Diff snapshots and in-place reset (docs/snapshots.md), checked from boot 1's
snapshot with restores (no boot of their own).

diff_chain(snap, tmp): a restore with --track-dirty writes three snapshots in a row, each after
writing its own files (on the disk and in tmpfs): each is a Diff whose parent is the one before
(the first's is boot 1's snapshot), much smaller than a Full one; restoring the last brings every
layer's files back with the right digests, restoring the middle one only its own and older ones;
a chain with its middle layer missing, or with that layer's state or memory damaged, is refused
with one clear line; `snapshot flatten` merges the chain into a Full snapshot that restores the
same files.

reset(snap, tmp): a restore with --track-dirty and a control socket: files written and a process
started after the restore are gone after Ctrl-A r and the shell is the same session in the same
directory; 200 resets through the control socket all succeed without the VMM's memory growing;
Ctrl-A c moves the checkpoint (a file written before it stays, one written after goes)."""
import json
import os
import re
import shutil
import socket
import subprocess
import time

from guest_test import CMD_TIMEOUT, Guest, IGNITION, check, result, sized, sock_dir

RESET_LINE = re.compile(r"Reset-time = (\d+) us \((\d+) pages")


class Control:
    """A client of ignition's --control socket (one JSON line each way)."""

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
                time.sleep(0.1)
        self.s.settimeout(timeout)
        self.f = self.s.makefile("rb")

    def call(self, **req):
        self.s.sendall(json.dumps(req).encode() + b"\n")
        line = self.f.readline()
        if not line:
            raise EOFError("control socket closed")
        return json.loads(line)

    def close(self):
        self.f.close()
        self.s.close()


def _ignition_restore(snap, timeout=30):
    p = subprocess.run([IGNITION, "run", "--restore", snap], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


def _manifest(d):
    with open(os.path.join(d, "manifest.json")) as f:
        return json.load(f)


def _allocated(path):
    return os.stat(path).st_blocks * 512


def _digests(r, names):
    st, out = r.run("md5sum " + " ".join(names) + " 2>&1")
    found = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and len(f[0]) == 32:
            found[f[1]] = f[0]
    return found


def diff_chain(snap, tmp):
    d = os.path.join(tmp, "layers")
    os.makedirs(d, exist_ok=True)
    sock = os.path.join(sock_dir(), "ctl.sock")
    layers = [os.path.join(d, f"l{k}") for k in (1, 2, 3)]
    sums = {}
    r = Guest("layers-write", ["--restore", snap, "--track-dirty", "--control", sock])
    ctl = None
    try:
        r.send("\n")
        r.expect(rb"# ", sized(kvm=30, pvm=120))
        ctl = Control(sock)
        for k, layer in enumerate(layers, 1):
            names = [f"/root/layer{k}.bin", f"/dev/shm/layer{k}.bin"]
            st, out = r.run(f"head -c 65536 /dev/urandom > {names[0]} && cp {names[0]} "
                            f"{names[1]} && sync && echo ok")
            found = _digests(r, names)
            sums.update(found)
            ans = ctl.call(cmd="snapshot", dir=layer)
            check(f"diff-layer{k}-written", st == 0 and len(found) == 2 and ans.get("ok"),
                  f"{out!r} {found} {ans}")
        r.send(b"\x01x")
        rc = r.wait_exit(60)
        check("diff-layers-exit-0", rc == 0, f"exit status {rc}")
        err = r.stderr_text()
        check("diff-snapshot-line-says-diff", len(re.findall(r"\(Diff: \d+ dirty pages\)", err))
              == 3, err[-400:])
    except Exception as e:
        result("FAIL", "diff-chain-write", r.why(e))
        return
    finally:
        if ctl:
            ctl.close()
        r.close()
        shutil.rmtree(os.path.dirname(sock), ignore_errors=True)
    parents = [snap] + layers[:-1]
    ok, why = True, []
    for layer, parent in zip(layers, parents):
        try:
            m = _manifest(layer)
        except (OSError, ValueError) as e:
            ok, why = False, why + [f"{layer}: {e}"]
            continue
        if m.get("type") != "Diff" or m.get("parent") != os.path.abspath(parent):
            ok = False
            why.append(f"{os.path.basename(layer)}: type {m.get('type')} parent {m.get('parent')}")
    check("diff-manifests-name-their-parents", ok, "; ".join(why))
    full = _allocated(os.path.join(snap, "memory"))
    diff = [_allocated(os.path.join(x, "memory")) for x in layers]
    print(f"  info  memory on disk: Full {full >> 10} KiB, Diff layers "
          f"{', '.join(str(x >> 10) for x in diff)} KiB", flush=True)
    check("diff-layers-hold-only-dirty-pages", all(x < full // 3 for x in diff),
          f"Full {full}, Diff {diff}")

    def restore_and_check(layer, want, absent, tag):
        g = Guest(f"layers-{tag}", ["--restore", layer])
        try:
            g.send("\n")
            g.expect(rb"# ", sized(kvm=30, pvm=120))
            found = _digests(g, list(want) + list(absent))
            check(f"diff-restore-{tag}", all(found.get(n) == s for n, s in want.items()) and
                  not any(n in found for n in absent), f"want {want}, found {found}")
            g.send(b"\x01x")
            g.wait_exit(60)
        except Exception as e:
            result("FAIL", f"diff-restore-{tag}", g.why(e))
        finally:
            g.close()

    restore_and_check(layers[2], sums, [], "all-three-layers")
    older = {n: s for n, s in sums.items() if "layer3" not in n}
    restore_and_check(layers[1], older, ["/root/layer3.bin", "/dev/shm/layer3.bin"],
                      "middle-layer")

    def refused(tag, needle):
        rc, err = _ignition_restore(layers[2])
        lines = [x for x in err.splitlines() if x.strip()]
        check(f"diff-refused-{tag}", rc == 1 and len(lines) == 1 and needle in lines[0],
              f"exit {rc}: {err[-300:]!r}")

    aside = layers[1] + ".aside"
    os.rename(layers[1], aside)
    try:
        refused("missing-middle-layer", "is missing")
    finally:
        os.rename(aside, layers[1])
    state = os.path.join(layers[1], "state")
    shutil.copy(state, state + ".good")
    try:
        with open(state, "r+b") as f:
            f.seek(200)
            b = f.read(1)
            f.seek(200)
            f.write(bytes([b[0] ^ 0xff]))
        refused("corrupt-middle-state", "parent layer")
    finally:
        os.replace(state + ".good", state)
    mem = os.path.join(layers[1], "memory")
    size = os.path.getsize(mem)
    os.truncate(mem, size - 4096)
    try:
        refused("truncated-middle-memory", "memory file")
    finally:
        os.truncate(mem, size)
    # Flatten into a new Full snapshot; it restores every layer's files.
    flat = os.path.join(d, "flat")
    p = subprocess.run([IGNITION, "snapshot", "flatten", layers[2], "--out", flat],
                       capture_output=True, timeout=300)
    try:
        m = _manifest(flat)
    except (OSError, ValueError):
        m = {}
    check("flatten-writes-full", p.returncode == 0 and m.get("type") == "Full" and
          m.get("parent") is None, f"exit {p.returncode}: {p.stderr[-300:]!r} {m}")
    if m.get("type") == "Full":
        restore_and_check(flat, sums, [], "flattened")


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def _reset_key(r):
    """Ctrl-A r; the match of its Reset-time line or None."""
    start = len(r.stderr_text())
    r.send(b"\x01r")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r._read(0.2)
        m = RESET_LINE.search(r.stderr_text()[start:])
        if m:
            return m
    return None


def reset(snap, tmp):
    sock = os.path.join(sock_dir(), "reset.sock")
    r = Guest("reset", ["--restore", snap, "--track-dirty", "--control", sock])
    ctl = None
    try:
        r.send("\n")
        r.expect(rb"# ", sized(kvm=30, pvm=120))
        ctl = Control(sock)
        st, before = r.run("echo mark=$IGN_MARK dir=$(pwd)")
        # The process is found by its argument, not its PID: the PID allocator is rolled back
        # too, so a process started after the reset (the NIC's re-probe) may get that PID.
        # (The pattern is not its own argument: grep's command line is in /proc too.)
        count = "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -cx '47[1]1'"
        st, out = r.run("cd /tmp; echo x > /dev/shm/reset-me; echo x > /root/reset-me.txt; "
                        f"sync; sleep 4711 & n=0; while [ \"$({count})\" != 1 ] && "
                        f"[ $n -lt 100 ]; do usleep 100000; n=$((n+1)); done; {count}",
                        timeout=sized(kvm=60, pvm=300))
        started = out.strip().splitlines()[-1:] == ["1"]
        m = _reset_key(r)
        check("reset-ctrl-a-r-line", m is not None, r.stderr_text()[-300:])
        if m:
            print(f"  info  {m.group(0)})", flush=True)
        r.send("\n")
        r.expect(rb"# ", CMD_TIMEOUT)
        st, after = r.run("echo mark=$IGN_MARK dir=$(pwd)")
        check("reset-same-shell-session", st == 0 and after == before and "warm-" in after,
              f"{before!r} then {after!r}")
        st, out = r.run(f"ls /dev/shm/reset-me /root/reset-me.txt 2>/dev/null; {count}")
        check("reset-files-and-processes-gone", started and out == "0",
              f"before the reset the process was {'' if started else 'not '}running; "
              f"after: {out!r}")
        # The file system is whole after its disk was rolled back: writing works.
        st, out = r.run("echo y > /root/after-reset.txt && sync && cat /root/after-reset.txt")
        check("reset-disk-writable-after", st == 0 and out == "y", out)
        for _ in range(20):  # warm up (allocations that stay)
            ctl.call(cmd="reset")
        rss0 = _rss_kib(r.proc.pid)
        times, errors = [], []
        for _ in range(200):
            ans = ctl.call(cmd="reset")
            if ans.get("ok"):
                times.append(ans["reset_us"])
            else:
                errors.append(ans.get("error"))
        rss1 = _rss_kib(r.proc.pid)
        times.sort()
        if times:
            print(f"  info  200 resets: reset_us p50 {times[len(times) // 2]}, p99 "
                  f"{times[int(len(times) * 0.99) - 1]}, VMM RSS {rss0} -> {rss1} KiB",
                  flush=True)
        check("reset-200-times", not errors and len(times) == 200, f"errors: {errors[:3]}")
        check("reset-200-no-rss-growth", rss1 - rss0 < 1024, f"VmRSS {rss0} -> {rss1} KiB")
        r.send("\n")
        r.expect(rb"# ", CMD_TIMEOUT)
        st, out = r.run("echo keep > /dev/shm/keep && echo ok")
        ans = ctl.call(cmd="checkpoint")
        st2, _ = r.run("echo drop > /dev/shm/drop")
        ans2 = ctl.call(cmd="reset")
        r.send("\n")
        r.expect(rb"# ", CMD_TIMEOUT)
        st, out = r.run("cat /dev/shm/keep; ls /dev/shm/drop 2>/dev/null; echo done")
        check("checkpoint-moves-reset-point", ans.get("ok") and ans2.get("ok") and
              out == "keep\ndone", f"{ans} {ans2} {out!r}")
        r.send(b"\x01x")
        rc = r.wait_exit(60)
        check("reset-ctrl-a-x-exit-0", rc == 0, f"exit status {rc}")
    except Exception as e:
        result("FAIL", "reset", r.why(e))
    finally:
        if ctl:
            ctl.close()
        r.close()
        shutil.rmtree(os.path.dirname(sock), ignore_errors=True)
