#!/usr/bin/env python3
"""`disclvlm serve` on a free loopback port (docs/serve.md), checked with
urllib and curl, and with the official `openai` client where pip can
install it into a venv of its own (a skip of that part otherwise, a failure
when DISCLVLM_REQUIRE_PYTHON_TESTS=1):

- /health, /v1/models; text and image embeddings, float and base64, equal
  encode-text / encode-image's .npy bit for bit, in input order, mixed;
  `model` echoed, `usage` counted;
- every bad input gets its 4xx with a JSON error naming the problem, and
  the next good request succeeds: malformed JSON, wrong types, empty input,
  too many items, a body over --max-body, bad base64, a non-image, a remote
  URL, token ids, an over-long text, a wrong method, an unknown path;
- --api-key is enforced on /v1 (401 without or with a wrong key);
- /metrics counts the requests by status, the items by kind, and has the
  items-per-request and latency histograms;
- SIGTERM ends the server with exit 0.

usage: test_cli_serve.py DISCLVLM_EXE GEN_TINY_CHECKPOINT_PY IMAGES_DIR
"""
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_testlib import call, check, f32_bytes, finish, metrics, npy  # noqa: E402
from serve_testlib import start as start_server  # noqa: E402

exe, gen, images = sys.argv[1:4]


def start(model, *extra):
    # --max-batch 1: each request runs alone, as the CLI runs it (bit for bit).
    return start_server(exe, model, "--max-batch", "1", *extra)


tmp = tempfile.mkdtemp(prefix="dlv-serve-")
try:
    model = os.path.join(tmp, "model")
    subprocess.run([sys.executable, gen, model, "--vision", "clip", "--text", "llama",
                    "--dtype", "f32", "--with-tokenizer"], check=True, capture_output=True)
    texts = ["a red square", "two dogs on the grass", "", "a photo of a cat"][:2] + ["x y z"]
    imgs = [os.path.join(images, "img%d.png" % k) for k in range(3)]
    b64 = [base64.b64encode(open(p, "rb").read()).decode() for p in imgs]
    # The CLI's embeddings, the reference.
    subprocess.run([exe, "encode-text", "--model", model, "--threads", "1", "--out",
                    os.path.join(tmp, "t.npy"), "--", *texts], check=True, capture_output=True)
    subprocess.run([exe, "encode-image", "--model", model, "--threads", "1", "--out",
                    os.path.join(tmp, "i.npy"), "--", *imgs], check=True, capture_output=True)
    tref, nt = npy(os.path.join(tmp, "t.npy"))
    iref, ni = npy(os.path.join(tmp, "i.npy"))
    dim = nt // len(texts)
    row = lambda blob, i: blob[4 * dim * i:4 * dim * (i + 1)]  # noqa: E731

    srv, base = start(model, "--max-items", "8", "--max-body", "200000")
    try:
        st, b = call(base + "/health")
        check(st == 200 and b == {"status": "ok"}, "GET /health")
        st, b = call(base + "/v1/models")
        check(st == 200 and b["data"][0]["id"] == "model", "GET /v1/models names the model")

        # Texts and images mixed, in order; float and base64.
        inp = [texts[0], {"image": b64[0]}, texts[1],
               {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64[1]}},
               {"image": "data:image/png;base64," + b64[2]}, texts[2]]
        want = [row(tref, 0), row(iref, 0), row(tref, 1), row(iref, 1), row(iref, 2),
                row(tref, 2)]
        st, b = call(base + "/v1/embeddings", {"input": inp, "model": "mine"})
        got = [f32_bytes(d["embedding"]) for d in b.get("data", [])] if st == 200 else []
        check(st == 200 and got == want and [d["index"] for d in b["data"]] == list(range(6)),
              "float embeddings of 3 texts and 3 images, mixed: the CLI's, bit for bit, in order")
        check(st == 200 and b["model"] == "mine" and b["object"] == "list"
              and b["usage"]["prompt_tokens"] > 0
              and b["usage"]["total_tokens"] == b["usage"]["prompt_tokens"],
              "model echoed, usage counted: %s" % b.get("usage"))
        st, b = call(base + "/v1/embeddings", {"input": inp, "encoding_format": "base64"})
        got = [base64.b64decode(d["embedding"]) for d in b.get("data", [])] if st == 200 else []
        check(st == 200 and got == want, "base64 embeddings: the same bytes")
        st, b = call(base + "/v1/embeddings", {"input": texts[0]})
        check(st == 200 and f32_bytes(b["data"][0]["embedding"]) == row(tref, 0),
              "a single string input")
        # curl, as a user would.
        out = subprocess.run(["curl", "-s", "-X", "POST", base + "/v1/embeddings", "-H",
                              "Content-Type: application/json", "-d",
                              json.dumps({"input": [texts[1]]})], capture_output=True, text=True)
        check(out.returncode == 0 and
              f32_bytes(json.loads(out.stdout)["data"][0]["embedding"]) == row(tref, 1),
              "curl: the CLI's embedding")

        good = {"input": [texts[0]]}
        bad = [
            ("malformed JSON", None, b'{"input": ["a"', 400, "malformed JSON"),
            ("not an object", ["a"], None, 400, "JSON object"),
            ("no input", {"model": "m"}, None, 400, "'input' is required"),
            ("input a number", {"input": 5}, None, 400, "string or an array"),
            ("empty array", {"input": []}, None, 400, "'input' is empty"),
            ("empty string", {"input": ""}, None, 400, "'input' is empty"),
            ("too many items", {"input": ["a"] * 9}, None, 400, "--max-items (8)"),
            ("body over --max-body", {"input": ["word " * 50000]}, None, 413, "--max-body"),
            ("bad base64", {"input": ["a", {"image": "@@@@"}]}, None, 400,
             "input[1]: the image is not valid base64"),
            # "ABCD" is QUJDRA== : without its padding the length is not whole
            ("unpadded base64", {"input": [{"image": "QUJDRA"}]}, None, 400,
             "input[0]: the image is not valid base64"),
            ("not an image", {"input": [{"image": base64.b64encode(b"hello world").decode()}]},
             None, 400, "input[0]: not a usable PNG or JPEG image"),
            ("remote URL", {"input": [{"type": "image_url",
                                        "image_url": {"url": "https://x/y.png"}}]},
             None, 400, "remote image URLs are not fetched"),
            ("token ids", {"input": [[1, 2, 3]]}, None, 400, "token ids are not supported"),
            ("an object of nothing", {"input": [{"what": 1}]}, None, 400, "input[0]: expected"),
            ("wrong encoding_format", {"input": ["a"], "encoding_format": "hex"}, None, 400,
             "encoding_format"),
            ("model not a string", {"input": ["a"], "model": 3}, None, 400, "'model'"),
            ("over-long text", {"input": ["ok", "word " * 400]}, None, 400,
             "input[1]: the text needs"),
        ]
        for what, body, raw, code, needle in bad:
            st, b = call(base + "/v1/embeddings", body, raw=raw, method="POST",
                         headers={"Content-Type": "application/json"})
            msg = b.get("error", {}).get("message", "")
            check(st == code and needle in msg and b["error"]["code"] == code,
                  "%s: %d naming it (%d: %s)" % (what, code, st, msg))
            st2, b2 = call(base + "/v1/embeddings", good)
            check(st2 == 200 and f32_bytes(b2["data"][0]["embedding"]) == row(tref, 0),
                  "%s: the next good request succeeds" % what)
        st, b = call(base + "/v1/embeddings", method="GET")
        check(st == 405 and "use POST" in b["error"]["message"], "GET /v1/embeddings: 405")
        st, b = call(base + "/v2/nothing")
        check(st == 404, "an unknown path: 404")

        # /v1/score: `disclvlm score --json`'s matrix, cosine and logits.
        for logits in (False, True):
            p = subprocess.run([exe, "score", "--model", model, "--threads", "1", "--json"]
                               + (["--logits"] if logits else []) + ["--image", *imgs[:2],
                                                                     "--text", *texts[:2]],
                               capture_output=True, text=True)
            st, b = call(base + "/v1/score", {"texts": texts[:2], "logits": logits,
                                              "images": [{"image": b64[0]}, {"image": b64[1]}]})
            want_s = json.loads(p.stdout)["scores"] if p.returncode == 0 else None
            check(st == 200 and [f32_bytes(r) for r in b["scores"]]
                  == [f32_bytes(r) for r in want_s] and b["kind"] == ("logits" if logits
                                                                      else "cosine"),
                  "/v1/score%s: the CLI's matrix, bit for bit" % (" (logits)" if logits else ""))
        for what, body, needle in (
                ("no images", {"texts": ["a"]}, "must both be arrays"),
                ("empty texts", {"texts": [], "images": [{"image": b64[0]}]}, "must not be empty"),
                ("an image as a string", {"texts": ["a"], "images": [b64[0]]}, "images[0]"),
                ("a text as a number", {"texts": [3], "images": [{"image": b64[0]}]},
                 "texts[0]")):
            st, b = call(base + "/v1/score", body)
            check(st == 400 and needle in b["error"]["message"],
                  "/v1/score, %s: 400 naming it (%s)" % (what, b["error"]["message"]))

        # /metrics, Prometheus text: the requests above, counted.
        metric, ctype = metrics(base)
        ep = 'disclvlm_requests_total{endpoint="/v1/embeddings",code="%d"}'
        n400 = sum(1 for b_ in bad if b_[3] == 400)
        ok200 = metric.get(ep % 200, 0)
        check(ctype.startswith("text/plain") and ok200 == 4 + len(bad)
              and metric.get(ep % 400) == n400 and metric.get(ep % 413) == 1
              and metric.get(ep % 405) == 1
              and metric.get('disclvlm_items_total{kind="image"}') == 6 + 4
              and metric.get('disclvlm_requests_total{endpoint="/v1/score",code="200"}') == 2
              and metric.get('disclvlm_requests_total{endpoint="/v1/score",code="400"}') == 4
              and metric.get("disclvlm_request_items_count") == ok200 + 2
              and metric.get('disclvlm_request_seconds_bucket{le="+Inf"}') == ok200 + 2
              and metric.get('disclvlm_request_items_bucket{le="8"}', 0)
              == metric.get("disclvlm_request_items_count"),
              "/metrics: requests by status, items by kind, the items and latency histograms "
              "(%d ok, %d x 400)" % (ok200, metric.get(ep % 400, 0)))

        # The official client, where it can be installed.
        venv = os.path.join(os.environ.get("DLV_BUILD_ROOT", tmp), "serve-openai-venv")
        py = os.path.join(venv, "bin", "python")
        if not os.path.exists(py):
            subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True)
            subprocess.run([py, "-m", "pip", "install", "-q", "openai"], capture_output=True)
        have = os.path.exists(py) and subprocess.run([py, "-c", "import openai"],
                                                     capture_output=True).returncode == 0
        if have:
            code = ("import openai, struct, sys\n"
                    "c = openai.OpenAI(base_url=sys.argv[1] + '/v1', api_key='none')\n"
                    "r = c.embeddings.create(model='model', input=sys.argv[2:])\n"
                    "sys.stdout.buffer.write(b''.join(struct.pack('<%df' % len(d.embedding), "
                    "*d.embedding) for d in r.data))\n")
            out = subprocess.run([py, "-c", code, base, texts[0], texts[1]], capture_output=True)
            check(out.returncode == 0 and out.stdout == row(tref, 0) + row(tref, 1),
                  "the openai client: the CLI's embeddings, bit for bit "
                  + out.stderr.decode()[-300:])
        elif os.environ.get("DISCLVLM_REQUIRE_PYTHON_TESTS") == "1":
            check(False, "the openai client could not be installed (pip)")
        else:
            print("skip the openai client: pip could not install it (offline?)")
    finally:
        srv.send_signal(signal.SIGTERM)
        rc = srv.wait(timeout=30)
        check(rc == 0, "SIGTERM: the server exits 0")

    # --api-key
    srv, base = start(model, "--api-key", "s3cret")
    try:
        st, _ = call(base + "/v1/embeddings", good)
        check(st == 401, "--api-key: no key, 401")
        st, _ = call(base + "/v1/embeddings", good, headers={"Authorization": "Bearer nope"})
        check(st == 401, "--api-key: a wrong key, 401")
        st, _ = call(base + "/v1/models", headers={"Authorization": "Bearer s3cret"})
        st2, b = call(base + "/v1/embeddings", good, headers={"Authorization": "Bearer s3cret"})
        check(st == 200 and st2 == 200, "--api-key: the right key, 200")
        st, _ = call(base + "/health")
        check(st == 200, "--api-key: /health stays open (load balancers)")
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(timeout=30)

    p = subprocess.run([exe, "serve", "--model", model, "--port", "70000"], capture_output=True,
                       text=True)
    check(p.returncode == 2 and "--port" in p.stderr, "--port 70000: a usage error")
    p = subprocess.run([exe, "serve", "--model", model, "--host", "example.org"],
                       capture_output=True, text=True)
    check(p.returncode == 2 and "IPv4" in p.stderr, "--host not an address: a usage error")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

finish()
