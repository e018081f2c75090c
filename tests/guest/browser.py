#!/usr/bin/env python3
"""The disposable browser (docs/browser.md): `ignition browser` on the browser guest (`make
guest-browser`: Firefox ESR in cage, guest/out/rootfs-browser.ext4); boot 8 of guest_test.py.

Base     `ignition browser --make-base --base DIR`: one cold boot, headless; the guest asks for
         its snapshot once Firefox has drawn its start page and the guest is idle.  The base
         is a complete snapshot; the cold boot's time to the start page is printed.
Clone A  `ignition browser --base DIR --gui=headless --net user,host-loopback=on --control S
         URL` with URL a page of a web server of this test on the host's loopback:
         - the restored screen is there at once: the first screenshot shows the start page
           (its background colour dominates), long before the guest could draw it;
         - the URL loads (handed to the clone's start page through the guest agent): the
           host's server sees the request, and the page's text is on the screen (OCR,
           tesseract);
         - SIGTERM ends the session with status 0 and its private directory is gone; the base
           and the guest image are unchanged.
Clone B  a second session from the same base, without a URL: it shows the start page again,
         not clone A's page (nothing of a session is kept).

Every check appends "PASS|FAIL guest/NAME (reason)" to $IGN_RESULTS.  Run alone:
`python3 tests/guest/browser.py`.  Host tools (Debian): tesseract-ocr, imagemagick."""
import glob
import http.server
import os
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest_test  # noqa: E402
from guest_test import GUEST_DIR, IGNITION, Timeout, check, result, sized, sock_dir  # noqa: E402
from gui import Control, colour_stats, near, rgb  # noqa: E402

IMAGE = os.path.join(GUEST_DIR, "rootfs-browser.ext4")
# The start page's background (guest/browser/files/usr/share/ign-browser/index.html).
START_BG = 0x12324a
# Bounds on a wedged guest, not expected durations.  The base's cold boot runs Firefox's first
# start (profile, caches) through the emulated kernel on kvm_pvm hosts and under QEMU's
# emulation inside tests/nested (~2.5 min there to the first paint, measured 2026-12-02).
BASE_TIMEOUT = int(os.environ.get("IGN_BROWSER_BASE_TIMEOUT", sized(kvm=300, pvm=1800, nested=1200)))
# A clone faults its memory in as Firefox touches it: ~90 s of guest work inside tests/nested
# before it is idle again (measured), then the page load itself.
PAGE_TIMEOUT = float(os.environ.get("IGN_BROWSER_PAGE_TIMEOUT", sized(kvm=60, pvm=600, nested=600)))
AT_ONCE = float(os.environ.get("IGN_BROWSER_AT_ONCE", sized(kvm=10, pvm=30, nested=60)))
WORD = "IGNITION42"
PAGE = ("<!DOCTYPE html><html><head><title>t</title></head><body style=\"margin:40px;"
        "background:#ffffff;color:#000000;font:bold 72px 'DejaVu Sans',sans-serif\">"
        f"<p>{WORD}</p></body></html>")


class Server:
    """A web server on 127.0.0.1 (an ephemeral port) serving PAGE, recording what was asked."""

    def __init__(self):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                body = PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def ocr_full(png):
    """Text of the whole screen (dark on light), enlarged for tesseract."""
    big = png + ".ocr.png"
    subprocess.run(["convert", png, "-resize", "150%", big], check=True, timeout=60,
                   capture_output=True)
    p = subprocess.run(["tesseract", big, "-"], capture_output=True, timeout=120)
    return p.stdout.decode(errors="replace")


def screen_text(png):
    """A screenshot's text on one line for a FAIL reason ('' without one)."""
    if not png or not os.path.exists(png):
        return ""
    try:
        return " | ".join(l for l in ocr_full(png).splitlines() if l.strip())[-300:]
    except (OSError, subprocess.SubprocessError) as e:
        return f"(OCR failed: {e})"


def start_session(base, sock, log, url=None):
    args = [IGNITION, "browser", "--base", base, "--gui=headless",
            "--net", "user,host-loopback=on", "--control", sock]
    if url:
        args.append(url)
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


class _Session:
    """What Control needs to stop waiting when the session ends first: its process."""

    def __init__(self, proc):
        self.proc = proc


def first_screen(p, sock, tmp, name):
    """Connect to the session's control socket (waiting for it) and take a screenshot:
    (the connection, colour_stats of the screenshot).  Timeout when the session ends first."""
    ctl = Control(sock, timeout=120, guest=_Session(p))
    shot = os.path.join(tmp, f"{name}-first.png")
    ctl(cmd="screenshot", path=shot)
    return ctl, colour_stats(rgb(shot)[2])


def end_session(p, name):
    """SIGTERM; the session must end with status 0 within 60 s."""
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return check(f"{name}-ends", False, "still running 60 s after SIGTERM: killed")
    return check(f"{name}-ends", rc == 0, f"exit status {rc} after SIGTERM")


def session_dirs():
    return set(glob.glob("/tmp/ignition-browser.*"))


def stamps(base):
    """The base's files and their modification times, and the image's."""
    return ({f: os.stat(os.path.join(base, f)).st_mtime_ns for f in os.listdir(base)},
            os.stat(IMAGE).st_mtime_ns)


def browser_checks(tmp):
    if not os.path.exists(IMAGE):
        result("FAIL", "browser-assets", f"{IMAGE} missing: run make guest-browser")
        return
    base = os.path.join(tmp, "browser-base")
    t0 = time.monotonic()
    p = subprocess.run([IGNITION, "browser", "--make-base", "--base", base,
                        "--base-timeout", str(BASE_TIMEOUT)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=BASE_TIMEOUT + 120)
    err = p.stderr.decode(errors="replace")
    print("    " + "\n    ".join(l for l in err.splitlines() if "..." not in l), flush=True)
    if not check("browser-base", p.returncode == 0 and
                 os.path.exists(os.path.join(base, "manifest.json")),
                 f"exit status {p.returncode}: {err.strip().splitlines()[-1:] or ''}"):
        return
    print(f"  info  browser base: {time.monotonic() - t0:.1f} s", flush=True)
    stamp = stamps(base)
    sock = os.path.join(sock_dir(), f"browser-{os.getpid()}.sock")
    server = Server()
    url = f"http://10.0.2.2:{server.port}/ignition-test"
    before = session_dirs()
    log = open(os.path.join(tmp, "browser-a.log"), "w+")
    t0 = time.monotonic()
    p = start_session(base, sock, log, url)
    try:
        ctl, (_, top, share) = first_screen(p, sock, tmp, "clone-a")
        took = time.monotonic() - t0
        print(f"  info  clone to its first screenshot: {took * 1000:.0f} ms", flush=True)
        check("browser-clone-screen", took <= AT_ONCE and near(top, START_BG) and share >= 0.3,
              f"after {took:.1f} s: top colour {top:06x} at {share:.0%}, want the start "
              f"page's {START_BG:06x}")
        deadline = time.monotonic() + PAGE_TIMEOUT
        shot, next_shot = None, 0.0
        while not server.seen and time.monotonic() < deadline and p.poll() is None:
            # A screenshot a minute while waiting: what the clone showed is kept with the
            # test's files, and the last one's text goes into a FAIL.
            if time.monotonic() >= next_shot:
                next_shot = time.monotonic() + 60
                shot = os.path.join(tmp, f"clone-a-wait-{time.monotonic() - t0:04.0f}s.png")
                ctl(cmd="screenshot", path=shot)
            time.sleep(0.5)
        if check("browser-url-loads", "/ignition-test" in server.seen,
                 f"no request for the URL within {PAGE_TIMEOUT:.0f} s (server saw "
                 f"{server.seen}; the screen read {screen_text(shot)!r})"):
            print(f"  info  clone to the URL's request: {time.monotonic() - t0:.1f} s",
                  flush=True)
            text, shot = "", os.path.join(tmp, "clone-a-page.png")
            while time.monotonic() < deadline + 60:
                ctl(cmd="screenshot", path=shot)
                text = ocr_full(shot)
                if WORD in text.replace(" ", ""):
                    break
                time.sleep(2)
            check("browser-page-shown", WORD in text.replace(" ", ""),
                  f"{WORD} not read on the screen; OCR read "
                  f"{' | '.join(l for l in text.splitlines() if l.strip())[-200:]!r}")
        ctl.close()
    except (Timeout, OSError, RuntimeError) as e:
        result("FAIL", "browser-clone", f"{type(e).__name__}: {e}")
    finally:
        end_session(p, "browser-session")
        log.seek(0)
        print("    session A: " + " | ".join(log.read().splitlines()[-5:])[-600:], flush=True)
        log.close()
    check("browser-session-discarded", session_dirs() <= before and stamps(base) == stamp,
          f"left behind: {sorted(session_dirs() - before)}, or the base or the image changed")

    # Clone B: the same base again, no URL: the start page, not clone A's page.
    log = open(os.path.join(tmp, "browser-b.log"), "w+")
    p = start_session(base, sock, log)
    try:
        ctl, (_, top, _) = first_screen(p, sock, tmp, "clone-b")
        time.sleep(5)
        shot = os.path.join(tmp, "clone-b-later.png")
        ctl(cmd="screenshot", path=shot)
        _, top2, _ = colour_stats(rgb(shot)[2])
        check("browser-clone-fresh", near(top, START_BG) and near(top2, START_BG),
              f"top colours {top:06x}, then {top2:06x}: want the start page's {START_BG:06x}")
        ctl.close()
    except (Timeout, OSError, RuntimeError) as e:
        result("FAIL", "browser-clone-fresh", f"{type(e).__name__}: {e}")
    finally:
        end_session(p, "browser-second-session")
        log.close()
        server.close()


def main():
    tmp = tempfile.mkdtemp(prefix="ign-browser-", dir=os.path.join(guest_test.ROOT, "build"))
    try:
        browser_checks(tmp)
    except Exception:
        traceback.print_exc()
        result("FAIL", "browser", "the test crashed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
