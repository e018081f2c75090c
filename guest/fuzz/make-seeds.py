#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses (guest/fuzz/build.sh), made here, nothing downloaded.

make-seeds.py png DIR      a few small valid PNGs: each colour type, 1..16-bit depths, a
                           palette with tRNS, an Adam7-interlaced image, text and gamma chunks
make-seeds.py planted DIR  inputs for the planted target that do NOT crash it
"""
import os
import struct
import sys
import zlib


def chunk(kind, data):
    c = struct.pack(">I", len(data)) + kind + data
    return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, depth, ctype, rows, extra=b"", interlace=0, plte=None):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, interlace)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if plte is not None:
        out += chunk(b"PLTE", plte)
    out += extra
    out += chunk(b"IDAT", zlib.compress(rows, 9))
    return out + chunk(b"IEND", b"")


def raw_rows(width, height, bpp_bits, pattern, filt=0):
    """Scanlines, each led by its filter byte; pixel bytes from pattern(x, y)."""
    rowbytes = (width * bpp_bits + 7) // 8
    data = bytearray()
    for y in range(height):
        data.append(filt)
        data += bytes(pattern(i, y) & 0xFF for i in range(rowbytes))
    return bytes(data)


def adam7(width, height, bpp_bits, pattern):
    """Raw data of an Adam7-interlaced image: the seven passes' scanlines in order."""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
              (1, 0, 2, 2), (0, 1, 1, 2)]
    data = bytearray()
    for x0, y0, dx, dy in passes:
        pw = (width - x0 + dx - 1) // dx if width > x0 else 0
        ph = (height - y0 + dy - 1) // dy if height > y0 else 0
        if pw == 0 or ph == 0:
            continue
        data += raw_rows(pw, ph, bpp_bits, pattern)
    return bytes(data)


def png_seeds():
    grad = lambda x, y: x * 17 + y * 31
    text = chunk(b"tEXt", b"Comment\x00ignition seed") + chunk(b"gAMA", struct.pack(">I", 45455))
    plte = bytes(v for i in range(4) for v in (i * 60, 255 - i * 60, 128))
    yield "gray8.png", png(8, 8, 8, 0, raw_rows(8, 8, 8, grad))
    yield "gray1.png", png(16, 4, 1, 0, raw_rows(16, 4, 1, grad))
    yield "gray16.png", png(4, 4, 16, 0, raw_rows(4, 4, 16, grad, filt=1))
    yield "rgb8.png", png(6, 5, 8, 2, raw_rows(6, 5, 24, grad, filt=2), extra=text)
    yield "rgba8.png", png(5, 5, 8, 6, raw_rows(5, 5, 32, grad, filt=4))
    yield "graya8.png", png(4, 3, 8, 4, raw_rows(4, 3, 16, grad, filt=3))
    yield "palette2.png", png(8, 4, 2, 3, raw_rows(8, 4, 2, grad), plte=plte,
                              extra=chunk(b"tRNS", b"\x00\x80"))
    yield "adam7.png", png(9, 9, 8, 2, adam7(9, 9, 24, grad), interlace=1)


def planted_seeds():
    yield "hello", b"hello"
    yield "fuz-short", b"FUZ\x04\x01abcd"
    yield "fuz-kind", b"FUZ\x08\x02!bcdefgh"


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("png", "planted"):
        sys.exit(__doc__)
    os.makedirs(sys.argv[2], exist_ok=True)
    for name, data in (png_seeds() if sys.argv[1] == "png" else planted_seeds()):
        with open(os.path.join(sys.argv[2], name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
