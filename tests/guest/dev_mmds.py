"""MMDS (docs/mmds.md) on eth0 (user networking, dev_net.py's --net user; with IGN_DEV_ONLY
without net this module adds its own): --mmds DATA,v2.  The guest asks for a session token
(PUT /latest/api/token with socat: busybox wget cannot PUT), fetches a value with it over
169.254.169.254 through its default route via 10.0.2.2, is refused without it (401) and with
a forged one, and gets IMDS text or JSON as its Accept header says."""
import json
import os

from guest_test import check

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
    return extra + ["--mmds", f"{path},v2"]


def wget(g, path, headers=()):
    h = " ".join(f"--header '{x}'" for x in headers)
    return g.run(f"wget -q -O - {h} {URL}{path} 2>&1")


def checks(g, ctx):
    # eth0's DHCP lease (dev_net.py) gives the default route through slirp.
    g.run("for i in $(seq 60); do ip route | grep -q default && break; sleep 1; done")
    st, out = g.run(TOKEN_REQ)
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    token = lines[-1] if lines else ""
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
