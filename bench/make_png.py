#!/usr/bin/env python3
"""Writes a WIDTHxHEIGHT RGB gradient PNG with the standard library only (no Pillow), for
benchmarks that need images of an exact size: 448x448 gives 256 image tokens and 1120x896
gives 1280 with Ops-MM's resize.  usage: make_png.py WIDTH HEIGHT OUT.png"""
import struct
import sys
import zlib


def chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def main():
    w, h, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            rows += bytes(((x * 255) // max(1, w - 1), (y * 255) // max(1, h - 1), ((x // 16 + y // 16) % 2) * 200))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(bytes(rows), 6)) + chunk(b"IEND", b"")
    with open(out, "wb") as f:
        f.write(png)


if __name__ == "__main__":
    main()
