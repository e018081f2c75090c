#!/usr/bin/env python3
"""Graphical guests (docs/gui.md): the desktop guest (`make guest-gui`: sway + foot on the
virtio-gpu display, guest/out/rootfs-gui.ext4) driven from the host; boot 7 of guest_test.py.

One boot of the desktop guest, then a restore of its snapshot:

Boot    `--guest gui --gui=headless --vnc 127.0.0.1:PORT --control SOCK`:
        - the guest says "ignition-gui: ready" on its serial console (IGN_GUI_READY: another
          text to wait for);
        - the screen gets drawn: the display goes active, its serial moves, a screenshot is not
          blank (many distinct colours) and foot's background colour dominates it;
        - `echo ignition-$((6*7))` + Enter typed through virtio-input makes `ignition-42`
          appear on the screen (read back with OCR, tesseract);
        - `key` is answered; `resize` to 1024x768 gives a screenshot of that size with foot
          filling it (the guest's sway takes the new mode), and back to the boot's mode;
        - vncsnapshot grabs the same screen over VNC: same size, same mean colour (VNC's copy is
          a JPEG, so nearly, not exactly);
        - a click, a pointer move and the errors of bad commands are answered as documented;
        - a root shell on the serial console answers; then the VM is paused, a reference
          screenshot taken, a snapshot written through the control socket, and Ctrl-A x ends it.
Restore `--restore SNAP --gui --vnc 127.0.0.1:PORT --control SOCK --track-dirty` on an Xvfb
        server (SDL): the screen is there at once, from the snapshot's GPU state (a few seconds
        after the restore, long before the guest could redraw on a kvm_pvm host): the control
        socket's first screenshot equals the reference, the X11 screen (`xwd -root`, converted
        by ImageMagick) shows foot's window, VNC the same picture; the serial shell answers;
        an in-place reset (control `reset`, the restored snapshot being the checkpoint) shows
        the screen at once again and the shell still answers.
MCP     a computer-use agent's session on the same snapshot (tests/mcp/gui_test.mjs, the MCP
        SDK client driving `ignition mcp --base SNAP`): a sandbox cloned from it, its screen
        as an image, `echo mcp-$((6*7))` typed with `type` + `key`, `mcp-42` read back from
        the screenshots by OCR, a `click` answered, the sandbox destroyed.
Stock   `--guest gui-stock --gui=headless --control SOCK`: the same desktop on Debian's generic
        stock kernel (its DRM, virtio-gpu and input modules loaded from its initramfs): the
        ready line, foot on the screen, `uname -r` a stock -amd64 kernel, `echo stock-$((6*7))`
        typed and `stock-42` read back by OCR.  SKIP on kvm_pvm hosts (an unpatched kernel
        cannot run 64-bit user space there).

Every check appends "PASS|FAIL guest/NAME (reason)" to $IGN_RESULTS
(guest_test.py's result()).  Run alone: `python3 tests/guest/gui.py`; from guest_test.py:
`import gui; gui.gui_checks(tmp)`.  Host tools (Debian): vncsnapshot, tesseract-ocr, xvfb,
x11-apps (xwd), imagemagick (convert), e2fsprogs (debugfs)."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest_test  # noqa: E402
from guest_test import (CMD_TIMEOUT, GUEST_DIR, HOST_KIND, LOGIN_TIMEOUT, ROOT,  # noqa: E402
                        Guest, Timeout, check, result, sized, sock_dir)

ROOTFS_GUI = os.path.join(GUEST_DIR, "rootfs-gui.ext4")
READY = os.environ.get("IGN_GUI_READY", "ignition-gui: ready").encode()
GUI_MEM = os.environ.get("IGN_GUI_MEM", "512")
# Bounds on a wedged desktop, not expected durations: sway + foot start after the boot, and a
# shell's echo is redrawn by foot through the emulated guest kernel on kvm_pvm hosts.
# How long a typed key may take to show before the next is typed anyway (a bound, not a
# pace: the next key goes as soon as the screen moved).
KEY_WAIT = sized(kvm=5, pvm=20)
# The desktop's boot to "ready" is the suite's heaviest emulated-kernel work: ~4-5 min alone
# on a kvm_pvm host, more than 420 s (LOGIN_TIMEOUT) on a slower one.
READY_TIMEOUT = float(os.environ.get("IGN_GUI_READY_TIMEOUT", sized(kvm=LOGIN_TIMEOUT, pvm=900)))
DRAWN_TIMEOUT = float(os.environ.get("IGN_GUI_DRAWN_TIMEOUT", sized(kvm=120, pvm=600)))
# foot's default background: 111111 up to foot 1.15 (Debian 12 has 1.13), 242424 after; a
# foot.ini in the image wins (read with debugfs, see foot_background()).
FOOT_DEFAULT_BG = [0x111111, 0x242424]
# How soon after a restore (or reset) the screen must be there: the restored display shows
# the snapshot's scanout before the vCPUs run; on a kvm_pvm host the guest itself redraws
# only every 10-30 s (docs/gui.md, "Known problems"), so this could not be the guest's doing.
# Inside tests/nested the SDL window's first frame alone takes 15-25 s (Mesa's llvmpipe
# compiles its shaders with LLVM on an emulated CPU; measured 16.2 s and 25.6 s).
AT_ONCE = float(os.environ.get("IGN_GUI_AT_ONCE", sized(kvm=10, pvm=10, nested=60)))
TOOLS = ("vncsnapshot", "Xvfb", "xwd", "convert", "debugfs", "tesseract")


# ---- the control socket -------------------------------------------------------------------

class Control:
    """One connection to ignition's control socket: a JSON line out, a JSON line back."""

    def __init__(self, path, timeout=CMD_TIMEOUT, guest=None):
        """guest: the Guest whose ignition makes the socket (the wait ends if it exits)."""
        self.path = path
        deadline = time.monotonic() + timeout
        while True:  # the socket appears once ignition has set the VM up
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.settimeout(60)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if guest is not None and guest.proc.poll() is not None:
                    raise Timeout(f"no control socket at {path}: ignition exited")
                if time.monotonic() > deadline:
                    raise Timeout(f"no control socket at {path} after {timeout:.0f}s")
                time.sleep(0.2)
        self.f = self.s.makefile("r")

    def raw(self, cmd):
        """Send `cmd` (a dict, or a str sent as it is) and return the answer dict."""
        line = cmd if isinstance(cmd, str) else json.dumps(cmd)
        self.s.sendall(line.encode() + b"\n")
        ans = self.f.readline()
        if not ans:
            raise Timeout(f"the control socket closed instead of answering {line[:80]}")
        return json.loads(ans)

    def __call__(self, **cmd):
        """The answer of a command that must work (RuntimeError with its error otherwise)."""
        ans = self.raw(cmd)
        if not ans.get("ok"):
            raise RuntimeError(f"{cmd['cmd']}: {ans.get('error')}")
        return ans

    def close(self):
        self.f.close()
        self.s.close()


# ---- images (no PIL here: ImageMagick turns anything into raw RGB) ---------------------------

def png_size(path):
    """(width, height) from a PNG's IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def rgb(path):
    """(width, height, bytes of RGB triplets) of any image file."""
    out = subprocess.run(["convert", path, "-format", "%w %h", "info:"], capture_output=True,
                         check=True, timeout=60).stdout.split()
    w, h = int(out[0]), int(out[1])
    data = subprocess.run(["convert", path, "-depth", "8", "rgb:-"], capture_output=True,
                          check=True, timeout=60).stdout
    if len(data) != w * h * 3:
        raise ValueError(f"{path}: {len(data)} bytes of RGB for {w}x{h}")
    return w, h, data


def colour_stats(data, step=7):
    """(distinct colours, the most common one, its share) over every `step`-th pixel."""
    counts = {}
    n = 0
    for i in range(0, len(data) - 2, 3 * step):
        c = data[i] << 16 | data[i + 1] << 8 | data[i + 2]
        counts[c] = counts.get(c, 0) + 1
        n += 1
    top = max(counts, key=counts.get) if counts else 0
    return len(counts), top, (counts.get(top, 0) / n if n else 0.0)


def mean_colour(data):
    n = len(data) // 3
    return tuple(sum(data[k::3]) / n for k in range(3)) if n else (0, 0, 0)


def near(c, want, tol=6):
    return all(abs((c >> s & 255) - (want >> s & 255)) <= tol for s in (16, 8, 0))


def foot_background(image):
    """foot's background colour: an uncommented `background=RRGGBB` in the image's foot.ini
    (system or root's), else foot's defaults (a list of candidates)."""
    for f in ("/root/.config/foot/foot.ini", "/etc/xdg/foot/foot.ini"):
        p = subprocess.run(["debugfs", "-R", f"cat {f}", image], capture_output=True)
        m = re.search(rb"^\s*background\s*=\s*([0-9a-fA-F]{6})", p.stdout, re.M)
        if m:
            return [int(m.group(1), 16)]
    return FOOT_DEFAULT_BG


def drain(g):
    """Read what the console has (the UART waits for room on ignition's stdout: a console
    nobody reads would stall the guest)."""
    while g._read(0):
        pass


def wait_drawn(g, ctl, tmp, bgs, name):
    """Wait until the screen shows foot: active, drawn (serial moved), a screenshot with many
    colours whose most common one is foot's background.  Returns the last screenshot's stats
    (or raises Timeout)."""
    deadline = time.monotonic() + DRAWN_TIMEOUT
    shot = os.path.join(tmp, f"{name}-drawn.png")
    last_serial, stats = None, None
    while time.monotonic() < deadline:
        drain(g)
        if g.proc.poll() is not None:
            raise Timeout(f"ignition exited ({g.proc.returncode}) before the screen was drawn")
        d = ctl(cmd="display")
        if d["active"] and d["serial"] != last_serial:
            last_serial = d["serial"]
            ctl(cmd="screenshot", path=shot)
            w, h, data = rgb(shot)
            stats = colour_stats(data)
            distinct, top, share = stats
            if distinct >= 8 and share >= 0.5 and any(near(top, bg) for bg in bgs):
                return d, shot, stats
        time.sleep(0.5)
    raise Timeout(f"the screen did not show foot within {DRAWN_TIMEOUT:.0f}s (last: "
                  f"{'no screenshot' if stats is None else 'colours %d, top %06x at %.0f%%' % (stats[0], stats[1], 100 * stats[2])})")


def ocr(png):
    """Text of the screen's top-left quarter (foot's first lines): cropped, enlarged and
    inverted to dark-on-light, which tesseract reads far better than small light text."""
    big = png + ".ocr.png"
    subprocess.run(["convert", png, "-crop", "50%x25%+0+0", "+repage", "-resize", "300%",
                    "-negate", big], check=True, timeout=60, capture_output=True)
    p = subprocess.run(["tesseract", big, "-"], capture_output=True, timeout=120)
    return p.stdout.decode(errors="replace")


def wait_text(g, ctl, tmp, want):
    """Wait until OCR of a screenshot finds `want`; (seconds taken, the text).  Raises
    Timeout with the last text read."""
    start = time.monotonic()
    deadline = start + DRAWN_TIMEOUT
    shot = os.path.join(tmp, "typed.png")
    last_serial, text = None, ""
    while time.monotonic() < deadline:
        drain(g)
        d = ctl(cmd="display")
        if d["serial"] != last_serial:
            last_serial = d["serial"]
            ctl(cmd="screenshot", path=shot)
            text = ocr(shot)
            if want in text:
                return time.monotonic() - start, text
        time.sleep(0.5)
    raise Timeout(f"{want!r} not on the screen within {DRAWN_TIMEOUT:.0f}s; OCR read "
                  f"{' | '.join(l for l in text.splitlines() if l.strip())[-200:]!r}")


def wait_settled(ctl, quiet=1.0, timeout=30):
    """Wait until the display serial has not moved for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = ctl(cmd="display")["serial"], time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        s = ctl(cmd="display")["serial"]
        if s != last:
            last, since = s, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return True
    return False


def free_vnc_display():
    """A VNC display number N whose port 5900+N is free on 127.0.0.1 (vncsnapshot takes
    HOST:DISPLAY)."""
    for n in range(37, 99):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", 5900 + n))
            return n
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free VNC port in 5937..5998")


def boot_headless(tmp, bgs):
    """The headless boot's checks, then its snapshot: (snapshot dir, reference screenshot)
    or None when none was taken."""
    image = os.path.join(tmp, "rootfs-gui-a.ext4")
    snap = os.path.join(tmp, "gui-snap")
    ref = os.path.join(tmp, "snap-ref.png")
    taken = False
    shutil.copyfile(ROOTFS_GUI, image)
    socks = sock_dir()
    sock = os.path.join(socks, "gui-a.ctl")
    disp = free_vnc_display()
    # vsock: the image's guest agent listens there, so that the snapshot below can be the
    # base of `ignition mcp` (mcp_session).
    g = Guest("gui-headless-vnc", ["--guest", "gui", "--gui=headless", "--mem", GUI_MEM,
                                   "--vnc", f"127.0.0.1:{5900 + disp}", "--control", sock,
                                   "--disk", image,
                                   "--vsock", f"3,{os.path.join(socks, 'gui-vsock.sock')}"])
    ctl = None
    try:
        ctl = Control(sock, guest=g)
        # Before the guest draws: the display is there but inactive, and says so.
        d = ctl(cmd="display")
        check("gui-display-command", set(d) == {"ok", "active", "width", "height", "serial"},
              json.dumps(d))
        t0 = time.monotonic()
        try:
            g.expect(re.escape(READY), READY_TIMEOUT)
            result("PASS", "gui-ready-line")
            print(f"    GUI boot to ready: {time.monotonic() - t0:.0f} s", flush=True)
        except Timeout as e:
            result("FAIL", "gui-ready-line", g.why(e))
        d, shot, (distinct, top, share) = wait_drawn(g, ctl, tmp, bgs, "a")
        result("PASS", "gui-screen-drawn")
        check("gui-screen-not-blank", distinct >= 8, f"{distinct} distinct colours")
        check("gui-foot-background-dominates", share >= 0.5 and any(near(top, b) for b in bgs),
              f"top colour {top:06x} at {100 * share:.0f}%, foot's is "
              f"{', '.join('%06x' % b for b in bgs)}")
        check("gui-screenshot-is-png-of-mode", png_size(shot) == (d["width"], d["height"]),
              f"PNG {png_size(shot)}, display {d['width']}x{d['height']}")

        ans = ctl.raw({"cmd": "key", "keys": "ctrl+l"})
        check("gui-key-command", ans.get("ok") is True, json.dumps(ans))
        # Pointer commands reach the guest (nothing to see in foot: answered ok is the check).
        w, h = d["width"], d["height"]
        ok = (ctl.raw({"cmd": "pointer", "x": w // 2, "y": h // 2})["ok"] and
              ctl.raw({"cmd": "click", "x": w // 2, "y": h // 2, "button": "left"})["ok"])
        check("gui-pointer-click", ok)
        ans = ctl.raw({"cmd": "pointer", "x": w, "y": 0})
        check("gui-pointer-outside-refused", not ans["ok"] and "outside" in ans["error"],
              json.dumps(ans))
        ans = ctl.raw({"cmd": "type", "text": "caf\u00e9"})
        check("gui-type-untypable-refused", not ans["ok"], json.dumps(ans))
        ans = ctl.raw({"cmd": "screenshot", "path": os.path.join(tmp, "nodir", "x.png")})
        check("gui-screenshot-bad-path", not ans["ok"] and "No such file" in ans["error"],
              json.dumps(ans))

        # VNC sees the same screen: size equal, mean colour within a JPEG's error.
        wait_settled(ctl)
        vnc_jpg = os.path.join(tmp, "vnc.jpg")
        p = subprocess.run(["vncsnapshot", "-quiet", "-allowblank", "-nojpeg", "-nocursor",
                            "-quality", "100", f"127.0.0.1:{disp}", vnc_jpg],
                           capture_output=True, timeout=120)
        ctl(cmd="screenshot", path=os.path.join(tmp, "vnc-ref.png"))
        if check("gui-vncsnapshot-runs", p.returncode == 0 and os.path.exists(vnc_jpg),
                 f"exit {p.returncode}: {p.stderr.decode(errors='replace')[-300:]}"):
            vw, vh, vdata = rgb(vnc_jpg)
            rw, rh, rdata = rgb(os.path.join(tmp, "vnc-ref.png"))
            check("gui-vnc-same-size", (vw, vh) == (rw, rh), f"VNC {vw}x{vh}, control {rw}x{rh}")
            vm, rm = mean_colour(vdata), mean_colour(rdata)
            check("gui-vnc-same-picture", all(abs(a - b) <= 4 for a, b in zip(vm, rm)),
                  f"mean RGB over VNC {tuple(round(x, 1) for x in vm)}, control "
                  f"{tuple(round(x, 1) for x in rm)}")

        # A root shell on the serial console, which the restored guest must still answer.
        # A failure here is this check's; the snapshot and the restore still follow.
        try:
            serial_login(g)
            serial_echo(g, "gui-serial-shell", 6)
        except Timeout as e:
            result("FAIL", "gui-serial-shell", g.why(e))

        # Typing through virtio-input: foot's shell runs the line, and its output is read back
        # from a screenshot with OCR (the shell computes 42: the typed line alone does not
        # contain it).  First, from the serial shell, wait until the compositor holds every
        # event device open: keys typed before libinput has the keyboard are dropped by the
        # guest kernel (no reader), as on any machine, and on a kvm_pvm host udev hands the
        # devices to the compositor well after foot is drawn.
        try:
            took = wait_input_open(g)
            result("PASS", "gui-input-devices-opened", f"after {took:.0f}s")
        except Timeout as e:
            result("FAIL", "gui-input-devices-opened", g.why(e))
        # One `type` per character, as a person types (docs/gui.md, "Known problems").
        # First, every key event reaches the guest's input layer: a second reader of the
        # keyboard's evdev node (beside the compositor), started from the serial shell, gets
        # all of them (24-byte input_events: press, SYN, release, SYN a character; shift around
        # the shifted ones).  That is ignition's part, checked on every host.
        text = "echo ignition-$((6*7))\n"
        events = sum(8 if c in "$()*" else 4 for c in text)
        # The reader (dd, one read for all of it) must hold the device open before the first
        # key: events before its open() are not its, and a reader that is not reading yet
        # loses all it has queued once 64 are waiting (evdev's buffer for this keyboard).
        g.start_cmd("for e in /sys/class/input/event*; do read -r n < $e/device/name; "
                    "[ \"$n\" = 'ignition keyboard' ] && k=/dev/input/${e##*/}; done; "
                    "rm -f /tmp/keys; dd if=$k of=/tmp/keys bs=%d count=1 iflag=fullblock "
                    "2>/dev/null & p=$!; i=0; until [ /proc/$p/fd/0 -ef $k ] || "
                    "[ $i -ge 300 ]; do sleep 0.2; i=$((i+1)); done; echo __OP''EN__; "
                    "(sleep 900; kill $p) 2>/dev/null & w=$!; wait $p; kill $w 2>/dev/null; "
                    "wc -c < /tmp/keys" % (24 * events))
        answers, got = [], None
        try:
            g.expect(rb"__BEGIN__\r*\n", CMD_TIMEOUT)
            g.expect(rb"__OPEN__\r*\n", CMD_TIMEOUT)
            answers = type_paced(ctl, text)
            m = g.expect(rb"([\s\S]*?)__END__(\d+)", 180)
            out = m.group(1).decode(errors="replace").replace("\r", "").strip()
            # (The interactive shell's job notices come around the count.)
            counts = re.findall(r"^(\d+)$", out, re.M)
            got = int(counts[-1]) if m.group(2) == b"0" and counts else None
        except (Timeout, ValueError) as e:
            out = g.why(e)
        check("gui-type-command", len(answers) == len(text) and
              all(a.get("ok") is True for a in answers),
              json.dumps([a for a in answers if a.get("ok") is not True][:3]))
        check("gui-typed-keys-reach-guest-evdev", got == 24 * events,
              f"{got} bytes read from the keyboard's event device, {24 * events} sent: {out!r}")
        # Then the text on the screen, read back by OCR (with the AVX mask short of
        # -AVX_Fast_Unaligned_Load, memcpy went through YMM registers and the keymap cage
        # hands foot arrived garbled in most boots on kvm_pvm hosts: guest/README.md).
        try:
            took, text = wait_text(g, ctl, tmp, "ignition-42")
            result("PASS", "gui-typed-text-on-screen", f"OCR found it after {took:.1f}s")
        except Timeout as e:
            result("FAIL", "gui-typed-text-on-screen", str(e))
            guest_state(g)

        # Resize (after the typing, which then runs on the screen as the guest set it up):
        # the request reaches the guest as a display-change event, its kernel lists the new
        # mode first and sends a hotplug event, and the guest's ign-gui-mode puts sway in
        # that mode: a screenshot of the new size, foot still filling it.  Then back, so that
        # the snapshot below holds the mode the guest booted with.
        for w, h in ((1024, 768), (d["width"], d["height"])):
            ans = ctl.raw({"cmd": "resize", "width": w, "height": h})
            check(f"gui-resize-command-{w}x{h}", ans.get("ok") is True, json.dumps(ans))
            try:
                took, _ = wait_mode(g, ctl, tmp, bgs, w, h)
                result("PASS", f"gui-resize-screenshot-{w}x{h}", f"after {took:.1f}s")
            except Timeout as e:
                result("FAIL", f"gui-resize-screenshot-{w}x{h}", str(e))
        ans = ctl.raw({"cmd": "resize", "width": 32, "height": 32})
        check("gui-resize-out-of-limits", not ans["ok"] and "64 to 3840" in ans["error"],
              json.dumps(ans))

        # The snapshot the restore below starts from, taken paused so that the reference
        # screenshot is the screen it holds.
        ctl(cmd="pause")
        wait_settled(ctl, quiet=0.5, timeout=10)
        ctl(cmd="screenshot", path=ref)
        t0 = time.monotonic()
        ans = ctl.raw({"cmd": "snapshot", "dir": snap})
        if check("gui-snapshot-command", ans.get("ok") is True and os.path.isdir(snap),
                 json.dumps(ans)):
            print(f"    GUI snapshot: {time.monotonic() - t0:.1f} s", flush=True)
            taken = True
        ctl(cmd="resume")
        ctl.close()
        ctl = None
        g.send(b"\x01x")
        rc = g.wait_exit(60)
        check("gui-headless-ctrl-a-x-exit-0", rc == 0, f"exit status {rc}")
    except Timeout as e:
        result("FAIL", "gui-headless", g.why(e))
    except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as e:
        result("FAIL", "gui-headless", f"{type(e).__name__}: {e}; {g.why(Exception(''))}")
    finally:
        if ctl:
            ctl.close()
        g.close()
    return (snap, ref) if taken else None


def wait_mode(g, ctl, tmp, bgs, w, h):
    """Wait until a screenshot is w x h and shows foot (its background dominating); (seconds
    taken, the screenshot).  Raises Timeout with what the last screenshot showed."""
    start = time.monotonic()
    shot = os.path.join(tmp, f"mode-{w}x{h}.png")
    last = "no screenshot"
    while time.monotonic() < start + DRAWN_TIMEOUT:
        drain(g)
        d = ctl(cmd="display")
        if d["active"] and (d["width"], d["height"]) == (w, h):
            ctl(cmd="screenshot", path=shot)
            size = png_size(shot)
            distinct, top, share = colour_stats(rgb(shot)[2])
            last = f"{size[0]}x{size[1]}, top colour {top:06x} at {100 * share:.0f}%"
            if size == (w, h) and share >= 0.5 and any(near(top, b) for b in bgs):
                return time.monotonic() - start, shot
        else:
            last = f"display {d['width']}x{d['height']} (active {d['active']})"
        time.sleep(0.5)
    raise Timeout(f"no {w}x{h} screenshot of foot within {DRAWN_TIMEOUT:.0f}s (last: {last})")


def type_paced(ctl, text):
    """Type text a character per `type` command, as a person types watching the screen: the
    next key once this one was drawn (the display serial moved), at most KEY_WAIT s.  The
    compositor reads the keyboard through evdev, which keeps 64 events for it: on a kvm_pvm
    host cage lagged behind keys 50 ms apart and lost all after the tenth.  The answers."""
    answers = []
    for ch in text:
        before = ctl(cmd="display")["serial"]
        answers.append(ctl.raw({"cmd": "type", "text": ch}))
        deadline = time.monotonic() + KEY_WAIT
        while ctl(cmd="display")["serial"] == before and time.monotonic() < deadline:
            time.sleep(0.05)
    return answers


def wait_keys_handled(ctl, tries=5):
    """Press Ctrl+L until the screen is redrawn (foot clears it): the guest's terminal gets
    keys.  The number of presses; Timeout when none was drawn."""
    for n in range(1, tries + 1):
        before = ctl(cmd="display")["serial"]
        ctl(cmd="key", keys="ctrl+l")
        deadline = time.monotonic() + KEY_WAIT
        while time.monotonic() < deadline:
            if ctl(cmd="display")["serial"] != before:
                wait_settled(ctl)
                return n
            time.sleep(0.1)
    raise Timeout(f"{tries} Ctrl+L drew nothing: the terminal does not get keys")


def stock_desktop(tmp, bgs):
    """The desktop guest on Debian's generic stock kernel (`--guest gui-stock`: its modules
    for virtio-gpu, virtio-input and evdev load from its initramfs): the ready line, foot on
    the screen, the stock kernel running, typed text read back by OCR."""
    names = ("gui-stock-kernel-ready", "gui-stock-kernel-foot-drawn", "gui-stock-kernel-runs",
             "gui-stock-kernel-typed-text-on-screen")
    if HOST_KIND == "pvm":
        for n in names:
            result("SKIP", n, "kvm_pvm host (/sys/module/kvm_pvm): an unpatched kernel cannot "
                   "run 64-bit user space there (guest/README.md)")
        return
    for f in ("vmlinuz-gui-stock", "initrd-gui-stock.img", "cmdline-gui-stock"):
        if not os.path.exists(os.path.join(GUEST_DIR, f)):
            result("FAIL", "gui-stock-kernel-assets", f"{GUEST_DIR}/{f} missing: run make "
                   "guest-gui")
            return
    image = os.path.join(tmp, "rootfs-gui-stock.ext4")
    shutil.copyfile(ROOTFS_GUI, image)
    sock = os.path.join(sock_dir(), "gui-stock.ctl")
    g = Guest("gui-stock-kernel", ["--guest", "gui-stock", "--gui=headless", "--mem", GUI_MEM,
                                   "--control", sock, "--disk", image])
    ctl, done = None, 0
    try:
        ctl = Control(sock, guest=g)
        g.expect(re.escape(READY), READY_TIMEOUT)
        result("PASS", names[0])
        done = 1
        wait_drawn(g, ctl, tmp, bgs, "stock")
        result("PASS", names[1])
        done = 2
        serial_login(g)
        st, out = g.run("uname -r")
        check(names[2], st == 0 and out.strip().endswith("-amd64") and "cloud" not in out,
              f"status {st}: {out!r}")
        done = 3
        wait_input_open(g)
        # Readiness, not a retry of the check: foot has its keyboard focus once a Ctrl+L (clear
        # the screen) is drawn.  In the first try the line's first key was lost: sent right
        # after the compositor opened the devices, before foot had the focus.
        tries = wait_keys_handled(ctl)
        answers = type_paced(ctl, "echo stock-$((6*7))\n")
        if any(a.get("ok") is not True for a in answers):
            raise RuntimeError(f"type refused: {[a for a in answers if not a.get('ok')][:2]}")
        took, _ = wait_text(g, ctl, tmp, "stock-42")
        result("PASS", names[3], f"OCR found it after {took:.1f}s (keys handled after "
               f"{tries} Ctrl+L)")
    except (Timeout, OSError, RuntimeError) as e:
        for n in names[done:]:
            result("FAIL", n, g.why(e) if isinstance(e, Timeout) else f"{type(e).__name__}: {e}")
    finally:
        if ctl is not None:
            ctl.close()
        g.close()


def serial_echo(g, name, n):
    """Check `name`: the serial shell computes n*7 (raises Timeout if it does not answer)."""
    st, out = g.run(f"echo ign-$(({n}*7))")
    check(name, st == 0 and f"ign-{n * 7}" in out, f"status {st}: {out[-200:]!r}")


def guest_state(g):
    """After a failed GUI check, print what the desktop guest is doing (from the serial root
    shell): the busiest processes (CPU ticks, state, wait channel), the virtio interrupt
    counts, the load, udev's view of the input devices and the compositor's last words."""
    # Shell builtins read /proc (a process per entry would be seconds each on kvm_pvm).
    cmd = ("for f in /proc/[0-9]*/stat; do read -r pid comm st a b c d e f g h i j ut sy r "
           "< $f && { w=; read -r w < /proc/$pid/wchan; echo \"$((ut+sy)) $comm $st $w\"; }; "
           "done 2>/dev/null | sort -rn | head -8 | tr '\\n' ';'; echo; "
           "grep virtio /proc/interrupts | tr -s ' ' | tr '\\n' ';'; echo; "
           "cat /proc/loadavg; for d in /sys/class/input/event*/dev; do read -r mm < $d; "
           "echo \"$d $mm udev:$(grep -c ID_INPUT= /run/udev/data/c$mm 2>&1)\"; done; "
           "tail -n 5 /run/compositor.log")
    try:
        st, out = g.run(cmd, timeout=120)
        for line in out.splitlines():
            print(f"  info  guest state: {line}", flush=True)
    except Timeout as e:
        print(f"  info  guest state: the serial shell did not answer ({e})", flush=True)


def wait_input_open(g):
    """Seconds until the event devices of the virtio keyboard and tablet are held open by
    some process (the compositor, which gets them from seatd); polled from the serial root
    shell.  (The i8042 keyboard's is left out: the guest's init does not hand it to udev, so
    libinput never opens it; guest/README.md.)  Raises Timeout."""
    start = time.monotonic()
    deadline = start + DRAWN_TIMEOUT
    cmd = ("ls -l /proc/[0-9]*/fd 2>/dev/null | grep -o '/dev/input/event[0-9]*' | sort -u | "
           "tr '\\n' ' '; echo; for e in /sys/class/input/event*; do read -r p <$e/device/phys; "
           "case $p in virtio*) printf '/dev/input/%s ' ${e##*/};; esac; done; echo")
    out = ""
    while time.monotonic() < deadline:
        st, out = g.run(cmd)
        lines = out.splitlines()
        if st == 0 and len(lines) == 2:
            held, virtio = set(lines[0].split()), set(lines[1].split())
            if len(virtio) >= 2 and virtio <= held:
                return time.monotonic() - start
        time.sleep(3)
    raise Timeout(f"the virtio input devices were not all open within {DRAWN_TIMEOUT:.0f}s "
                  f"(last: {out!r})")


def serial_login(g):
    """Log in as root on the serial console (agetty has waited there since before the
    compositor; its prompt went by with the boot messages).  A retry covers a first line that came before
    agetty opened the port; a stray "root" reaching the shell is harmless."""
    drain(g)
    g.buf = b""
    for attempt in range(3):
        g.send("root\n")
        try:
            g.expect(rb"# ", 40 if attempt < 2 else CMD_TIMEOUT)
            return
        except Timeout:
            if attempt == 2:
                raise


def same_picture(path, ref, tol=2.0):
    """(whether the images at path and ref have the same size and nearly the same mean
    colour, a reason)."""
    w, h, data = rgb(path)
    rw, rh, rdata = rgb(ref)
    m, rm = mean_colour(data), mean_colour(rdata)
    ok = (w, h) == (rw, rh) and all(abs(a - b) <= tol for a, b in zip(m, rm))
    return ok, (f"{w}x{h} mean RGB {tuple(round(x, 1) for x in m)}, before the snapshot "
                f"{rw}x{rh} {tuple(round(x, 1) for x in rm)}")


def foot_share(data, bgs):
    """The share of (every 7th) pixel in foot's background colour."""
    share = 0.0
    for bg in bgs:
        hits = sum(1 for i in range(0, len(data) - 2, 21)
                   if near(data[i] << 16 | data[i + 1] << 8 | data[i + 2], bg))
        share = max(share, hits / (len(data) // 21 or 1))
    return share


def restore_sdl(tmp, bgs, snap, ref):
    """The headless boot's snapshot restored with an SDL window (and VNC) on Xvfb: the screen
    is there at once, the guest carries on, and an in-place reset shows it at once again."""
    xdisp = None
    for n in range(77, 120):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            xdisp = n
            break
    if xdisp is None:
        result("FAIL", "gui-sdl-xvfb", "no free X display number")
        return
    xlog = open(os.path.join(tmp, "xvfb.log"), "wb")
    xvfb = subprocess.Popen(["Xvfb", f":{xdisp}", "-screen", "0", "1600x1000x24", "-nolisten",
                             "tcp"], stdout=xlog, stderr=xlog, start_new_session=True)
    g = None
    ctl = None
    old_env = {k: os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER")}

    def grab_x11(path):
        xwd = subprocess.run(["xwd", "-root", "-silent", "-display", f":{xdisp}"],
                             capture_output=True, check=True, timeout=60).stdout
        subprocess.run(["convert", "xwd:-", f"png:{path}"], input=xwd, check=True, timeout=60)

    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(f"/tmp/.X11-unix/X{xdisp}"):
            if xvfb.poll() is not None or time.monotonic() > deadline:
                result("FAIL", "gui-sdl-xvfb", f"Xvfb :{xdisp} did not start (see xvfb.log)")
                return
            time.sleep(0.1)
        # Guest() passes our environment on: SDL must pick X11, not a host Wayland.
        os.environ["DISPLAY"] = f":{xdisp}"
        os.environ.pop("WAYLAND_DISPLAY", None)
        os.environ["SDL_VIDEODRIVER"] = "x11"
        sock = os.path.join(sock_dir(), "gui-r.ctl")
        disp = free_vnc_display()
        # The front ends are the host's choice, not the snapshot's: --gui and --vnc go with
        # --restore.  --track-dirty makes the restored snapshot the reset checkpoint.
        g = Guest("gui-sdl-restore", ["--restore", snap, "--gui", "--vnc",
                                      f"127.0.0.1:{5900 + disp}", "--control", sock,
                                      "--track-dirty"])
        ctl = Control(sock, guest=g)

        # First thing: the screen the snapshot held, before the guest has done anything.
        d = ctl(cmd="display")
        shot = os.path.join(tmp, "restored.png")
        if d["active"]:
            ctl(cmd="screenshot", path=shot)
        took = time.monotonic() - g.start
        same, why = same_picture(shot, ref) if d["active"] else (False, "display inactive")
        check("gui-restore-screen-at-once", same and took <= AT_ONCE,
              f"{why}, {took:.1f} s after the restore began (display serial {d['serial']})")
        print(f"    GUI restore: screen at {took:.1f} s, display serial {d['serial']}",
              flush=True)
        # wait_drawn returns at once when foot is already there (the old name: the SDL run's
        # display shows foot).
        wait_drawn(g, ctl, tmp, bgs, "r")
        result("PASS", "gui-sdl-screen-drawn")

        # The window on the X screen: foot's background covers a good part of it, within
        # AT_ONCE of the restore (the window opens after the restore; no guest redraw needed).
        x11 = os.path.join(tmp, "x11.png")
        share, took = 0.0, 0.0
        while True:
            grab_x11(x11)
            took = time.monotonic() - g.start
            _, _, data = rgb(x11)
            share = foot_share(data, bgs)
            if share >= 0.2 or took > AT_ONCE:
                break
            time.sleep(0.3)
        check("gui-sdl-window-shows-foot", share >= 0.2 and took <= AT_ONCE,
              f"foot's background on {100 * share:.0f}% of the X screen {took:.1f} s after "
              f"the restore began")
        print(f"    GUI restore: SDL window shows foot at {took:.1f} s", flush=True)

        # VNC on the restored VM: the same picture as before the snapshot.
        vnc_jpg = os.path.join(tmp, "vnc-r.jpg")
        p = subprocess.run(["vncsnapshot", "-quiet", "-allowblank", "-nojpeg", "-nocursor",
                            "-quality", "100", f"127.0.0.1:{disp}", vnc_jpg],
                           capture_output=True, timeout=120)
        ok = p.returncode == 0 and os.path.exists(vnc_jpg)
        same, why = same_picture(vnc_jpg, ref, tol=4) if ok else (
            False, f"vncsnapshot exit {p.returncode}: "
                   f"{p.stderr.decode(errors='replace')[-300:]}")
        check("gui-restore-vnc-same-picture", same, why)

        # The guest runs on: its serial shell answers.
        try:
            serial_echo(g, "gui-restore-serial-shell", 6)
        except Timeout as e:
            result("FAIL", "gui-restore-serial-shell", g.why(e))

        # In-place reset back to the restored snapshot: the screen is back at once.
        t0 = time.monotonic()
        ans = ctl.raw({"cmd": "reset"})
        d = ctl(cmd="display")
        if ans.get("ok") and d["active"]:
            ctl(cmd="screenshot", path=shot)
        took = time.monotonic() - t0
        same, why = same_picture(shot, ref) if ans.get("ok") and d["active"] else (
            False, f"reset {json.dumps(ans)}, display {json.dumps(d)}")
        check("gui-reset-screen-at-once", same and took <= AT_ONCE,
              f"{why}, {took:.1f} s after the reset command")
        try:
            serial_echo(g, "gui-reset-serial-shell", 7)
        except Timeout as e:
            result("FAIL", "gui-reset-serial-shell", g.why(e))

        ctl.close()
        ctl = None
        g.send(b"\x01x")
        rc = g.wait_exit(60)
        check("gui-sdl-ctrl-a-x-exit-0", rc == 0, f"exit status {rc}")
    except (Timeout, RuntimeError, ValueError, OSError, subprocess.SubprocessError) as e:
        # A closed or reset control socket is often ignition ending: let it be reaped, so
        # that g.why gives its exit status and last words.
        ours = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
        msg = f"{type(e).__name__}: {e} (gui.py:{ours[-1].lineno if ours else '?'})"
        if g:
            try:
                g.proc.wait(3)
            except subprocess.TimeoutExpired:
                pass
        result("FAIL", "gui-sdl", g.why(msg) if g else msg)
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if ctl:
            ctl.close()
        if g:
            g.close()
        xvfb.terminate()
        try:
            xvfb.wait(10)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait()
        xlog.close()


def mcp_session(tmp, snap):
    """The MCP computer-use session (tests/mcp/gui_test.mjs, through tests/mcp/mcp_test.sh,
    which records its checks) on a clone of `snap`."""
    try:
        subprocess.run([os.path.join(ROOT, "tests", "mcp", "mcp_test.sh"), "--gui", snap, tmp],
                       env=dict(os.environ, IGN_RESULTS=guest_test.RESULTS,
                                IGN_MCP_READY_S=guest_test.MCP_READY_S), timeout=1200)
    except subprocess.TimeoutExpired:
        result("FAIL", "mcp-gui-session", "tests/mcp/mcp_test.sh --gui did not end in 1200 s")


def gui_checks(tmp):
    """The boot and the restore (guest_test.py's entry point): tmp is a scratch directory."""
    if not os.path.exists(ROOTFS_GUI):
        result("FAIL", "gui-image", f"{ROOTFS_GUI} missing: run make guest-gui")
        return
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        result("FAIL", "gui-host-tools", f"missing {', '.join(missing)} (packages.txt)")
        return
    bgs = foot_background(ROOTFS_GUI)
    t0 = time.monotonic()
    taken = boot_headless(tmp, bgs)
    print(f"    GUI boot (headless + VNC, snapshot): {time.monotonic() - t0:.0f} s", flush=True)
    if taken:
        t0 = time.monotonic()
        restore_sdl(tmp, bgs, *taken)
        print(f"    GUI restore (SDL on Xvfb, VNC, reset): {time.monotonic() - t0:.0f} s",
              flush=True)
        t0 = time.monotonic()
        mcp_session(tmp, taken[0])
        print(f"    GUI MCP session: {time.monotonic() - t0:.0f} s", flush=True)
    else:
        result("FAIL", "gui-sdl", "no snapshot of the desktop guest to restore (see above)")
    t0 = time.monotonic()
    stock_desktop(tmp, bgs)
    print(f"    GUI on the stock kernel: {time.monotonic() - t0:.0f} s", flush=True)


def main():
    if not os.path.exists("/dev/kvm"):
        result("FAIL", "kvm", "no /dev/kvm")
        return 1
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.makedirs(os.path.join(root, "build"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ign-gui-", dir=os.path.join(root, "build"))
    try:
        gui_checks(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
