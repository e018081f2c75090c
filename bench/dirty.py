"""Dirty tracking benchmark (bench/dirty.sh): what --track-dirty costs the guest, how small and
fast Diff snapshots are, and how long an in-place reset takes.

One boot of the default guest (launcher.py's command line) to a shell and a Full snapshot there
(or SNAP=DIR: an existing snapshot of the default guest at its shell), then restores of it:

  1. the same memory-writing workload (guest/rootfs/ign-touch: a fresh process faults in and
     writes MIB MiB from user space) in a restore without --track-dirty, then (one VM at a time) in one
     with it, ROUNDS times each: the guest-visible time, median and ratio;
  2. in the tracked restore, after each workload, a snapshot through the control socket: a Diff
     over the previous one (its write time and dirty pages), against a Full one written by
     the untracked restore;
  3. in-place resets through the control socket: RESETS resets back to back and RESETS
     after a shell command (`echo x`), with the pages copied back and the time per
     reset (p50, p99) from ignition's own answers.

Compares ignition with itself (tracking on/off); no other VMM has these operations.
Environment: ROUNDS (default 5), MIB (default 32), RESETS (default 200), MEM_MIB (default 256).
"""
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time

import launcher
from layers import Control  # noqa: E402 (tests/guest, on the path through launcher)

ROUNDS = int(os.environ.get("ROUNDS", "5"))
# ign-touch faults every page in through the guest kernel, which is emulated on kvm_pvm hosts
# (~2-3 s per MiB there).
MIB = int(os.environ.get("MIB", "4" if launcher.kvm_pvm() else "256"))
RESETS = int(os.environ.get("RESETS", "200"))
SNAP_LINE = re.compile(r"snapshot (\S+)(?: \(Diff: (\d+) dirty pages\))? written in (\d+) ms")
TOUCH = re.compile(r"touched (\d+) MiB in (\d+) ms")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def make_snapshot(tmp):
    disk = launcher.copy_rootfs(tmp, "dirty")
    snap = os.path.join(tmp, "base")
    g = launcher.start("ignition", "bench-dirty-boot", [disk],
                       ignition_extra=["--snapshot-dir", snap])
    try:
        g.login()
        g.send(b"\x01s")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not SNAP_LINE.search(g.stderr_text()):
            g._read(0.5)
        g.send(b"\x01x")
        g.wait_exit(30)
    finally:
        g.close()
    return snap if os.path.exists(os.path.join(snap, "state")) else None


def restore(snap, name, extra):
    g = guest_test.Guest(name, ["--restore", snap] + extra)
    g.send("\n")
    g.expect(rb"# ", 120)
    return g


def touch_ms(g, mib):
    st, out = g.run(f"ign-touch {mib}", timeout=600)
    m = TOUCH.search(out)
    return int(m.group(2)) if st == 0 and m else None


def main():
    # A SIGTERM (timeout, CI) unwinds through the finally blocks, which stop the VMs: they run
    # in sessions of their own and would otherwise outlive this script.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not launcher.need_kvm("dirty"):
        return 1
    tmp = tempfile.mkdtemp(prefix="ign-bench-dirty-", dir=os.path.join(launcher.ROOT, "build"))
    try:
        print(f"dirty-tracking benchmark: {launcher.MEM_MIB} MiB guest, workload ign-touch "
              f"{MIB} MiB x {ROUNDS}, {RESETS} resets; host "
              f"{'kvm_pvm' if launcher.kvm_pvm() else 'KVM'}", flush=True)
        snap = os.environ.get("SNAP") or make_snapshot(tmp)
        if not snap:
            print("bench/dirty: no snapshot of the booted guest", file=sys.stderr)
            return 1
        sock = os.path.join(tmp, "ctl.sock")
        # One VM at a time: on kvm_pvm hosts an idle guest takes a good part of a core.
        plain = restore(snap, "bench-dirty-plain", ["--snapshot-dir", os.path.join(tmp, "full")])
        try:
            off = [touch_ms(plain, MIB) for _ in range(ROUNDS)]
            plain.send(b"\x01s")
            deadline = time.monotonic() + 120
            full = None
            while time.monotonic() < deadline and full is None:
                plain._read(0.5)
                full = SNAP_LINE.search(plain.stderr_text())
        finally:
            plain.send(b"\x01x")
            plain.wait_exit(30)
            plain.close()
        tracked = restore(snap, "bench-dirty-tracked", ["--track-dirty", "--control", sock])
        ctl = Control(sock)
        try:
            on, diffs = [], []
            for i in range(ROUNDS):
                on.append(touch_ms(tracked, MIB))
                t0 = time.monotonic()
                ans = ctl.call(cmd="snapshot", dir=os.path.join(tmp, f"diff{i}"))
                dt = (time.monotonic() - t0) * 1000
                m = SNAP_LINE.findall(tracked.stderr_text())
                if ans.get("ok") and m and m[-1][1]:
                    diffs.append((dt, int(m[-1][1]),
                                  os.stat(os.path.join(tmp, f"diff{i}", "memory")).st_blocks
                                  * 512))
            if None in off or None in on:
                print(f"bench/dirty: the workload failed: off {off}, on {on}", file=sys.stderr)
                return 1
            mo, mn = statistics.median(off), statistics.median(on)
            print(f"workload ign-touch {MIB} MiB: without tracking {mo:.0f} ms, with "
                  f"{mn:.0f} ms (median of {ROUNDS}): tracking costs "
                  f"{(mn / mo - 1) * 100:+.1f}% ({mn / mo:.2f}x)", flush=True)
            if diffs:
                print(f"Diff snapshot after each workload: {statistics.median(d[0] for d in diffs):.0f}"
                      f" ms, {statistics.median(d[1] for d in diffs):.0f} dirty pages, "
                      f"{statistics.median(d[2] for d in diffs) / 2**20:.1f} MiB on disk (median)",
                      flush=True)
            if full:
                print(f"Full snapshot of the untracked restore: {full.group(3)} ms", flush=True)
            tracked.send("\n")
            tracked.expect(rb"# ", 60)
            ans = ctl.call(cmd="checkpoint")
            if not ans.get("ok"):
                print(f"bench/dirty: checkpoint failed: {ans}", file=sys.stderr)
                return 1
            for label, work in (("back to back", None), ("after a shell command", "echo x")):
                us, pages = [], []
                for _ in range(RESETS):
                    if work:
                        tracked.run(work, timeout=120)
                    a = ctl.call(cmd="reset")
                    if not a.get("ok"):
                        print(f"bench/dirty: reset failed: {a}", file=sys.stderr)
                        return 1
                    us.append(a["reset_us"])
                    pages.append(a["pages"])
                    if work:
                        tracked.send("\n")
                        tracked.expect(rb"# ", 60)
                print(f"in-place reset, {label}: p50 {pct(us, 0.5)} us, p99 {pct(us, 0.99)} us,"
                      f" {statistics.median(pages):.0f} pages copied back (median of "
                      f"{RESETS})", flush=True)
        finally:
            ctl.close()
            tracked.send(b"\x01x")
            tracked.wait_exit(30)
            tracked.close()
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


guest_test = launcher.guest_test

if __name__ == "__main__":
    sys.exit(main())
