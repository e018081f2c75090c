"""virtio-balloon (--balloon): the guest negotiates the stats queue and deflate-on-OOM;
Ctrl-A b inflates the balloon by STEP_MIB and the VMM's RSS falls by at least 3/4 of the part of
that the guest's fill had touched;
Ctrl-A b again deflates it and the guest can use that memory again.

Sized by host kind: every page the fill touches is a guest page fault, kernel work emulated on
kvm_pvm hosts, so that host gets a 128 MiB guest and a 32 MiB step."""
import re
import time

from guest_test import check, sized

STEP_MIB = sized(kvm=128, pvm=32)
MEM_MIB = sized(kvm=512, pvm=128)
HEADROOM_MIB = sized(kvm=64, pvm=40)
# ign-touch (guest/rootfs/ign-touch.c) writes one byte per page of an anonymous mapping and
# exits: one guest page fault per page, where `dd` into tmpfs copied every byte in the (on
# kvm_pvm emulated) guest kernel and took ~10 s per MiB there.
FILL = ("n=$(( $(awk '/MemAvailable/{print $2}' /proc/meminfo) / 1024 - {headroom} )) && "
        "echo asked $n && ign-touch $n")


def args(ctx):
    return [f"--balloon=step={STEP_MIB}", "--mem", str(MEM_MIB)]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1


def meminfo(g, field):
    # Shell builtins only: a process start is seconds of emulated kernel work on kvm_pvm.
    st, out = g.run(f"while read -r k v u; do [ \"$k\" = {field}: ] && echo $v; done "
                    "< /proc/meminfo; true")
    try:
        return int(out.split()[-1]) / 1024
    except (ValueError, IndexError):
        return -1


def wait_stderr(g, start, pattern, timeout):
    """Wait for regex `pattern` in ignition's stderr past offset `start`."""
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern)
    while True:
        m = rx.search(g.stderr_text()[start:])
        if m or time.monotonic() > deadline:
            return m
        g._read(0.5)  # keep the console drained while waiting


def fill(g, headroom):
    """Touch all but `headroom` MiB of the guest's available memory, then free it.
    Returns (asked MiB, written MiB)."""
    st, out = g.run(FILL.replace("{headroom}", str(headroom)), timeout=sized(kvm=120, pvm=600))
    m = re.search(r"asked (\d+)\s+touched (\d+) MiB in (\d+) ms", out)
    if m:
        print(f"  info  guest touched {m.group(2)} MiB in {int(m.group(3)) / 1000:.1f} s",
              flush=True)
    return (int(m.group(1)), int(m.group(2))) if st == 0 and m else (-1, -1)


def toggle(g, want_mib):
    """Ctrl-A b; returns (key line match, reached-target match)."""
    start = len(g.stderr_text())
    g.send(b"\x01b")
    line = wait_stderr(g, start, r"balloon target (\d+) MiB, actual (\d+) MiB"
                       r"(?:; guest free (\d+) MiB, available (\d+) MiB of (\d+) MiB)?", 30)
    reached = wait_stderr(g, start, rf"balloon reached its target: {want_mib} MiB", 300)
    return line, reached


def checks(g, ctx):
    pid = g.proc.pid
    st, out = g.run("for d in /sys/bus/virtio/devices/*; do read -r id < $d/device; "
                    "[ \"$id\" = 0x0005 ] && read -r f < $d/features && echo $f; done; true")
    feats = out.split()[-1] if out.split() else ""
    if not check("balloon-device-in-guest", st == 0 and len(feats) >= 32, f"{out!r}"):
        return
    check("balloon-features-stats-and-deflate-on-oom", feats[1] == "1" and feats[2] == "1",
          f"features {feats}")

    asked, wrote = fill(g, HEADROOM_MIB)
    check("balloon-guest-touched-memory", asked > STEP_MIB * 3 // 2 and wrote == asked,
          f"asked {asked} MiB, wrote {wrote} MiB")
    time.sleep(1)
    rss_before = rss_mib(pid)
    free_before = meminfo(g, "MemFree")

    t0 = time.monotonic()
    line, reached = toggle(g, STEP_MIB)
    secs = time.monotonic() - t0
    check("balloon-ctrl-a-b-line", line is not None and int(line.group(1)) == STEP_MIB,
          "no 'balloon target' line on stderr")
    check("balloon-stats-in-line", line is not None and line.group(3) is not None
          and int(line.group(5)) > MEM_MIB * 3 // 4, f"{line.group(0) if line else None!r}")
    if not check("balloon-inflated-to-target", reached is not None,
                 f"no 'reached its target: {STEP_MIB} MiB' within 300 s"):
        return
    time.sleep(1)
    rss_after = rss_mib(pid)
    free_after = meminfo(g, "MemFree")
    ctx["balloon"] = dict(rss_before=rss_before, rss_after=rss_after, inflate_s=secs)
    print(f"  info  balloon {STEP_MIB} MiB in {secs:.1f} s: VMM RSS {rss_before:.0f} -> "
          f"{rss_after:.0f} MiB; guest MemFree {free_before:.0f} -> {free_after:.0f} MiB",
          flush=True)
    # The guest picks the pages it balloons from its free memory; only those the fill touched
    # were resident on the host.  The fill covered asked / (asked + headroom) of it (86% with
    # 512 MiB, ~60% in the 128 MiB guest on kvm_pvm hosts): RSS must fall by at least 3/4 of
    # the step's share of touched pages.
    touched = asked / (asked + HEADROOM_MIB) if asked > 0 else 0
    want = STEP_MIB * touched * 3 / 4
    check("balloon-rss-fell", rss_before - rss_after >= want,
          f"RSS {rss_before:.0f} -> {rss_after:.0f} MiB, want a fall of {want:.0f} MiB")
    check("balloon-guest-memfree-fell", free_before - free_after >= STEP_MIB - 16,
          f"MemFree {free_before:.0f} -> {free_after:.0f} MiB")

    line, reached = toggle(g, 0)
    check("balloon-deflated-to-0", reached is not None and line is not None
          and int(line.group(1)) == 0, "no 'reached its target: 0 MiB' within 300 s")
    free_back = meminfo(g, "MemFree")
    check("balloon-guest-memfree-back", free_back >= free_before - 16,
          f"MemFree {free_before:.0f} -> {free_after:.0f} -> {free_back:.0f} MiB")
    asked2, wrote2 = fill(g, HEADROOM_MIB)
    check("balloon-guest-allocates-again", wrote2 == asked2 and asked2 >= asked - 16,
          f"before: {asked} MiB; after deflating: asked {asked2}, wrote {wrote2} MiB")
