"""Guest memory back ends through the API (called by curl_test.py, boot 6): a snapshot loaded
with mem_backend Uffd and ignition's test page-fault handler (build/uffd_handler), the VM
stopping with an error when that handler goes away, and huge_pages "2M": the start refused
with the numbers when the host's pool is too small, a boot on huge pages where the host can
reserve them, its snapshot refused for a File load and loaded through the handler
(IGN_API_HUGE=0 leaves the huge-page boot out)."""
import os
import signal
import shutil
import subprocess
import time

HANDLER = os.environ.get("IGN_UFFD_HANDLER", None)
HUGE_MIB = 128  # the huge-page guest: 64 pages of 2 MiB
NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"


def handler_path(ct):
    return HANDLER or os.path.join(ct.ROOT, "build", "uffd_handler")


def start_handler(ct, tmp, name, sock, mem):
    """build/uffd_handler SOCK MEM, once it listens; (Popen, stderr path)."""
    errpath = os.path.join(tmp, f"{name}.handler.log")
    h = subprocess.Popen([handler_path(ct), sock, mem], stderr=open(errpath, "wb"),
                         start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and h.poll() is None:
        with open(errpath) as f:
            if "ready" in f.read():
                break
        time.sleep(0.05)
    return h, errpath


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def uffd_load(ct, tmp, snap, name, marker):
    """Load `snap` into a fresh process through a handler; the shell has `marker` in
    /tmp/marker.  Returns (Proc, handler Popen, handler log) with both running, or None."""
    sock, hsock = os.path.join(tmp, f"{name}.sock"), os.path.join(tmp, f"{name}.pf.sock")
    p = ct.Proc(tmp, name, sock)
    # No handler yet: one clear 400, and the process can still load afterwards.
    ct.fault(f"{name}-no-handler", sock, "PUT", "/snapshot/load",
             {"snapshot_path": snap, "mem_backend": {"backend_type": "Uffd",
                                                     "backend_path": hsock}},
             "no page-fault handler socket")
    h, hlog = start_handler(ct, tmp, name, hsock, os.path.join(snap, "memory"))
    if not ct.check(f"{name}-handler-up", h.poll() is None and os.path.exists(hsock),
                    read(hlog)[-300:]):
        p.stop()
        return None
    t0 = time.monotonic()
    st, _, text = ct.curl(sock, "PUT", "/snapshot/load",
                          {"snapshot_path": snap,
                           "mem_backend": {"backend_type": "Uffd", "backend_path": hsock},
                           "resume_vm": True})
    ct.check(f"{name}-load", st == 204, f"{st} {text[:300]}")
    try:
        p.send("\n")
        rc, out = p.run("cat /tmp/marker; echo uffd-$((6*7)) > /tmp/f2; cat /tmp/f2", 120)
        ct.check(f"{name}-shell", rc == 0 and marker in out and "uffd-42" in out,
                 f"{rc} {out!r}")
        print(f"    {name}: load to a command answered {time.monotonic() - t0:.1f} s; "
              f"handler: {read(hlog).strip().splitlines()[-1]}", flush=True)
    except TimeoutError as e:
        ct.check(f"{name}-shell", False, str(e))
    return p, h, hlog


def part_uffd(ct, tmp, snap):
    """The boot session's snapshot loaded through the handler; then the handler killed."""
    if not os.path.exists(os.path.join(snap, "state")):
        # Not a host fact: the boot session failed to write its snapshot (its own FAIL says
        # why), so this check cannot pass either.
        ct.result("FAIL", "uffd-load", "no snapshot from the boot session to load")
        return
    r = uffd_load(ct, tmp, snap, "uffd", "restored-state")
    if not r:
        return
    p, h, hlog = r
    try:
        # The handler goes away: ignition stops the VM with one line, never a frozen guest.
        h.send_signal(signal.SIGKILL)
        h.wait()
        try:
            p.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        err = p.stderr()
        ct.check("uffd-handler-gone-stops-vm",
                 p.proc.returncode not in (None, 0) and "page-fault handler" in err,
                 f"exit {p.proc.returncode}, stderr {err[-300:]!r}")
    finally:
        if h.poll() is None:
            h.kill()
        p.stop()


def hugepages_free():
    """2 MiB pages a new mapping can still reserve: HugePages_Free - HugePages_Rsvd."""
    v = {}
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(("HugePages_Free:", "HugePages_Rsvd:")):
                v[line.split(":")[0]] = int(line.split()[1])
    return v.get("HugePages_Free", 0) - v.get("HugePages_Rsvd", 0)


def huge_boot_steps(ct, tmp, kernel, args):
    rootfs = os.path.join(tmp, "huge-rootfs.ext4")
    shutil.copyfile(os.path.join(ct.GUEST_DIR, "rootfs.ext4"), rootfs)
    return [("/boot-source", {"kernel_image_path": kernel, "boot_args": args}),
            ("/drives/rootfs", {"drive_id": "rootfs", "path_on_host": rootfs,
                                "is_root_device": True, "is_read_only": False}),
            ("/machine-config", {"vcpu_count": 1, "mem_size_mib": HUGE_MIB,
                                 "huge_pages": "2M"})]


def part_huge(ct, tmp):
    if os.environ.get("IGN_API_HUGE", "1") == "0":
        ct.result("SKIP", "huge-pages", "IGN_API_HUGE=0")
        return
    kernel = os.path.join(ct.GUEST_DIR, "vmlinux-min")
    if not os.path.exists(kernel):
        ct.result("FAIL", "huge-pages", f"no guest kernel in {ct.GUEST_DIR} (run the set-up)")
        return
    with open(os.path.join(ct.GUEST_DIR, "cmdline-min")) as f:
        args = f.read().strip()
    need = HUGE_MIB // 2
    steps = huge_boot_steps(ct, tmp, kernel, args)
    # Too few huge pages: the start is refused, naming the numbers and the sysctl.
    if hugepages_free() < need:
        sock = os.path.join(tmp, "huge0.sock")
        p = ct.Proc(tmp, "huge0", sock)
        try:
            for path, body in steps:
                ct.curl(sock, "PUT", path, body)
            ct.fault("huge-pages-too-few", sock, "PUT", "/actions",
                     {"action_type": "InstanceStart"}, "nr_hugepages")
        finally:
            p.stop()
    try:
        with open(NR_HUGEPAGES) as f:
            old = int(f.read())
    except OSError as e:
        ct.result("SKIP", "huge-pages", f"cannot read {NR_HUGEPAGES}: {e}")
        return
    try:
        want = old + max(0, need - hugepages_free())
        try:
            with open(NR_HUGEPAGES, "w") as f:
                f.write(str(want))
        except OSError as e:
            ct.result("SKIP", "huge-pages", f"the host refuses {NR_HUGEPAGES} = {want}: {e}")
            return
        if hugepages_free() < need:
            ct.result("SKIP", "huge-pages",
                      f"the host reserved only {hugepages_free()} free 2 MiB pages of the "
                      f"{need} needed ({NR_HUGEPAGES} = {want} asked)")
            return
        huge_session(ct, tmp, steps, need)
    finally:
        with open(NR_HUGEPAGES, "w") as f:
            f.write(str(old))


def huge_session(ct, tmp, steps, need):
    sock = os.path.join(tmp, "huge1.sock")
    snap = os.path.join(tmp, "huge-snap")
    free0 = hugepages_free()
    p = ct.Proc(tmp, "huge1", sock)
    try:
        for path, body in steps + [("/actions", {"action_type": "InstanceStart"})]:
            st, _, text = ct.curl(sock, "PUT", path, body)
            if not ct.check("huge-boot" + path.replace("/", "-"), st == 204,
                            f"{st} {text[:300]}"):
                return
        ct.check("huge-pages-reserved", free0 - hugepages_free() == need,
                 f"free minus reserved {free0} -> {hugepages_free()}, {need} expected")
        try:
            p.expect(rb"login: ", ct.LOGIN_TIMEOUT)
            p.send("root\n")
            p.expect(rb"# ", 60)
            rc, out = p.run("echo huge-marker > /tmp/marker; cat /tmp/marker")
            ct.check("huge-guest-shell", rc == 0 and "huge-marker" in out, f"{rc} {out!r}")
        except TimeoutError as e:
            ct.check("huge-guest-shell", False, str(e))
            return
        st, _, text = ct.curl(sock, "PATCH", "/vm", {"state": "Paused"})
        st2, _, text2 = ct.curl(sock, "PUT", "/snapshot/create",
                                {"snapshot_type": "Full", "snapshot_path": snap})
        ct.check("huge-snapshot", st == 204 and st2 == 204, f"{st} {text} {st2} {text2}")
    finally:
        p.stop()
    if not os.path.exists(os.path.join(snap, "state")):
        return
    # As in Firecracker: a huge-page snapshot loads only through a page-fault handler.
    sock2 = os.path.join(tmp, "huge2.sock")
    p2 = ct.Proc(tmp, "huge2", sock2)
    try:
        ct.fault("huge-file-load-refused", sock2, "PUT", "/snapshot/load",
                 {"snapshot_path": snap}, "Uffd")
    finally:
        p2.stop()
    r = uffd_load(ct, tmp, snap, "huge-uffd", "huge-marker")
    if r:
        p3, h, hlog = r
        p3.stop()
        try:
            h.wait(10)
        except subprocess.TimeoutExpired:
            h.kill()
        log = read(hlog)
        ct.check("huge-uffd-2m-pages", "page size 2097152" in log, log[-300:])
