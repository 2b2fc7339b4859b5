#!/usr/bin/env python3
"""Pillow + NumPy on the work bench_preprocess times: decode a 1000x872 JPEG,
convert("RGB"), resize the shortest edge to 336 (bicubic), center-crop
336x336, rescale (float64 -> float32) and normalize with the CLIP mean/std,
channels first -- what CLIPImageProcessor does for llava-1.5 -- and, when
transformers is importable, CLIPImageProcessor itself.

Writes the input (deterministic) first, and runs the C benchmark on it when
its path is given:
    /tmp/ref-img/bin/python bench/bench_preprocess_pillow.py /tmp/bench_1000x872.jpg \
        [build/bench/bench_preprocess]
Pinned: pillow==11.0.0 numpy==2.1.3 transformers==4.46.3 (see docs/images.md).
"""
import io
import subprocess
import sys
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def make_input(path):
    rng = np.random.default_rng(872)
    y, x = np.mgrid[0:872, 0:1000].astype(np.float64)
    planes = [(np.sin(x / (17.0 + 5 * c)) * np.cos(y / 23.0) + 1) * 100 + (x + y) / 40
              for c in range(3)]
    img = np.stack(planes, -1) + rng.normal(0, 6, (872, 1000, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(path, quality=90)


def pillow_numpy(data):
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    short, long = min(w, h), max(w, h)
    nl = int(336 * long / short)
    size = (336, nl) if w <= h else (nl, 336)
    im = im.resize(size, Image.BICUBIC)
    a = np.asarray(im)
    top, left = (a.shape[0] - 336) // 2, (a.shape[1] - 336) // 2
    a = a[top:top + 336, left:left + 336]
    x = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    return ((x - MEAN) / STD).transpose(2, 0, 1)


def timeit(fn, budget=2.0):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < budget:
        fn()
        n += 1
    t = time.perf_counter() - t0
    return 1e3 * t / n, n / t


def main(argv):
    path = argv[0] if argv else "/tmp/bench_1000x872.jpg"
    make_input(path)
    with open(path, "rb") as f:
        data = f.read()
    print("%-36s %10s %12s" % ("Python (1 thread)", "ms/image", "images/s"))
    ms, ips = timeit(lambda: Image.open(io.BytesIO(data)).convert("RGB").load())
    print("%-36s %10.2f %12.1f" % ("Pillow decode", ms, ips))
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    ms, ips = timeit(lambda: decoded.resize((385, 336), Image.BICUBIC))
    print("%-36s %10.2f %12.1f" % ("Pillow resize 1000x872 -> 385x336", ms, ips))
    ms, ips = timeit(lambda: pillow_numpy(data))
    print("%-36s %10.2f %12.1f" % ("Pillow + NumPy decode + preprocess", ms, ips))
    try:
        from transformers import CLIPImageProcessor
        proc = CLIPImageProcessor(size={"shortest_edge": 336},
                                  crop_size={"height": 336, "width": 336})
        ms, ips = timeit(lambda: proc(Image.open(io.BytesIO(data)), return_tensors="np"))
        print("%-36s %10.2f %12.1f" % ("CLIPImageProcessor (transformers)", ms, ips))
    except ImportError:
        pass
    if len(argv) > 1:
        sys.stdout.flush()
        subprocess.run([argv[1], path], check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
