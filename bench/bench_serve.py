#!/usr/bin/env python3
"""A bounded load test of `disclvlm serve` (docs/serve.md): --clients
concurrent clients (processes, each on one keep-alive connection) send
one-item /v1/embeddings requests, texts and images in turn, for --seconds,
against each model and each server setting:

  alone     --max-batch 1: each request runs by itself
  batched   --max-batch 32 (the default): queued requests run together
  2 workers --workers 2 --max-batch 32: two sessions, CPUs shared

and prints requests/s, p50/p99 latency, the mean batch the workers formed
(/metrics), the server's peak RSS (VmHWM) and the failed requests.

    python3 bench/bench_serve.py build/disclvlm/disclvlm [--seconds 30]
        [--clients 16] [--threads 2] [--models tiny,shapesworld]

tiny is tests/gen_tiny_checkpoint.py's CLIP + Llama checkpoint (64 wide);
shapesworld is models/shapesworld/lvlm with its soft_lora_ntp adapter.
Images are tests/model/golden/images/img*.png, sent as base64.
"""
import argparse
import base64
import glob
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXTS = ["a red square", "two green circles next to a blue triangle",
         "a photo of a cat on a wooden table", "the yellow shape is above the red one",
         "three small squares", "a large blue circle to the left of a square"]


def client(port, seconds, start_at, k, images, out):
    """One client's loop: its latencies (s) and failure messages."""
    lat, fails = [], []
    bodies = [json.dumps({"input": TEXTS[(k + j) % len(TEXTS)]}).encode() if j % 2 == 0 else
              json.dumps({"input": [{"image": images[(k + j) % len(images)]}]}).encode()
              for j in range(8)]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while time.time() < start_at:
        time.sleep(0.001)
    j = k
    end = start_at + seconds
    while time.time() < end:
        body = bodies[j % len(bodies)]
        j += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200 or b'"embedding"' not in data:
                fails.append("%d %s" % (r.status, data[:200]))
        except (OSError, http.client.HTTPException) as e:
            fails.append(repr(e))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            continue
        lat.append(time.perf_counter() - t0)
    conn.close()
    out.put((lat, fails))


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        m = {}
        for ln in r.read().decode().splitlines():
            if ln and not ln.startswith("#"):
                key, v = ln.rsplit(" ", 1)
                m[key] = float(v)
        return m


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) / 1024
    return float("nan")


def run(exe, model, adapter, extra, a, images):
    cmd = [exe, "serve", "--model", model, "--port", "0", *extra]
    if adapter:
        cmd += ["--adapter", adapter]
    srv = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    line = srv.stderr.readline()
    if "listening on http://" not in line:
        srv.kill()
        sys.exit("the server did not start: " + line + srv.stderr.read())
    port = int(line.split("http://127.0.0.1:")[1].split()[0])
    try:
        # Warm-up: one text and one image (first-call set-up out of the figures).
        for body in ({"input": TEXTS[0]}, {"input": [{"image": images[0]}]}):
            req = urllib.request.Request("http://127.0.0.1:%d/v1/embeddings" % port,
                                         json.dumps(body).encode(), method="POST")
            urllib.request.urlopen(req, timeout=120).read()
        m0 = metrics(port)
        q = multiprocessing.Queue()
        start_at = time.time() + 0.5
        procs = [multiprocessing.Process(target=client, args=(port, a.seconds, start_at, k,
                                                              images, q))
                 for k in range(a.clients)]
        for p in procs:
            p.start()
        results = [q.get() for _ in procs]
        for p in procs:
            p.join()
        m1 = metrics(port)
        rss = peak_rss_mib(srv.pid)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=120)
    lat = sorted(x for r in results for x in r[0])
    fails = [x for r in results for x in r[1]]
    batches = m1.get("disclvlm_batch_items_count", 0) - m0.get("disclvlm_batch_items_count", 0)
    items = m1.get("disclvlm_batch_items_sum", 0) - m0.get("disclvlm_batch_items_sum", 0)
    pct = (lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3) if lat else (lambda p: 0)
    return {"req_s": len(lat) / a.seconds, "p50": pct(0.50), "p99": pct(0.99),
            "mean_ms": statistics.mean(lat) * 1e3 if lat else 0,
            "batch": items / batches if batches else 0, "rss": rss, "fails": len(fails),
            "requests": len(lat), "first_fail": fails[0] if fails else ""}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("exe")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default="tiny,shapesworld")
    a = ap.parse_args()
    images = [base64.b64encode(open(p, "rb").read()).decode() for p in
              sorted(glob.glob(os.path.join(ROOT, "tests", "model", "golden", "images",
                                            "img*.png")))]
    tmp = tempfile.mkdtemp(prefix="dlv-bench-serve-")
    try:
        models = []
        for name in a.models.split(","):
            if name == "tiny":
                d = os.path.join(tmp, "tiny")
                subprocess.run([sys.executable, os.path.join(ROOT, "tests",
                                                             "gen_tiny_checkpoint.py"), d,
                                "--vision", "clip", "--text", "llama", "--dtype", "f32",
                                "--with-tokenizer"], check=True, capture_output=True)
                models.append(("tiny", d, None))
            elif name == "shapesworld":
                sw = os.path.join(ROOT, "models", "shapesworld")
                models.append(("shapesworld", os.path.join(sw, "lvlm"),
                               os.path.join(sw, "adapters", "soft_lora_ntp")))
            else:
                sys.exit("unknown model '%s' (tiny, shapesworld)" % name)
        t, half = str(a.threads), str(max(1, a.threads // 2))
        settings = [("alone", ["--threads", t, "--max-batch", "1"]),
                    ("batched", ["--threads", t, "--max-batch", "32"]),
                    ("2 workers", ["--threads", half, "--workers", "2", "--max-batch", "32"])]
        print("%d clients x %g s, one item per request (texts and images in turn), %d CPUs"
              % (a.clients, a.seconds, os.cpu_count()))
        print("| model | server | requests/s | p50 ms | p99 ms | mean batch | peak RSS MiB "
              "| failed |")
        print("|---|---|---|---|---|---|---|---|")
        failed = 0
        for mname, d, adapter in models:
            for sname, extra in settings:
                r = run(a.exe, d, adapter, extra, a, images)
                failed += r["fails"]
                print("| %s | %s | %.1f | %.1f | %.1f | %.2f | %.0f | %d of %d |"
                      % (mname, sname + " (" + " ".join(extra) + ")", r["req_s"], r["p50"],
                         r["p99"], r["batch"], r["rss"], r["fails"],
                         r["requests"] + r["fails"]), flush=True)
                if r["first_fail"]:
                    print("  first failure: " + r["first_fail"])
        sys.exit(1 if failed else 0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
