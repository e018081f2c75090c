"""virtio-rng (always present unless --no-rng): the guest's hw_random core binds the virtio
device and /dev/hwrng serves 1 MiB of host entropy."""
import time

from guest_test import check


def args(ctx):
    return []  # on by default


def checks(g, ctx):
    st, out = g.run("cat /sys/class/misc/hw_random/rng_available; "
                    "cat /sys/class/misc/hw_random/rng_current")
    check("rng-current-is-virtio", st == 0 and "virtio_rng" in out.splitlines()[-1],
          f"status {st}: {out!r}")
    t0 = time.monotonic()
    st, out = g.run("dd if=/dev/hwrng of=/tmp/rng.bin bs=1024 count=1024 iflag=fullblock "
                    "2>/dev/null; wc -c < /tmp/rng.bin", timeout=300)
    secs = time.monotonic() - t0
    check("rng-read-1MiB", st == 0 and out.split()[-1:] == ["1048576"],
          f"status {st}: {out!r}")
    ctx["rng_read_s"] = secs
    print(f"  info  1 MiB from /dev/hwrng in {secs:.1f} s", flush=True)
    # Random bytes do not compress, and two reads differ.
    st, out = g.run("gzip -c /tmp/rng.bin | wc -c; "
                    "head -c 4096 /dev/hwrng | md5sum; head -c 4096 /dev/hwrng | md5sum; "
                    "rm -f /tmp/rng.bin")
    lines = out.splitlines()
    ok = st == 0 and len(lines) >= 3
    if ok:
        try:
            ok = int(lines[-3].strip()) > 1040000 and lines[-2] != lines[-1]
        except ValueError:
            ok = False
    check("rng-bytes-look-random", ok, f"status {st}: {out!r}")
