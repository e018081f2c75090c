#!/usr/bin/env python3
"""vsock benchmark: stream throughput guest->host and host->guest, ignition (--vsock, hybrid
Unix-socket protocol) vs QEMU microvm with vhost-vsock (-device vhost-vsock-device), same kernel,
command line, disk and guest user space (socat in the guest).

For each VMM: boot the default guest, then RUNS times
  guest->host  the guest pipes SIZE_MIB MiB of zeros (dd | socat -u - VSOCK-CONNECT:2:5001) to
               a host sink (ignition: a Unix listener on PATH_5001; QEMU: an AF_VSOCK listener)
  host->guest  the host sends SIZE_MIB MiB to `socat -u VSOCK-LISTEN:6002 /dev/null` in the
               guest (ignition: PATH + "CONNECT 6002"; QEMU: AF_VSOCK connect to the guest CID)
timed on the host from the first to the last byte, and prints the median MB/s and the ratio
ignition/QEMU (higher is better).  QEMU is only run where the host has /dev/vhost-vsock; the
script says so otherwise.  On this project's nested-KVM development hosts everything is slow;
compare ratios, not absolute figures.
"""
import os
import shutil
import socket
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
SIZE_MIB = int(os.environ.get("SIZE_MIB", "64"))
MEM_MIB = launcher.MEM_MIB
CHUNK = b"\0" * (1 << 20)


class Ignition:
    """Host side of ignition's hybrid protocol."""

    def __init__(self, path):
        self.path = path

    def listen(self, port):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        p = f"{self.path}_{port}"
        if os.path.exists(p):
            os.unlink(p)
        s.bind(p)
        s.listen(4)
        return s

    def unlisten(self, s, port):
        s.close()
        os.unlink(f"{self.path}_{port}")

    def connect(self, port):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(self.path)
        s.sendall(f"CONNECT {port}\n".encode())
        line = b""
        while not line.endswith(b"\n"):
            c = s.recv(1)
            if not c:
                s.close()
                return None
            line += c
        return s if line.startswith(b"OK ") else None


class Vhost:
    """Host side of vhost-vsock: plain AF_VSOCK sockets."""

    def __init__(self, cid):
        self.cid = cid

    def listen(self, port):
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.bind((socket.VMADDR_CID_ANY, port))
        s.listen(4)
        return s

    def unlisten(self, s, port):
        s.close()

    def connect(self, port):
        s = socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)
        s.settimeout(30)
        try:
            s.connect((self.cid, port))
        except OSError:
            s.close()
            return None
        return s


def guest_to_host(g, host):
    lst = host.listen(5001)
    res = {}

    def sink():
        c, _ = lst.accept()
        n, t0 = 0, None
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            if t0 is None:
                t0 = time.monotonic()
            n += len(b)
        res.update(n=n, s=time.monotonic() - t0 if t0 else 0)
        c.close()

    t = threading.Thread(target=sink, daemon=True)
    t.start()
    st, out = g.run(f"dd if=/dev/zero bs=1M count={SIZE_MIB} 2>/dev/null | "
                    "socat -u - VSOCK-CONNECT:2:5001", timeout=900)
    t.join(60)
    host.unlisten(lst, 5001)
    if st != 0 or res.get("n") != SIZE_MIB << 20 or not res.get("s"):
        print(f"  guest->host failed: status {st} {out[-200:]!r} {res}", file=sys.stderr)
        return None
    return (SIZE_MIB << 20) / res["s"] / 1e6


def host_to_guest(g, host):
    g.run("socat -u VSOCK-LISTEN:6002 /dev/null </dev/null >/dev/null 2>&1 & true")
    s = None
    for _ in range(60):
        s = host.connect(6002)
        if s:
            break
        time.sleep(0.5)
    if not s:
        print("  host->guest: cannot connect", file=sys.stderr)
        return None
    s.settimeout(600)
    t0 = time.monotonic()
    for _ in range(SIZE_MIB):
        s.sendall(CHUNK)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # the guest closes once it has read everything
    secs = time.monotonic() - t0
    s.close()
    g.run("wait")
    return (SIZE_MIB << 20) / secs / 1e6


def run(name, disk, host, ignition_extra=(), qemu_extra=()):
    g = launcher.start(name, f"bench-vsock-{name}", [disk], ignition_extra=ignition_extra,
                       qemu_extra=qemu_extra)
    up, down = [], []
    try:
        g.login()
        for _ in range(RUNS):
            for lst, fn in ((up, guest_to_host), (down, host_to_guest)):
                v = fn(g, host)
                if v:
                    lst.append(v)
    except guest_test.Timeout as e:
        print(f"{name}: {e}", file=sys.stderr)
    finally:
        launcher.poweroff(g)
    med = lambda xs: statistics.median(xs) if xs else None
    return med(up), med(down), up, down


def load_vhost_vsock():
    """/dev/vhost-vsock: modprobe, else (inside the nested harness, whose L1 kernel has no
    module tree) insmod the modules from the cached kernel package tests/nested/setup.sh
    downloaded for this very kernel release."""
    if os.path.exists("/dev/vhost-vsock") or os.geteuid() != 0:
        return
    subprocess.run(["modprobe", "vhost_vsock"], capture_output=True)
    if os.path.exists("/dev/vhost-vsock"):
        return
    import glob
    rel = os.uname().release
    debs = glob.glob(os.path.join(ROOT, "build", "nested", f"linux-image-{rel}_*.deb"))
    if not debs:
        return
    x = tempfile.mkdtemp(prefix="ign-vhost-")
    try:
        subprocess.run(f"dpkg-deb --fsys-tarfile {debs[0]} | tar -x -C {x} --wildcards "
                       "'*/drivers/vhost/vhost*.ko' '*/net/vmw_vsock/vsock.ko' "
                       "'*/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko'",
                       shell=True, capture_output=True)
        base = os.path.join(x, "lib", "modules", rel, "kernel")
        for m in ("net/vmw_vsock/vsock", "net/vmw_vsock/vmw_vsock_virtio_transport_common",
                  "drivers/vhost/vhost_iotlb", "drivers/vhost/vhost",
                  "drivers/vhost/vhost_vsock"):
            subprocess.run(["insmod", os.path.join(base, m + ".ko")], capture_output=True)
    finally:
        shutil.rmtree(x, ignore_errors=True)
    for _ in range(20):  # devtmpfs creates the node shortly after the module loads
        if os.path.exists("/dev/vhost-vsock"):
            break
        time.sleep(0.1)


def main():
    if not launcher.need_kvm("vsock"):
        return 2
    load_vhost_vsock()
    vhost = os.path.exists("/dev/vhost-vsock")
    tmp = tempfile.mkdtemp(prefix="ign-bench-vsock-", dir=os.path.join(ROOT, "build"))
    sockdir = tempfile.mkdtemp(prefix="ign-bench-vsock-")  # sockets on a local file system
    res = {}
    try:
        path = os.path.join(sockdir, "v.sock")
        res["ignition"] = run("ignition", launcher.copy_rootfs(tmp, "ignition"), Ignition(path),
                              ignition_extra=["--vsock", f"3,{path}"])
        if vhost and launcher.have_qemu():
            cid = 1000 + os.getpid() % 100000
            res["qemu"] = run("qemu", launcher.copy_rootfs(tmp, "qemu"), Vhost(cid),
                              qemu_extra=["-device", f"vhost-vsock-device,guest-cid={cid}"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)
    fmt = lambda v: "n/a" if v is None else f"{v:.2f} MB/s"
    print()
    print(f"vsock stream throughput, {SIZE_MIB} MiB per transfer, median of {RUNS}, "
          f"{MEM_MIB} MiB guest, 1 vCPU")
    print(f"{'':10s} {'guest->host':>14s} {'host->guest':>14s}")
    for name in ("ignition", "qemu"):
        if name in res:
            r = res[name]
            print(f"{name:10s} {fmt(r[0]):>14s} {fmt(r[1]):>14s}   runs: "
                  f"{' '.join(f'{x:.1f}' for x in r[2])} / "
                  f"{' '.join(f'{x:.1f}' for x in r[3])}")
    if "qemu" in res:
        a, b = res["ignition"], res["qemu"]
        ratio = launcher.ratio
        print(f"{'ratio':10s} {ratio(a[0], b[0]):>14s} {ratio(a[1], b[1]):>14s}"
              "   (ignition / qemu vhost-vsock; higher is better)")
    else:
        print("qemu       not run: this host has no /dev/vhost-vsock (the vhost_vsock module "
              "could not be loaded), so there is no vhost-vsock to compare with")
    return 0


if __name__ == "__main__":
    sys.exit(main())
