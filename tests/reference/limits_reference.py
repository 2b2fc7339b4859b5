#!/usr/bin/env python3
"""Crafted PNG and JPEG files for the decoder's limits, and Pillow's verdict on each.

Writes, deterministically:
  tests/image/data/limits/*.png, *.jpg   small crafted files (PNG chunks whose
                                          declared length runs past the end of
                                          the file, JPEGs with markers and junk
                                          written into or around the scan data,
                                          truncations, restart-marker damage)
  tests/image/data/limits/manifest.tsv   one line per file: name, what
                                          Pillow does, what libdisclvlm must do,
                                          and Pillow's message or, where the
                                          two differ, why

Pillow's verdict is Image.open(f) + load() + convert("RGB") with
ImageFile.LOAD_TRUNCATED_IMAGES off: "accept", or "refuse" with the exception.
tests/image/test_image_limits.c decodes every file and checks the "ours"
column. The two columns differ only where listed in DIVERGENCES below
(docs/images.md, "Hostile input").

JPEG inputs are tests/image/data/jpeg_420.jpg (baseline, one scan) and
jpeg_progressive.jpg, plus jpeg_420 re-encoded by Pillow with a restart
marker every MCU row.

Run in a virtualenv outside the repository:
    python3 -m venv /tmp/ref-limits
    /tmp/ref-limits/bin/pip install pillow==11.0.0
    /tmp/ref-limits/bin/python tests/reference/limits_reference.py
(Pillow 11.0.0's wheel bundles libjpeg-turbo 3.0.4; its PNG reader is
Pillow's own Python code on zlib, not libpng.)
"""
import io
import os
import struct
import sys
import zlib

import PIL
from PIL import Image, ImageFile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "image", "data")
OUT = os.path.join(DATA, "limits")

# Files where libdisclvlm's verdict is not Pillow's, and why.
DIVERGENCES = {
    "png_idat_over": ("refuse", "libpng reads a chunk's CRC after its declared data; Pillow "
                      "stops reading IDAT once the rows are complete"),
    "png_idat_over_no_iend": ("refuse", "as png_idat_over"),
    "png_ztxt_over_1mib": ("accept", "text chunks are skipped unread; Pillow inflates them "
                           "and refuses more than MAX_TEXT_CHUNK (1 MiB)"),
    "png_iccp_over_1mib": ("accept", "iCCP is skipped unread; Pillow inflates it and refuses "
                           "more than MAX_TEXT_CHUNK (1 MiB)"),
}

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def ihdr(w, h):
    return chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))  # 8-bit gray


def idat(w, h):
    raw = b"".join(b"\x00" + bytes((x * 7 + y * 13) & 255 for x in range(w)) for y in range(h))
    return chunk(b"IDAT", zlib.compress(raw, 9))


IEND = chunk(b"IEND", b"")


def png_cases():
    c = {}
    # The 41-byte bombs: signature, IHDR, then a chunk header declaring
    # 2^31 - 1 bytes (libpng's largest) with nothing after it.
    for kind in (b"tEXt", b"zTXt", b"iTXt", b"sPLT", b"iCCP", b"eXIf", b"prVt", b"IDAT"):
        c["png_bomb_" + kind.decode()] = PNG_SIG + ihdr(1, 1) + struct.pack(">I", 0x7FFFFFFF) + kind
    c["png_bomb_tEXt_2gib"] = PNG_SIG + ihdr(1, 1) + struct.pack(">I", 0x80000000) + b"tEXt"
    head = PNG_SIG + ihdr(4, 3)
    body = idat(4, 3) + IEND
    text = chunk(b"tEXt", b"Comment\0hello")
    # A text chunk whose declared length is one more than everything after it.
    c["png_text_over_by_one"] = head + struct.pack(">I", 13 + 4 + len(body) + 1) + text[4:] + body
    # IDAT declaring 100 bytes more than it has, its zlib data complete.
    d = idat(4, 3)
    c["png_idat_over"] = head + struct.pack(">I", len(d) - 12 + 100) + d[4:] + IEND
    c["png_idat_over_no_iend"] = head + struct.pack(">I", len(d) - 12 + 100) + d[4:]
    # Chunks after the image data that run past the end (Pillow reads them).
    c["png_after_idat_text_over"] = head + d + struct.pack(">I", 1000) + b"tEXta\0b"
    c["png_after_idat_private_over"] = head + d + struct.pack(">I", 1000) + b"prVta\0b"
    # After IEND nothing is read, by Pillow or here.
    c["png_after_iend_over"] = head + body + struct.pack(">I", 1000) + b"tEXta\0b"
    c["png_no_iend"] = head + d
    c["png_iend_cut"] = (head + body)[:-6]
    # Legitimate ancillary chunks.
    c["png_text"] = head + text + body
    c["png_ztxt_1mib"] = head + chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"y" * (1 << 20), 9)) + body
    c["png_ztxt_over_1mib"] = head + chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"y" * ((1 << 20) + 1), 9)) + body
    c["png_iccp_over_1mib"] = head + chunk(b"iCCP", b"icc\0\0" + zlib.compress(b"\0" * (2 << 20), 9)) + body
    c["png_ok"] = head + body
    # An animated PNG cut inside its second frame: Pillow stops reading at
    # that frame's fcTL when it loads the first, and accepts the file.
    frames = [Image.new("RGB", (8, 6), (60 * i, 20, 200 - 50 * i)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
    apng = buf.getvalue()
    fdat = apng.index(b"fdAT") - 4
    c["png_apng_cut_in_frame_2"] = apng[:fdat + 20]
    # IEND with a declared length past the end: Pillow stops at its name.
    c["png_iend_over"] = head + d + struct.pack(">I", 1000) + b"IEND"
    return {k + ".png": v for k, v in c.items()}


def jpeg_segments(b):
    """(marker, start, end) of each segment after SOI; the entropy-coded data
    after an SOS is ("scan", start, end)."""
    out, i = [], 2
    while i < len(b):
        assert b[i] == 0xFF, i
        m = b[i + 1]
        if m == 0xD9:
            out.append((m, i, i + 2))
            break
        n = struct.unpack(">H", b[i + 2:i + 4])[0]
        out.append((m, i, i + 2 + n))
        i += 2 + n
        if m == 0xDA:
            j = i
            while not (b[j] == 0xFF and b[j + 1] != 0 and not 0xD0 <= b[j + 1] <= 0xD7):
                j += 1
            out.append(("scan", i, j))
            i = j
    return out


def put(b, at, new):
    return b[:at] + new + b[at + len(new):]


def insert(b, at, new):
    return b[:at] + new + b[at:]


def jpeg_cases():
    base = open(os.path.join(DATA, "jpeg_420.jpg"), "rb").read()
    prog = open(os.path.join(DATA, "jpeg_progressive.jpg"), "rb").read()
    with Image.open(os.path.join(DATA, "jpeg_420.jpg")) as im:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90, restart_marker_rows=1)
    rst = buf.getvalue()
    c = {}
    segs = jpeg_segments(base)
    scan_start, scan_end = [(s, e) for m, s, e in segs if m == "scan"][0]
    sos = [s for m, s, e in segs if m == 0xDA][0]
    mid = (scan_start + scan_end) // 2
    # A marker written over two bytes in the middle of the baseline scan.
    for name, marker in [("unknown_ff99", b"\xff\x99"), ("rst0", b"\xff\xd0"), ("eoi", b"\xff\xd9"),
                         ("dht", b"\xff\xc4"), ("dqt", b"\xff\xdb"), ("sof0", b"\xff\xc0"),
                         ("sos", b"\xff\xda"), ("app1", b"\xff\xe1"), ("tem", b"\xff\x01")]:
        c["jpeg_scan_" + name] = put(base, mid, marker)
    c["jpeg_scan_garbage"] = put(base, mid, b"\x55" * 32)
    # Between the end of the scan data and EOI.
    c["jpeg_junk_before_eoi"] = insert(base, scan_end, b"\x12" * 16)
    c["jpeg_unknown_ff99_before_eoi"] = insert(base, scan_end, b"\xff\x99")
    c["jpeg_unknown_ff02_before_eoi"] = insert(base, scan_end, b"\xff\x02")
    c["jpeg_app1_before_eoi"] = insert(base, scan_end, b"\xff\xe1\x00\x04ab")
    c["jpeg_second_sos"] = insert(base, scan_end, base[sos:scan_start])
    c["jpeg_junk_after_eoi"] = base + b"\x00junk\xff\x99\xff"
    # Truncations.
    c["jpeg_no_eoi"] = base[:-2]
    c["jpeg_cut_3"] = base[:-3]
    c["jpeg_cut_mid_scan"] = base[:mid]
    # In the header, before the first SOS (Pillow's own parser reads these).
    c["jpeg_header_junk"] = insert(base, sos, b"\x12\x34")
    c["jpeg_header_fill_ff"] = insert(base, sos, b"\xff\xff\xff")
    c["jpeg_header_tem"] = insert(base, sos, b"\xff\x01")
    c["jpeg_header_unknown_ff99"] = insert(base, sos, b"\xff\x99")
    # Restart markers.
    rs, re_ = [(s, e) for m, s, e in jpeg_segments(rst) if m == "scan"][0]
    rpos = [j for j in range(rs, re_ - 1) if rst[j] == 0xFF and 0xD0 <= rst[j + 1] <= 0xD7]
    c["jpeg_restart"] = rst
    c["jpeg_restart_wrong_number"] = put(rst, rpos[1], bytes([0xFF, 0xD0 + (rst[rpos[1] + 1] - 0xD0 + 3) % 8]))
    c["jpeg_restart_missing"] = put(rst, rpos[1], b"\x55\x55")
    # Progressive: every scan is read before the first row.
    pscans = [(s, e) for m, s, e in jpeg_segments(prog) if m == "scan"]
    pmid = (pscans[0][0] + pscans[0][1]) // 2
    for name, marker in [("unknown_ff99", b"\xff\x99"), ("rst0", b"\xff\xd0"), ("eoi", b"\xff\xd9"),
                         ("tem", b"\xff\x01")]:
        c["jpeg_prog_scan_" + name] = put(prog, pmid, marker)
    c["jpeg_prog_scan_garbage"] = put(prog, pmid, b"\x55" * 16)
    last_start, last_end = pscans[-1]
    c["jpeg_prog_junk_before_eoi"] = insert(prog, last_end, b"\x12" * 16)
    c["jpeg_prog_unknown_ff99_before_eoi"] = insert(prog, last_end, b"\xff\x99")
    c["jpeg_prog_no_eoi"] = prog[:-2]
    c["jpeg_prog_cut_last_scan"] = prog[:(last_start + last_end) // 2]
    c["jpeg_prog_junk_after_eoi"] = prog + b"\x00junk"
    return {k + ".jpg": v for k, v in c.items()}


def pillow_verdict(data):
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            im.convert("RGB")
        return "accept", ""
    except Exception as e:  # what Pillow raises is the point
        msg = str(e)
        if "cannot identify image file" in msg:
            msg = "cannot identify image file"  # without the object's address
        return "refuse", f"{type(e).__name__}: {msg}"


def main():
    assert PIL.__version__ == "11.0.0", PIL.__version__
    os.makedirs(OUT, exist_ok=True)
    cases = {**png_cases(), **jpeg_cases()}
    lines = ["# name\tpillow\tours\tPillow's message; where ours differs, why",
             f"# Pillow {PIL.__version__}, written by tests/reference/limits_reference.py"]
    for name, data in cases.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        pillow, msg = pillow_verdict(data)
        ours, why = pillow, msg
        stem = name.rsplit(".", 1)[0]
        if stem in DIVERGENCES:
            ours, reason = DIVERGENCES[stem]
            assert ours != pillow, (name, pillow)
            why = f"{msg}; differs: {reason}" if msg else f"differs: {reason}"
        lines.append(f"{name}\t{pillow}\t{ours}\t{why}")
        print(f"{name:40s} {len(data):6d} pillow {pillow:6s} ours {ours:6s} {msg}")
    with open(os.path.join(OUT, "manifest.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
