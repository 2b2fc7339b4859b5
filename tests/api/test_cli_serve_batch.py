#!/usr/bin/env python3
"""`disclvlm serve`'s dynamic batching (docs/serve.md, "Batching"):

- concurrent requests meet in one batch (/metrics: fewer batches than
  requests, each request counted once) and each gets its own rows, equal to
  the CLI's within float rounding (a batch's shapes may change the GEMM
  library's summation order);
- a bad image in one request of a batch fails that request alone (400
  naming it); the others of the batch succeed;
- --max-batch 1 runs every request alone, bit for bit the CLI's;
- --workers 2 serves concurrent requests with two sessions;
- SIGTERM while a request waits in a batch: the request is answered, then
  the server exits 0;
- a LLaVA-NeXT model: images with different feature counts (their anyres
  grids) and a text in one batch, each the CLI's within float rounding;
- bad --workers / --max-batch / --batch-wait values are usage errors.

usage: test_cli_serve_batch.py DISCLVLM_EXE GEN_TINY_CHECKPOINT_PY IMAGES_DIR
"""
import base64
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_testlib import call, check, f32_bytes, finish, metrics, npy, start  # noqa: E402

exe, gen, images = sys.argv[1:4]
TOL = 1e-6  # embeddings are unit vectors; rounding differences are ~1e-7


def concurrently(base, bodies, delay=0.0):
    """POSTs each body to /v1/embeddings from its own thread at once;
    returns [(status, json)] in the bodies' order."""
    out = [None] * len(bodies)
    go = threading.Event()

    def one(i):
        go.wait()
        out[i] = call(base + "/v1/embeddings", bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    time.sleep(delay)
    go.set()
    for t in threads:
        t.join()
    return out


def max_diff(got_floats, want_bytes):
    want = struct.unpack("<%df" % (len(want_bytes) // 4), want_bytes)
    return max(abs(a - b) for a, b in zip(got_floats, want)) if len(want) == len(got_floats) \
        else float("inf")


tmp = tempfile.mkdtemp(prefix="dlv-serve-batch-")
try:
    model = os.path.join(tmp, "model")
    subprocess.run([sys.executable, gen, model, "--vision", "clip", "--text", "llama",
                    "--dtype", "f32", "--with-tokenizer"], check=True, capture_output=True)
    texts = ["a red square", "two dogs on the grass", "x y z", "a photo of a cat"]
    imgs = [os.path.join(images, "img%d.png" % k) for k in range(3)]
    b64 = [base64.b64encode(open(p, "rb").read()).decode() for p in imgs]
    # The CLI's embeddings of each input alone: the reference.
    tref, iref = [], []
    for k, t in enumerate(texts):
        out = os.path.join(tmp, "t%d.npy" % k)
        subprocess.run([exe, "encode-text", "--model", model, "--threads", "1", "--out", out,
                        "--", t], check=True, capture_output=True)
        tref.append(npy(out)[0])
    for k, p in enumerate(imgs):
        out = os.path.join(tmp, "i%d.npy" % k)
        subprocess.run([exe, "encode-image", "--model", model, "--threads", "1", "--out", out,
                        "--", p], check=True, capture_output=True)
        iref.append(npy(out)[0])
    bodies = [{"input": t} for t in texts] + [{"input": [{"image": b}]} for b in b64]
    want = tref + iref

    # A long --batch-wait: the 7 requests sent at once meet in one batch.
    srv, base = start(exe, model, "--max-batch", "16", "--batch-wait", "300")
    try:
        res = concurrently(base, bodies)
        ok = all(st == 200 for st, _ in res)
        worst = max(max_diff(b["data"][0]["embedding"], w) for (st, b), w in zip(res, want)) \
            if ok else float("inf")
        check(ok and worst <= TOL, "7 concurrent requests (4 texts, 3 images), batched: each "
              "its own rows, the CLI's within %g (worst %.3g)" % (TOL, worst))
        m, _ = metrics(base)
        check(m.get("disclvlm_batch_requests_total") == 7
              and m.get("disclvlm_batch_items_count", 99) < 7
              and m.get("disclvlm_batch_items_sum") == 7,
              "/metrics: 7 requests in %d batches of %s items in all"
              % (m.get("disclvlm_batch_items_count", -1), m.get("disclvlm_batch_items_sum")))

        # One bad request in the batch fails alone.
        bad = {"input": ["fine", {"image": base64.b64encode(b"not an image").decode()}]}
        res = concurrently(base, [bodies[0], bad, bodies[4], bodies[1]])
        st_bad, b_bad = res[1]
        check(st_bad == 400 and "input[1]: not a usable PNG or JPEG image"
              in b_bad["error"]["message"], "a bad image in a batch: its request gets 400 "
              "naming input[1] (%d)" % st_bad)
        good = [(res[0], tref[0]), (res[2], iref[0]), (res[3], tref[1])]
        check(all(st == 200 and max_diff(b["data"][0]["embedding"], w) <= TOL
                  for (st, b), w in good),
              "... and the other 3 requests of that batch succeed with their rows")
        m2, _ = metrics(base)
        check(m2.get("disclvlm_batch_requests_total") == 11, "... all 4 went through the "
              "batcher (%s)" % m2.get("disclvlm_batch_requests_total"))
        st, b = call(base + "/v1/embeddings", bodies[2])
        check(st == 200 and f32_bytes(b["data"][0]["embedding"]) == tref[2],
              "a request alone after that: the CLI's, bit for bit")

        # SIGTERM while a request waits for its batch to fill: it is answered.
        got = []
        t = threading.Thread(target=lambda: got.append(call(base + "/v1/embeddings",
                                                            bodies[3])))
        t.start()
        time.sleep(0.1)
        srv.send_signal(signal.SIGTERM)
        t.join(timeout=60)
        rc = srv.wait(timeout=60)
        check(got and got[0][0] == 200 and max_diff(got[0][1]["data"][0]["embedding"],
                                                    tref[3]) <= TOL and rc == 0,
              "SIGTERM during a batch wait: the request is answered, then exit 0 (rc %s)" % rc)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()

    # --max-batch 1: every request alone, bit for bit.
    srv, base = start(exe, model, "--max-batch", "1", "--batch-wait", "50")
    try:
        res = concurrently(base, bodies)
        check(all(st == 200 and f32_bytes(b["data"][0]["embedding"]) == w
                  for (st, b), w in zip(res, want)),
              "--max-batch 1: 7 concurrent requests, each the CLI's bit for bit")
        m, _ = metrics(base)
        check(m.get("disclvlm_batch_items_count") == 7
              and m.get('disclvlm_batch_items_bucket{le="1"}') == 7,
              "--max-batch 1: 7 batches of one item")
    finally:
        srv.send_signal(signal.SIGTERM)
        check(srv.wait(timeout=60) == 0, "--max-batch 1: SIGTERM, exit 0")

    # --max-batch counts items: 3-item requests never share a batch of 4; a
    # request larger than --max-batch runs whole, alone.
    srv, base = start(exe, model, "--max-batch", "4", "--batch-wait", "300")
    try:
        three = [{"input": texts[k:k + 3]} for k in (0, 1, 0, 1)]
        res = concurrently(base, three)
        m, _ = metrics(base)
        check(all(st == 200 for st, _ in res) and m.get("disclvlm_batch_items_count") == 4
              and m.get('disclvlm_batch_items_bucket{le="4"}') == 4,
              "--max-batch 4: four 3-item requests, four batches of 3")
        st, b = call(base + "/v1/embeddings", {"input": texts + texts[:2]})
        m, _ = metrics(base)
        check(st == 200 and len(b["data"]) == 6 and m.get("disclvlm_batch_items_count") == 5
              and m.get('disclvlm_batch_items_bucket{le="8"}') == 5
              and m.get('disclvlm_batch_items_bucket{le="4"}') == 4,
              "--max-batch 4: a 6-item request runs whole")
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=60)

    # Two workers, each with its session.
    srv, base = start(exe, model, "--workers", "2", "--max-batch", "4")
    try:
        res = concurrently(base, bodies * 2)
        ok = all(st == 200 for st, _ in res)
        worst = max(max_diff(b["data"][0]["embedding"], w)
                    for (st, b), w in zip(res, want * 2)) if ok else float("inf")
        check(ok and worst <= TOL, "--workers 2: 14 concurrent requests, the CLI's within %g "
              "(worst %.3g)" % (TOL, worst))
        m, _ = metrics(base)
        check(m.get("disclvlm_batch_requests_total") == 14
              and m.get('disclvlm_batch_items_bucket{le="4"}') == m.get(
                  "disclvlm_batch_items_count"),
              "--workers 2 --max-batch 4: every batch within 4 items")
    finally:
        srv.send_signal(signal.SIGTERM)
        check(srv.wait(timeout=60) == 0, "--workers 2: SIGTERM, exit 0")

    # LLaVA-NeXT: images with different feature counts (their anyres grids)
    # in one batch, each request its own rows.
    nxt = os.path.join(tmp, "next")
    subprocess.run([sys.executable, gen, nxt, "--family", "llava_next", "--vision", "clip",
                    "--text", "llama", "--dtype", "f32", "--with-tokenizer"], check=True,
                   capture_output=True)
    nimgs = [os.path.join(images, "img%d.png" % k) for k in range(6)]
    nref = []
    for k, p in enumerate(nimgs):
        out = os.path.join(tmp, "n%d.npy" % k)
        subprocess.run([exe, "encode-image", "--model", nxt, "--threads", "1", "--out", out,
                        "--", p], check=True, capture_output=True)
        nref.append(npy(out)[0])
    nbodies = [{"input": [{"image": base64.b64encode(open(p, "rb").read()).decode()}]}
               for p in nimgs] + [{"input": texts[0]}]
    srv, base = start(exe, nxt, "--max-batch", "16", "--batch-wait", "300")
    try:
        res = concurrently(base, nbodies)
        ok = all(st == 200 for st, _ in res)
        worst = max(max_diff(b["data"][0]["embedding"], w)
                    for (st, b), w in zip(res, nref)) if ok else float("inf")
        m, _ = metrics(base)
        check(ok and worst <= TOL and m.get("disclvlm_batch_items_count", 99) < 7,
              "LLaVA-NeXT: 6 images of different feature counts and a text, batched (%s "
              "batches): each the CLI's within %g (worst %.3g)"
              % (m.get("disclvlm_batch_items_count"), TOL, worst))
    finally:
        srv.send_signal(signal.SIGTERM)
        check(srv.wait(timeout=60) == 0, "LLaVA-NeXT: SIGTERM, exit 0")

    for opt, val in (("--workers", "0"), ("--max-batch", "0"), ("--max-batch", "9999"),
                     ("--batch-wait", "x"), ("--workers", "1000")):
        p = subprocess.run([exe, "serve", "--model", model, opt, val], capture_output=True,
                           text=True)
        check(p.returncode == 2 and opt in p.stderr, "%s %s: a usage error" % (opt, val))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

finish()
