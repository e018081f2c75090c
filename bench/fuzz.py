"""Snapshot-fuzzer benchmark (bench/fuzz.sh): `ignition fuzz` on the libpng harness against AFL++
on the same harness, in one run, for the same time.

  ignition   build/ignition fuzz --kernel guest/out/vmlinux-min --initrd
             guest/out/fuzz/libpng.cpio --seed guest/out/fuzz/seeds/libpng --time SECONDS:
             the whole VM is reset to the checkpoint before every input (dirty pages copied
             back, vCPU and device state reloaded); the harness is libpng from Debian's source
             package built with clang, ASan and -fsanitize-coverage=trace-pc-guard.
  AFL++      afl-fuzz (Debian's afl++) in fork-server mode, no persistent mode (a fresh process
             per input: the fair comparison for whole-process isolation), on the same harness
             source and libpng sources built with afl-clang-fast (its trace-pc-guard
             instrumentation) and AFL_USE_ASAN=1, running the harness's native file mode.

Both start from the same seeds (guest/out/fuzz/seeds/libpng) and run SECONDS (default 60) after
their start-up (ignition's boot to the harness's checkpoint is reported apart). Printed: execs/s,
edges found, and for ignition the reset time p50/p99 and dirty pages per execution. Edges are
the number of coverage-map entries ever hit: one per trace-pc-guard guard in both (AFL++ counts
its own map, ignition its 64 KiB map), so they are close but not identical measures.

Needs: /dev/kvm, guest/out/fuzz (make guest), Debian's afl++ (packages.txt). SECONDS=N.
"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import launcher

SECONDS = int(os.environ.get("SECONDS_PER_FUZZER", os.environ.get("FUZZ_SECONDS", "60")))
FUZZ_DIR = os.path.join(launcher.GUEST_DIR, "fuzz")
LIBPNG_FILES = ("png pngerror pngget pngmem pngpread pngread pngrio pngrtran pngrutil pngset "
                "pngtrans pngwio pngwrite pngwtran pngwutil").split()


def libpng_source():
    """The libpng source tree guest/fuzz/build.sh unpacked (guest/cache/fuzz/libpng1.6-*)."""
    found = sorted(glob.glob(os.path.join(launcher.ROOT, "guest", "cache", "fuzz",
                                          "libpng1.6-*", "png.c")))
    return os.path.dirname(found[-1]) if found else None


def build_afl(tmp, src):
    """The harness for AFL++: the same png_harness.c and libpng sources, afl-clang-fast with
    ASan; the harness's guest-library calls are never made in file mode, so a stub links them."""
    out = os.path.join(tmp, "afl")
    os.makedirs(out)
    here = os.path.join(launcher.ROOT, "guest", "fuzz")
    shutil.copy(os.path.join(src, "scripts", "pnglibconf.h.prebuilt"),
                os.path.join(out, "pnglibconf.h"))
    stub = os.path.join(out, "stub.c")
    with open(stub, "w") as f:
        f.write("#include <stddef.h>\n#include <stdint.h>\n"
                "int fuzz_init(void) { return -1; }\n"
                "int fuzz_next_input(const uint8_t **b, size_t *n) { (void)b; (void)n; "
                "return -1; }\n"
                "void fuzz_done(void) {}\nvoid fuzz_crash(uint32_t c) { (void)c; }\n")
    env = dict(os.environ, AFL_USE_ASAN="1", AFL_QUIET="1")
    cflags = ["-O1", "-g", "-fno-omit-frame-pointer", f"-I{out}", f"-I{src}", f"-I{here}"]
    objs = []
    for name in LIBPNG_FILES:
        o = os.path.join(out, name + ".o")
        subprocess.run(["afl-clang-fast", *cflags, "-c", os.path.join(src, name + ".c"), "-o",
                        o], check=True, env=env, capture_output=True)
        objs.append(o)
    subprocess.run(["afl-clang-fast", *cflags, os.path.join(here, "png_harness.c"), stub, *objs,
                    "-lz", "-lm", "-o", os.path.join(out, "harness")], check=True, env=env,
                   capture_output=True)
    return os.path.join(out, "harness")


def run_afl(tmp, harness):
    out = os.path.join(tmp, "afl-out")
    env = dict(os.environ, AFL_NO_UI="1", AFL_SKIP_CPUFREQ="1",
               AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES="1", AFL_NO_AFFINITY="1",
               AFL_SKIP_CRASHES="1", ASAN_OPTIONS="abort_on_error=1:detect_leaks=0:symbolize=0")
    cmd = ["afl-fuzz", "-i", os.path.join(FUZZ_DIR, "seeds", "libpng"), "-o", out, "-m", "none",
           "-t", "1000", "-V", str(SECONDS), "--", harness, "@@"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, capture_output=True, timeout=SECONDS + 300)
    wall = time.monotonic() - t0
    stats = {}
    try:
        with open(os.path.join(out, "default", "fuzzer_stats")) as f:
            for line in f:
                k, _, v = line.partition(":")
                stats[k.strip()] = v.strip()
    except OSError:
        print(f"bench/fuzz: afl-fuzz wrote no stats (exit {p.returncode}): "
              f"{p.stdout[-400:]!r} {p.stderr[-400:]!r}", file=sys.stderr)
        return None
    execs = int(stats.get("execs_done", 0))
    run_time = float(stats.get("run_time", wall)) or wall
    return {"execs": execs, "execs_per_s": execs / run_time,
            "edges": int(stats.get("edges_found", 0)),
            "crashes": int(stats.get("saved_crashes", stats.get("unique_crashes", 0)))}


def run_ignition(tmp):
    sols = os.path.join(tmp, "ign-solutions")
    cmd = [guest_ignition(), "fuzz", "--kernel", os.path.join(launcher.GUEST_DIR, "vmlinux-min"),
           "--initrd", os.path.join(FUZZ_DIR, "libpng.cpio"), "--seed",
           os.path.join(FUZZ_DIR, "seeds", "libpng"), "--solutions", sols, "--time",
           str(SECONDS), "--timeout-ms", "30000" if launcher.kvm_pvm() else "1000"]
    p = subprocess.run(cmd, capture_output=True, timeout=SECONDS + 1800)
    err = p.stderr.decode(errors="replace")
    try:
        summary = json.loads(p.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"bench/fuzz: ignition fuzz failed (exit {p.returncode}): {err[-600:]}",
              file=sys.stderr)
        return None
    boot = re.search(r"checkpoint at SNAPSHOT_ME after ([\d.]+) s", err)
    pages = re.search(r"resets, ([\d.]+) dirty pages each", err)
    summary["boot_s"] = float(boot.group(1)) if boot else None
    summary["dirty_pages"] = float(pages.group(1)) if pages else None
    return summary


def guest_ignition():
    return launcher.guest_test.IGNITION


def main():
    # A SIGTERM (timeout, CI) unwinds through the finally blocks, which stop the VMs: they run
    # in sessions of their own and would otherwise outlive this script.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not launcher.need_kvm("fuzz"):
        return 1
    if not os.path.exists(os.path.join(FUZZ_DIR, "libpng.cpio")):
        print("bench/fuzz: guest/out/fuzz/libpng.cpio missing: run make guest", file=sys.stderr)
        return 1
    src = libpng_source()
    if not src or not shutil.which("afl-fuzz"):
        print("bench/fuzz: needs Debian's afl++ (packages.txt) and the libpng source that "
              "make guest unpacks (guest/cache/fuzz)", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="ign-bench-fuzz-", dir=os.path.join(launcher.ROOT, "build"))
    try:
        print(f"fuzz benchmark: libpng harness, {SECONDS} s each, same seeds; host "
              f"{'kvm_pvm' if launcher.kvm_pvm() else 'KVM'}", flush=True)
        harness = build_afl(tmp, src)
        ign = run_ignition(tmp)
        afl = run_afl(tmp, harness)
        if not ign or not afl:
            return 1
        print(f"ignition fuzz: {ign['execs_per_s']:.1f} execs/s, {ign['edges']} edges, "
              f"{ign['execs']} execs, {ign.get('unique_crashes', 0)} crashes; reset p50 "
              f"{ign.get('reset_us_p50')} us, p99 {ign.get('reset_us_p99')} us, "
              f"{ign['dirty_pages']} dirty pages per exec; boot to checkpoint "
              f"{ign['boot_s']} s (not counted)", flush=True)
        print(f"AFL++ (fork server, ASan): {afl['execs_per_s']:.1f} execs/s, {afl['edges']} "
              f"edges, {afl['execs']} execs, {afl['crashes']} crashes", flush=True)
        print(f"ratio ignition/AFL++: execs/s {ign['execs_per_s'] / afl['execs_per_s']:.3f}x, "
              f"edges {ign['edges'] / max(1, afl['edges']):.2f}x", flush=True)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
