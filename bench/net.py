#!/usr/bin/env python3
"""Network benchmark: TCP throughput through user-mode networking (libslirp), ignition
(--net user) vs QEMU microvm (-netdev user + virtio-net-device), same kernel, command line,
disk and guest user space.

For each VMM: boot the default guest, wait for its DHCP lease, then
  guest->host  the guest POSTs SIZE_MIB MiB (busybox wget --post-file from tmpfs) to an HTTP
               server this script runs on 127.0.0.1 (the guest sees it as 10.0.2.2)
  host->guest  the guest GETs SIZE_MIB MiB from that server into /dev/null
each RUNS times, timed inside the guest (/proc/uptime around the transfer), and prints the
median MB/s and the ratio ignition/QEMU (higher is better).  On this project's nested-KVM
development hosts everything is slow; compare ratios, not absolute figures.
"""
import http.server
import os
import re
import shutil
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import launcher  # noqa: E402
from launcher import ROOT, guest_test  # noqa: E402

RUNS = int(os.environ.get("RUNS", "3"))
SIZE_MIB = int(os.environ.get("SIZE_MIB", "16"))
MEM_MIB = launcher.MEM_MIB
MAC = "52:54:00:12:34:56"


class Handler(http.server.BaseHTTPRequestHandler):
    """GET /blob: SIZE_MIB MiB of zeros; POST: read and discard the body."""
    chunk = b"\0" * (1 << 16)

    def do_GET(self):
        n = SIZE_MIB << 20
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        while n:
            k = min(n, len(self.chunk))
            self.wfile.write(self.chunk[:k])
            n -= k

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        while n:
            d = self.rfile.read(min(n, 1 << 16))
            if not d:
                break
            n -= len(d)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def measure(g, port):
    """Median MB/s (guest->host, host->guest) over RUNS transfers."""
    st, out = g.run(f"dd if=/dev/zero of=/tmp/up bs=1M count={SIZE_MIB} 2>/dev/null; echo ok",
                    timeout=300)
    up, down = [], []
    for _ in range(RUNS):
        for lst, cmd in ((up, f"wget -q -O /dev/null --post-file=/tmp/up "
                               f"http://10.0.2.2:{port}/up"),
                         (down, f"wget -q -O /dev/null http://10.0.2.2:{port}/blob")):
            # busybox date has no %N: /proc/uptime has 10 ms resolution, plenty here.
            st, out = g.run(f"a=$(cut -d' ' -f1 /proc/uptime); {cmd} && "
                            "b=$(cut -d' ' -f1 /proc/uptime) && "
                            "awk -v a=$a -v b=$b 'BEGIN { printf \"ns=%.0f\\n\", (b - a) * 1e9 }'",
                            timeout=900)
            m = re.search(r"ns=(\d+)", out)
            if st == 0 and m and int(m.group(1)) > 0:
                lst.append((SIZE_MIB << 20) / (int(m.group(1)) / 1e9) / 1e6)
            else:
                print(f"  transfer failed: {out[-200:]!r}", file=sys.stderr)
    g.run("rm -f /tmp/up")
    print(f"  samples MB/s: guest->host {', '.join(f'{x:.1f}' for x in up)}; "
          f"host->guest {', '.join(f'{x:.1f}' for x in down)}", flush=True)
    med = lambda xs: statistics.median(xs) if xs else None
    return med(up), med(down)


def wait_lease(g):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st, out = g.run("ip -4 addr show dev eth0")
        if "inet 10.0.2.15/" in out:
            return True
        time.sleep(2)
    return False


def run(name, disk, port):
    print(f"{name}:", flush=True)
    g = launcher.start(name, f"bench-net-{name}", [disk],
                       ignition_extra=["--net", "user", "--mac", MAC],
                       qemu_extra=["-netdev", "user,id=n0",
                                   "-device", f"virtio-net-device,netdev=n0,mac={MAC}"])
    try:
        g.login()
        if not wait_lease(g):
            print(f"{name}: no DHCP lease", file=sys.stderr)
            return None, None
        return measure(g, port)
    except guest_test.Timeout as e:
        print(f"{name}: {e}", file=sys.stderr)
        return None, None
    finally:
        launcher.poweroff(g)


def main():
    if not launcher.need_kvm("net"):
        return 2
    # The nested harness's L1 starts with loopback down.
    if os.geteuid() == 0:
        subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True)
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    tmp = tempfile.mkdtemp(prefix="ign-bench-net-", dir=os.path.join(ROOT, "build"))
    res = {}
    try:
        for vmm in launcher.VMMS:
            if vmm == "qemu" and not launcher.have_qemu():
                continue
            res[vmm] = run(vmm, launcher.copy_rootfs(tmp, vmm), port)
    finally:
        srv.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    fmt = lambda v: "n/a" if v is None else f"{v:.2f} MB/s"
    print()
    print(f"TCP over user-mode networking, {SIZE_MIB} MiB per transfer, median of {RUNS}, "
          f"{MEM_MIB} MiB guest, 1 vCPU")
    print(f"{'':10s} {'guest->host':>14s} {'host->guest':>14s}")
    for name in ("ignition", "qemu"):
        if name in res:
            print(f"{name:10s} {fmt(res[name][0]):>14s} {fmt(res[name][1]):>14s}")
    if "qemu" in res:
        a, b = res["ignition"], res["qemu"]
        ratio = launcher.ratio
        print(f"{'ratio':10s} {ratio(a[0], b[0]):>14s} {ratio(a[1], b[1]):>14s}"
              "   (ignition / qemu; higher is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
