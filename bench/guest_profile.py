#!/usr/bin/env python3
"""Where the guest kernel spends its instructions, on a kvm_pvm host.

usage: bench/guest_profile.py [--seconds S] [--vmlinux PATH] [--top N] -- COMMAND...

On a kvm_pvm host (/sys/module/kvm_pvm) every guest kernel instruction is emulated by the
host's KVM, and each one fires the kvm:kvm_emulate_insn tracepoint with its address.  This
runs COMMAND (anything that runs a guest: `build/ignition run ...`, a guest test), records
that tracepoint host-wide with `perf record` while it runs (at most --seconds; other VMs on
the host are counted too), maps every address to the kernel's symbols (`nm` of --vmlinux,
default guest/out/vmlinux-min) and prints the functions that executed the most instructions,
then the top few of every 10-second window.  Tracing slows the guest about threefold and
writes ~100 MB per second of guest time to a scratch directory (removed at the end).

Elsewhere (plain KVM) guest kernel code runs natively and the tracepoint stays silent; use
the guest's own perf there.  Found with it (2026-12-02): ORC's unwind_init at 11.6% of a boot's
instructions (guest/README.md, "unwinder").
"""
import argparse
import bisect
import collections
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def symbols(vmlinux):
    out = subprocess.run(["nm", "-n", vmlinux], capture_output=True, text=True, check=True)
    syms = []
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) >= 3 and f[1] in "tTwW":
            syms.append((int(f[0], 16), f[2]))
    return [a for a, _ in syms], [n for _, n in syms]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--vmlinux", default=os.path.join(ROOT, "guest", "out", "vmlinux-min"))
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("command", nargs="+")
    a = ap.parse_args()
    if not os.path.exists("/sys/module/kvm_pvm"):
        print("guest_profile: not a kvm_pvm host: guest kernel code is not emulated here, so "
              "kvm:kvm_emulate_insn does not see it", file=sys.stderr)
        return 2
    if not shutil.which("perf"):
        print("guest_profile: perf is not installed (Debian package linux-perf)", file=sys.stderr)
        return 2
    addrs, names = symbols(a.vmlinux)
    scratch = tempfile.mkdtemp(prefix="ign-guest-profile-")
    data = os.path.join(scratch, "perf.data")
    try:
        rec = subprocess.Popen(["perf", "record", "-q", "-a", "-e", "kvm:kvm_emulate_insn",
                                "-o", data, "--", "sleep", str(a.seconds)])
        cmd = subprocess.Popen(a.command)
        try:
            cmd.wait(timeout=a.seconds)
        except subprocess.TimeoutExpired:
            cmd.terminate()
            cmd.wait()
        rec.send_signal(2)
        rec.wait()
        print(f"guest_profile: {' '.join(a.command)} exited with status {cmd.returncode}; "
              "reading the trace", file=sys.stderr, flush=True)
        total = collections.Counter()
        windows = collections.defaultdict(collections.Counter)
        cache = {}
        t0 = None
        script = subprocess.Popen(["perf", "script", "-i", data, "-F", "time,trace"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in script.stdout:
            # "67881.525258: 0:ffffffff81efa47d:f3 aa (prot64)"
            try:
                ts, rest = line.split(":", 1)
                t, rip = float(ts), rest.split(":")[1]
            except (ValueError, IndexError):
                continue
            t0 = t if t0 is None else t0
            name = cache.get(rip)
            if name is None:
                i = bisect.bisect_right(addrs, int(rip, 16)) - 1
                name = cache[rip] = names[i] if i >= 0 else "?"
            total[name] += 1
            windows[int((t - t0) // 10)][name] += 1
        script.wait()
        n = sum(total.values())
        print(f"{n} emulated guest kernel instructions")
        for name, k in total.most_common(a.top):
            print(f"{100 * k / n:6.2f}% {k:10d}  {name}")
        for w in sorted(windows):
            c = windows[w]
            m = sum(c.values())
            top = ", ".join(f"{name} {100 * k // m}%" for name, k in c.most_common(5))
            print(f"  {w * 10:4d}-{w * 10 + 10}s {m:9d}: {top}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
