#!/usr/bin/env python3
"""Tiny safetensors files for tests/io/test_st_assets.c, written by the
reference `safetensors` package, so that the test needs nothing outside the
repository. They hold what ../shared/assets/safetensors holds (four files
from huggingface/swift-transformers' test data, which must not be copied
here): one tensor named "embedding", no metadata.

Pinned references (PyPI): safetensors==0.4.5, numpy==2.1.3 (the versions the
other reference scripts use). Run by hand in a virtualenv outside the
repository; CI only reads the committed files:

    python3 -m venv /tmp/ref-st && \\
        /tmp/ref-st/bin/pip install safetensors==0.4.5 numpy==2.1.3
    /tmp/ref-st/bin/python tests/reference/st_fixtures.py tests/io/fixtures

  tensor-1d-int32.safetensors    I32 [3]        1, 2, 3
  tensor-2d-float64.safetensors  F64 [2, 3]     1, 2, 3, 24, 25, 26
  tensor-3d-float32.safetensors  F32 [2, 2, 3]  22, 23, 24, 11, 12, 13, 2, 3, 4, 1, 2, 3
  tensor-4d-float32.safetensors  F32 [2, 3, 1, 3]
                                 11, 12, 13, 1, 2, 3, 4, 5, 6, 22, 23, 24, 15, 16, 17,
                                 17, 18, 19

Each file is read back with safetensors.numpy.load_file and compared with
the arrays written. The writer pads the JSON header with spaces to a
multiple of 8 bytes (the 3-D file's header is 72 bytes, its data at 80).
"""
import os
import sys

import numpy as np
import safetensors
from safetensors.numpy import load_file, save_file

PINNED = "0.4.5"

TENSORS = {
    "tensor-1d-int32": np.array([1, 2, 3], dtype=np.int32),
    "tensor-2d-float64": np.array([[1, 2, 3], [24, 25, 26]], dtype=np.float64),
    "tensor-3d-float32": np.array([[[22, 23, 24], [11, 12, 13]], [[2, 3, 4], [1, 2, 3]]],
                                  dtype=np.float32),
    "tensor-4d-float32": np.array([11, 12, 13, 1, 2, 3, 4, 5, 6, 22, 23, 24, 15, 16, 17,
                                   17, 18, 19], dtype=np.float32).reshape(2, 3, 1, 3),
}


def main():
    if safetensors.__version__ != PINNED:
        sys.exit(f"need safetensors=={PINNED}, have {safetensors.__version__}")
    if len(sys.argv) != 2:
        sys.exit("usage: st_fixtures.py OUT_DIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, arr in TENSORS.items():
        path = os.path.join(out, name + ".safetensors")
        save_file({"embedding": arr}, path)
        back = load_file(path)["embedding"]
        assert back.dtype == arr.dtype and back.shape == arr.shape and (back == arr).all(), name
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
