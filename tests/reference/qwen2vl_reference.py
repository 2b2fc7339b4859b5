#!/usr/bin/env python3
"""Goldens for Qwen2VLImageProcessor (Qwen2-VL, Qwen2.5-VL) in tests/image.

Writes, deterministically:
  tests/image/golden/qwen2vl/manifest.json  what each case expects
  tests/image/golden/qwen2vl/*.png          the 8-bit resized images, where small

Inputs are those of images_reference.py: "gen:W:H" (its gen_pattern, built by
the C test too) and files it wrote under tests/image/data (run it first).

For every input x config the real Qwen2VLImageProcessor gives either an
error (smart_resize's ValueError, or Pillow's) or pixel_values and
image_grid_thw. With do_rescale=False, do_normalize=False its patches are
the 8-bit resized image, which this script puts back together (undoing the
patch order) and stores as a SHA-256 and, where small, a PNG. It checks that
pixel_values equals, exactly, the C test's formula: CLIP's rescale (float64,
then float32) and normalize (float32) of those bytes, cut into patches in
the order docs/images.md describes (written here without HF's
reshape/transpose); and stores the SHA-256 of pixel_values (float32,
little-endian), its sum and a few samples.

Run in a virtualenv outside the repository (the versions of
images_reference.py; numpy only does float64 products and float32
subtractions and divisions here):
    /tmp/ref-embed/bin/pip install pillow==11.0.0 transformers==4.46.3
    PYTHONPATH=/tmp/ref-embed/lib/python3.11/site-packages:/usr/lib/python3/dist-packages \\
        /tmp/ref-embed/bin/python tests/reference/qwen2vl_reference.py
(run with Pillow 11.0.0, NumPy 1.24.2 from Debian 12, transformers 4.46.3.)
"""
import hashlib
import io
import json
import os
import sys

import numpy as np
import PIL
from PIL import Image
import transformers
from transformers import Qwen2VLImageProcessor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from images_reference import CLIP_MEAN, CLIP_STD, DATA, GOLDEN, gen_pattern  # noqa: E402

OUT = os.path.join(GOLDEN, "qwen2vl")
MAX_GOLDEN_PNG = 30_000

CONFIGS = {
    # Qwen/Qwen2-VL-7B-Instruct's preprocessor_config.json.
    "qwen2vl": {"image_mean": CLIP_MEAN, "image_processor_type": "Qwen2VLImageProcessor",
                "image_std": CLIP_STD, "max_pixels": 12845056, "merge_size": 2,
                "min_pixels": 3136, "patch_size": 14, "processor_class": "Qwen2VLProcessor",
                "temporal_patch_size": 2},
    # The same with max_pixels 256 * 28 * 28, and `size` as newer
    # transformers write it (4.46 ignores it).
    "qwen2vl_small": {"do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
                      "do_resize": True, "image_mean": CLIP_MEAN,
                      "image_processor_type": "Qwen2VLImageProcessor", "image_std": CLIP_STD,
                      "max_pixels": 200704, "merge_size": 2, "min_pixels": 3136,
                      "patch_size": 14, "processor_class": "Qwen2_5_VLProcessor", "resample": 3,
                      "rescale_factor": 0.00392156862745098,
                      "size": {"longest_edge": 200704, "shortest_edge": 3136},
                      "temporal_patch_size": 2},
    # Other patch, merge and temporal sizes, bilinear, mean/std 0.5.
    "qwen_p8_m3_t3": {"image_mean": [0.5, 0.5, 0.5], "image_processor_type": "Qwen2VLImageProcessor",
                      "image_std": [0.5, 0.5, 0.5], "max_pixels": 50000, "merge_size": 3,
                      "min_pixels": 1000, "patch_size": 8, "resample": 2,
                      "temporal_patch_size": 3},
    # No resize: sides must already be multiples of 28.
    "qwen_noresize": {"do_resize": False, "image_processor_type": "Qwen2VLImageProcessor"},
}

GEN = [
    (640, 480),    # qwen2vl: width rounds up (644 x 476); small: max_pixels
    (40, 30),      # min_pixels: 28 x 28 rounds below 3136, ceil gives 84 x 56
    (28, 28),      # the smallest accepted; min_pixels doubles it
    (126, 70),     # ties: round(4.5) = 4, round(2.5) = 2 (half to even)
    (100, 43),     # 43 rounds up to 56
    (2500, 1700),  # qwen2vl: rounds to 2492 x 1708; small: max_pixels
    (300, 4000),   # tall; small: max_pixels
    (5600, 28),    # aspect ratio exactly 200 (accepted)
    (5628, 28),    # 201: refused
    (4000, 24),    # p8_m3_t3: max_pixels floors the short side to 0
    (27, 100),     # below the factor 28: refused
    (1, 40),
]
FILES = ["jpeg_420.jpg", "png_rgb8_interlaced.png", "png_rgb8.png"]


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def patches_formula(u8, cfg):
    """pixel_values from the 8-bit resized image [H, W, 3], as the C code
    computes it: per-byte rescale + normalize, then rows in merge blocks."""
    q = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
    q.update({k: cfg[k] for k in q if k in cfg})
    p, m, tp = q["patch_size"], q["merge_size"], q["temporal_patch_size"]
    mean = np.array(cfg.get("image_mean", CLIP_MEAN), np.float32)
    std = np.array(cfg.get("image_std", CLIP_STD), np.float32)
    x = (u8.astype(np.float64) * cfg.get("rescale_factor", 1 / 255)).astype(np.float32)
    x = (x - mean) / std
    h, w, _ = u8.shape
    gh, gw = h // p, w // p
    rows = []
    for by in range(gh // m):
        for bx in range(gw // m):
            for my in range(m):
                for mx in range(m):
                    y0, x0 = (by * m + my) * p, (bx * m + mx) * p
                    tile = x[y0:y0 + p, x0:x0 + p, :].transpose(2, 0, 1)  # [C, P, P]
                    rows.append(np.stack([tile] * tp, axis=1).reshape(-1))  # [C, T, P, P]
    return np.stack(rows)


def unpatch(flat, grid, cfg):
    """The image [H, W, 3] behind patches without rescale / normalize."""
    q = {"patch_size": 14, "merge_size": 2, "temporal_patch_size": 2}
    q.update({k: cfg[k] for k in q if k in cfg})
    p, m, tp = q["patch_size"], q["merge_size"], q["temporal_patch_size"]
    t, gh, gw = grid
    a = flat.reshape(t, gh // m, gw // m, m, m, 3, tp, p, p)
    a = a.transpose(0, 6, 5, 1, 3, 7, 2, 4, 8).reshape(t * tp, 3, gh * p, gw * p)
    for f in range(1, t * tp):
        assert np.array_equal(a[f], a[0])
    return a[0].transpose(1, 2, 0)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".png"):
            os.remove(os.path.join(OUT, f))
    inputs = {}
    for w, h in GEN:
        inputs["gen:%d:%d" % (w, h)] = Image.fromarray(gen_pattern(w, h), "RGB")
    for name in FILES:
        with open(os.path.join(DATA, name), "rb") as f:
            inputs["data/" + name] = Image.open(io.BytesIO(f.read()))

    manifest = {"pillow": PIL.__version__, "numpy": np.__version__,
                "transformers": transformers.__version__,
                "configs": {k: json.dumps(v, sort_keys=True) for k, v in CONFIGS.items()},
                "cases": []}
    total_png = 0
    written = {}  # sha256 of an 8-bit image -> its PNG
    for key, im in inputs.items():
        rgb = im.convert("RGB")
        for cname, cfg in CONFIGS.items():
            proc = Qwen2VLImageProcessor.from_dict(dict(cfg))
            case = {"input": key, "config": cname, "width": rgb.size[0],
                    "height": rgb.size[1], "error": None}
            try:
                out = proc(images=rgb, input_data_format="channels_last", return_tensors="np")
            except ValueError as e:
                case["error"] = str(e)
                manifest["cases"].append(case)
                continue
            pv, grid = out["pixel_values"], [int(v) for v in out["image_grid_thw"][0]]
            assert pv.dtype == np.float32
            raw = proc(images=rgb, do_rescale=False, do_normalize=False,
                       input_data_format="channels_last", return_tensors="np")["pixel_values"]
            assert raw.dtype == np.uint8, raw.dtype
            u8 = unpatch(raw, grid, cfg)
            ref = patches_formula(u8, cfg)
            assert ref.shape == pv.shape and np.array_equal(ref, pv), (key, cname)
            case.update({"grid": grid, "resized_height": u8.shape[0],
                         "resized_width": u8.shape[1], "rows": pv.shape[0], "dim": pv.shape[1],
                         "sha256": sha(u8), "golden": None,
                         "hf_sha256": sha(pv.astype("<f4")),
                         "hf_sum": float(pv.astype(np.float64).sum()), "hf_samples": []})
            for i in range(8):
                r, c = (i * 7919) % pv.shape[0], (i * 104729) % pv.shape[1]
                case["hf_samples"].append([r, c, float(pv[r, c])])
            buf = io.BytesIO()
            Image.fromarray(u8, "RGB").save(buf, "PNG", optimize=True)
            if case["sha256"] in written:  # configs that resize alike share one file
                case["golden"] = written[case["sha256"]]
            elif len(buf.getvalue()) <= MAX_GOLDEN_PNG:
                gname = "%s_%s.png" % (key.replace("data/", "").replace(":", "_")
                                       .replace(".", "_"), cname)
                with open(os.path.join(OUT, gname), "wb") as f:
                    f.write(buf.getvalue())
                total_png += len(buf.getvalue())
                case["golden"] = written[case["sha256"]] = gname
            manifest["cases"].append(case)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    n_err = sum(1 for c in manifest["cases"] if c["error"])
    print("%d cases (%d refused), PNG goldens %.1f KB" % (
        len(manifest["cases"]), n_err, total_png / 1024))


if __name__ == "__main__":
    main()
