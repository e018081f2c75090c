"""MMDS (docs/mmds.md) on eth0 (user networking, dev_net.py's --net user; with IGN_DEV_ONLY
without net this module adds its own): --mmds DATA,v2.  The guest asks for a session token
(PUT /latest/api/token with socat: busybox wget cannot PUT), fetches a value with it over
169.254.169.254 through its default route via 10.0.2.2, is refused without it (401) and with
a forged one, and gets IMDS text or JSON as its Accept header says.

With dev_net.py's TAP interface (eth2, when TAP is possible here) MMDS is served there too
(--mmds ...,eth=0,eth=2): before dev_net.py moves the TAP into its namespace, the guest gives
that interface an address of its own and routes 169.254.169.254 through it, once via a
gateway (a static ARP entry: the frames carry that gateway's MAC) and once on-link (the guest
ARPs for MMDS and ignition's private slirp answers), and gets a token and metadata both ways."""
import json
import os

import dev_net
from guest_test import check, result

DATA = {"latest": {"meta-data": {"ami-id": "ami-12345", "hostname": "ign-guest",
                                 "tags": {"role": "test"}}}}
URL = "http://169.254.169.254"
TOKEN_REQ = ("printf 'PUT /latest/api/token HTTP/1.0\\r\\n"
             "X-metadata-token-ttl-seconds: 60\\r\\n\\r\\n' | "
             "socat -t 5 - TCP:169.254.169.254:80")


def args(ctx):
    path = os.path.join(ctx["tmp"], "mmds.json")
    with open(path, "w") as f:
        json.dump(DATA, f)
    extra = []
    only = os.environ.get("IGN_DEV_ONLY")
    if only and "net" not in only:
        extra = ["--net", "user"]
        ctx["mmds_tap_skip"] = "dev_net.py not in this boot"
    else:
        ctx["mmds_tap_skip"] = dev_net.tap_possible()
    # dev_net.py's interfaces: eth0 and eth1 user networking, eth2 its TAP.
    ifaces = ",eth=0,eth=2" if ctx["mmds_tap_skip"] is None else ""
    return extra + ["--mmds", f"{path},v2{ifaces}"]


def wget(g, path, headers=()):
    h = " ".join(f"--header '{x}'" for x in headers)
    return g.run(f"wget -q -O - {h} {URL}{path} 2>&1")


def token_of(out):
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    return lines[-1] if lines else ""


def check_tap(g, ctx):
    """MMDS through the TAP interface: the private slirp behind it (docs/mmds.md)."""
    if ctx["mmds_tap_skip"]:
        for n in ("mmds-tap-v2-token", "mmds-tap-get-with-token", "mmds-tap-refused-without-token",
                  "mmds-tap-on-link-arp"):
            result("SKIP", n, ctx["mmds_tap_skip"])
        return
    eth = dev_net.iface_by_mac(g, dev_net.TAP_MAC)
    if not check("mmds-tap-interface", eth is not None, f"no interface with {dev_net.TAP_MAC}"):
        return
    try:
        st, out = g.run(f"ip link set {eth} up && ip addr add 10.0.3.9/24 dev {eth} && "
                        f"arp -i {eth} -s 10.0.3.1 02:00:00:00:03:01 && "
                        f"ip route add 169.254.169.254/32 via 10.0.3.1 dev {eth} && "
                        "ip route get 169.254.169.254")
        if not check("mmds-tap-route",
                     st == 0 and f"dev {eth}" in out and "src 10.0.3.9" in out,
                     f"status {st}: {out[-300:]!r}"):
            return
        st, out = g.run(TOKEN_REQ)
        token = token_of(out)
        check("mmds-tap-v2-token", st == 0 and "200" in out and len(token) == 64,
              f"status {st}: {out[-300:]!r}")
        st, out = wget(g, "/latest/meta-data/ami-id", [f"X-metadata-token: {token}"])
        check("mmds-tap-get-with-token", st == 0 and out == "ami-12345", f"status {st}: {out!r}")
        st, out = wget(g, "/latest/meta-data/ami-id")
        check("mmds-tap-refused-without-token", st != 0 and "401" in out,
              f"status {st}: {out!r}")
        st, out = g.run(f"ip route replace 169.254.169.254/32 dev {eth} && "
                        f"ip neigh flush dev {eth} >/dev/null; "
                        f"wget -q -O - --header 'X-metadata-token: {token}' "
                        f"{URL}/latest/meta-data/hostname 2>&1; r=$?; "
                        "ip neigh show 169.254.169.254; [ $r = 0 ]")
        check("mmds-tap-on-link-arp", st == 0 and out.startswith("ign-guest") and
              f"169.254.169.254 dev {eth} lladdr 52:55:0a:00:02:02" in out,
              f"status {st}: {out!r}")
    finally:
        # dev_net.py sets the interface up its own way afterwards.
        g.run(f"ip route del 169.254.169.254/32 dev {eth}; arp -i {eth} -d 10.0.3.1; "
              f"ip addr del 10.0.3.9/24 dev {eth}")


def checks(g, ctx):
    # eth0's DHCP lease (dev_net.py) gives the default route through slirp.
    g.run("for i in $(seq 60); do ip route | grep -q default && break; sleep 1; done")
    st, out = g.run(TOKEN_REQ)
    token = token_of(out)
    check("mmds-v2-token", st == 0 and "200" in out and len(token) == 64,
          f"status {st}: {out[-300:]!r}")
    st, out = wget(g, "/latest/meta-data/ami-id", [f"X-metadata-token: {token}"])
    check("mmds-v2-get-with-token", st == 0 and out == "ami-12345", f"status {st}: {out!r}")
    st, out = wget(g, "/latest/meta-data/ami-id")
    check("mmds-v2-refused-without-token", st != 0 and "401" in out, f"status {st}: {out!r}")
    st, out = wget(g, "/latest/meta-data/ami-id", ["X-metadata-token: " + "0" * 64])
    check("mmds-v2-refused-forged-token", st != 0 and "401" in out, f"status {st}: {out!r}")
    st, out = wget(g, "/latest/meta-data/", [f"X-metadata-token: {token}"])
    check("mmds-imds-text-listing", st == 0 and out.splitlines() == ["ami-id", "hostname",
                                                                     "tags/"],
          f"status {st}: {out!r}")
    st, out = wget(g, "/latest/meta-data/tags",
                   [f"X-metadata-token: {token}", "Accept: application/json"])
    check("mmds-json", st == 0 and out == '{"role":"test"}', f"status {st}: {out!r}")
    st, out = wget(g, "/latest/nothing", [f"X-metadata-token: {token}"])
    check("mmds-missing-404", st != 0 and "404" in out, f"status {st}: {out!r}")
    # Without the default route: MMDS on-link, so the guest ARPs for it and ignition answers.
    st, out = g.run("ip route add 169.254.169.254/32 dev eth0 && ip neigh flush dev eth0 >/dev/null && "
                    f"wget -q -O - --header 'X-metadata-token: {token}' "
                    f"{URL}/latest/meta-data/hostname 2>&1; r=$?; ip neigh show 169.254.169.254; "
                    "ip route del 169.254.169.254/32 dev eth0; [ $r = 0 ]")
    check("mmds-on-link-arp", st == 0 and out.startswith("ign-guest") and
          "169.254.169.254 dev eth0 lladdr 52:55:0a:00:02:02" in out, f"status {st}: {out!r}")
    check_tap(g, ctx)
