#!/usr/bin/env python3
"""Boot the desktop guest (rootfs-gui.ext4, cage + foot) under QEMU and check what is on
its screen: no KVM needed (TCG by default). Checks the guest assets, not ignition.

The machine is QEMU microvm with ACPI: the root disk, a virtio-gpu, a virtio keyboard and
a virtio tablet all sit on virtio-mmio transports that QEMU describes in its DSDT
(LNRO0005), which is how the minimal kernel finds them under ignition too. The transports
are virtio 1.x (force-legacy=false): the guest's gpu and input drivers refuse legacy ones.

Steps, each with its time since QEMU started:
  1. "ignition-gui: ready" on the serial console (foot is up and runs its shell);
  2. QMP screendump until the screen is foot's terminal: mostly foot's background colour,
     with some text drawn on it (the prompt);
  3. QMP send-key types `echo ignition-$((6*7))` + Enter; screendumps go through
     ImageMagick (negated, enlarged) to tesseract until the OCR text holds "ignition-42";
  4. root login on the serial console (GLIBC_TUNABLES must be in the shell's environment),
     then poweroff.
Screenshots are kept with --save-dir. Exit status 0 when every step passed.
"""
import argparse
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

# foot 1.13's default colours (Debian bookworm): background 111111, foreground dcdccc.
FOOT_BG = (0x11, 0x11, 0x11)
FOOT_FG = (0xDC, 0xDC, 0xCC)
COMMAND = "echo ignition-$((6*7))"
EXPECT = "ignition-42"

# QEMU qcodes for the characters of COMMAND (US layout); (shift, qcode).
KEYS = {" ": (False, "spc"), "-": (False, "minus"), "$": (True, "4"), "(": (True, "9"),
        ")": (True, "0"), "*": (True, "8"), "\n": (False, "ret")}
KEYS.update({c: (False, c) for c in "abcdefghijklmnopqrstuvwxyz0123456789"})


class Console:
    """The guest's serial console, through QEMU's stdio."""

    def __init__(self, proc, echo):
        self.proc = proc
        self.buf = b""
        self.echo = echo

    def expect(self, needle, timeout):
        needle = needle.encode()
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(needle.decode())
            self.poll(min(left, 1.0))
        head, _, self.buf = self.buf.partition(needle)
        return head.decode(errors="replace")

    def poll(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return
        data = os.read(self.proc.stdout.fileno(), 4096)
        if not data:
            raise EOFError("console closed")
        if self.echo:
            sys.stdout.write(data.decode(errors="replace").replace("\r", ""))
            sys.stdout.flush()
        self.buf += data

    def send(self, text):
        # The 16550 receive FIFO is small: feed the guest a few bytes at a time.
        for i in range(0, len(text), 8):
            self.proc.stdin.write(text[i:i + 8].encode())
            self.proc.stdin.flush()
            time.sleep(0.02)


class Qmp:
    """A minimal QMP client (QEMU Machine Protocol, one command at a time)."""

    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.f = self.sock.makefile("rwb")
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("QMP closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.f.write(json.dumps(req).encode() + b"\n")
        self.f.flush()
        msg = self._read()
        if "error" in msg:
            raise RuntimeError("QMP %s: %s" % (name, msg["error"]))
        return msg["return"]


def read_ppm(path):
    """(width, height, RGB bytes) of a binary PPM (P6, maxval 255) as QEMU writes it."""
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or fields[3] != b"255":
        raise ValueError("%s: not a P6/255 PPM" % path)
    w, h = int(fields[1]), int(fields[2])
    return w, h, data[pos + 1:pos + 1 + w * h * 3]


def near(a, b, tol=24):
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def screen_stats(path):
    """Size, share of foot's background and of foot-foreground-like pixels, in a sample."""
    w, h, rgb = read_ppm(path)
    bg = fg = n = 0
    step = 3 * 7  # every 7th pixel is plenty for shares
    for i in range(0, len(rgb) - 2, step):
        px = (rgb[i], rgb[i + 1], rgb[i + 2])
        n += 1
        if px == FOOT_BG:
            bg += 1
        elif near(px, FOOT_FG, 60):
            fg += 1
    return w, h, bg / max(n, 1), fg / max(n, 1)


def ocr(ppm, work):
    """Text tesseract reads in the screenshot (light on dark: negated and enlarged first)."""
    png = os.path.join(work, "ocr.png")
    subprocess.run(["convert", ppm, "-negate", "-resize", "200%", png], check=True)
    r = subprocess.run(["tesseract", png, "stdout", "--psm", "6"], capture_output=True,
                       text=True)
    return r.stdout


def host_tsc_khz():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":")[1]) * 1000)
    except (OSError, ValueError):
        pass
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--cmdline-file", required=True)
    ap.add_argument("--append", default="")
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--mem", type=int, default=512, help="MiB")
    ap.add_argument("--accel", default="tcg")
    ap.add_argument("--cpu", default="max")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per step")
    ap.add_argument("--save-dir", help="keep the screenshots (PPM) and OCR text here")
    ap.add_argument("--quiet", action="store_true", help="do not echo the console")
    args = ap.parse_args()

    with open(args.cmdline_file) as f:
        cmdline = " ".join(f.read().split())
    cmdline = (cmdline + " " + args.append).strip()
    if args.accel == "tcg":
        khz = host_tsc_khz()
        if khz:
            cmdline += " tsc_early_khz=%d" % khz

    work = tempfile.mkdtemp(prefix="ignition-gui-check.")
    save = args.save_dir or work
    os.makedirs(save, exist_ok=True)
    disk = os.path.join(work, "rootfs-gui.ext4")
    shutil.copyfile(args.rootfs, disk)
    qmp_path = os.path.join(work, "qmp.sock")
    qemu = ["qemu-system-x86_64", "-M", "microvm,acpi=on", "-accel", args.accel,
            "-cpu", args.cpu, "-smp", str(args.smp), "-m", str(args.mem),
            # virtio 1.x transports: QEMU's virtio-mmio is legacy by default, and the
            # kernel's virtio-gpu and virtio-input drivers need VIRTIO_F_VERSION_1.
            "-global", "virtio-mmio.force-legacy=false",
            "-display", "none", "-serial", "stdio", "-monitor", "none",
            "-qmp", "unix:%s,server=on,wait=off" % qmp_path, "-no-reboot",
            "-kernel", args.kernel, "-append", cmdline,
            "-drive", "id=root,file=%s,format=raw,if=none" % disk,
            "-device", "virtio-blk-device,drive=root",
            "-device", "virtio-gpu-device", "-device", "virtio-keyboard-device",
            "-device", "virtio-tablet-device"]
    print("+ " + " ".join(a if a != cmdline else "'%s'" % a for a in qemu), flush=True)

    t0 = time.monotonic()
    proc = subprocess.Popen(qemu, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    con = Console(proc, not args.quiet)
    marks = {}
    ok = False

    def mark(name):
        marks[name] = time.monotonic() - t0
        print("\nqemu-gui-check: %s at %.1f s" % (name, marks[name]), flush=True)

    def shot(name):
        path = os.path.join(save, name)
        qmp.cmd("screendump", filename=path)
        return path

    try:
        qmp = Qmp(qmp_path)
        con.expect("ignition-gui: starting the compositor", args.timeout)
        mark("compositor starting")
        con.expect("ignition-gui: ready", args.timeout)
        mark("ready")

        # 2. foot's terminal on the screen.
        deadline = time.monotonic() + args.timeout
        while True:
            con.poll(0.5)
            path = shot("ready.ppm")
            w, h, bg, fg = screen_stats(path)
            if bg > 0.5 and fg > 0.0005:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("foot's terminal on the screen (%dx%d, background %.1f%%, "
                                   "text %.2f%%)" % (w, h, bg * 100, fg * 100))
        mark("foot on screen (%dx%d, background %.1f%%, text %.2f%%)" %
             (w, h, bg * 100, fg * 100))

        # 3. type the command through the virtio keyboard, read the answer back by OCR.
        # Readiness first: keys reach foot once the compositor has given it the keyboard,
        # a moment after it is drawn (sway lost the first two keys typed at once).  Type
        # "x" until the screen changes, then Ctrl+U (bash: discard the line).
        with open(path, "rb") as f:
            before = f.read()
        deadline = time.monotonic() + args.timeout
        while True:
            qmp.cmd("send-key", keys=[{"type": "qcode", "data": "x"}], **{"hold-time": 50})
            time.sleep(1)
            with open(shot("keys.ppm"), "rb") as f:
                if f.read() != before:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("a typed key on the screen")
        qmp.cmd("send-key", keys=[{"type": "qcode", "data": "ctrl"},
                                  {"type": "qcode", "data": "u"}], **{"hold-time": 50})
        time.sleep(1)
        mark("keys reach the terminal")
        for c in COMMAND + "\n":
            shift, code = KEYS[c]
            keys = ([{"type": "qcode", "data": "shift"}] if shift else []) + \
                [{"type": "qcode", "data": code}]
            qmp.cmd("send-key", keys=keys, **{"hold-time": 50})
            time.sleep(0.1)
        mark("typed %r" % COMMAND)
        deadline = time.monotonic() + args.timeout
        while True:
            con.poll(1.0)
            path = shot("typed.ppm")
            text = ocr(path, work)
            if EXPECT in text or EXPECT in text.replace(" ", ""):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("%r in the OCR text %r" % (EXPECT, text))
        with open(os.path.join(save, "ocr.txt"), "w") as f:
            f.write(text)
        mark("OCR found %r" % EXPECT)

        # 4. serial console: root login, the AVX mask in the shell's environment, poweroff.
        con.send("\n")
        con.expect("login:", args.timeout)
        con.send("root\n")
        con.expect("# ", args.timeout)
        con.send("echo tunables=$GLIBC_TUNABLES; echo serial-$((2*21))\n")
        out = con.expect("serial-42", args.timeout)
        if "GLIBC_TUNABLES=" in cmdline and "tunables=glibc.cpu.hwcaps=" not in out:
            raise RuntimeError("GLIBC_TUNABLES in the serial login shell (got %r)" % out)
        mark("serial root login")
        con.send("poweroff\n")
        rc = proc.wait(timeout=args.timeout)
        mark("powered off")
        ok = rc == 0
        if rc:
            print("qemu-gui-check: QEMU exited with status %d" % rc)
    except (TimeoutError, EOFError, RuntimeError, OSError) as e:
        print("\nqemu-gui-check: failed waiting for %s" % e)
        print("qemu-gui-check: unread console output: %r" %
              con.buf[-2000:].decode(errors="replace"))
    except subprocess.TimeoutExpired:
        print("\nqemu-gui-check: the guest did not power off")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    print("\nqemu-gui-check: %s; %s" % ("PASS" if ok else "FAIL",
          ", ".join("%s at %.1f s" % kv for kv in marks.items())))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
