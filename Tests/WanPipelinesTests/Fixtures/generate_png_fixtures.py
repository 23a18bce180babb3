#!/usr/bin/env python3
"""Independent PNG writer (struct + zlib) for OutputTests: prints the hex of the fixtures embedded there.

Run: python3 generate_png_fixtures.py  (stdlib only; the expected bytes assume zlib level 0 = stored blocks,
which do not depend on the zlib version, except `reader_*`, which only need to decode)."""
import struct
import zlib


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    if pb <= pc:
        return b
    return c


def filt(t, cur, prev, bpp):
    out = []
    for i, x in enumerate(cur):
        a = cur[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][t]
        out.append((x - pred) & 0xFF)
    return out


def cost(row):
    return sum(v if v < 128 else 256 - v for v in row)


def png(width, height, channels, pixels, filters, level, idat_split=None, extra=b""):
    """filters: 'none', 'adaptive', or a list of filter types per row."""
    color = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    stride = width * channels
    raw = bytearray()
    prev = [0] * stride
    for y in range(height):
        cur = list(pixels[y * stride:(y + 1) * stride])
        if filters == "none":
            t = 0
        elif filters == "adaptive":
            t = min(range(5), key=lambda k: (cost(filt(k, cur, prev, channels)), k))
        else:
            t = filters[y]
        raw.append(t)
        raw += bytes(filt(t, cur, prev, channels))
        prev = cur
    z = zlib.compress(bytes(raw), level)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0))
    out += extra
    if idat_split:
        out += chunk(b"IDAT", z[:idat_split]) + chunk(b"IDAT", z[idat_split:])
    else:
        out += chunk(b"IDAT", z)
    return out + chunk(b"IEND", b"")


def formula(width, height, channels):
    return bytes((x * 37 + y * 91 + c * 53 + x * y * 13) % 256
                 for y in range(height) for x in range(width) for c in range(channels))


def smooth(width, height, channels):
    """A smooth-ish image on which the adaptive heuristic picks filters 1, 3, 1, 1, 4, 2 (7x6 RGB)."""
    return bytes((x + 2 * y + ((x * y * 3) % 7) * ((x + y) % 2)) % 256
                 for y in range(height) for x in range(width) for c in range(channels))


tiny = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 128, 64, 32])
print("tiny_none_level0 =", png(3, 2, 3, tiny, "none", 0).hex())
print("smooth_adaptive_level0 =", png(7, 6, 3, smooth(7, 6, 3), "adaptive", 0).hex())
print("reader_rgba_filters =", png(5, 5, 4, formula(5, 5, 4), [0, 1, 2, 3, 4], 9, idat_split=7,
                                   extra=chunk(b"tEXt", b"Comment\x00fixture")).hex())
print("reader_gray =", png(4, 3, 1, formula(4, 3, 1), [4, 3, 1], 9).hex())
print("reader_gray_alpha =", png(3, 3, 2, formula(3, 3, 2), [2, 4, 3], 9).hex())
