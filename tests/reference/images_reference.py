#!/usr/bin/env python3
"""Reference images and goldens for tests/image (libdisclvlm image pipeline).

Writes, deterministically:
  tests/image/data/*.png, *.jpg   small synthetic inputs (every PNG colour
                                   type and bit depth, interlaced, tRNS;
                                   baseline / progressive / gray / CMYK /
                                   EXIF-rotated JPEG and PNG; odd, 1xN, Nx1, 1x1 sizes)
  tests/image/golden/manifest.json  what each test case expects
  tests/image/golden/*.png        the 8-bit images right before rescaling
                                   (anyres: the base and tiles stacked vertically)

Inputs named "gen:W:H" are a formula image the C test builds too (large and
1xN cases without committed files); "assets:NAME" are ../shared/assets/images.

The goldens come from the real Hugging Face processors: CLIPImageProcessor /
SiglipImageProcessor with do_rescale=False, do_normalize=False give the 8-bit
image after resize and crop; with the defaults they give pixel_values, which
this script checks equal (exactly) the NumPy formula the C test uses
(float64 rescale, float32 cast, float32 normalize), and whose sum and a few
samples are stored. Pad-square cases apply LLaVA-1.5's expand2square first.

LLaVA-NeXT ("anyres_cases", "anyres_layouts"): LlavaNextImageProcessor on
the same kinds of inputs plus a few more formula images of varied aspect
ratios; per case the chosen resolution, the tile count, the 8-bit base and
tiles (do_rescale=False, do_normalize=False) as a SHA-256 and, where small,
one PNG with the images stacked top to bottom, and pixel_values' digest, sum
and samples. "anyres_layouts" lists select_best_resolution and
_get_patch_output_size / _pad_for_patching sizes for many image sizes.

Run in a virtualenv outside the repository:
    python3 -m venv /tmp/ref-img
    /tmp/ref-img/bin/pip install pillow==11.0.0 numpy==2.1.3 transformers==4.46.3
    /tmp/ref-img/bin/python tests/reference/images_reference.py [--assets DIR]
(Pillow 11.0.0's wheel bundles libjpeg-turbo 3.0.4 and libpng 1.6.44.)
Run without the assets folder, it drops the assets' cases from the manifest.
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
from transformers import CLIPImageProcessor, LlavaNextImageProcessor, SiglipImageProcessor
from transformers.image_processing_utils import select_best_resolution

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

# LlavaNextImageProcessor configs (tests/image/test_vision_golden.c, anyres).
ANYRES_CONFIGS = {
    # llava-hf/llava-v1.6-mistral-7b-hf
    "next336": {"crop_size": {"height": 336, "width": 336}, "do_center_crop": True,
                "do_convert_rgb": True, "do_normalize": True, "do_pad": True, "do_rescale": True,
                "do_resize": True,
                "image_grid_pinpoints": [[336, 672], [672, 336], [672, 672], [1008, 336],
                                         [336, 1008]],
                "image_mean": CLIP_MEAN, "image_processor_type": "LlavaNextImageProcessor",
                "image_std": CLIP_STD, "resample": 3, "rescale_factor": 0.00392156862745098,
                "size": {"shortest_edge": 336}},
    # The same at 28 px.
    "next28": {"crop_size": {"height": 28, "width": 28}, "do_center_crop": True,
               "do_convert_rgb": True, "do_normalize": True, "do_pad": True, "do_rescale": True,
               "do_resize": True, "image_grid_pinpoints": [[28, 56], [56, 28], [56, 56]],
               "image_mean": CLIP_MEAN, "image_processor_type": "LlavaNextImageProcessor",
               "image_std": CLIP_STD, "resample": 3, "rescale_factor": 0.00392156862745098,
               "size": {"shortest_edge": 28}},
    # Bilinear; the base (30 x 30) and the tiles (24, short ones less) are
    # resized to a shortest edge of 30 and center-cropped to 24 x 20.
    "next24_bilinear": {"crop_size": {"height": 24, "width": 20}, "do_center_crop": True,
                        "do_normalize": True, "do_rescale": True, "do_resize": True,
                        "image_grid_pinpoints": [[24, 48], [48, 24], [48, 48], [72, 24],
                                                 [24, 72]],
                        "image_mean": [0.5, 0.25, 0.75],
                        "image_processor_type": "LlavaNextImageProcessor",
                        "image_std": [0.5, 0.3, 0.2], "resample": 2,
                        "rescale_factor": 0.00392156862745098, "size": 30},
}

# Formula images only the anyres cases use (each pinpoint shape gets chosen,
# odd padding differences leave the tile grid one pixel short).
ANYRES_GEN = [(500, 300), (300, 500), (640, 480), (200, 900), (900, 200), (333, 335),
              (1000, 1000), (700, 351)]
# Committed inputs the anyres cases also use.
ANYRES_DATA = ["data/png_rgb8.png", "data/jpeg_420.jpg", "data/png_1x17.png",
               "data/png_17x1.png", "data/jpeg_exif6.jpg"]

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


def hf_mistakes_channels(rgb_hw, cfg):
    """LlavaNextImageProcessor._pad_for_patching lets pad() guess the channel
    axis, which it takes to be the first one when the resized image is 1 or
    3 pixels high: it then pads the wrong axes (docs/images.md)."""
    h, w = rgb_hw
    best = select_best_resolution((h, w), cfg["image_grid_pinpoints"])
    return anyres_fit((h, w), best)[0] in (1, 3)


def anyres_fit(hw, target):
    """_get_patch_output_size, via the processor's own helper."""
    from transformers.models.llava_next.image_processing_llava_next import _get_patch_output_size
    return _get_patch_output_size(np.zeros((hw[0], hw[1], 3), np.uint8), target, "channels_last")


def anyres_layouts():
    """select_best_resolution and the fit / pad sizes for many image sizes:
    "W,H:TH,TW:NH,NW:PH,PW" per config."""
    rng = np.random.default_rng(77)
    sizes = {(1, 1), (1, 100000), (100000, 1), (2, 3), (3, 2), (8192, 8192), (65535, 3),
             (336, 336), (672, 336), (336, 672), (1008, 336), (335, 1007), (337, 1009),
             (673, 337), (1000, 500), (500, 1000), (1, 2), (2, 1), (28, 56), (56, 28)}
    while len(sizes) < 220:
        a, b = rng.integers(1, 4000, 2)
        sizes.add((int(a), int(b)))
    for _ in range(16):  # aspect ratios near the pinpoints' own
        base = int(rng.integers(20, 2000))
        for num, den in ((2, 1), (1, 2), (3, 1), (1, 3), (1, 1)):
            w = base * num // den + int(rng.integers(-2, 3))
            sizes.add((max(w, 1), base))
    out = {}
    for cname, cfg in ANYRES_CONFIGS.items():
        rows = []
        for w, h in sorted(sizes):
            th, tw = select_best_resolution((h, w), cfg["image_grid_pinpoints"])
            nh, nw = anyres_fit((h, w), (th, tw))
            ph, pw = nh + 2 * ((th - nh) // 2), nw + 2 * ((tw - nw) // 2)
            rows.append("%d,%d:%d,%d:%d,%d:%d,%d" % (w, h, th, tw, nh, nw, ph, pw))
        out[cname] = rows
    return out


def anyres_cases(inputs):
    cases, goldens = [], {}
    for key, rgb in inputs.items():
        for cname, cfg in ANYRES_CONFIGS.items():
            h, w = rgb.size[1], rgb.size[0]
            if hf_mistakes_channels((h, w), cfg):
                print("anyres: skipping %s %s (transformers pads the wrong axes)" % (key, cname))
                continue
            kw = {k: v for k, v in cfg.items() if k != "image_processor_type"}
            proc = LlavaNextImageProcessor(**kw)
            out = proc(rgb, do_rescale=False, do_normalize=False,
                       input_data_format="channels_last", return_tensors="np")
            u8 = out["pixel_values"][0]
            assert np.array_equal(u8, np.rint(u8)) and u8.min() >= 0 and u8.max() <= 255
            u8 = u8.astype(np.uint8).transpose(0, 2, 3, 1)  # [1 + n, h, w, 3]
            res = proc(rgb, input_data_format="channels_last", return_tensors="np")
            pv = res["pixel_values"][0]
            assert pv.dtype == np.float32 and pv.shape[0] == u8.shape[0]
            assert list(res["image_sizes"][0]) == [h, w]
            for t in range(u8.shape[0]):
                assert np.array_equal(pv[t], hf_formula(u8[t], cfg)), (key, cname, t)
            th, tw = select_best_resolution((h, w), cfg["image_grid_pinpoints"])
            case = {"input": key, "config": cname, "image_size": [h, w], "target": [th, tw],
                    "n_tiles": int(u8.shape[0]) - 1, "tile_height": int(u8.shape[1]),
                    "tile_width": int(u8.shape[2]), "sha256": sha(u8), "golden": None,
                    "hf_sum": float(pv.astype(np.float64).sum()),
                    "hf_sha256": sha(pv.astype("<f4")), "hf_samples": []}
            for i in range(6):
                t, c = i % pv.shape[0], i % 3
                y, x = (i * 37 + 5) % pv.shape[2], (i * 53 + 3) % pv.shape[3]
                case["hf_samples"].append([t, c, y, x, float(pv[t, c, y, x])])
            buf = io.BytesIO()
            Image.fromarray(u8.reshape(-1, u8.shape[2], 3), "RGB").save(buf, "PNG", optimize=True)
            if not key.startswith("assets:") and len(buf.getvalue()) <= MAX_GOLDEN_PNG:
                gname = "anyres_%s_%s.png" % (key.replace("data/", "").replace(":", "_")
                                              .replace(".", "_"), cname)
                goldens[gname] = buf.getvalue()
                case["golden"] = "golden/" + gname
            cases.append(case)
    return cases, goldens


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
                "anyres_configs": {k: json.dumps(v, sort_keys=True)
                                   for k, v in ANYRES_CONFIGS.items()},
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
    any_inputs = {k: inputs[k].convert("RGB") for k in ANYRES_DATA}
    any_inputs.update({k: v.convert("RGB") for k, v in inputs.items()
                       if k.startswith("gen:") or k.startswith("assets:")})
    for w, h in ANYRES_GEN:
        any_inputs["gen:%d:%d" % (w, h)] = Image.fromarray(gen_pattern(w, h), "RGB")
    manifest["anyres_cases"], goldens = anyres_cases(any_inputs)
    manifest["anyres_layouts"] = anyres_layouts()
    for gname, data in goldens.items():
        with open(os.path.join(GOLDEN, gname), "wb") as f:
            f.write(data)
    with open(os.path.join(GOLDEN, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(GOLDEN, g)) for g in os.listdir(GOLDEN))
    print("%d decode checks, %d cases, %d anyres cases, goldens %.1f KB" % (
        len(manifest["decode"]), len(manifest["cases"]), len(manifest["anyres_cases"]),
        total / 1024))


if __name__ == "__main__":
    main(sys.argv[1:])
