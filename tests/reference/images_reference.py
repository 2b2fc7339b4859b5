#!/usr/bin/env python3
"""Reference images and goldens for tests/image (libdisclvlm image pipeline).

Writes, deterministically:
  tests/image/data/*.png, *.jpg   small synthetic inputs (every PNG colour
                                   type and bit depth, interlaced, tRNS;
                                   baseline / progressive / gray / CMYK /
                                   EXIF-rotated JPEG and PNG; odd, 1xN, Nx1, 1x1 sizes)
  tests/image/golden/manifest.json  what each test case expects
  tests/image/golden/*.png        the 8-bit images right before rescaling

Inputs named "gen:W:H" are a formula image the C test builds too (large and
1xN cases without committed files); "assets:NAME" are ../shared/assets/images.

The goldens come from the real Hugging Face processors: CLIPImageProcessor /
SiglipImageProcessor with do_rescale=False, do_normalize=False give the 8-bit
image after resize and crop; with the defaults they give pixel_values, which
this script checks equal (exactly) the NumPy formula the C test uses
(float64 rescale, float32 cast, float32 normalize), and whose sum and a few
samples are stored. Pad-square cases apply LLaVA-1.5's expand2square first.

Run in a virtualenv outside the repository:
    python3 -m venv /tmp/ref-img
    /tmp/ref-img/bin/pip install pillow==11.0.0 numpy==2.1.3 transformers==4.46.3
    /tmp/ref-img/bin/python tests/reference/images_reference.py [--assets DIR]
(Pillow 11.0.0's wheel bundles libjpeg-turbo 3.0.4 and libpng 1.6.44.)
"""
import argparse
import hashlib
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import PIL
from PIL import Image, ImageOps
import transformers
from transformers import CLIPImageProcessor, SiglipImageProcessor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "image", "data")
GOLDEN = os.path.join(ROOT, "tests", "image", "golden")

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

CONFIGS = {
    # llava-hf/llava-1.5-7b-hf
    "clip336": {"crop_size": {"height": 336, "width": 336}, "do_center_crop": True,
                "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
                "do_resize": True, "image_mean": CLIP_MEAN,
                "image_processor_type": "CLIPImageProcessor", "image_std": CLIP_STD,
                "resample": 3, "rescale_factor": 0.00392156862745098,
                "size": {"shortest_edge": 336}},
    # llava-hf/llava-interleave-qwen-0.5b-hf
    "siglip384": {"do_normalize": True, "do_rescale": True, "do_resize": True,
                  "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
                  "image_std": [0.5, 0.5, 0.5], "resample": 3,
                  "rescale_factor": 0.00392156862745098,
                  "size": {"height": 384, "width": 384}},
    # Bilinear, and a crop larger than the resized image (zero padding).
    "clip_bilinear_padcrop": {"crop_size": {"height": 32, "width": 40}, "do_center_crop": True,
                              "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
                              "do_resize": True, "image_mean": CLIP_MEAN,
                              "image_processor_type": "CLIPImageProcessor", "image_std": CLIP_STD,
                              "resample": 2, "rescale_factor": 0.00392156862745098,
                              "size": {"shortest_edge": 24}},
}

# Goldens above this many PNG bytes are kept as a SHA-256 only.
MAX_GOLDEN_PNG = 30_000


def processor(cfg):
    kw = {k: v for k, v in cfg.items() if k != "image_processor_type"}
    cls = CLIPImageProcessor if cfg["image_processor_type"] == "CLIPImageProcessor" \
        else SiglipImageProcessor
    return cls(**kw)


# ---- a minimal PNG writer, for colour types / depths / interlacing Pillow
# ---- cannot write

def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _pack_row(vals, depth):
    if depth == 8:
        return bytes(int(v) for v in vals)
    if depth == 16:
        return b"".join(struct.pack(">H", int(v)) for v in vals)
    out, acc, nbits = bytearray(), 0, 0
    for v in vals:
        acc = (acc << depth) | int(v)
        nbits += depth
        if nbits == 8:
            out.append(acc)
            acc, nbits = 0, 0
    if nbits:
        out.append(acc << (8 - nbits))
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2)]


def png_bytes(samples, color_type, depth, palette=None, trns=None, interlace=False):
    """samples: uint array [h, w, channels]."""
    h, w, ch = samples.shape
    raw = bytearray()
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        for row in sub:
            raw.append(0)
            raw += _pack_row(row.reshape(-1), depth)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(
        ">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    if palette is not None:
        out += _chunk(b"PLTE", bytes(int(v) for v in np.asarray(palette).reshape(-1)))
    if trns is not None:
        out += _chunk(b"tRNS", trns)
    out += _chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + _chunk(b"IEND", b"")
    return out


def smooth(h, w, ch, maxv, seed):
    """A gradient with texture, so that resampling has work to do."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(ch):
        base = (np.sin(x / (3.0 + c) + y / 5.0) + 1) / 2 * 0.6 + (x + y) / (w + h + 1) * 0.3
        base += rng.random((h, w)) * 0.1
        planes.append(np.clip(base, 0, 1) * maxv)
    return np.rint(np.stack(planes, axis=-1)).astype(np.int64)


def gen_pattern(w, h):
    """Mirrored in tests/image/test_vision_golden.c (gen_pattern)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.uint64)
    r = (x * x + 3 * y) % 256
    g = (5 * x + y * y) % 256
    b = (x * y + 7 * x + 11 * y) % 256
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def synthetic_inputs():
    """name -> bytes"""
    files = {}
    rng = np.random.default_rng(1234)

    def add_png(name, *a, **k):
        files[name + ".png"] = png_bytes(*a, **k)

    w, h = 37, 23
    for depth in (1, 2, 4, 8):
        add_png("png_gray%d" % depth, smooth(h, w, 1, 2 ** depth - 1, depth), 0, depth)
    g16 = smooth(h, w, 1, 65535, 16)
    g16[::3] = rng.integers(0, 256, g16[::3].shape)  # below 256: survives Pillow's clip
    add_png("png_gray16", g16, 0, 16)
    add_png("png_gray8_trns", smooth(h, w, 1, 255, 9), 0, 8, trns=struct.pack(">H", 7))
    add_png("png_ga8", smooth(h, w, 2, 255, 10), 4, 8)
    add_png("png_ga16", smooth(h, w, 2, 65535, 11), 4, 16)
    add_png("png_rgb8", smooth(h, w, 3, 255, 12), 2, 8)
    add_png("png_rgb16", smooth(h, w, 3, 65535, 13), 2, 16)
    add_png("png_rgb8_trns", smooth(h, w, 3, 255, 14), 2, 8, trns=struct.pack(">HHH", 1, 2, 3))
    add_png("png_rgba8", smooth(h, w, 4, 255, 15), 6, 8)
    add_png("png_rgba16", smooth(h, w, 4, 65535, 16), 6, 16)
    for depth in (1, 2, 4, 8):
        n = 2 ** depth if depth < 8 else 200  # 8-bit: indices past the palette read as black
        pal = rng.integers(0, 256, (n, 3))
        idx = smooth(h, w, 1, 2 ** depth - 1, 20 + depth)
        add_png("png_pal%d" % depth, idx, 3, depth, palette=pal,
                trns=bytes(range(0, min(n, 16))))
    add_png("png_rgb8_interlaced", smooth(45, 61, 3, 255, 30), 2, 8, interlace=True)
    add_png("png_pal4_interlaced", smooth(19, 13, 1, 15, 31), 3, 4,
            palette=rng.integers(0, 256, (16, 3)), interlace=True)
    add_png("png_rgba16_interlaced", smooth(9, 10, 4, 65535, 32), 6, 16, interlace=True)
    add_png("png_1x1", smooth(1, 1, 3, 255, 40), 2, 8)
    add_png("png_2x3", smooth(3, 2, 4, 255, 41), 6, 8)
    add_png("png_1x17", smooth(17, 1, 1, 255, 42), 0, 8)
    add_png("png_17x1", smooth(1, 17, 1, 255, 43), 3, 8, palette=rng.integers(0, 256, (256, 3)))

    def add_jpeg(name, img, **kw):
        buf = io.BytesIO()
        img.save(buf, "JPEG", **kw)
        files[name + ".jpg"] = buf.getvalue()

    rgb = Image.fromarray(smooth(45, 61, 3, 255, 50).astype(np.uint8), "RGB")
    add_jpeg("jpeg_420", rgb, quality=90, subsampling=2)
    add_jpeg("jpeg_422", rgb, quality=85, subsampling=1)
    add_jpeg("jpeg_444", rgb, quality=95, subsampling=0)
    add_jpeg("jpeg_progressive", rgb, quality=80, progressive=True)
    odd = Image.fromarray(smooth(23, 37, 3, 255, 51).astype(np.uint8), "RGB")
    add_jpeg("jpeg_odd_420", odd, quality=75)
    add_jpeg("jpeg_gray", Image.fromarray(smooth(23, 37, 1, 255, 52)[..., 0].astype(np.uint8),
                                          "L"), quality=90)
    add_jpeg("jpeg_cmyk", Image.fromarray(smooth(23, 37, 4, 255, 53).astype(np.uint8), "CMYK"),
             quality=90)
    add_jpeg("jpeg_1x1", Image.fromarray(smooth(1, 1, 3, 255, 54).astype(np.uint8), "RGB"))
    exif = Image.Exif()
    exif[0x0112] = 6
    add_jpeg("jpeg_exif6", odd, quality=90, exif=exif.tobytes())
    exif[0x0112] = 8
    buf = io.BytesIO()
    odd.save(buf, "PNG", exif=exif.tobytes())  # an eXIf chunk before IDAT
    files["png_exif8.png"] = buf.getvalue()
    return files


def expand2square(img, mean):
    bg = tuple(int(x * 255) for x in mean)
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    out = Image.new(img.mode, (side, side), bg)
    out.paste(img, (0, (side - h) // 2) if w > h else ((side - w) // 2, 0))
    return out


def hf_formula(u8, cfg):
    """The C test's reference: HF rescale (float64 -> float32) and normalize (float32)."""
    x = (u8.astype(np.float64) * cfg["rescale_factor"]).astype(np.float32)
    x = (x - np.array(cfg["image_mean"], np.float32)) / np.array(cfg["image_std"], np.float32)
    return x.transpose(2, 0, 1)


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", default=os.path.join(ROOT, "..", "shared", "assets", "images"))
    args = ap.parse_args(argv)
    os.makedirs(DATA, exist_ok=True)
    os.makedirs(GOLDEN, exist_ok=True)
    for f in os.listdir(GOLDEN):
        if f.endswith(".png"):
            os.remove(os.path.join(GOLDEN, f))

    inputs = {}  # input id -> PIL image as opened
    for name, data in sorted(synthetic_inputs().items()):
        with open(os.path.join(DATA, name), "wb") as f:
            f.write(data)
        inputs["data/" + name] = Image.open(io.BytesIO(data))
    for w, h in [(2500, 1700), (1, 40), (40, 1), (3, 700)]:
        inputs["gen:%d:%d" % (w, h)] = Image.fromarray(gen_pattern(w, h), "RGB")
    if os.path.isdir(args.assets):
        for name in sorted(os.listdir(args.assets)):
            inputs["assets:" + name] = Image.open(os.path.join(args.assets, name))

    manifest = {"pillow": PIL.__version__, "numpy": np.__version__,
                "transformers": transformers.__version__,
                "configs": {k: json.dumps(v, sort_keys=True) for k, v in CONFIGS.items()},
                "decode": [], "cases": []}
    for key, im in inputs.items():
        im.load()
        rgb = im.convert("RGB")
        arr = np.asarray(rgb)
        manifest["decode"].append({"input": key, "mode": im.mode, "width": rgb.size[0],
                                   "height": rgb.size[1], "sha256": sha(arr),
                                   "exif_rotate": False})
        if "exif" in key:
            rot = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
            manifest["decode"].append({"input": key, "mode": im.mode, "width": rot.shape[1],
                                       "height": rot.shape[0], "sha256": sha(rot),
                                       "exif_rotate": True})
        for cname, cfg in CONFIGS.items():
            if cname == "clip_bilinear_padcrop" and key.startswith("gen:"):
                continue
            for pad in (False, True):
                src = expand2square(rgb, cfg["image_mean"]) if pad else rgb
                proc = processor(cfg)
                # input_data_format: HF guesses channels-first for 1xN and
                # 3xN images; RGB input is channels-last.
                u8 = proc(src, do_rescale=False, do_normalize=False,
                          input_data_format="channels_last", return_tensors="np")["pixel_values"][0]
                assert np.array_equal(u8, np.rint(u8)) and u8.min() >= 0 and u8.max() <= 255
                u8 = u8.astype(np.uint8).transpose(1, 2, 0)
                pv = proc(src, input_data_format="channels_last", return_tensors="np")["pixel_values"][0]
                assert pv.dtype == np.float32
                ref = hf_formula(u8, cfg)
                assert np.array_equal(pv, ref), (key, cname, pad, np.abs(pv - ref).max())
                case = {"input": key, "config": cname, "pad": pad, "height": u8.shape[0],
                        "width": u8.shape[1], "sha256": sha(u8), "golden": None,
                        "hf_sum": float(pv.astype(np.float64).sum()),
                        "hf_sha256": sha(pv.astype("<f4")),
                        "hf_samples": []}
                for i in range(8):
                    c, y, x = i % 3, (i * 37) % u8.shape[0], (i * 53) % u8.shape[1]
                    case["hf_samples"].append([c, y, x, float(pv[c, y, x])])
                buf = io.BytesIO()
                Image.fromarray(u8, "RGB").save(buf, "PNG", optimize=True)
                if len(buf.getvalue()) <= MAX_GOLDEN_PNG and not key.startswith("assets:") or \
                        (key.startswith("assets:") and not pad and cname == "clip336"):
                    gname = "%s_%s%s.png" % (key.replace("data/", "").replace(":", "_")
                                             .replace(".", "_"), cname, "_pad" if pad else "")
                    with open(os.path.join(GOLDEN, gname), "wb") as f:
                        f.write(buf.getvalue())
                    case["golden"] = "golden/" + gname
                manifest["cases"].append(case)
    with open(os.path.join(GOLDEN, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(GOLDEN, g)) for g in os.listdir(GOLDEN))
    print("%d decode checks, %d cases, goldens %.1f KB" % (
        len(manifest["decode"]), len(manifest["cases"]), total / 1024))


if __name__ == "__main__":
    main(sys.argv[1:])
