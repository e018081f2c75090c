"""virtio-net (--net user / --net tap=NAME) in the shared device boot.

user (libslirp): eth0 gets 10.0.2.15 by DHCP at boot with no manual step (route, resolv.conf);
eth0 opts in with host-loopback=on, so the guest fetches a file over HTTP from a server this
test runs on host loopback (the guest sees the host as 10.0.2.2) and checks its SHA-256; the
host reaches an HTTP server in the guest through hostfwd=tcp:127.0.0.1:PORT-:8080; Ctrl-A n
takes the link down and up again, and the guest notices the carrier and takes a new lease.
A second user device with the defaults (no host loopback) is configured by hand at the end
(10.0.2.16/32, a host route to 10.0.2.2 through it): slirp still answers a ping to 10.0.2.2
there, but the same HTTP fetch fails and the server sees no request.

tap: ignition creates TAP device ign<pid>; once the guest runs the test moves it into a network
namespace it created (the TAP's file descriptor keeps working there), gives it 10.0.3.1/24, and
moves a file each way between that namespace and the guest's eth1 (10.0.3.2).  Nothing touches
the host's own network configuration.  The same --net tap command run as user nobody must
print one line about CAP_NET_ADMIN and exit non-zero before any VM exists.

Only loopback and the test's own namespace are used."""
import functools
import hashlib
import http.server
import os
import random
import re
import socket
import subprocess
import threading
import time
import urllib.request

from guest_test import check, result, sized, IGNITION, GUEST_DIR

USER_MAC = "52:54:00:12:34:56"
USER2_MAC = "52:54:00:12:34:57"
TAP_MAC = "52:54:00:ab:cd:ef"
# Moving data is emulated guest kernel work on kvm_pvm hosts: a smaller file there.
BLOB_BYTES = sized(kvm=1 << 20, pvm=256 << 10)


_ports_given = set()


def free_port():
    """A TCP port free on 127.0.0.1 for a hostfwd.  Not one the kernel hands out by itself:
    a port from bind(0) is in the ephemeral range, where any outgoing connection (or the next
    bind(0)) may take it again between this check and ignition's listen (seen: a clone's
    "cannot listen there (port in use)").  Below that range only explicit binds compete, and
    this process never gives the same port twice."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = max(min(low, 65536), 2048)
    for port in random.sample(range(top // 2, top), min(4096, top - top // 2)):
        if port in _ports_given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        return port
    raise RuntimeError(f"no free TCP port on 127.0.0.1 below {top}")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True, **kw)


def tap_possible():
    """TAP needs root and /dev/net/tun; the reason when not."""
    if os.geteuid() != 0:
        return "not root"
    if not os.path.exists("/dev/net/tun"):
        sh("modprobe tun")
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (tun module)"
    if sh("ip netns list").returncode != 0:
        return "ip netns does not work here"
    return None


def args(ctx):
    # The nested-KVM harness's L1 starts with loopback down; everywhere else this is a no-op.
    if os.geteuid() == 0 and "UP" not in sh("ip -br link show lo").stdout:
        sh("ip link set lo up")
    www = os.path.join(ctx["tmp"], "net-www")
    os.makedirs(www, exist_ok=True)
    blob = os.urandom(BLOB_BYTES)
    with open(os.path.join(www, "blob"), "wb") as f:
        f.write(blob)
    ctx["net_sha"] = hashlib.sha256(blob).hexdigest()
    ctx["net_http_gets"] = 0

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            ctx["net_http_gets"] += 1
            super().do_GET()

    handler = functools.partial(Handler, directory=www)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    ctx["net_http"] = srv
    ctx["net_fwd"] = free_port()
    a = ["--net", f"user,host-loopback=on,hostfwd=tcp:127.0.0.1:{ctx['net_fwd']}-:8080",
         "--mac", USER_MAC,
         "--net", f"user,mac={USER2_MAC}"]
    why = tap_possible()
    ctx["net_tap_skip"] = why
    if why is None:
        ctx["net_tap"] = f"ign{os.getpid() % 100000}"
        ctx["net_ns"] = f"ignns{os.getpid() % 100000}"
        a += ["--net", f"tap={ctx['net_tap']},mac={TAP_MAC}"]
    return a


# Guest commands read files with shell builtins where they can: every process started is
# seconds of emulated kernel work on kvm_pvm hosts.
CARRIER = "read -r c < /sys/class/net/eth0/carrier; echo $c"
LEASES = ("n=0; while read -r l; do case \"$l\" in *'lease eth0 10.0.2.15/24'*) n=$((n+1));; "
          "esac; done < /run/dhcp.log; echo $n")


def iface_by_mac(g, mac):
    st, out = g.run("for i in /sys/class/net/eth*; do read -r a < $i/address; "
                    "echo ${i##*/} $a; done")
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and f[1] == mac:
            return f[0]
    return None


def wait_guest(g, cmd, pred, timeout):
    """Run cmd in the guest until pred(status, output) holds; the last output."""
    deadline = time.monotonic() + timeout
    while True:
        st, out = g.run(cmd)
        if pred(st, out) or time.monotonic() > deadline:
            return st, out
        time.sleep(1)


def count(out):
    try:
        return int(out.split()[-1])
    except (ValueError, IndexError):
        return 0


def leases(g):
    return count(g.run(LEASES)[1])


def check_user(g, ctx):
    port = ctx["net_http"].server_address[1]
    eth = iface_by_mac(g, USER_MAC)
    check("net-user-mac-from-cli", eth == "eth0", f"interface with {USER_MAC}: {eth}")
    st, out = wait_guest(g, "cat /run/dhcp.log", lambda s, o: "lease eth0 10.0.2.15/24" in o, 90)
    check("net-user-dhcp-at-boot", "lease eth0 10.0.2.15/24" in out, out[-300:])
    st, out = g.run("ip -4 addr show dev eth0; ip route; cat /etc/resolv.conf")
    check("net-user-address", "inet 10.0.2.15/24" in out, out)
    check("net-user-default-route", re.search(r"default via 10\.0\.2\.2 dev eth0", out) is not None,
          out)
    check("net-user-resolv-conf", "nameserver 10.0.2.3" in out, out)
    st, out = g.run(f"wget -q -O /tmp/blob http://10.0.2.2:{port}/blob && sha256sum /tmp/blob",
                    timeout=300)
    check("net-user-guest-fetches-host-http", st == 0 and ctx["net_sha"] in out,
          f"status {st}: {out[-300:]}")
    # Host -> guest through the port forward: busybox httpd on 8080 in the guest.
    token = os.urandom(8).hex()
    g.run(f"mkdir -p /tmp/www && echo {token} > /tmp/www/t.txt && "
          "httpd -p 8080 -h /tmp/www")
    body = b""
    for _ in range(30):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ctx['net_fwd']}/t.txt",
                                        timeout=30) as r:
                body = r.read()
            break
        except OSError as e:
            body = str(e).encode()
            g._read(1.0)
    check("net-user-hostfwd-reaches-guest", body.strip() == token.encode(), repr(body[:200]))
    # Link bounce (VIRTIO_NET_F_STATUS): the guest sees the carrier go and come back, and
    # takes a new lease.
    before = leases(g)
    g.send(b"\x01n")
    st, out = wait_guest(g, CARRIER, lambda s, o: o.strip() == "0", 30)
    check("net-link-down-seen-by-guest", out.strip() == "0", out)
    g.send(b"\x01n")
    st, out = wait_guest(g, CARRIER, lambda s, o: o.strip() == "1", 30)
    check("net-link-up-seen-by-guest", out.strip() == "1", out)
    st, out = wait_guest(g, LEASES, lambda s, o: count(o) > before, 90)
    after = count(out)
    st, log = g.run("cat /run/dhcp.log")
    check("net-link-bounce-renews-lease", after > before and "carrier eth0" in log,
          f"leases {before} -> {after}; {log[-300:]}")
    st, out = g.run(f"wget -q -O - http://10.0.2.2:{port}/blob | sha256sum", timeout=300)
    check("net-user-works-after-bounce", ctx["net_sha"] in out, out[-200:])
    check_user_default_no_host_loopback(g, ctx)


def check_user_default_no_host_loopback(g, ctx):
    """The second user device has the defaults: 10.0.2.2 is slirp's, not the host's."""
    port = ctx["net_http"].server_address[1]
    eth = iface_by_mac(g, USER2_MAC)
    if not check("net-user2-interface", eth is not None, f"no interface with {USER2_MAC}"):
        return
    # A /32 address and a host route: only traffic to 10.0.2.2 leaves through it, and it is
    # taken away again, so eth0 is undisturbed.
    st, out = g.run(f"ip link set {eth} up && ip addr add 10.0.2.16/32 dev {eth} && "
                    f"ip route add 10.0.2.2/32 dev {eth} src 10.0.2.16")
    try:
        if not check("net-user2-configured", st == 0, out[-300:]):
            return
        # The path works: slirp itself answers a ping to its host address.
        st, out = wait_guest(g, "ping -c 1 -W 2 10.0.2.2", lambda s, o: s == 0, 30)
        check("net-user2-path-works", st == 0, out[-300:])
        gets = ctx["net_http_gets"]
        # (timeout(1), not wget -T: busybox 1.35's wget segfaults when its -T timer fires.)
        st, out = g.run(f"timeout 10 wget -q -O /dev/null http://10.0.2.2:{port}/blob; "
                        "echo rc=$?", timeout=60)
        check("net-user-default-no-host-loopback",
              "rc=0" not in out and ctx["net_http_gets"] == gets,
              f"{out[-300:]}; server requests {gets} -> {ctx['net_http_gets']}")
    finally:
        g.run(f"ip route del 10.0.2.2/32 dev {eth}; ip addr flush dev {eth}; "
              f"ip link set {eth} down")


def check_tap(g, ctx):
    tap, ns = ctx["net_tap"], ctx["net_ns"]
    r = sh(f"ip netns add {ns} && ip link set {tap} netns {ns} && "
           f"ip -n {ns} addr add 10.0.3.1/24 dev {tap} && ip -n {ns} link set {tap} up && "
           f"ip -n {ns} link set lo up")
    if not check("net-tap-moved-into-netns", r.returncode == 0, r.stderr.strip()):
        return
    eth = iface_by_mac(g, TAP_MAC)
    if not check("net-tap-guest-interface", eth is not None, f"no interface with {TAP_MAC}"):
        return
    st, out = g.run(f"ip link set {eth} up && ip addr add 10.0.3.2/24 dev {eth} && "
                    "ping -c 1 -W 5 10.0.3.1")
    check("net-tap-guest-pings-netns", st == 0, out[-300:])
    # netns -> guest: the guest serves a file, the namespace fetches it.
    token = os.urandom(16).hex()
    g.run(f"mkdir -p /tmp/tapwww && echo {token} > /tmp/tapwww/t.txt && "
          "dd if=/dev/urandom of=/tmp/tapwww/blob bs=64k count=8 2>/dev/null && "
          "httpd -p 10.0.3.2:8081 -h /tmp/tapwww")
    st, gsum = g.run("sha256sum /tmp/tapwww/blob")
    r = sh(f"ip netns exec {ns} busybox wget -q -O - http://10.0.3.2:8081/blob | sha256sum",
           timeout=300)
    check("net-tap-netns-fetches-from-guest",
          r.returncode == 0 and r.stdout.split()[:1] == gsum.split()[:1],
          f"{r.stdout.strip()} vs {gsum.strip()} {r.stderr.strip()[-200:]}")
    # guest -> netns: a server in the namespace, the guest fetches.
    www = os.path.join(ctx["tmp"], "net-www")
    srv = subprocess.Popen(["ip", "netns", "exec", ns, "busybox", "httpd", "-f", "-p",
                            "10.0.3.1:8082", "-h", www],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx["net_tap_srv"] = srv
    # Ready when it answers inside the namespace.
    deadline = time.monotonic() + 30
    while (sh(f"ip netns exec {ns} busybox wget -q -O /dev/null http://10.0.3.1:8082/blob",
              timeout=30).returncode != 0 and srv.poll() is None and
           time.monotonic() < deadline):
        time.sleep(0.2)
    st, out = g.run("wget -q -O - http://10.0.3.1:8082/blob | sha256sum", timeout=300)
    check("net-tap-guest-fetches-from-netns", ctx["net_sha"] in out, out[-200:])


def check_unprivileged(ctx):
    """The same TAP command as user nobody: one clear line, non-zero, no VM."""
    name = f"ign{(os.getpid() + 1) % 100000}"
    kernel = os.path.join(GUEST_DIR, "bzImage-min")
    t0 = time.monotonic()
    try:
        r = subprocess.run(["runuser", "-u", "nobody", "--", IGNITION, "run", "--kernel",
                            kernel, "--net", f"tap={name}"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        result("FAIL", "net-tap-unprivileged-clear-error", str(e))
        return
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    check("net-tap-unprivileged-clear-error",
          r.returncode != 0 and len(lines) == 1 and "CAP_NET_ADMIN" in lines[0] and
          time.monotonic() - t0 < 30 and not r.stdout,
          f"status {r.returncode}, stderr {r.stderr!r}")


def checks(g, ctx):
    check_user(g, ctx)
    if ctx.get("net_tap_skip"):
        for n in ("net-tap-netns-fetches-from-guest", "net-tap-guest-fetches-from-netns",
                  "net-tap-unprivileged-clear-error"):
            result("SKIP", n, ctx["net_tap_skip"])
        return
    check_tap(g, ctx)
    check_unprivileged(ctx)


def cleanup(ctx):
    if "net_http" in ctx:
        ctx["net_http"].shutdown()
    srv = ctx.get("net_tap_srv")
    if srv:
        srv.kill()
        srv.wait()
    if ctx.get("net_ns"):
        sh(f"ip netns del {ctx['net_ns']}")
