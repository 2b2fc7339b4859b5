#!/usr/bin/env python3
"""Data-parallel training on one machine: steps/s of `disclvlm train` as 1
process x T threads against N ranks x T/N threads (mpirun), same global
batch, and the bytes each rank communicates per step, set against the flat
gradient buffer and the all-gathered embeddings.

    python3 bench/bench_dist.py MODEL_DIR build/disclvlm/disclvlm \\
        [--ranks 2] [--threads 2] [--batch 8] [--steps 6]

MODEL_DIR is a LLaVA directory with a tokenizer and preprocessor_config.json
(bench_train_torch.py completes the bench model so). The data are --batch * 2
generated 224 px PNGs with 8-word captions and 40-word long captions (the
words of bench_train.c). Step times are the medians of the --log records
after the first step. Bytes per rank per step:
  gradients: the sum is a reduce to rank 0 then a broadcast of the flat
    buffer (n_params floats): each rank sends and receives it once;
  embeddings: each rank receives the others' [2, local_batch, dim] floats
    (and a count per rank), the global batch's embeddings once per step.
"""
import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import zlib

WORDS = ["a", "photo", "of", "red", "blue", "green", "dog", "cat",
         "sitting", "on", "the", "old", "wooden", "table", "near", "window",
         "with", "small", "large", "bright", "yellow", "car", "parked", "street",
         "under", "tree", "in", "morning", "light", "and", "two", "people"]


def caption(k, n):
    return " ".join(WORDS[(k * 7 + j * 13 + j * j) % 32] for j in range(n))


def png(path, k, side=224):
    rows = b"".join(b"\x00" + bytes((x * 37 + y * 11 + c * 101 + k * 53 + ((x * y) % 17) * 7) % 256
                                    for x in range(side) for c in range(3)) for y in range(side))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0,
                                                                 0, 0))
                + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def median_step_s(log):
    with open(log) as f:
        recs = [json.loads(x) for x in f if x.strip()]
    return statistics.median(r["step_s"] for r in recs[1:]), recs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("exe")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    a = ap.parse_args()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    tmp = tempfile.mkdtemp(prefix="dlv-bench-dist-")
    try:
        os.makedirs(os.path.join(tmp, "img"))
        with open(os.path.join(tmp, "data.jsonl"), "w") as f:
            for k in range(2 * a.batch):
                png(os.path.join(tmp, "img", "%d.png" % k), k)
                f.write(json.dumps({"image": "img/%d.png" % k, "caption": caption(k, 8),
                                    "long_caption": caption(k + 100, 40)}) + "\n")
        common = ["train", "--model", a.model_dir, "--data", os.path.join(tmp, "data.jsonl"),
                  "--batch", str(a.batch), "--steps", str(a.steps), "--lora-rank", "16"]
        runs = [("1 process x %d threads" % a.threads, [a.exe], a.threads, "none", 1),
                ("%d ranks x %d thread%s" % (a.ranks, a.threads // a.ranks,
                                             "" if a.threads // a.ranks == 1 else "s"),
                 ["mpirun", "--oversubscribe", "-np", str(a.ranks), "--bind-to", "none", a.exe],
                 max(1, a.threads // a.ranks), "mpi", a.ranks)]
        rows = []
        for name, launch, threads, dist, world in runs:
            out, log = os.path.join(tmp, "out-" + dist), os.path.join(tmp, dist + ".jsonl")
            cmd = launch + common[0:1] + common[1:] + ["--threads", str(threads), "--dist", dist,
                                                       "--out", out, "--log", log]
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if p.returncode != 0:
                sys.exit("%s failed:\n%s" % (name, p.stderr[-2000:]))
            s, recs = median_step_s(log)
            with open(os.path.join(out + ".ckpt", "train_state.safetensors"), "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                n_params = int(json.loads(f.read(n))["__metadata__"]["n_params"])
            rows.append((name, world, s, recs[-1]["loss"], n_params))
        with open(os.path.join(a.model_dir, "config.json")) as f:
            cfg = json.load(f)
        dim = cfg["text_config"]["hidden_size"]
        print("global batch %d, %d steps (median of steps 2..%d), trainable parameters %d, "
              "embedding width %d" % (a.batch, a.steps, a.steps, rows[0][4], dim))
        print("%-24s %10s %10s %12s %14s %14s" % ("run", "s/step", "steps/s", "last loss",
                                                  "grad MB/rank", "emb kB/rank"))
        for name, world, s, loss, n_params in rows:
            grad = 0.0 if world == 1 else 2 * 4 * n_params / 1e6
            emb = 0.0 if world == 1 else (2 * a.batch * dim * 4 * (world - 1) / world
                                          + 8 * world) / 1e3
            print("%-24s %10.3f %10.3f %12.6f %14.2f %14.2f" % (name, s, 1 / s, loss, grad, emb))
        print("flat gradient buffer: %.2f MB; all-gathered embeddings: %.2f kB per step"
              % (4 * rows[0][4] / 1e6, 2 * a.batch * dim * 4 / 1e3))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
