"""The snapshot fuzzer on a real VM (docs/fuzzing.md): `ignition fuzz` with the planted-bug
harness (guest/out/fuzz/planted.cpio, the minimal kernel).

- From the planted seeds (none of which crashes), with a fixed mutator seed, the fuzzer finds the
  planted heap overflow within a bounded number of executions and stops (--until-crash): the
  summary says so, and the crashing input and its metadata are in --solutions.
- That input, replayed, crashes with the sanitizer's code and the same coverage hash, three
  times in a row.
- A harmless input replayed 100 times from the checkpoint gives the same outcome and the same
  coverage every time ("stable"): the reset brings back everything the harness can see.
- The crash codes the VMM reports itself, on the exits harness (guest/out/fuzz/exits.cpio, the
  harness as PID 1): its exit makes the kernel panic (code 512), its poweroff is 513; both
  are saved with those codes.  While that session runs (a "sleep" seed keeps one run going 2 s),
  every thread of `ignition fuzz` is in seccomp mode 2, the host loop's thread included.

- With --checkpoint (docs/fuzzing.md) the first session writes the VM at SNAPSHOT_ME to a
  directory and both replays start from it without booting; once the harness file is newer
  than that checkpoint, it is refused with one line (exit status 3).

The fuzzing session and the exits session each boot their harness VM once (about a minute
where the guest kernel is emulated, kvm_pvm hosts); crash runs there take seconds (the sanitizer's report runs through
the emulated kernel), so the time limit per run is sized by host kind."""
import glob
import json
import os
import re
import shutil
import subprocess
import time

from guest_test import GUEST_DIR, IGNITION, check, result, sized

# Executions the planted crash may take from the planted seeds with --seed-value 1: found
# after 127 on 2026-11-30 (kvm_pvm host); the mutator is deterministic given its seed, and the
# bound leaves room for harmless changes to it.
RUNS_BOUND = 5000
STATUS = re.compile(r"^#(\d+) execs/s=(\d+) corpus=(\d+) edges=(\d+) crashes=(\d+) hangs=(\d+) "
                    r"elapsed=(\d+)s$", re.M)


def _fuzz(args, log, timeout, initrd):
    kernel = os.path.join(GUEST_DIR, "vmlinux-min")
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
    # The harness is a copy: the last check makes it newer than the checkpoint.
    initrd = os.path.join(tmp, "planted.cpio")
    shutil.copyfile(os.path.join(images, "planted.cpio"), initrd)
    ckpt = ["--checkpoint", os.path.join(tmp, "planted.ckpt")]
    try:
        rc, out, err = _fuzz(["--seed", os.path.join(images, "seeds", "planted"), "--solutions",
                              sols, "--runs", str(RUNS_BOUND), "--seed-value", "1",
                              "--timeout-ms", str(per_run_ms), "--until-crash"] + ckpt,
                             os.path.join(tmp, "fuzz.log"), sized(kvm=600, pvm=2400), initrd)
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
    check("fuzz-checkpoint-written", "fuzz: checkpoint written to" in err and
          os.path.exists(os.path.join(ckpt[1], "state")), err[-300:])
    if not crashes:
        return
    try:
        with open(crashes[0] + ".json") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        meta = {}
    # The replays start from the first session's checkpoint: no boot.
    rc, out, err = _fuzz(["--replay", crashes[0], "--repeat", "3", "--timeout-ms",
                          str(per_run_ms)] + ckpt, os.path.join(tmp, "replay-crash.log"),
                         sized(kvm=300, pvm=900), initrd)
    m = re.search(r"crash code=(\d+) len=\d+ edges=\d+ edges_hash=([0-9a-f]+)", out)
    check("fuzz-crash-replays", rc == 1 and m is not None and int(m.group(1)) == 256 and
          m.group(2) == meta.get("edges_hash") and "stable: 3 runs" in out,
          f"exit {rc}: {out!r} (solution: {meta})")
    check("fuzz-replay-from-checkpoint-no-boot", "started from the checkpoint" in err and
          "booting" not in err, err[-300:])
    ok_input = os.path.join(tmp, "ok.in")
    with open(ok_input, "wb") as f:
        f.write(b"FUZ\x04\x01abcd")
    # The time limit of the crash runs: at the default 1 s a loaded kvm_pvm host (load 9 on
    # 2 cores, 2026-12-01) made every run of this input a hang, with any ignition build.
    rc, out, err = _fuzz(["--replay", ok_input, "--repeat", "100", "--timeout-ms",
                          str(per_run_ms)] + ckpt,
                         os.path.join(tmp, "replay-ok.log"), sized(kvm=300, pvm=900), initrd)
    check("fuzz-coverage-stable-100-runs", rc == 0 and out.startswith("ok ") and
          "stable: 100 runs" in out and "started from the checkpoint" in err,
          f"exit {rc}: {out!r} {err[-300:]!r}")
    # A harness rebuilt after the checkpoint: the checkpoint is refused, nothing runs.
    later = os.stat(os.path.join(ckpt[1], "state")).st_mtime + 10
    os.utime(initrd, (later, later))
    rc, out, err = _fuzz(["--replay", ok_input] + ckpt, os.path.join(tmp, "replay-stale.log"),
                         60, initrd)
    check("fuzz-checkpoint-older-than-harness-refused",
          rc == 3 and "is older than the harness" in err and "booting" not in err,
          f"exit {rc}: {out!r} {err[-300:]!r}")


def _seccomp_modes(pid):
    """The Seccomp field of every thread of pid, e.g. ["2", "2", "2", "2"] ([] once it ended)."""
    modes = []
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            with open(status) as f:
                modes += [l.split()[1] for l in f if l.startswith("Seccomp:")]
        except OSError:
            pass
    return modes


def exits_checks(tmp):
    names = ("fuzz-guest-panic-crash-512", "fuzz-harness-exit-crash-513", "fuzz-seccomp-on")
    kernel = os.path.join(GUEST_DIR, "vmlinux-min")
    initrd = os.path.join(GUEST_DIR, "fuzz", "exits.cpio")
    if not os.path.exists(initrd):
        for n in names:
            result("FAIL", n, f"{initrd} missing: run make guest-fuzz")
        return
    seeds = os.path.join(tmp, "exits-seeds")
    sols = os.path.join(tmp, "exits-solutions")
    os.makedirs(seeds, exist_ok=True)
    for name, data in (("ok", b"ok"), ("sleep", b"sleep"), ("exit", b"exit"),
                       ("poweroff", b"poweroff")):
        with open(os.path.join(seeds, name), "wb") as f:
            f.write(data)
    log = os.path.join(tmp, "exits.log")
    deadline = time.monotonic() + sized(kvm=600, pvm=2400)
    # The filters: the main thread (the host loop) installs its own last, once the VM is at
    # its checkpoint; then every thread (main, the VM's runner, evloop, vcpu0, and KVM's own
    # workers, which inherit the vCPU's) must say mode 2.
    filtered, seen = False, []
    with open(log, "wb") as err:
        p = subprocess.Popen([IGNITION, "fuzz", "--kernel", kernel, "--initrd", initrd, "--seed",
                              seeds, "--solutions", sols, "--runs", "4", "--seed-value", "1",
                              "--timeout-ms", str(sized(kvm=10000, pvm=60000, nested=60000))],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        while p.poll() is None and time.monotonic() < deadline:
            modes = _seccomp_modes(p.pid)
            if modes:
                seen = modes
            if len(modes) >= 4 and all(m == "2" for m in modes):
                filtered = True
            time.sleep(0.05)
        if p.poll() is None:
            p.kill()
        out = p.communicate()[0].decode(errors="replace")
    with open(log, "rb") as f:
        err = f.read().decode(errors="replace")
    try:
        summary = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        summary = {}
    print(f"  info  fuzz (exits harness) summary: {json.dumps(summary)}", flush=True)
    codes = {}
    for meta_path in glob.glob(os.path.join(sols, "crash-*.json")):
        try:
            with open(meta_path) as f:
                meta = json.load(f)
            with open(meta_path[:-len(".json")], "rb") as f:
                codes[f.read()] = meta.get("code")
        except (OSError, ValueError):
            pass
    why = f"exit {p.returncode}, summary {summary}, solutions {codes}; {err[-300:]!r}"
    ran = p.returncode == 0 and summary.get("execs") == 4
    check("fuzz-guest-panic-crash-512", ran and codes.get(b"exit") == 512, why)
    check("fuzz-harness-exit-crash-513", ran and codes.get(b"poweroff") == 513 and
          summary.get("unique_crashes") == 2, why)
    check("fuzz-seccomp-on", filtered and "refused system call" not in err,
          f"threads' Seccomp modes {seen} (want all 2, at least 4 threads); {err[-300:]!r}")
