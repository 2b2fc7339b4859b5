#!/usr/bin/env python3
"""`disclvlm embed / encode-image / encode-text / score` on a tiny generated
checkpoint with a tokenizer: .npy shapes and format, batching and chunking
do not change an embedding, --file equals positional texts, the score
matrix is the dot products of the embeddings, --json, --logits, --hidden,
the progress line on a terminal, usage errors (exit 2) and failures (exit
1, one stderr line naming the file). Python stdlib only (no numpy).

usage: test_cli_encode.py DISCLVLM_EXE GEN_TINY_CHECKPOINT_PY
"""
import ast
import json
import math
import os
import pty
import shutil
import struct
import subprocess
import sys
import tempfile

exe, gen = sys.argv[1:3]
here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(os.environ.get("DLV_SOURCE_ROOT", os.path.join(here, "..", "..")),
                    "tests", "image", "data")
failures = []
TOL = 1e-5


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


# The suite runs once more with DLV_TEST_BACKEND=sim (tests/meson.build):
# every command that loads a model then computes on the sim backend.
BACKEND = os.environ.get("DLV_TEST_BACKEND")
MODEL_COMMANDS = {"train", "encode-image", "encode-text", "embed", "score", "eval"}


def with_backend(args):
    if BACKEND and args and args[0] in MODEL_COMMANDS:
        return (args[0], "--backend", BACKEND) + tuple(args[1:])
    return args


def run(*args, stdin=None):
    p = subprocess.run([exe, *with_backend(args)], capture_output=True, text=True, timeout=300,
                       input=stdin)
    return p.returncode, p.stdout, p.stderr


def read_npy(path):
    """(shape, flat list of floats) of a float32 .npy; asserts the format."""
    with open(path, "rb") as f:
        blob = f.read()
    assert blob[:6] == b"\x93NUMPY", "magic"
    assert blob[6:8] == b"\x01\x00", "version 1.0"
    (hlen,) = struct.unpack("<H", blob[8:10])
    assert (10 + hlen) % 64 == 0, "header alignment"
    header = blob[10:10 + hlen].decode("latin1")
    assert header.endswith("\n")
    d = ast.literal_eval(header.strip())
    assert d["descr"] == "<f4" and d["fortran_order"] is False, d
    shape = d["shape"]
    n = 1
    for s in shape:
        n *= s
    body = blob[10 + hlen:]
    assert len(body) == 4 * n, (len(body), n)
    return shape, list(struct.unpack("<%df" % n, body))


def rows(flat, dim):
    return [flat[i:i + dim] for i in range(0, len(flat), dim)]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def normalized(v):
    n = math.sqrt(dot(v, v))
    return [x / n for x in v]


def close(a, b, tol=TOL):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def one_line(err):
    return len(err.strip().splitlines()) == 1


tmp = tempfile.mkdtemp(prefix="dlv-cli-enc-")
try:
    model = os.path.join(tmp, "model")
    p = subprocess.run([sys.executable, gen, model, "--vision", "clip", "--text", "llama",
                        "--dtype", "f32", "--with-tokenizer"], capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout + p.stderr)
        print("FAIL cannot generate the tiny model with a tokenizer")
        sys.exit(1)
    with open(os.path.join(model, "tiny_manifest.json")) as f:
        D = json.load(f)["embedding_size"]
    with open(os.path.join(model, "config.json")) as f:
        image_token = json.load(f)["image_token_index"]
    M = ["--model", model, "--threads", "2"]
    img_a = os.path.join(data, "png_rgb8.png")
    img_b = os.path.join(data, "jpeg_progressive.jpg")
    img_c = os.path.join(data, "png_gray16.png")
    out = os.path.join(tmp, "e.npy")

    def npy(path=out):
        return read_npy(path)

    # ---- --help --------------------------------------------------------
    for cmd, word in [("embed", "--tokens"), ("encode-image", "IMAGE"),
                      ("encode-text", "--file"), ("score", "--json")]:
        rc, o, e = run(cmd, "--help")
        check(rc == 0 and word in o and "--model" in o and e == "", f"{cmd} --help")
    rc, o, e = run("--help")
    check(all(c in o for c in ("embed", "encode-image", "encode-text", "score")),
          "disclvlm --help lists the new commands")

    # ---- encode-image --------------------------------------------------
    rc, o, e = run("encode-image", *M, img_a, img_b, "--out", out)
    check(rc == 0 and o == "" and e == "", "encode-image 2 images: exit 0, silent")
    if rc != 0:
        print(e)
    shape, both = npy()
    check(shape == (2, D), f"encode-image 2 images: shape {shape} == (2, {D})")
    both = rows(both, D)
    check(all(abs(dot(r, r) - 1) < TOL for r in both), "image embeddings are unit vectors")
    singles = []
    for img in (img_a, img_b, img_c):
        rc, o, e = run("encode-image", *M, img, "--out", out)
        shape, one = npy()
        check(rc == 0 and shape == (1, D), f"encode-image {os.path.basename(img)}: shape (1, D)")
        singles.append(one)
    check(close(both[0], singles[0]) and close(both[1], singles[1]),
          "encode-image of 2 images: each row equals the image encoded alone")
    check(not close(singles[0], singles[1], 1e-3), "different images, different embeddings")

    # --compute bf16: close to f32 (docs/backends.md), not equal; a bad name
    # is a usage error naming it.
    rc, o, e = run("encode-image", *M, "--compute", "bf16", img_a, "--out", out)
    shape, b16 = npy() if rc == 0 else ((), [])
    check(rc == 0 and shape == (1, D) and dot(b16, singles[0]) > 0.999 and
          not close(b16, singles[0], 0.0),
          "encode-image --compute bf16: within cosine 0.999 of f32, not bit-equal")
    rc, o, e = run("encode-image", *M, "--compute", "f8", img_a, "--out", out)
    check(rc == 2 and "--compute" in e and "'f8'" in e and one_line(e),
          "encode-image --compute f8: a usage error naming the value")
    # --weight-dtype: bf16 rounds the f32 weights once at load (close, not
    # equal); f32 and auto hold this f32 checkpoint as it is (bit-equal).
    rc, o, e = run("encode-image", *M, "--weight-dtype", "bf16", img_a, "--out", out)
    shape, w16 = npy() if rc == 0 else ((), [])
    check(rc == 0 and dot(w16, singles[0]) > 0.999 and not close(w16, singles[0], 0.0),
          "encode-image --weight-dtype bf16: within cosine 0.999 of f32, not bit-equal")
    rc, o, e = run("encode-image", *M, "--weight-dtype", "f32", img_a, "--out", out)
    shape, w32 = npy() if rc == 0 else ((), [])
    check(rc == 0 and close(w32, singles[0], 0.0),
          "encode-image --weight-dtype f32 on an f32 checkpoint: bit-equal")
    rc, o, e = run("encode-image", *M, "--weight-dtype", "int8", img_a, "--out", out)
    check(rc == 2 and "--weight-dtype" in e and "'int8'" in e and one_line(e),
          "encode-image --weight-dtype int8: a usage error naming the value")

    # 10 images: more than one chunk of 8.
    ten = [img_a, img_b, img_c] * 3 + [img_b]
    rc, o, e = run("encode-image", *M, *ten, "--out", out)
    shape, many = npy()
    many = rows(many, D)
    want = {img_a: singles[0], img_b: singles[1], img_c: singles[2]}
    check(rc == 0 and shape == (10, D) and
          all(close(r, want[i]) for r, i in zip(many, ten)),
          "encode-image of 10 images (2 chunks): each row equals the image alone")
    check(not [f for f in os.listdir(tmp) if ".tmp." in f], "no temporary file left behind")

    # ---- encode-text ---------------------------------------------------
    texts = ["a photo of a cat", "", "a dog", "x" * 3, "ünïcödé text"]
    rc, o, e = run("encode-text", *M, *texts, "--out", out)
    check(rc == 0 and o == "" and e == "", "encode-text positional: exit 0, silent")
    if rc != 0:
        print(e)
    shape, pos = npy()
    check(shape == (len(texts), D), f"encode-text: shape {shape} == ({len(texts)}, {D})")
    pos = rows(pos, D)
    check(all(abs(dot(r, r) - 1) < TOL for r in pos), "text embeddings are unit vectors")
    check(not close(pos[0], pos[2], 1e-3), "different texts, different embeddings")
    lines = os.path.join(tmp, "lines.txt")
    for name, content in [("final newline", "\n".join(texts) + "\n"),
                          ("no final newline", "\n".join(texts)),
                          ("CRLF", "\r\n".join(texts) + "\r\n")]:
        with open(lines, "w", encoding="utf-8", newline="") as f:
            f.write(content)
        rc, o, e = run("encode-text", *M, "--file", lines, "--out", out)
        shape, fl = npy()
        check(rc == 0 and shape == (len(texts), D) and
              all(close(a, b) for a, b in zip(rows(fl, D), pos)),
              f"encode-text --file ({name}) equals the positional texts")
    rc, o, e = run("encode-text", *M, "--file", "-", "--out", out, stdin="\n".join(texts) + "\n")
    shape, fl = npy()
    check(rc == 0 and shape == (len(texts), D) and
          all(close(a, b) for a, b in zip(rows(fl, D), pos)),
          "encode-text --file - reads standard input")
    rc, o, e = run("encode-text", *M, "--", "-leading dash", "--out", out)
    check(rc == 2, "after '--' even --out is a text (so no --out: exit 2)")
    rc, o, e = run("encode-text", *M, "--out", out, "--", "-leading dash")
    shape, _ = npy()
    check(rc == 0 and shape == (1, D), "'--' lets a text start with '-'")
    # 40 texts: two chunks of 32; every row equals the text encoded alone.
    forty = [texts[i % len(texts)] for i in range(40)]
    with open(lines, "w", encoding="utf-8") as f:
        f.write("\n".join(forty) + "\n")
    rc, o, e = run("encode-text", *M, "--file", lines, "--out", out)
    shape, fl = npy()
    check(rc == 0 and shape == (40, D) and
          all(close(r, pos[i % len(texts)]) for i, r in enumerate(rows(fl, D))),
          "encode-text of 40 texts (2 chunks): each row equals the text alone")
    with open(lines, "w") as f:
        pass
    rc, o, e = run("encode-text", *M, "--file", lines, "--out", out)
    check(rc == 1 and lines in e and one_line(e), "encode-text of an empty file: exit 1 naming it")
    with open(lines, "wb") as f:
        f.write(b"ok\nbad\0line\n")
    rc, o, e = run("encode-text", *M, "--file", lines, "--out", out)
    check(rc == 1 and lines in e and "line 2" in e and one_line(e),
          "encode-text: a NUL byte is an error naming the file and line")
    # A text longer than the model's 256 positions: refused before any
    # encoding, naming FILE:LINE and the limit; --truncate cuts it and says so.
    huge = " ".join(["word"] * 300)
    with open(lines, "w") as f:
        f.write("ok\nfine\n" + huge + "\n")
    if os.path.exists(out):
        os.unlink(out)
    rc, o, e = run("encode-text", *M, "--file", lines, "--out", out)
    check(rc == 1 and (lines + ":3:") in e and "(256)" in e and "--truncate" in e and
          one_line(e) and not os.path.exists(out),
          "encode-text: a text longer than max_position_embeddings is refused naming FILE:LINE")
    rc, o, e = run("encode-text", *M, "--truncate", "--file", lines, "--out", out)
    shape, fl = npy() if rc == 0 else ((), [])
    check(rc == 0 and shape == (3, D) and "truncated" in e and (lines + ":3") in e,
          "encode-text --truncate: the long text is cut, with a note naming it")
    rc, o, e = run("score", *M, "--image", img_a, "--text", "ok", huge)
    check(rc == 1 and "text 2" in e and "(256)" in e and one_line(e),
          "score: a text longer than max_position_embeddings is refused naming it")

    # ---- score ---------------------------------------------------------
    s_imgs, s_txts = [img_a, img_b, img_c], texts[:4]
    rc, o, e = run("score", *M, "--image", *s_imgs, "--text", *s_txts, "--json")
    check(rc == 0 and e == "", "score --json: exit 0, silent on stderr")
    try:
        js = json.loads(o)
    except ValueError:
        js = None
    check(js is not None, "score --json parses")
    if js:
        check(js["images"] == s_imgs and js["texts"] == s_txts, "score --json: images and texts")
        sc = js["scores"]
        check(len(sc) == 3 and all(len(r) == 4 for r in sc), "score --json: 3 x 4 matrix")
        check(all(abs(sc[i][j] - dot(singles[i], pos[j])) <= TOL
                  for i in range(3) for j in range(4)),
              "score: matrix equals the dot products of the embeddings")
        rc, o, e = run("score", *M, "--image", *s_imgs, "--text", *s_txts, "--json", "--logits")
        lg = json.loads(o)["scores"] if rc == 0 else None
        check(lg is not None and all(abs(lg[i][j] - sc[i][j] / 0.07) <= 1e-4
                                     for i in range(3) for j in range(4)),
              "score --logits without an adapter: cosines x 1/0.07")
        # The table: a header line, one line per image; all lines equally wide.
        rc, o, e = run("score", *M, "--image", *s_imgs, "--text", *s_txts)
        tl = o.rstrip("\n").split("\n")
        check(rc == 0 and len(tl) == 4 and len({len(l) for l in tl}) == 1,
              "score table: header + 3 rows, aligned")
        check(tl[1].startswith("png_rgb8.png") and "a photo of a cat" in tl[0],
              "score table: labelled with image basenames and texts")
        cells = tl[1].split()[1:]
        check(len(cells) == 4 and all(abs(float(c) - v) <= 1e-4 for c, v in zip(cells, sc[0])),
              "score table: values as in --json")
        rc, o, e = run("score", *M, "--text", "T" * 100, "--image", img_a)
        check(rc == 0 and "T" * 17 + "..." in o and "T" * 18 not in o,
              "score table: a long text is cut to 20 characters")
        rc, o, e = run("score", *M, "--image", img_a, "--image", img_b, "--text", "x", "--json")
        check(rc == 0 and json.loads(o)["images"] == [img_a, img_b], "--image may be repeated")

        # An adapter with only a logit scale (log 20): same cosines, logits x 20.
        adapter = os.path.join(tmp, "adapter")
        os.makedirs(adapter)
        hdr = json.dumps({"logit_scale": {"dtype": "F32", "shape": [1],
                                          "data_offsets": [0, 4]}}).encode()
        hdr += b" " * ((8 - len(hdr) % 8) % 8)
        with open(os.path.join(adapter, "soft_prompts.safetensors"), "wb") as f:
            f.write(struct.pack("<Q", len(hdr)) + hdr + struct.pack("<f", math.log(20.0)))
        A = ["--adapter", adapter]
        rc, o, e = run("score", *M, *A, "--image", *s_imgs, "--text", *s_txts, "--json")
        ac = json.loads(o)["scores"] if rc == 0 else None
        check(ac is not None and all(abs(ac[i][j] - sc[i][j]) <= TOL
                                     for i in range(3) for j in range(4)),
              "score --adapter (logit scale only): the same cosines")
        rc, o, e = run("score", *M, *A, "--image", *s_imgs, "--text", *s_txts, "--json",
                       "--logits")
        al = json.loads(o)["scores"] if rc == 0 else None
        check(al is not None and all(abs(al[i][j] - 20 * sc[i][j]) <= 1e-4
                                     for i in range(3) for j in range(4)),
              "score --adapter --logits: cosines x exp(logit_scale) = 20")
        missing_adapter = os.path.join(tmp, "no-such-adapter")
        rc, o, e = run("encode-text", *M, "--adapter", missing_adapter, "hi", "--out", out)
        check(rc == 1 and missing_adapter in e and one_line(e),
              "a missing adapter: exit 1, one line naming it")

    # ---- embed ---------------------------------------------------------
    raw_out = os.path.join(tmp, "raw.npy")
    toks = f"1,5,{image_token},7,9"
    rc, o, e = run("embed", *M, "--tokens", toks, "--image", img_a, "--out", out)
    check(rc == 0 and o == "" and e == "", "embed with an image: exit 0, silent")
    if rc != 0:
        print(e)
    rc2, o, e = run("embed", *M, "--tokens", toks, "--image", img_a, "--hidden", "--out", raw_out)
    if rc == 0 and rc2 == 0:
        shape, emb = npy()
        shape2, raw = npy(raw_out)
        check(shape == (1, D) and shape2 == (1, D), "embed: shape (1, D), with --hidden too")
        check(abs(dot(emb, emb) - 1) < TOL and abs(dot(raw, raw) - 1) > 1e-3,
              "embed: normalised by default, raw with --hidden")
        check(close(normalized(raw), emb), "embed: normalised(--hidden) == the default output")
    rc, o, e = run("embed", *M, "--tokens", "1 5 7", "--out", out)
    shape, _ = npy()
    check(rc == 0 and shape == (1, D), "embed: text-only ids, space-separated")
    rc, o, e = run("embed", *M, "--tokens", toks, "--out", out)
    check(rc == 1 and o == "" and one_line(e) and e.startswith("disclvlm: embed: "),
          "embed: image token without --image: exit 1, one line")

    # ---- usage errors: exit 2, nothing on stdout -------------------------
    for args in [("encode-image",), ("encode-image", *M, img_a),
                 ("encode-image", *M, "--out", out),
                 ("encode-image", *M, img_a, "--out", out, "--bogus"),
                 ("encode-image", "--model"),
                 ("encode-image", *M, "--threads", "-1", img_a, "--out", out),
                 ("encode-image", *M, "--threads", "two", img_a, "--out", out),
                 ("encode-text", *M, "--out", out),
                 ("encode-text", *M, "hi", "--file", lines, "--out", out),
                 ("encode-text", *M, "hi", "--out"),
                 ("embed", *M, "--out", out),
                 ("embed", *M, "--tokens", "1,x", "--out", out),
                 ("embed", *M, "--tokens", "", "--out", out),
                 ("embed", *M, "--tokens", "1", "stray", "--out", out),
                 ("score", *M, "--image", img_a),
                 ("score", *M, "--text", "x"),
                 ("score", *M, img_a, "--text", "x"),
                 ("score", "--image", img_a, "--text", "x"),
                 ("score", *M, "--image", img_a, "--text", "x", "--bogus")]:
        rc, o, e = run(*args)
        check(rc == 2 and o == "" and e.startswith("disclvlm: " + args[0] + ": ")
              and e.count("\n") == 1,
              "usage error exits 2 with one line 'disclvlm: COMMAND: ...': " + " ".join(
                  a.replace(tmp, "TMP") for a in args) + " -> " + e.strip())
    # A missing required option is named, not answered with the whole help.
    for args, what in [(("encode-text", *M, "--out", out), "a TEXT or --file LINES"),
                       (("encode-text", "hi", "--out", out), "--model DIR"),
                       (("encode-image", *M, img_a), "--out E.npy"),
                       (("encode-image", *M, "--out", out), "an IMAGE"),
                       (("score", *M, "--image", img_a), "--text TEXT..."),
                       (("score", "--image", img_a, "--text", "x"), "--model DIR"),
                       (("embed", *M, "--out", out), "--tokens IDS")]:
        rc, o, e = run(*args)
        check(rc == 2 and e == "disclvlm: %s: %s is required (see 'disclvlm %s --help')\n"
              % (args[0], what, args[0]), "missing %s named: %s" % (what, e.strip()))
    rc, o, e = run("encode-image", *M, "--threads", "99999", img_a, "--out", out)
    check(rc == 2 and "0..4096" in e, "a range error gives the range: " + e.strip())
    rc, o, e = run("encode-image", *M, tmp, "--out", out)
    check(rc == 1 and "is a directory" in e and one_line(e),
          "a directory given as an image says so: " + e.strip())

    # ---- failures: exit 1, one line naming the file, no output file -------
    os.path.exists(out) and os.remove(out)
    missing_model = os.path.join(tmp, "no-such-model")
    for cmd, extra in [("encode-image", [img_a, "--out", out]),
                       ("encode-text", ["hi", "--out", out]),
                       ("embed", ["--tokens", "1,2", "--out", out]),
                       ("score", ["--image", img_a, "--text", "hi"])]:
        rc, o, e = run(cmd, "--model", missing_model, *extra)
        check(rc == 1 and o == "" and one_line(e) and e.startswith(f"disclvlm: {cmd}: ") and
              missing_model in e and not os.path.exists(out),
              f"{cmd} with a missing model: exit 1, one line naming it")
    missing_img = os.path.join(tmp, "no-such.png")
    for cmd, extra in [("encode-image", [img_a, missing_img, "--out", out]),
                       ("embed", ["--tokens", toks, "--image", missing_img, "--out", out]),
                       ("score", ["--image", missing_img, "--text", "hi"])]:
        rc, o, e = run(cmd, *M, *extra)
        check(rc == 1 and o == "" and one_line(e) and missing_img in e and
              not os.path.exists(out), f"{cmd} with a missing image: exit 1, one line naming it")
    rc, o, e = run("encode-image", *M, img_a, "--out", os.path.join(tmp, "no-dir", "e.npy"))
    check(rc == 1 and "no-dir" in e and one_line(e), "unwritable --out: exit 1 naming it")
    rc, o, e = run("encode-image", "--model", model, "--backend", "tpu", img_a, "--out", out)
    check(rc == 1 and "tpu" in e and one_line(e), "unknown backend: exit 1 naming it")

    # ---- progress: only when stderr is a terminal -------------------------
    rc, o, e = run("encode-image", *M, *ten, "--out", out)
    check(rc == 0 and e == "", "no progress line when stderr is not a terminal")
    master, slave = pty.openpty()
    p = subprocess.Popen([exe, "encode-image", *M, *ten, "--out", out],
                         stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    got = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    os.close(master)
    rc = p.wait(timeout=300)
    text = got.decode("utf-8", "replace")
    check(rc == 0 and "\r" in text and "encoded 8/10 images" in text and
          "encoded 10/10 images" in text and "images/s" in text,
          "progress lines on a terminal (8/10, 10/10, rate)")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
