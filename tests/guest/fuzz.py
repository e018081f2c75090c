"""The snapshot fuzzer on a real VM (docs/fuzzing.md): `ignition fuzz` with the planted-bug
harness (guest/out/fuzz/planted.cpio, the minimal kernel).

- From the planted seeds (none of which crashes), with a fixed mutator seed, the fuzzer finds the
  planted heap overflow within a bounded number of executions and stops (--until-crash): the
  summary says so, and the crashing input and its metadata are in --solutions.
- That input, replayed, crashes with the sanitizer's code and the same coverage hash, three
  times in a row.
- A harmless input replayed 100 times from the checkpoint gives the same outcome and the same
  coverage every time ("stable"): the reset brings back everything the harness can see.

Each `ignition fuzz` boots the harness VM once (about a minute where the guest kernel is
emulated, kvm_pvm hosts); crash runs there take seconds (the sanitizer's report runs through
the emulated kernel), so the time limit per run is sized by host kind."""
import glob
import json
import os
import re
import subprocess

from guest_test import GUEST_DIR, IGNITION, check, result, sized

# Executions the planted crash may take from the planted seeds with --seed-value 1: found
# after 127 on 2026-11-30 (kvm_pvm host); the mutator is deterministic given its seed, and the
# bound leaves room for harmless changes to it.
RUNS_BOUND = 5000
STATUS = re.compile(r"^#(\d+) execs/s=(\d+) corpus=(\d+) edges=(\d+) crashes=(\d+) hangs=(\d+) "
                    r"elapsed=(\d+)s$", re.M)


def _fuzz(args, log, timeout):
    kernel = os.path.join(GUEST_DIR, "vmlinux-min")
    initrd = os.path.join(GUEST_DIR, "fuzz", "planted.cpio")
    with open(log, "wb") as err:
        p = subprocess.run([IGNITION, "fuzz", "--kernel", kernel, "--initrd", initrd] + args,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                           timeout=timeout)
    with open(log, "rb") as f:
        return p.returncode, p.stdout.decode(errors="replace"), f.read().decode(errors="replace")


def fuzz_checks(tmp):
    images = os.path.join(GUEST_DIR, "fuzz")
    if not os.path.exists(os.path.join(images, "planted.cpio")):
        result("FAIL", "fuzz-images", f"{images}/planted.cpio missing: run make guest")
        return
    sols = os.path.join(tmp, "solutions")
    per_run_ms = sized(kvm=2000, pvm=30000, nested=30000)
    try:
        rc, out, err = _fuzz(["--seed", os.path.join(images, "seeds", "planted"), "--solutions",
                              sols, "--runs", str(RUNS_BOUND), "--seed-value", "1",
                              "--timeout-ms", str(per_run_ms), "--until-crash"],
                             os.path.join(tmp, "fuzz.log"), sized(kvm=600, pvm=2400))
    except subprocess.TimeoutExpired:
        result("FAIL", "fuzz-finds-planted-crash", "ignition fuzz did not finish in time")
        return
    try:
        summary = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        summary = {}
    print(f"  info  fuzz summary: {json.dumps(summary)}", flush=True)
    crashes = sorted(f for f in glob.glob(os.path.join(sols, "crash-*"))
                     if not f.endswith(".json"))
    check("fuzz-finds-planted-crash", rc == 0 and summary.get("stop") == "crash" and
          summary.get("unique_crashes", 0) >= 1 and len(crashes) >= 1,
          f"exit {rc}, summary {summary}, solutions {crashes}; {err[-300:]!r}")
    check("fuzz-status-lines", len(STATUS.findall(err)) >= 1, err[-300:])
    check("fuzz-resets-reported", summary.get("resets", 0) >= 1 and
          summary.get("reset_us_p50", 0) > 0, f"{summary}")
    if not crashes:
        return
    try:
        with open(crashes[0] + ".json") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        meta = {}
    rc, out, err = _fuzz(["--replay", crashes[0], "--repeat", "3", "--timeout-ms",
                          str(per_run_ms)], os.path.join(tmp, "replay-crash.log"),
                         sized(kvm=300, pvm=900))
    m = re.search(r"crash code=(\d+) len=\d+ edges=\d+ edges_hash=([0-9a-f]+)", out)
    check("fuzz-crash-replays", rc == 1 and m is not None and int(m.group(1)) == 256 and
          m.group(2) == meta.get("edges_hash") and "stable: 3 runs" in out,
          f"exit {rc}: {out!r} (solution: {meta})")
    ok_input = os.path.join(tmp, "ok.in")
    with open(ok_input, "wb") as f:
        f.write(b"FUZ\x04\x01abcd")
    rc, out, err = _fuzz(["--replay", ok_input, "--repeat", "100"],
                         os.path.join(tmp, "replay-ok.log"), sized(kvm=300, pvm=900))
    check("fuzz-coverage-stable-100-runs", rc == 0 and out.startswith("ok ") and
          "stable: 100 runs" in out, f"exit {rc}: {out!r} {err[-300:]!r}")
