#!/usr/bin/env python3
"""`disclvlm eval retrieval / sugarcrepe / winoground / classify` end to end
on fixtures built here: a tiny generated model with a tokenizer, PNG images
made on the fly, the data in every input format (Karpathy JSON, JSONL, CSV,
TSV, WebDataset tar shards; SugarCrepe JSON; Winoground JSONL; class
folders and CSV). The metrics are recomputed by a stdlib-only reference
from the embeddings that `disclvlm encode-image / encode-text --out .npy`
write. Scores within EPS of each other could be ordered either way by the
two float paths, so the reference gives a range (ties resolved each way)
and the tool's number must lie in it. Also: --json (hashes, counts),
--limit, --cache, progress lines, usage errors (exit 2) and failures
(exit 1, one line naming the file).

usage: test_cli_eval.py DISCLVLM_EXE GEN_TINY_CHECKPOINT_PY
"""
import ast
import csv
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib

exe, gen = sys.argv[1:3]
failures = []
EPS = 1e-5


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def run(*args, cwd=None):
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=300, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def read_npy(path):
    with open(path, "rb") as f:
        blob = f.read()
    assert blob[:6] == b"\x93NUMPY"
    (hlen,) = struct.unpack("<H", blob[8:10])
    d = ast.literal_eval(blob[10:10 + hlen].decode("latin1").strip())
    n, dim = d["shape"]
    flat = struct.unpack("<%df" % (n * dim), blob[10 + hlen:])
    return [list(flat[i * dim:(i + 1) * dim]) for i in range(n)]


def png(path, w, h, pixel):
    """An 8-bit RGB PNG whose pixel (x, y) is pixel(x, y)."""
    raw = b"".join(b"\x00" + bytes(c for x in range(w) for c in pixel(x, y)) for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)
    return data


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


# ---- Reference metrics (ties against the model, with an EPS band) -----------

def recall_range(S, txt_img, n_img, ks, direction):
    """(lo, hi) percentages of Recall@k for each k: lo counts near-ties
    against the model, hi in its favour."""
    out = {}
    if direction == "i2t":
        ranks = []
        for i in range(n_img):
            right = [j for j, m in enumerate(txt_img) if m == i]
            best = max(S[i][j] for j in right)
            wrong = [S[i][j] for j, m in enumerate(txt_img) if m != i]
            ranks.append((sum(s >= best - EPS for s in wrong), sum(s >= best + EPS for s in wrong)))
    else:
        ranks = []
        for j, m in enumerate(txt_img):
            t = S[m][j]
            wrong = [S[i][j] for i in range(n_img) if i != m]
            ranks.append((sum(s >= t - EPS for s in wrong), sum(s >= t + EPS for s in wrong)))
    for k in ks:
        out[k] = (100.0 * sum(hi < k for hi, _ in ranks) / len(ranks),
                  100.0 * sum(lo < k for _, lo in ranks) / len(ranks))
    return out


def in_range(v, r):
    return r[0] - 1e-6 <= v <= r[1] + 1e-6


def wins_range(pairs):
    """pairs of (right, wrong) scores -> (lo, hi) count of strict wins."""
    return (sum(a > b + EPS for a, b in pairs), sum(a > b - EPS for a, b in pairs))


tmp = tempfile.mkdtemp(prefix="dlv-cli-eval-")
try:
    model = os.path.join(tmp, "model")
    p = subprocess.run([sys.executable, gen, model, "--vision", "clip", "--text", "llama",
                        "--dtype", "f32", "--with-tokenizer"], capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout + p.stderr)
        print("FAIL cannot generate the tiny model with a tokenizer")
        sys.exit(1)
    M = ["--model", model, "--threads", "2"]

    # ---- Images: 8 distinct pictures ---------------------------------------
    imgdir = os.path.join(tmp, "images")
    os.makedirs(os.path.join(imgdir, "val2014"))
    colours = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (240, 240, 20),
               (200, 30, 200), (20, 220, 220), (250, 250, 250), (10, 10, 10)]
    names, blobs = [], {}
    for k, c in enumerate(colours):
        name = "val2014/img%d.png" % k
        blobs[name] = png(os.path.join(imgdir, name), 24 + 4 * k, 20 + 2 * k,
                          lambda x, y, c=c, k=k: (c[0] ^ (x * k & 63), c[1] ^ (y * 5 & 31),
                                                  (c[2] + x + y) % 256))
        names.append(name)
    paths = [os.path.join(imgdir, n) for n in names]

    words = ["red", "green", "blue", "yellow", "purple", "cyan", "white", "black"]
    things = ["square", "circle", "dog", "cat", "boat"]
    caps = [["a %s %s" % (w, t) for t in things] for w in words]  # 5 captions per image
    all_texts = [c for cs in caps for c in cs]

    # Reference embeddings through encode-image / encode-text.
    rc, _, e = run("encode-image", *M, *paths, "--out", os.path.join(tmp, "img.npy"))
    check(rc == 0, "encode-image for the reference: " + e.strip())
    tf = os.path.join(tmp, "texts.txt")

    def text_emb(texts):
        with open(tf, "w") as f:
            f.write("\n".join(texts) + "\n")
        rc, _, e = run("encode-text", *M, "--file", tf, "--out", os.path.join(tmp, "t.npy"))
        assert rc == 0, e
        return read_npy(os.path.join(tmp, "t.npy"))

    IMG = read_npy(os.path.join(tmp, "img.npy"))
    TXT = text_emb(all_texts)
    img_of = dict(zip(names, IMG))
    txt_of = dict(zip(all_texts, TXT))

    def check_retrieval(label, out, img_names, texts, txt_img):
        S = [[dot(img_of[n], txt_of[t]) for t in texts] for n in img_names]
        ref_i = recall_range(S, txt_img, len(img_names), (1, 5, 10), "i2t")
        ref_t = recall_range(S, txt_img, len(img_names), (1, 5, 10), "t2i")
        m = out["metrics"]
        ok = out["counts"] == {"images": len(img_names), "texts": len(texts)}
        for k in (1, 5, 10):
            ok &= in_range(m["image_to_text"]["R@%d" % k], ref_i[k])
            ok &= in_range(m["text_to_image"]["R@%d" % k], ref_t[k])
        check(ok, "%s: R@1/5/10 both ways match the reference (%s; ref i2t %s t2i %s)"
              % (label, json.dumps(m), ref_i, ref_t))

    # ---- retrieval: Karpathy JSON ------------------------------------------
    karpathy = {"images": [{"filepath": "val2014", "filename": n.split("/")[1],
                            "split": "test" if k < 6 else "train", "imgid": k,
                            "sentences": [{"raw": c, "tokens": c.split()} for c in caps[k]]}
                           for k, n in enumerate(names)], "dataset": "coco"}
    kp = os.path.join(tmp, "dataset_coco.json")
    with open(kp, "w") as f:
        json.dump(karpathy, f)
    rc, o, e = run("eval", "retrieval", *M, "--data", kp, "--images", imgdir, "--json")
    check(rc == 0, "retrieval karpathy --json: exit 0 " + e.strip())
    out = json.loads(o) if rc == 0 else None
    if out:
        test_txt = [c for cs in caps[:6] for c in cs]
        check_retrieval("karpathy test split", out, names[:6], test_txt,
                        [k // 5 for k in range(30)])
        with open(kp, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        check(out["data"] == [{"path": kp, "sha256": sha}], "JSON has the data file's SHA-256")
        check(out["model"] == model and out["adapter"] is None and out["split"] == "test"
              and "prompts" in out and "tie_rule" in out and out["task"] == "retrieval",
              "JSON has model, adapter, split, prompts, tie rule")
    rc, o, e = run("eval", "retrieval", *M, "--data", kp, "--images", imgdir, "--split",
                   "train")
    check(rc == 0 and "2 images, 10 texts" in o and "image -> text" in o
          and "text -> image" in o and "R@10" in o, "retrieval table, --split train\n" + o + e)
    rc, o, e = run("eval", "retrieval", *M, "--data", kp, "--images", imgdir, "--limit", "2",
                   "--json")
    if check(rc == 0, "retrieval --limit 2"):
        out = json.loads(o)
        check(out["counts"] == {"images": 2, "texts": 10} and out["limit"] == 2,
              "--limit 2 keeps 2 images and their captions")
        check_retrieval("karpathy --limit 2", out, names[:2], [c for cs in caps[:2] for c in cs],
                        [k // 5 for k in range(10)])

    # ---- retrieval: JSONL, CSV, TSV, WebDataset ----------------------------
    # 6 images, 2 captions each, interleaved so that merging by path matters.
    pairs = [(names[k], caps[k][r]) for r in range(2) for k in range(6)]
    exp_names = names[:6]
    exp_texts = [c for _, c in pairs]
    exp_map = [k % 6 for k in range(12)]
    jl = os.path.join(imgdir, "pairs.jsonl")  # image paths relative to the file
    with open(jl, "w") as f:
        for n, c in pairs:
            f.write(json.dumps({"image": n, "caption": c, "long_caption": c + " in detail"}) + "\n")
    cp = os.path.join(tmp, "pairs.csv")  # relative to --images
    with open(cp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["title", "filepath"])
        for n, c in pairs:
            w.writerow([c, n])
    tp = os.path.join(tmp, "pairs.tsv")
    with open(tp, "w") as f:
        f.write("filepath\ttitle\n" + "".join("%s\t%s\n" % (n, c) for n, c in pairs))
    shard_dir = os.path.join(tmp, "shards")
    os.makedirs(shard_dir)
    for s in range(2):  # WebDataset: one sample per pair, images never merged
        with tarfile.open(os.path.join(shard_dir, "%05d.tar" % s), "w") as t:
            for k in range(6 * s, 6 * s + 6):
                n, c = pairs[k]
                for ext, data in (("png", blobs[n]),
                                  ("txt" if k % 2 else "json",
                                   (c if k % 2 else json.dumps({"caption": c})).encode())):
                    ti = tarfile.TarInfo("%06d.%s" % (k, ext))
                    ti.size = len(data)
                    t.addfile(ti, io.BytesIO(data))
    for label, data, extra in (("jsonl", jl, []), ("csv", cp, ["--images", imgdir]),
                               ("tsv", tp, ["--images", imgdir])):
        rc, o, e = run("eval", "retrieval", *M, "--data", data, *extra, "--json")
        if check(rc == 0, "retrieval %s: exit 0 %s" % (label, e.strip())):
            check_retrieval("retrieval " + label, json.loads(o), exp_names, exp_texts, exp_map)
    pattern = os.path.join(shard_dir, "{00000..00001}.tar")
    rc, o, e = run("eval", "retrieval", *M, "--data", pattern, "--json")
    if check(rc == 0, "retrieval webdataset: exit 0 " + e.strip()):
        out = json.loads(o)
        check_retrieval("retrieval webdataset", out, [n for n, _ in pairs], exp_texts,
                        list(range(12)))
        h = hashlib.sha256()
        for s in range(2):
            with open(os.path.join(shard_dir, "%05d.tar" % s), "rb") as f:
                h.update(f.read())
        check(out["data"][0]["sha256"] == h.hexdigest(), "webdataset hash covers the shards")

    # ---- sugarcrepe ----------------------------------------------------------
    subsets = []
    for s, (a, b) in enumerate((("square", "circle"), ("dog", "cat"))):
        d = {}
        for k in range(8):
            d[str(100 + k)] = {"filename": names[k], "caption": "a %s %s" % (words[k], a),
                               "negative_caption": "a %s %s" % (words[(k + 1 + s) % 8], b)}
        path = os.path.join(tmp, "sc_%d.json" % s)
        with open(path, "w") as f:
            json.dump(d, f)
        subsets.append((path, d))
    sc_texts = sorted({v[k] for _, d in subsets for v in d.values()
                       for k in ("caption", "negative_caption")})
    txt_of.update(zip(sc_texts, text_emb(sc_texts)))
    rc, o, e = run("eval", "sugarcrepe", *M, "--data", subsets[0][0], subsets[1][0], "--images",
                   imgdir, "--json")
    if check(rc == 0, "sugarcrepe two subsets --json: exit 0 " + e.strip()):
        out = json.loads(o)
        ok = len(out["subsets"]) == 2
        for (path, d), r in zip(subsets, out["subsets"]):
            lo, hi = wins_range([(dot(img_of[v["filename"]], txt_of[v["caption"]]),
                                  dot(img_of[v["filename"]], txt_of[v["negative_caption"]]))
                                 for v in d.values()])
            ok &= r["data"] == path and r["items"] == 8 and lo <= r["correct"] <= hi
            ok &= abs(r["accuracy"] - 100.0 * r["correct"] / 8) < 1e-9
            print("     subset %s: %d correct, reference %d..%d" % (path, r["correct"], lo, hi))
        check(ok, "sugarcrepe accuracies match the reference")
    rc, o, e = run("eval", "sugarcrepe", *M, "--data", subsets[0][0], subsets[1][0], "--images",
                   imgdir, "--limit", "3")
    check(rc == 0 and o.count("\n") == 3 and "accuracy" in o and " 3 " in o,
          "sugarcrepe table, one row a subset, --limit 3\n" + o + e)

    # ---- winoground ----------------------------------------------------------
    wdir = os.path.join(tmp, "wino")
    os.makedirs(wdir)
    witems = []
    for k in range(4):
        it = {"id": k, "image_0": "ex_%d_img_0" % k, "image_1": "ex_%d_img_1" % k,
              "caption_0": "a %s %s" % (words[2 * k], things[k % 5]),
              "caption_1": "a %s %s" % (words[2 * k + 1], things[k % 5]), "tag": "x"}
        for j in range(2):
            with open(os.path.join(wdir, it["image_%d" % j] + ".png"), "wb") as f:
                f.write(blobs[names[2 * k + j]])
        witems.append(it)
    wp = os.path.join(tmp, "examples.jsonl")
    with open(wp, "w") as f:
        f.write("".join(json.dumps(it) + "\n" for it in witems))
    wt = sorted({it["caption_%d" % j] for it in witems for j in range(2)})
    txt_of.update(zip(wt, text_emb(wt)))
    rc, o, e = run("eval", "winoground", *M, "--data", wp, "--images", wdir, "--json")
    if check(rc == 0, "winoground --json: exit 0 " + e.strip()):
        out = json.loads(o)
        T = I = G = (0, 0)
        tl = th = il = ih = gl = gh = 0
        for k, it in enumerate(witems):
            s = [[dot(txt_of[it["caption_%d" % c]], img_of[names[2 * k + i]]) for i in range(2)]
                 for c in range(2)]
            t_hi = s[0][0] > s[1][0] - EPS and s[1][1] > s[0][1] - EPS
            t_lo = s[0][0] > s[1][0] + EPS and s[1][1] > s[0][1] + EPS
            i_hi = s[0][0] > s[0][1] - EPS and s[1][1] > s[1][0] - EPS
            i_lo = s[0][0] > s[0][1] + EPS and s[1][1] > s[1][0] + EPS
            tl += t_lo
            th += t_hi
            il += i_lo
            ih += i_hi
            gl += t_lo and i_lo
            gh += t_hi and i_hi
        m = out["metrics"]
        check(out["counts"] == {"items": 4}
              and 25 * tl <= m["text"] + 1e-9 and m["text"] <= 25 * th + 1e-9
              and 25 * il <= m["image"] + 1e-9 and m["image"] <= 25 * ih + 1e-9
              and 25 * gl <= m["group"] + 1e-9 and m["group"] <= 25 * gh + 1e-9,
              "winoground text/image/group match the reference (%s; ref text %d..%d image "
              "%d..%d group %d..%d of 4)" % (m, tl, th, il, ih, gl, gh))
    rc, o, e = run("eval", "winoground", *M, "--data", wp, "--images", wdir)
    check(rc == 0 and "group" in o and "4 items" in o, "winoground table\n" + o)

    # ---- classify: folder and CSV, prompt ensembling -------------------------
    classes = words[:4]
    cdir = os.path.join(tmp, "classes")
    rows = []
    for c, name in enumerate(classes):
        os.makedirs(os.path.join(cdir, name))
        for j in range(2):
            src = names[(2 * c + j) % 8]
            dst = os.path.join(cdir, name, "%d.png" % j)
            shutil.copy(os.path.join(imgdir, src), dst)
            rows.append((dst, name if j == 0 else str(c), src, c))
    namesf = os.path.join(tmp, "names.txt")
    with open(namesf, "w") as f:
        f.write("\n".join(classes) + "\n")
    tplf = os.path.join(tmp, "templates.txt")
    tpls = ["a photo of a {}.", "a {} thing", "{c}"]
    with open(tplf, "w") as f:
        f.write("\n".join(tpls) + "\n")
    ccsv = os.path.join(tmp, "cls.csv")
    with open(ccsv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["filepath", "label"])
        for dst, lab, _, _ in rows:
            w.writerow([dst, lab])
    prompts = [t.replace("{}", n).replace("{c}", n) for n in classes for t in tpls]
    PE = text_emb(prompts)
    cls_emb = []
    for c in range(len(classes)):
        acc = [0.0] * len(PE[0])
        for t in range(len(tpls)):
            v = PE[c * len(tpls) + t]
            nv = dot(v, v) ** 0.5
            acc = [a + x / nv for a, x in zip(acc, v)]
        na = dot(acc, acc) ** 0.5
        cls_emb.append([a / na for a in acc])
    top = {1: [0, 0], 5: [0, 0]}
    for _, _, src, c in rows:
        s = [dot(img_of[src], e) for e in cls_emb]
        hi = sum(1 for k in range(len(classes)) if k != c and s[k] >= s[c] - EPS)
        lo = sum(1 for k in range(len(classes)) if k != c and s[k] >= s[c] + EPS)
        for K in (1, 5):
            top[K][0] += hi < K
            top[K][1] += lo < K
    for label, data in (("folder", cdir), ("csv", ccsv)):
        rc, o, e = run("eval", "classify", *M, "--data", data, "--classes", namesf, "--templates",
                       tplf, "--json")
        if check(rc == 0, "classify %s --json: exit 0 %s" % (label, e.strip())):
            out = json.loads(o)
            m = out["metrics"]
            n = len(rows)
            check(out["counts"] == {"examples": n, "classes": 4} and out["templates"] == tpls
                  and 100 * top[1][0] / n - 1e-9 <= m["top1"] <= 100 * top[1][1] / n + 1e-9
                  and m["top5"] == 100.0,
                  "classify %s: top-1/top-5 match the prompt-ensembled reference (%s; ref top-1 "
                  "%d..%d of %d)" % (label, m, top[1][0], top[1][1], n))
    rc, o, e = run("eval", "classify", *M, "--data", cdir, "--classes", namesf, "--limit", "4")
    check(rc == 0 and "4 examples, 4 classes, 1 template" in o and "top-5" in o,
          "classify table, default template, --limit 4\n" + o + e)

    # ---- --cache ------------------------------------------------------------
    cache = os.path.join(tmp, "cache")
    args = ["eval", "retrieval", *M, "--data", kp, "--images", imgdir, "--json"]
    rc1, o1, e1 = run(*args, "--cache", cache)
    files1 = sorted(os.listdir(cache)) if os.path.isdir(cache) else []
    rc2, o2, e2 = run(*args, "--cache", cache)
    rc3, o3, _ = run(*args)
    check(rc1 == 0 and rc2 == 0 and len(files1) == 2 and sorted(os.listdir(cache)) == files1
          and json.loads(o1)["metrics"] == json.loads(o2)["metrics"] == json.loads(o3)["metrics"],
          "--cache: 2 files written once, same metrics when reused " + e1 + e2)
    # A cached file is really read: corrupt it and the tool says so and recomputes.
    with open(os.path.join(cache, files1[0]), "r+b") as f:
        f.truncate(20)
    rc4, o4, e4 = run(*args, "--cache", cache)
    check(rc4 == 0 and "not a valid cache file" in e4
          and json.loads(o4)["metrics"] == json.loads(o1)["metrics"],
          "--cache: a damaged file is reported and recomputed")
    # The compute and weight dtypes change the embeddings, so they are part of
    # the key: a bf16 run must not reuse the f32 entries.
    rc5, o5, e5 = run(*args, "--cache", cache, "--compute", "bf16")
    rc6, o6, e6 = run(*args, "--cache", cache, "--weight-dtype", "bf16")
    check(rc5 == 0 and rc6 == 0 and len(os.listdir(cache)) == 6
          and json.loads(o5)["compute"] == "bf16" and json.loads(o6)["weight_dtype"] == "bf16",
          "--cache: --compute bf16 and --weight-dtype bf16 get entries of their own "
          + str(sorted(os.listdir(cache))) + e5 + e6)

    # ---- errors and usage ---------------------------------------------------
    os.remove(os.path.join(imgdir, names[7]))
    rc, o, e = run("eval", "retrieval", *M, "--data", kp, "--images", imgdir, "--split", "train")
    check(rc == 1 and names[7] in e and len(e.strip().splitlines()) == 1,
          "a missing image: exit 1, one line naming it: " + e.strip())
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"image": "a.png", "caption": "x"}\n{"image": "b.png"\n')
    rc, o, e = run("eval", "retrieval", *M, "--data", bad)
    check(rc == 1 and "bad.jsonl:2" in e, "a malformed JSONL line: exit 1 naming file:line: "
          + e.strip())
    for args, what in ((["eval"], "no task"), (["eval", "nope"], "unknown task"),
                       (["eval", "retrieval", *M], "no --data"),
                       (["eval", "classify", *M, "--data", cdir], "classify without --classes"),
                       (["eval", "winoground", *M, "--data", wp, "--split", "x"],
                        "--split on winoground"),
                       (["eval", "retrieval", *M, "--data", kp, "--limit", "0"], "--limit 0"),
                       (["eval", "retrieval", *M, "--data", kp, "--bogus"], "unknown option"),
                       (["eval", "retrieval", *M, "--data", kp, kp], "two --data for retrieval")):
        rc, o, e = run(*args)
        check(rc == 2 and o == "" and e.strip() != "", "usage error (%s): exit 2" % what)
    rc, o, e = run("eval", "--help")
    check(rc == 0 and all(t in o for t in ("retrieval", "sugarcrepe", "winoground", "classify",
                                            "--limit", "--cache", "--json")), "eval --help")
    rc, o, e = run("--help")
    check("eval" in o, "disclvlm --help lists eval")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print("%d check(s) failed:" % len(failures))
    for f in failures:
        print("  " + f)
    sys.exit(1)
print("all checks passed")
