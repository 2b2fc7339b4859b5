#!/usr/bin/env python3
"""`disclvlm preprocess`: the .npy it writes (format 1.0, '<f4', C order,
shape [3, H, W], header padded to 64 bytes) holds exactly what
dlv_preprocess_image gives (dumped by test_vision_api --dump); usage and
failure exit codes; failures leave no file behind. Python stdlib only.

usage: test_cli_preprocess.py DISCLVLM_EXE TEST_VISION_API CLIP_DIR SIGLIP_DIR
"""
import ast
import os
import shutil
import struct
import subprocess
import sys
import tempfile

exe, api_exe, clip_dir, siglip_dir = sys.argv[1:5]
data = os.path.join(os.environ.get("DLV_SOURCE_ROOT", "."), "tests", "image", "data")
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(*args):
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def read_npy(path):
    with open(path, "rb") as f:
        blob = f.read()
    assert blob[:6] == b"\x93NUMPY", "magic"
    assert blob[6:8] == b"\x01\x00", "version 1.0"
    (hlen,) = struct.unpack("<H", blob[8:10])
    assert (10 + hlen) % 64 == 0, "header alignment"
    header = blob[10:10 + hlen].decode("latin1")
    assert header.endswith("\n")
    d = ast.literal_eval(header.strip())
    assert d["descr"] == "<f4" and d["fortran_order"] is False, d
    shape = d["shape"]
    n = 1
    for s in shape:
        n *= s
    body = blob[10 + hlen:]
    assert len(body) == 4 * n, (len(body), n)
    return shape, body


tmp = tempfile.mkdtemp(prefix="dlv-cli-pre-")
try:
    for model, name in [(clip_dir, "clip"), (siglip_dir, "siglip")]:
        for image in ["png_rgb8.png", "jpeg_progressive.jpg", "png_gray16.png"]:
            for pad in ([], ["--pad-square"]):
                out = os.path.join(tmp, "x.npy")
                raw = os.path.join(tmp, "x.raw")
                img = os.path.join(data, image)
                rc, o, e = run("preprocess", "--model", model, *pad, img, "--out", out)
                what = f"{name} {image} {' '.join(pad)}"
                check(rc == 0 and o == "" and e == "", f"preprocess {what}: exit 0, silent")
                if rc != 0:
                    print(e)
                    continue
                shape, body = read_npy(out)
                check(shape == (3, 28, 28), f"{what}: shape {shape}")
                p = subprocess.run([api_exe, "--dump", model, img, raw, *pad], timeout=60)
                with open(raw, "rb") as f:
                    want = f.read()
                vals = struct.unpack("<%df" % (len(body) // 4), body)
                check(p.returncode == 0 and body == want and all(-3 < v < 3 for v in vals),
                      f"{what}: .npy data equals dlv_preprocess_image's floats")
                os.remove(out)
                os.remove(raw)

    rc, o, e = run("preprocess", "--help")
    check(rc == 0 and "--pad-square" in o and ".npy" in o, "--help")
    img = os.path.join(data, "png_rgb8.png")
    out = os.path.join(tmp, "y.npy")
    rc, o, e = run("preprocess", "--model", clip_dir, img)
    check(rc == 2 and "--out PIXELS.npy is required" in e and e.count("\n") == 1,
          "no --out: exit 2, one line naming it")
    rc, o, e = run("preprocess", "--model", clip_dir, img, "--out", out, "--bogus")
    check(rc == 2 and "--bogus" in e, "unknown option: exit 2 naming it")
    rc, o, e = run("preprocess", "--model", clip_dir, img, "--out", out, "--max-pixels", "x")
    check(rc == 2 and "--max-pixels" in e, "bad --max-pixels: exit 2")
    missing = os.path.join(tmp, "missing.png")
    rc, o, e = run("preprocess", "--model", clip_dir, missing, "--out", out)
    check(rc == 1 and missing in e and len(e.strip().splitlines()) == 1, "missing image: exit 1, one line naming it")
    bad = os.path.join(tmp, "bad.jpg")
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 truncated")
    rc, o, e = run("preprocess", "--model", clip_dir, bad, "--out", out)
    check(rc == 1 and bad in e and "JPEG" in e, "broken JPEG: exit 1 naming the file")
    rc, o, e = run("preprocess", "--model", clip_dir, "--max-pixels", "100", img, "--out", out)
    check(rc == 1 and "limit of 100" in e, "--max-pixels: exit 1 over the limit")
    check(not os.path.exists(out), "failures write no output")
    # The limit can be raised as well as lowered (docs/cli.md).
    rc, o, e = run("preprocess", "--model", clip_dir, "--max-pixels", str(10 ** 12), img,
                   "--out", out)
    check(rc == 0 and os.path.exists(out), "--max-pixels above the default: exit 0")
    if os.path.exists(out):
        os.remove(out)
    # A 41-byte PNG declaring a 2 GiB tEXt chunk (tests/image/data/limits).
    bomb = os.path.join(data, "limits", "png_bomb_tEXt.png")
    rc, o, e = run("preprocess", "--model", clip_dir, bomb, "--out", out)
    check(rc == 1 and bomb in e and "tEXt chunk" in e and len(e.strip().splitlines()) == 1,
          "PNG chunk past the end: exit 1, one line naming the file and the chunk")
    nopre = os.path.join(tmp, "nopre")
    shutil.copytree(clip_dir, nopre)
    os.remove(os.path.join(nopre, "preprocessor_config.json"))
    rc, o, e = run("preprocess", "--model", nopre, img, "--out", out)
    check(rc == 1 and "preprocessor_config.json" in e, "model without preprocessor_config.json: exit 1")
    rc, o, e = run("preprocess", "--model", clip_dir, img, "--out",
                   os.path.join(tmp, "no", "such", "dir.npy"))
    check(rc == 1 and "dir.npy" in e, "unwritable output: exit 1 naming it")
    check(sorted(os.listdir(tmp)) == ["bad.jpg", "nopre"], "no temporary files left behind")
finally:
    shutil.rmtree(tmp)

if failures:
    print("%d failure(s)" % len(failures))
    sys.exit(1)
