#!/usr/bin/env python3
"""The README's main job (models/shapesworld/demo.py) on a small test split:
it prints the examples and the table with a progress line per model, and
keeps its results in the output folder: results.json (the table, every
model and hard-negative type, values in [0, 100]) and hard_negatives.png (a
valid RGB PNG); the embeddings are cached there, and a rerun encodes
nothing (no cache file is rewritten) and gives the same table.

usage: test_demo.py DISCLVLM_EXE SOURCE_ROOT
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

exe, root = sys.argv[1:3]
demo = os.path.join(root, "models", "shapesworld", "demo.py")
if not os.path.exists(os.path.join(root, "models", "shapesworld", "lvlm", "model.safetensors")):
    print("the committed ShapesWorld models are absent (a partial checkout)")
    sys.exit(77)
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def png_info(path):
    """(width, height, colour type) of a PNG whose chunks all have valid CRCs."""
    with open(path, "rb") as f:
        blob = f.read()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n", "signature"
    pos, info = 8, None
    while pos < len(blob):
        (n,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, data = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", blob[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + data), kind
        if kind == b"IHDR":
            w, h, _, ct = struct.unpack(">IIBB", data[:10])
            info = (w, h, ct)
        pos += 12 + n
    return info


tmp = tempfile.mkdtemp(prefix="dlv-demo-")
try:
    out = os.path.join(tmp, "demo")
    cmd = [sys.executable, demo, exe, "--out", out, "--test", "12", "--threads", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    check(r.returncode == 0, "demo runs: exit %d %s" % (r.returncode, r.stderr[-500:]))
    check(all("[%d/6]" % k in r.stdout for k in range(1, 7)),
          "a progress line for each of the 6 models")
    res = os.path.join(out, "results.json")
    if check(os.path.exists(res), "results.json is written"):
        with open(res) as f:
            js = json.load(f)
        rows = js["rows"]
        types = ["attribute_swap", "object_swap", "relation_flip", "attribute_replace",
                 "object_replace", "count_change"]
        check(len(rows) == 6 and all(0 <= row[k] <= 100 for row in rows
                                     for k in types + ["i2t_R@1", "t2i_R@1"]),
              "results.json: 6 models, every metric in [0, 100]")
        check(js["test_images"] == 12 and js["chance"] == 50.0, "results.json: its settings")
    png = os.path.join(out, "hard_negatives.png")
    if check(os.path.exists(png), "hard_negatives.png is written"):
        w, h, ct = png_info(png)
        check(w > 400 and h > 200 and ct == 2, "the chart is a valid RGB PNG (%dx%d)" % (w, h))
    cache = os.path.join(out, "cache")
    before = {f: os.stat(os.path.join(cache, f)).st_mtime_ns for f in os.listdir(cache)} \
        if os.path.isdir(cache) else {}
    check(len(before) > 0, "embeddings are cached in OUT/cache (%d files)" % len(before))
    r2 = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    after = {f: os.stat(os.path.join(cache, f)).st_mtime_ns for f in os.listdir(cache)}
    check(r2.returncode == 0 and after == before,
          "a rerun reuses the cache: no embedding file written again")
    table = [ln for ln in r.stdout.split("\n") if ln.startswith(("CLIP", "LVLM"))]
    table2 = [ln for ln in r2.stdout.split("\n") if ln.startswith(("CLIP", "LVLM"))]
    check(len(table) == 6 and table == table2, "the rerun prints the same table")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
