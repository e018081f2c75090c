#!/usr/bin/env python3
"""The REST API over `curl --unix-socket` (see curl_test.sh)."""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import mem_backend  # tests/api/mem_backend.py: the Uffd and huge-page checks

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IGNITION = os.environ.get("IGNITION", os.path.join(ROOT, "build", "ignition"))
GUEST_DIR = os.environ.get("IGNITION_GUEST_DIR", os.path.join(ROOT, "guest", "out"))
RESULTS = os.environ.get("IGN_RESULTS", "/dev/null")
LOGIN_TIMEOUT = float(os.environ.get("IGN_LOGIN_TIMEOUT", "300"))
# Every other wait for the guest multiplied (a host busy with other guests: kvm_pvm emulates
# guest kernel code, and a shell prompt can take minutes there).
TIMEOUT_SCALE = float(os.environ.get("IGN_TIMEOUT_SCALE", "1"))
failed = 0


def result(status, name, reason=""):
    global failed
    line = f"{status} api/{name}" + (f" ({reason})" if reason else "")
    with open(RESULTS, "a") as f:
        f.write(line + "\n")
    print(("  ok    " if status == "PASS" else "  FAIL  " if status == "FAIL" else "  skip  ")
          + f"api/{name}" + (f": {reason}" if reason and status != "PASS" else ""), flush=True)
    if status == "FAIL":
        failed += 1


def check(name, cond, reason=""):
    result("PASS" if cond else "FAIL", name, "" if cond else reason)
    return cond


def curl(sock, method, path, body=None, data_file=None):
    """(status, parsed JSON or None, raw text) of one request, exactly as the guide does it."""
    cmd = ["curl", "-s", "--unix-socket", sock, "-i", "-X", method,
           f"http://localhost{path}", "-H", "Accept: application/json",
           "-H", "Content-Type: application/json"]
    if body is not None:
        cmd += ["-d", body if isinstance(body, str) else json.dumps(body)]
    if data_file:
        cmd += ["--data-binary", "@" + data_file]
    p = subprocess.run(cmd, capture_output=True, timeout=120)
    raw = p.stdout.decode(errors="replace")
    m = re.match(r"HTTP/1\.[01] (\d+)", raw)
    status = int(m.group(1)) if m else 0
    text = raw.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in raw else ""
    try:
        js = json.loads(text) if text else None
    except ValueError:
        js = None
    return status, js, text


def fault(name, sock, method, path, body, want):
    """A request that must fail with 400 and a fault_message containing `want`."""
    st, js, text = curl(sock, method, path, body)
    msg = js.get("fault_message", "") if isinstance(js, dict) else ""
    check(name, st == 400 and want.lower() in msg.lower(),
          f"got {st} {text[:200]!r}, wanted 400 mentioning {want!r}")


class Proc:
    """ignition --api-sock on a pseudo-terminal (its serial console)."""

    def __init__(self, tmp, name, sock, extra=()):
        self.master, slave = os.openpty()
        self.sock = sock
        self.buf = b""
        self.log = open(os.path.join(tmp, f"{name}.console.log"), "wb")
        self.errpath = os.path.join(tmp, f"{name}.stderr.log")
        self.proc = subprocess.Popen([IGNITION, "--api-sock", sock, "--id", name, *extra],
                                     stdin=slave, stdout=slave,
                                     stderr=open(self.errpath, "wb"),
                                     start_new_session=True, close_fds=True)
        os.close(slave)
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _read(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        self.log.write(data)
        self.log.flush()
        self.buf += data
        return bool(data)

    def expect(self, pattern, timeout):
        if timeout != LOGIN_TIMEOUT:
            timeout *= TIMEOUT_SCALE
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {pattern!r} within {timeout:.0f} s")
            if not self._read(1.0) and self.proc.poll() is not None:
                raise TimeoutError(f"ignition exited ({self.proc.returncode}): "
                                   + self.stderr()[-300:])

    def send(self, data):
        for i in range(0, len(data), 16):
            os.write(self.master, data[i:i + 16].encode())
            time.sleep(0.02)

    def run(self, cmd, timeout=60):
        self.send(f"echo __B''EGIN__; {cmd}; echo __E''ND__$?\n")
        self.expect(rb"__BEGIN__\r*\n", timeout)
        m = self.expect(rb"([\s\S]*?)__END__(\d+)", timeout)
        return int(m.group(2)), m.group(1).decode(errors="replace").replace("\r", "").strip()

    def stderr(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.close(self.master)
        self.log.close()


def concurrent(sock, n=1000):
    """n connections open at once, each sending GET /: every one gets an answer or is closed
    (a refusal); returns (answered, refused)."""
    conns = []
    refused = 0
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        try:
            s.connect(sock)
            conns.append(s)
        except OSError:
            refused += 1
            s.close()
    answered = 0
    lock = threading.Lock()

    def one(s):
        nonlocal answered, refused
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            ok = data.startswith(b"HTTP/1.1 200")
        except OSError:
            ok = False
        finally:
            s.close()
        with lock:
            if ok:
                answered += 1
            else:
                refused += 1

    threads = [threading.Thread(target=one, args=(s,)) for s in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answered, refused


def part_a(tmp):
    sock = os.path.join(tmp, "a.sock")
    p = Proc(tmp, "noboot", sock)
    try:
        st, js, _ = curl(sock, "GET", "/")
        check("instance-info", st == 200 and js and js.get("state") == "Not started"
              and js.get("id") == "noboot", f"{st} {js}")
        st, js, _ = curl(sock, "GET", "/version")
        check("version", st == 200 and js and "firecracker_version" in js, f"{st} {js}")
        fault("unknown-path", sock, "GET", "/nowhere", None, "GET /nowhere")
        fault("unknown-method", sock, "DELETE", "/boot-source", None, "DELETE /boot-source")
        fault("malformed-json", sock, "PUT", "/boot-source", '{"kernel_image_path": ', "json")
        fault("not-an-object", sock, "PUT", "/boot-source", '[1,2]', "object")
        fault("empty-body", sock, "PUT", "/machine-config", None, "empty")
        fault("unknown-field", sock, "PUT", "/boot-source",
              {"kernel_image_path": "/k", "kernel_args": "x"}, "kernel_args")
        fault("wrong-type", sock, "PUT", "/machine-config",
              {"vcpu_count": "2", "mem_size_mib": 256}, "vcpu_count")
        fault("negative", sock, "PUT", "/machine-config",
              {"vcpu_count": -1, "mem_size_mib": 256}, "vcpu_count")
        fault("missing-field", sock, "PUT", "/drives/d0",
              {"drive_id": "d0", "is_root_device": False}, "path_on_host")
        fault("id-mismatch", sock, "PUT", "/drives/d0",
              {"drive_id": "d1", "path_on_host": "/x", "is_root_device": False}, "does not match")
        fault("bad-mac", sock, "PUT", "/network-interfaces/eth0",
              {"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "zz"}, "guest_mac")
        fault("rate-limiter-field", sock, "PUT", "/drives/d0",
              {"drive_id": "d0", "path_on_host": "/x", "is_root_device": False,
               "rate_limiter": {"bandwidth": {"size": 1, "refill": 1}}}, "refill")
        fault("cpu-template", sock, "PUT", "/machine-config",
              {"vcpu_count": 1, "mem_size_mib": 128, "cpu_template": "T2"}, "T2")
        fault("action-unknown", sock, "PUT", "/actions", {"action_type": "Reboot"}, "Reboot")
        fault("start-without-kernel", sock, "PUT", "/actions", {"action_type": "InstanceStart"},
              "kernel")
        fault("pause-before-start", sock, "PATCH", "/vm", {"state": "Paused"}, "before starting")
        fault("snapshot-before-start", sock, "PUT", "/snapshot/create",
              {"snapshot_path": "/tmp/x"}, "before starting")
        fault("load-uffd-no-snapshot", sock, "PUT", "/snapshot/load",
              {"snapshot_path": "/tmp/x", "mem_backend": {"backend_type": "Uffd",
                                                          "backend_path": "/u"}}, "snapshot")
        fault("huge-pages-odd-memory", sock, "PUT", "/machine-config",
              {"vcpu_count": 1, "mem_size_mib": 129, "huge_pages": "2M"}, "multiple of 2")
        fault("load-missing", sock, "PUT", "/snapshot/load", {"snapshot_path": tmp + "/none"},
              "snapshot")
        fault("ctrl-alt-del-before-start", sock, "PUT", "/actions",
              {"action_type": "SendCtrlAltDel"}, "before starting")
        big = os.path.join(tmp, "big.json")
        with open(big, "w") as f:
            f.write('{"kernel_image_path": "' + "a" * 60000 + '"}')
        st, js, text = (lambda r: r)(subprocess.run(
            ["curl", "-s", "-i", "--unix-socket", sock, "-X", "PUT",
             "http://localhost/boot-source", "--data-binary", "@" + big],
            capture_output=True).stdout.decode()), None, None
        check("huge-body", st.startswith("HTTP/1.1 400") and "larger than the limit" in st,
              st[:200])
        # The configuration round trip.
        cfg = {
            "boot-source": {"kernel_image_path": "/k/vmlinux", "boot_args": "console=ttyS0"},
            "drives": [{"drive_id": "rootfs", "path_on_host": "/r.ext4", "is_root_device": True,
                        "is_read_only": False, "cache_type": "Unsafe", "io_engine": "Sync",
                        "rate_limiter": {"bandwidth": {"size": 2097152, "one_time_burst": 0,
                                                       "refill_time": 1000}}}],
            "machine-config": {"vcpu_count": 2, "mem_size_mib": 256, "smt": False,
                               "track_dirty_pages": True, "cpu_template": "None",
                               "huge_pages": "None"},
            "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "ignition:user",
                                    "guest_mac": "aa:fc:00:00:00:01"}],
            "vsock": {"guest_cid": 3, "uds_path": "/tmp/v.sock"},
        }
        ok = True
        for path, body in (("/boot-source", cfg["boot-source"]),
                           ("/drives/rootfs", cfg["drives"][0]),
                           ("/machine-config", cfg["machine-config"]),
                           ("/network-interfaces/eth0", cfg["network-interfaces"][0]),
                           ("/vsock", cfg["vsock"])):
            st, js, text = curl(sock, "PUT", path, body)
            ok &= check("put" + path.replace("/", "-").rstrip("-"), st == 204,
                        f"{st} {text[:200]}")
        st, js, _ = curl(sock, "GET", "/vm/config")
        same = st == 200 and js and all(js.get(k) == v for k, v in cfg.items())
        check("vm-config-round-trip", same, f"{st} {json.dumps(js)[:400]}")
        st, js, _ = curl(sock, "PATCH", "/machine-config", {"vcpu_count": 1})
        st2, js2, _ = curl(sock, "GET", "/machine-config")
        check("patch-machine-config", st == 204 and js2 and js2.get("vcpu_count") == 1
              and js2.get("mem_size_mib") == 256, f"{st} {js2}")
        # 1000 connections at once: answers or refusals, and the server lives on.
        t0 = time.monotonic()
        answered, refused = concurrent(sock, 1000)
        st, js, _ = curl(sock, "GET", "/")
        check("1000-connections", answered + refused == 1000 and answered > 0 and st == 200
              and p.proc.poll() is None,
              f"{answered} answered, {refused} refused, then GET / -> {st}")
        print(f"    1000 connections: {answered} answered, {refused} refused in "
              f"{time.monotonic() - t0:.1f} s", flush=True)
    finally:
        p.stop()


def part_b(tmp):
    kernel = os.path.join(GUEST_DIR, "vmlinux-min")
    rootfs_src = os.path.join(GUEST_DIR, "rootfs.ext4")
    if not (os.path.exists(kernel) and os.path.exists(rootfs_src)):
        result("SKIP", "boot", f"no guest in {GUEST_DIR}")
        return
    rootfs = os.path.join(tmp, "rootfs.ext4")
    shutil.copyfile(rootfs_src, rootfs)
    with open(os.path.join(GUEST_DIR, "cmdline-min")) as f:
        args = f.read().strip()
    sock1, sock2 = os.path.join(tmp, "b1.sock"), os.path.join(tmp, "b2.sock")
    snap = os.path.join(tmp, "snap")
    p1 = Proc(tmp, "vm1", sock1)
    p2 = None
    try:
        steps = [("boot-source", "PUT", "/boot-source",
                  {"kernel_image_path": kernel, "boot_args": args}),
                 ("rootfs", "PUT", "/drives/rootfs",
                  {"drive_id": "rootfs", "path_on_host": rootfs, "is_root_device": True,
                   "is_read_only": False}),
                 ("machine-config", "PUT", "/machine-config",
                  {"vcpu_count": 1, "mem_size_mib": 256}),
                 # ignition's user networking (extension), with MMDS on it.
                 ("net", "PUT", "/network-interfaces/eth0",
                  {"iface_id": "eth0", "host_dev_name": "ignition:user"}),
                 ("mmds-config", "PUT", "/mmds/config",
                  {"network_interfaces": ["eth0"], "version": "V1", "imds_compat": True}),
                 ("mmds", "PUT", "/mmds",
                  {"latest": {"meta-data": {"ami-id": "ami-api", "hostname": "api-guest"}}}),
                 # The guest agent listens on vsock: the snapshot is the MCP test's base.
                 ("vsock", "PUT", "/vsock",
                  {"guest_cid": 3, "uds_path": os.path.join(tmp, "v.sock")}),
                 ("start", "PUT", "/actions", {"action_type": "InstanceStart"})]
        steps[-1:-1] = extra_preboot_steps(tmp)
        for name, method, path, body in steps:
            st, _, text = curl(sock1, method, path, body)
            if not check("boot-" + name, st == 204, f"{st} {text[:300]}"):
                return
        st, js, _ = curl(sock1, "GET", "/")
        check("state-running", st == 200 and js.get("state") == "Running", f"{st} {js}")
        fault("pre-boot-only-after-start", sock1, "PUT", "/boot-source",
              {"kernel_image_path": kernel}, "after starting")
        fault("second-start", sock1, "PUT", "/actions", {"action_type": "InstanceStart"},
              "after starting")
        t0 = time.monotonic()
        try:
            p1.expect(rb"login: ", LOGIN_TIMEOUT)
            p1.send("root\n")
            p1.expect(rb"# ", 60)
            check("guest-shell", True)
            print(f"    API start to login prompt {time.monotonic() - t0:.1f} s", flush=True)
            rc, out = p1.run("echo hello-from-$((6*7))")
        except TimeoutError as e:
            check("guest-shell", False, str(e))
            return
        check("guest-command", rc == 0 and "hello-from-42" in out, f"{rc} {out!r}")
        # MMDS set through the API, read by the guest over 169.254.169.254 (its DHCP lease
        # gives the default route through slirp), then changed live with PATCH.
        mmds = MMDS_GET
        rc, out = p1.run(WAIT_ROUTE + mmds)
        check("mmds-guest-get", rc == 0 and out.strip() == "ami-api", f"{rc} {out!r}")
        # imds_compat: text even when the guest asks for JSON (which would be "\"ami-api\"").
        rc, out = p1.run(MMDS_GET.replace("wget ", "wget --header 'Accept: application/json' "))
        check("mmds-imds-compat-text-for-json", rc == 0 and out.strip() == "ami-api",
              f"{rc} {out!r}")
        st, _, text = curl(sock1, "PATCH", "/mmds",
                           {"latest": {"meta-data": {"ami-id": "ami-patched"}}})
        check("mmds-patch-live", st == 204, f"{st} {text}")
        rc, out = p1.run(mmds)
        check("mmds-guest-sees-patch", rc == 0 and out.strip() == "ami-patched",
              f"{rc} {out!r}")
        st, js, _ = curl(sock1, "GET", "/mmds")
        check("mmds-get", st == 200 and js and
              js["latest"]["meta-data"] == {"ami-id": "ami-patched", "hostname": "api-guest"},
              f"{st} {js}")
        openapi_running(sock1, "running-")
        drive_swap_checks(p1, sock1, tmp)
        p1.run("echo restored-state > /tmp/marker")
        # The guest's clock against the host's (`date +%s`, whole seconds) before the snapshot:
        # the load below asks for clock_realtime false, so the loaded guest's clock must lag by
        # the time between this snapshot and that load.
        skew0 = guest_skew(p1)
        fault("snapshot-needs-pause", sock1, "PUT", "/snapshot/create",
              {"snapshot_type": "Full", "snapshot_path": snap}, "paused")
        st, _, text = curl(sock1, "PATCH", "/vm", {"state": "Paused"})
        check("pause", st == 204, f"{st} {text}")
        st, js, _ = curl(sock1, "GET", "/")
        check("state-paused", st == 200 and js.get("state") == "Paused", f"{js}")
        # The snapshot's clock is read first, before its memory is written (seconds on 9p
        # inside tests/nested): the lag below is counted from the request.
        t_snap = time.time()
        st, _, text = curl(sock1, "PUT", "/snapshot/create",
                           {"snapshot_type": "Full", "snapshot_path": snap,
                            "mem_file_path": os.path.join(tmp, "mem")})
        check("snapshot-create", st == 204 and os.path.exists(os.path.join(snap, "state"))
              and os.path.exists(os.path.join(tmp, "mem")), f"{st} {text}")
        st, _, text = curl(sock1, "PATCH", "/vm", {"state": "Resumed"})
        check("resume", st == 204, f"{st} {text}")
        rc, out = p1.run("echo still-alive")
        check("resumed-guest-runs", rc == 0 and "still-alive" in out, f"{rc} {out!r}")
        # A running drive's rate limiter changed live (PATCH), then removed; the disk still works.
        st, _, text = curl(sock1, "PATCH", "/drives/rootfs",
                           {"drive_id": "rootfs",
                            "rate_limiter": {"bandwidth": {"size": 1048576, "refill_time": 1000},
                                             "ops": {"size": 100, "refill_time": 1000}}})
        check("patch-drive-rate-limiter", st == 204, f"{st} {text}")
        st, _, text = curl(sock1, "PATCH", "/drives/rootfs",
                           {"drive_id": "rootfs",
                            "rate_limiter": {"bandwidth": {"size": 1048576, "refill_time": 0}}})
        check("patch-drive-bad-limiter", st == 400, f"{st} {text}")
        rc, out = p1.run("dd if=/dev/vda of=/dev/null bs=4k count=64 iflag=direct 2>&1; echo x")
        check("limited-disk-reads", rc == 0, f"{rc} {out!r}")
        p1.stop()
        rc1 = p1.proc.returncode
        check("first-stopped", rc1 is not None, f"{rc1}")
        # The snapshot into a second process.
        p2 = Proc(tmp, "vm2", sock2)
        # With Firecracker's overrides: the interface by its id (same back end kind), the
        # vsock's host socket moved.
        vsock2 = os.path.join(tmp, "v2.sock")
        time.sleep(max(0.0, t_snap + LOAD_GAP_S - time.time()))
        t_load = time.time()
        st, _, text = curl(sock2, "PUT", "/snapshot/load",
                           {"snapshot_path": snap,
                            "mem_backend": {"backend_type": "File",
                                            "backend_path": os.path.join(tmp, "mem")},
                            "network_overrides": [{"iface_id": "eth0",
                                                   "host_dev_name": "ignition:user"}],
                            "vsock_override": {"uds_path": vsock2},
                            "clock_realtime": False,
                            "resume_vm": True})
        check("snapshot-load", st == 204, f"{st} {text}")
        st, js, _ = curl(sock2, "GET", "/")
        check("loaded-running", st == 200 and js.get("state") == "Running", f"{js}")
        try:
            p2.send("\n")
            rc, out = p2.run("cat /tmp/marker", 120)
            check("loaded-shell", rc == 0 and "restored-state" in out, f"{rc} {out!r}")
            skew1 = guest_skew(p2)
            lag = None if skew0 is None or skew1 is None else skew0 - skew1
            check("load-clock-realtime-false-resumes-where-it-stopped",
                  lag is not None and abs(lag - (t_load - t_snap)) <= 3,
                  f"guest clock lags {lag} s more than before the snapshot; "
                  f"snapshot to load {t_load - t_snap:.1f} s")
        except TimeoutError as e:
            check("loaded-shell", False, str(e))
        else:
            loaded_extras(p2, tmp, rootfs, vsock2)
    finally:
        p1.stop() if p1.proc.poll() is None else None
        if p2:
            p2.stop()
            check("second-stopped", p2.proc.returncode is not None, "")


# The guest reads its metadata once it has a default route (its DHCP lease through slirp).
MMDS_GET = "wget -q -O - http://169.254.169.254/latest/meta-data/ami-id 2>&1"
WAIT_ROUTE = "for i in $(seq 60); do ip route | grep -q default && break; sleep 1; done; "

# With clock_realtime false the loaded guest's clock must lag the host's by this much more
# than before the snapshot: long enough to tell from `date`'s whole seconds.
LOAD_GAP_S = 8


def guest_skew(p):
    """The guest's clock minus the host's, in seconds (None if `date` did not answer)."""
    rc, out = p.run("date +%s")
    try:
        return int(out.split()[-1]) - time.time() if rc == 0 else None
    except (ValueError, IndexError):
        return None


# ---- boot session extras (h-api): a data drive swapped live, OpenAPI checks of the running
# VM's answers, SendCtrlAltDel.  Kept in functions of their own. ----

DATA_SECTORS = (1 << 20) // 512  # the data drive at boot: 1 MiB, "first-image" at offset 0
SWAP_SECTORS = (2 << 20) // 512  # the image PATCHed in: 2 MiB, "second-image"


def make_image(path, size, text):
    with open(path, "wb") as f:
        f.write(text.encode())
        f.truncate(size)


def extra_preboot_steps(tmp):
    """Devices of the boot session beyond the guide's: a writable data drive (/dev/vdb, later
    swapped) and a balloon with statistics (so GET /balloon/statistics has an answer)."""
    data = os.path.join(tmp, "data1.img")
    make_image(data, DATA_SECTORS * 512, "first-image")
    return [("data-drive", "PUT", "/drives/data",
             {"drive_id": "data", "path_on_host": data, "is_root_device": False,
              "is_read_only": False}),
            ("balloon", "PUT", "/balloon",
             {"amount_mib": 0, "deflate_on_oom": True, "stats_polling_interval_s": 1})]


def openapi_running(sock, prefix):
    """Every answer of a running VM validated against docs/api.yaml by check.mjs (npm's
    openapi-response-validator): one PASS/FAIL line per check."""
    pkg = os.path.join(ROOT, "tests", "api", "openapi")
    if not shutil.which("node") or not shutil.which("npm"):
        result("FAIL", f"openapi-{prefix}checks", "node and npm are needed (Debian: nodejs npm)")
        return
    if not os.path.isdir(os.path.join(pkg, "node_modules")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=pkg,
                           capture_output=True, text=True)
        if r.returncode != 0:
            result("FAIL", f"openapi-{prefix}checks", "npm ci failed: " + r.stderr[-200:])
            return
    r = subprocess.run(["node", os.path.join(pkg, "check.mjs"), "--running", sock,
                        "rootfs,data", "balloon", prefix],
                       capture_output=True, text=True, timeout=300)
    n = 0
    for line in r.stdout.splitlines():
        m = re.match(r"(PASS|FAIL) api/(\S+)(?: \((.*)\))?$", line)
        if not m or m.group(2) == "openapi-spec":
            continue
        result(m.group(1), m.group(2), m.group(3) or "")
        n += 1
    if r.returncode != 0 or n == 0:
        result("FAIL", f"openapi-{prefix}checks",
               f"check.mjs exit {r.returncode} after {n} checks: {r.stderr[-200:]}")


def drive_swap_checks(p, sock, tmp):
    """PATCH /drives/data path_on_host on the running guest: refused for a locked or missing
    image (the old one stays), then a bigger image with other content, which the guest sees
    after the config-change interrupt (size) and reads without its page cache (O_DIRECT)."""
    import fcntl
    read = "dd if=/dev/vdb bs=512 count=1 iflag=direct 2>/dev/null | head -c 12 | tr -d '\\0'; echo"
    rc, out = p.run("cat /sys/block/vdb/size; " + read)
    check("drive-before-swap", rc == 0 and out.split() == [str(DATA_SECTORS), "first-image"],
          f"{rc} {out!r}")
    new = os.path.join(tmp, "data2.img")
    make_image(new, SWAP_SECTORS * 512, "second-image")
    fault("patch-drive-missing-image", sock, "PATCH", "/drives/data",
          {"drive_id": "data", "path_on_host": os.path.join(tmp, "none.img")}, "none.img")
    with open(new, "r+b") as held:  # a POSIX lock conflicts with ignition's OFD lock
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fault("patch-drive-locked-image", sock, "PATCH", "/drives/data",
              {"drive_id": "data", "path_on_host": new}, "in use")
    rc, out = p.run(read)
    check("drive-kept-after-refusal", rc == 0 and out.strip() == "first-image", f"{rc} {out!r}")
    st, _, text = curl(sock, "PATCH", "/drives/data", {"drive_id": "data", "path_on_host": new})
    check("patch-drive-path", st == 204, f"{st} {text[:200]}")
    rc, out = p.run("for i in $(seq 50); do [ $(cat /sys/block/vdb/size) = %d ] && break; "
                    "sleep 0.2; done; cat /sys/block/vdb/size; %s" % (SWAP_SECTORS, read))
    check("drive-guest-sees-new-image",
          rc == 0 and out.split() == [str(SWAP_SECTORS), "second-image"], f"{rc} {out!r}")
    rc, out = p.run("echo written-by-guest | dd of=/dev/vdb bs=512 seek=8 conv=sync "
                    "oflag=direct 2>/dev/null; sync")
    with open(new, "rb") as f:
        f.seek(8 * 512)
        check("drive-guest-writes-new-image", f.read(16) == b"written-by-guest", f"{rc} {out!r}")
    st, js, _ = curl(sock, "GET", "/vm/config")
    paths = [d.get("path_on_host") for d in (js or {}).get("drives", []) if d.get("drive_id") == "data"]
    check("drive-path-in-vm-config", paths == [new], f"{st} {paths}")


LOADED_SECTORS = (3 << 20) // 512  # the image PATCHed into the loaded VM: "third-image"


def loaded_extras(p, tmp, rootfs, vsock2):
    """In the process that loaded the snapshot: the swapped-in data image is what the snapshot
    kept (it recorded the new path); the API answers for the restored devices (GET /vm/config,
    PATCH of a drive's image and of an interface's rate limiter, OpenAPI validation); then
    SendCtrlAltDel through the restored i8042."""
    read = "dd if=/dev/vdb bs=512 count=1 iflag=direct 2>/dev/null | head -c 12 | tr -d '\\0'; echo"
    rc, out = p.run("cat /sys/block/vdb/size; " + read)
    check("loaded-drive-is-swapped-image",
          rc == 0 and out.split() == [str(SWAP_SECTORS), "second-image"], f"{rc} {out!r}")
    loaded_config_checks(p, p.sock, tmp, rootfs, vsock2, read)
    openapi_running(p.sock, "loaded-")
    ctrl_alt_del_check(p, p.sock)


def loaded_config_checks(p, sock, tmp, rootfs, vsock2, read):
    """The loaded VM's configuration as Firecracker keeps it: the snapshot's drives, interface,
    vsock (its override), balloon and machine; the MAC the clone got is the guest's."""
    st, js, text = curl(sock, "GET", "/vm/config")
    js = js if st == 200 and isinstance(js, dict) else {}
    drives = {d.get("drive_id"): d for d in js.get("drives", [])}
    root, data = drives.get("rootfs", {}), drives.get("data", {})
    check("loaded-vm-config-drives",
          sorted(drives) == ["data", "rootfs"] and root.get("path_on_host") == rootfs
          and root.get("is_root_device") is True and root.get("is_read_only") is False
          and data.get("path_on_host") == os.path.join(tmp, "data2.img")
          and data.get("is_root_device") is False and data.get("is_read_only") is False,
          f"{st} {json.dumps(js.get('drives'))[:400]}")
    nics = js.get("network-interfaces", [])
    nic = nics[0] if len(nics) == 1 else {}
    mac = nic.get("guest_mac", "")
    check("loaded-vm-config-interface",
          nic.get("iface_id") == "eth0" and nic.get("host_dev_name") == "ignition:user"
          and re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac) is not None,
          f"{st} {json.dumps(nics)[:300]}")
    check("loaded-vm-config-vsock",
          js.get("vsock") == {"guest_cid": 3, "uds_path": vsock2} and os.path.exists(vsock2),
          f"{js.get('vsock')} (socket there: {os.path.exists(vsock2)})")
    check("loaded-vm-config-balloon",
          js.get("balloon") == {"amount_mib": 0, "deflate_on_oom": True,
                                "stats_polling_interval_s": 1}, f"{js.get('balloon')}")
    mc = js.get("machine-config", {})
    check("loaded-vm-config-machine",
          mc.get("vcpu_count") == 1 and mc.get("mem_size_mib") == 256, f"{mc}")
    # The clone's MAC: the guest re-probes its NIC after the link bounce (ign-netwatch).
    rc, out = p.run("for i in $(seq 100); do [ \"$(cat /sys/class/net/eth0/address)\" = '%s' ] "
                    "&& break; sleep 0.2; done; cat /sys/class/net/eth0/address" % mac)
    check("loaded-guest-mac-is-vm-config", rc == 0 and mac and out.strip() == mac,
          f"vm/config {mac!r}, guest {out!r}")
    # MMDS: the snapshot kept its configuration, not its data (as Firecracker's does): the
    # store is empty until a PUT, then the guest reads it on the same interface.
    check("loaded-vm-config-mmds",
          js.get("mmds-config") == {"version": "V1", "network_interfaces": ["eth0"],
                                    "ipv4_address": "169.254.169.254", "imds_compat": True},
          f"{js.get('mmds-config')}")
    st, store, text = curl(sock, "GET", "/mmds")
    check("loaded-mmds-store-empty", st == 200 and store == {}, f"{st} {text[:200]}")
    st, _, text = curl(sock, "PUT", "/mmds", {"latest": {"meta-data": {"ami-id": "ami-loaded"}}})
    rc, out = p.run(WAIT_ROUTE + MMDS_GET) if st == 204 else (None, text)
    check("loaded-mmds-guest-get", rc == 0 and out.strip() == "ami-loaded", f"{st} {rc} {out!r}")
    # PATCH /drives/data path_on_host on the restored drive: the guest sees the new image.
    new = os.path.join(tmp, "data3.img")
    make_image(new, LOADED_SECTORS * 512, "third-image")
    st, _, text = curl(sock, "PATCH", "/drives/data", {"drive_id": "data", "path_on_host": new})
    check("loaded-patch-drive-path", st == 204, f"{st} {text[:200]}")
    rc, out = p.run("for i in $(seq 50); do [ $(cat /sys/block/vdb/size) = %d ] && break; "
                    "sleep 0.2; done; cat /sys/block/vdb/size; %s" % (LOADED_SECTORS, read))
    check("loaded-drive-guest-sees-new-image",
          rc == 0 and out.split() == [str(LOADED_SECTORS), "third-image"], f"{rc} {out!r}")
    # PATCH /network-interfaces/eth0: a rate limiter on the restored NIC, a bad one refused.
    limiter = {"bandwidth": {"size": 1048576, "one_time_burst": 0, "refill_time": 100}}
    st, _, text = curl(sock, "PATCH", "/network-interfaces/eth0",
                       {"iface_id": "eth0", "rx_rate_limiter": limiter})
    check("loaded-patch-net-rate-limiter", st == 204, f"{st} {text[:200]}")
    fault("loaded-patch-net-bad-limiter", sock, "PATCH", "/network-interfaces/eth0",
          {"iface_id": "eth0", "tx_rate_limiter": {"ops": {"size": 10, "refill_time": 0}}},
          "refill_time")
    fault("loaded-patch-unknown-drive", sock, "PATCH", "/drives/nope",
          {"drive_id": "nope", "path_on_host": new}, "does not exist")
    st, js, _ = curl(sock, "GET", "/vm/config")
    js = js if st == 200 and isinstance(js, dict) else {}
    data = [d for d in js.get("drives", []) if d.get("drive_id") == "data"]
    nics = js.get("network-interfaces", [])
    check("loaded-vm-config-after-patches",
          [d.get("path_on_host") for d in data] == [new] and len(nics) == 1
          and nics[0].get("rx_rate_limiter") == limiter and "tx_rate_limiter" not in nics[0],
          f"{st} {json.dumps(data)[:200]} {json.dumps(nics)[:300]}")


def ctrl_alt_del_check(p, sock, timeout=180):
    """SendCtrlAltDel: Ctrl+Alt+Del through the i8042; the guest's init (busybox,
    ::ctrlaltdel:/sbin/reboot) reboots, which ends ignition with status 0."""
    st, _, text = curl(sock, "PUT", "/actions", {"action_type": "SendCtrlAltDel"})
    check("ctrl-alt-del", st == 204, f"{st} {text[:200]}")
    t0 = time.monotonic()
    deadline = t0 + timeout * TIMEOUT_SCALE
    # Keep reading the console meanwhile: the kernel's "reboot: Restarting system" (printed
    # even with `quiet`) says that the guest rebooted, not merely that ignition stopped.
    while p.proc.poll() is None and time.monotonic() < deadline:
        p._read(1.0)
    while p._read(0.2):
        pass
    rc = p.proc.poll()
    if rc is None:
        check("ctrl-alt-del-exits", False, f"ignition still running {timeout} s later")
        return
    check("ctrl-alt-del-exits", rc == 0, f"exit status {rc}")
    check("ctrl-alt-del-guest-rebooted", b"Restarting system" in p.buf,
          "no 'reboot: Restarting system' on the console")
    print(f"    SendCtrlAltDel to exit {time.monotonic() - t0:.1f} s", flush=True)


def part_c(tmp):
    """Flags, and a --config-file boot (no API call) watched until the kernel prints."""
    r = subprocess.run([IGNITION, "--seccomp-filter", "f"], capture_output=True, text=True)
    check("flag-unsupported", r.returncode == 2 and "--seccomp-filter" in r.stderr,
          f"{r.returncode} {r.stderr!r}")
    r = subprocess.run([IGNITION, "--no-api"], capture_output=True, text=True)
    check("no-api-needs-config", r.returncode == 2 and "--config-file" in r.stderr,
          f"{r.returncode} {r.stderr!r}")
    fc = os.path.join(tmp, "firecracker")
    os.symlink(os.path.abspath(IGNITION), fc)
    r = subprocess.run([fc, "--help"], capture_output=True, text=True)
    check("argv0-firecracker", r.returncode == 0 and "--api-sock" in r.stdout,
          f"{r.returncode} {r.stdout[:200]!r}")
    bad = os.path.join(tmp, "bad.json")
    with open(bad, "w") as f:
        json.dump({"boot-source": {"kernel_image_path": "/k"}, "drivez": []}, f)
    r = subprocess.run([IGNITION, "--no-api", "--config-file", bad], capture_output=True,
                       text=True)
    check("config-file-unknown-section", r.returncode == 1 and "drivez" in r.stderr,
          f"{r.returncode} {r.stderr!r}")
    kernel = os.path.join(GUEST_DIR, "vmlinux-min")
    if not os.path.exists(kernel):
        result("SKIP", "config-file-boot", f"no guest in {GUEST_DIR}")
        return
    with open(os.path.join(GUEST_DIR, "cmdline-min")) as f:
        args = f.read().strip().replace(" quiet", "")
    cfg = {"boot-source": {"kernel_image_path": kernel, "boot_args": args},
           "machine-config": {"vcpu_count": 1, "mem_size_mib": 128}}
    path = os.path.join(tmp, "vm.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    sock = os.path.join(tmp, "c.sock")
    p = Proc(tmp, "config", sock, ["--config-file", path])
    try:
        st, js, _ = curl(sock, "GET", "/")
        check("config-file-running", st == 200 and js.get("state") == "Running", f"{st} {js}")
        st, js, _ = curl(sock, "GET", "/vm/config")
        check("config-file-vm-config", st == 200 and js.get("boot-source") == cfg["boot-source"],
              f"{st} {js}")
        try:
            p.expect(rb"Linux version", 60)
            check("config-file-boot", True)
            # Every thread, the API server's included, runs under its seccomp filter.
            modes = []
            for t in os.listdir(f"/proc/{p.proc.pid}/task"):
                with open(f"/proc/{p.proc.pid}/task/{t}/status") as f:
                    modes += [l.split()[1] for l in f if l.startswith("Seccomp:")]
            st, js, _ = curl(sock, "GET", "/")
            check("all-threads-filtered", modes and set(modes) == {"2"} and st == 200,
                  f"seccomp modes {modes}, then GET / -> {st}")
        except TimeoutError as e:
            check("config-file-boot", False, str(e))
    finally:
        p.stop()


def main(keep_snapshot=None):
    """Run every part; keep_snapshot: move the boot session's snapshot there (the MCP test's
    base) when it was written."""
    if not shutil.which("curl"):
        result("FAIL", "curl", "curl is not installed (setup.sh installs packages.txt)")
        return 1
    tmp = tempfile.mkdtemp(prefix="ign-api-")
    try:
        part_a(tmp)
        part_c(tmp)
        if os.environ.get("IGN_API_BOOT", "1") != "0":
            try:
                part_b(tmp)
                snap = os.path.join(tmp, "snap")
                mem_backend.part_uffd(sys.modules[__name__], tmp, snap)
                mem_backend.part_huge(sys.modules[__name__], tmp)
                if keep_snapshot and os.path.exists(os.path.join(snap, "state")):
                    shutil.move(snap, keep_snapshot)
            except Exception as e:  # a timeout or a dead process: one FAIL line, not a crash
                result("FAIL", "boot-session", f"{type(e).__name__}: {e}"[:300])
    finally:
        if failed:
            print(f"    logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
