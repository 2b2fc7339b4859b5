"""Fixtures for the disclvlm Python package tests: tiny generated checkpoints
and small PNG files written with zlib + struct (no Pillow needed).

Environment (set by run_python_tests.sh and wheel_ci.sh; defaults work from a source tree):
  DISCLVLM_GEN_TINY   tests/gen_tiny_checkpoint.py
  DISCLVLM_CLI        the disclvlm tool of the same build (for exact comparisons)
  DISCLVLM_TEST_DATA  tests/image/data (sample JPEGs)
"""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.abspath(os.path.join(HERE, "..", ".."))
GEN_TINY = os.environ.get("DISCLVLM_GEN_TINY", os.path.join(SRC, "tests", "gen_tiny_checkpoint.py"))
TEST_DATA = os.environ.get("DISCLVLM_TEST_DATA", os.path.join(SRC, "tests", "image", "data"))


def gen_tiny(out_dir, *args):
    subprocess.run([sys.executable, GEN_TINY, str(out_dir), *args], check=True,
                   stdout=subprocess.DEVNULL)
    return str(out_dir)


def png_bytes(rgb):
    """An 8-bit RGB PNG of an (H, W, 3) uint8 array."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def pattern(h, w, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A tiny CLIP + Llama checkpoint with a tokenizer."""
    return gen_tiny(tmp_path_factory.mktemp("tiny") / "clip-llama", "--vision", "clip",
                    "--text", "llama", "--with-tokenizer")


@pytest.fixture(scope="session")
def qwen_dir(tmp_path_factory):
    """A tiny SigLIP + Qwen2 checkpoint with a tokenizer (bf16)."""
    return gen_tiny(tmp_path_factory.mktemp("tiny") / "siglip-qwen2", "--vision", "siglip",
                    "--text", "qwen2", "--dtype", "bf16", "--with-tokenizer")


@pytest.fixture(scope="session")
def images(tmp_path_factory):
    """(paths, arrays): three PNGs of different sizes plus a sample JPEG."""
    d = tmp_path_factory.mktemp("images")
    arrays, paths = [], []
    for i, (h, w) in enumerate([(32, 32), (17, 40), (50, 23)]):
        a = pattern(h, w, i)
        p = d / ("img%d.png" % i)
        p.write_bytes(png_bytes(a))
        arrays.append(a)
        paths.append(str(p))
    jpg = os.path.join(TEST_DATA, "jpeg_420.jpg")
    if os.path.exists(jpg):
        paths.append(jpg)
    return paths, arrays


@pytest.fixture
def model(model_dir):
    import disclvlm
    with disclvlm.Model(model_dir, threads=1) as m:
        yield m


@pytest.fixture
def session(model):
    with model.session() as s:
        yield s
