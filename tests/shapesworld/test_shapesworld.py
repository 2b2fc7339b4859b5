#!/usr/bin/env python3
"""`disclvlm shapesworld` (docs/shapesworld.md) on small N: determinism (two
runs byte-identical, another seed differs, a smaller N is a prefix), counts,
the JSON schemas, every caption checked for truth against scenes.jsonl by a
small parser of the caption grammar (positives and the 5 retrieval
paraphrases true, negatives false), the word multisets of the swap
negatives, the held-out colour-shape pairs (absent from train / val images
and captions, present in test), the PNGs (decoded here: size, and each
object's centre pixel has its colour; and `disclvlm preprocess`), the long
captions' Llama-2 token counts (when ../shared/assets is there), and
`disclvlm eval sugarcrepe` / `eval retrieval` reading the files with a tiny
model. Usage errors exit 2, failures 1.

usage: test_shapesworld.py DISCLVLM_EXE GEN_TINY_CHECKPOINT_PY
"""
import collections
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

exe, gen = sys.argv[1:3]
failures = []

COLORS = ["red", "green", "blue", "yellow", "purple", "black"]
RGB = {"red": (220, 30, 30), "green": (30, 160, 50), "blue": (30, 70, 220),
       "yellow": (235, 195, 20), "purple": (140, 40, 180), "black": (25, 25, 25)}
SHAPES = ["circle", "square", "triangle", "star", "diamond"]
PLURAL = {s + "s": s for s in SHAPES}
HELDOUT = [("red", "triangle"), ("green", "star"), ("blue", "diamond"),
           ("yellow", "circle"), ("purple", "square")]
NEG_TYPES = ["attribute_swap", "object_swap", "relation_flip", "attribute_replace",
             "count_change", "object_replace"]
SPLITS = {"train": 60, "val": 10, "test": 40}
CELLS = ["in the top left corner", "at the top", "in the top right corner",
         "on the left", "in the center", "on the right",
         "in the bottom left corner", "at the bottom", "in the bottom right corner"]
REL = {"left of": "L", "to the left of": "L", "right of": "R", "to the right of": "R",
       "above": "A", "over": "A", "below": "B", "under": "B"}
NUM = {"one": 1, "two": 2, "three": 3, "four": 4}


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def run(*args):
    p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def generate(out, *extra):
    args = ["shapesworld", "--out", out, "--train", str(SPLITS["train"]), "--val",
            str(SPLITS["val"]), "--test", str(SPLITS["test"]), *extra]
    rc, so, se = run(*args)
    check(rc == 0, "shapesworld %s: exit 0 (%s)" % (" ".join(extra), se.strip()))


def tree(root):
    """{relative path: bytes} of every file under root."""
    files = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                files[os.path.relpath(p, root)] = f.read()
    return files


def words(s):
    return s.replace(",", " ").split()


# ---- PNG decoding (8-bit RGB, non-interlaced: what the generator writes) -----

def decode_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature"
    pos, idat, chunks = 8, b"", []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        t = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert zlib.crc32(t + body) == crc, "chunk CRC"
        chunks.append(t)
        if t == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif t == b"IDAT":
            idat += body
        pos += 12 + n
    assert (depth, ctype, interlace) == (8, 2, 0), "8-bit RGB, not interlaced"
    raw = zlib.decompress(idat)
    stride = 3 * w
    assert len(raw) == h * (stride + 1), "IDAT size"
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - 3] if i >= 3 else 0
            b = prev[i]
            c = prev[i - 3] if i >= 3 else 0
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, rows, chunks


# ---- The caption grammar, evaluated against a scene ---------------------------

NP_RE = r"(?:a )?(?:(small|large) )?(%s) (%s)" % ("|".join(COLORS), "|".join(SHAPES))
REL_RE = "|".join(sorted(REL, key=len, reverse=True))


def relation(a, b):
    """Object a's relation to b, by the dominant axis (as the generator)."""
    dx, dy = b["x"] - a["x"], b["y"] - a["y"]
    if abs(dx) >= abs(dy):
        return "L" if dx > 0 else "R"
    return "A" if dy > 0 else "B"


def cell(o, size):
    col = min(2, int(o["x"] * 16) * 3 // (size * 16))
    row = min(2, int(o["y"] * 16) * 3 // (size * 16))
    return row * 3 + col


def np_true(m, scene):
    """(size, colour, shape) names an object of the scene: its index, or None."""
    size, color, shape = m
    for i, o in enumerate(scene["objects"]):
        if o["color"] == color and o["shape"] == shape and (size is None or o["size"] == size):
            return i
    return None


def caption_true(cap, scene, size):
    """True / False for a caption in the grammar; raises on anything else."""
    objs = scene["objects"]
    # count captions: "two circles and one square", "one circle, one star and one square"
    cm = re.fullmatch(r"(?:(\w+ \w+), )?(?:(\w+ \w+) and )?(\w+ \w+)", cap)
    if cm and all(g is None or g.split()[0] in NUM for g in cm.groups()):
        want = collections.Counter()
        for g in cm.groups():
            if g:
                n, s = g.split()
                want[PLURAL.get(s, s)] += NUM[n]
        return want == collections.Counter(o["shape"] for o in objs)
    c = cap
    if c.startswith("a picture of "):
        c = c[len("a picture of "):]
    cells = "|".join(CELLS)
    one = (re.fullmatch(r"(?:there is )?%s (%s)" % (NP_RE, cells), c)
           or re.fullmatch(r"(%s), %s" % (cells, NP_RE), c))
    if one:
        g = one.groups()
        place, np = (g[3], g[:3]) if g[3] in CELLS else (g[0], g[1:])
        i = np_true(np, scene)
        return len(objs) == 1 and i is not None and CELLS.index(place) == cell(objs[i], size)
    rel = re.fullmatch(r"%s (%s) %s(?:, which is (%s) %s)?" % (NP_RE, REL_RE, NP_RE, REL_RE,
                                                                NP_RE), c)
    if not rel:
        raise ValueError("caption outside the grammar: %r" % cap)
    g = rel.groups()
    nps = [g[0:3], g[4:7]] + ([g[8:11]] if g[7] else [])
    rels = [g[3]] + ([g[7]] if g[7] else [])
    idx = [np_true(n, scene) for n in nps]
    if None in idx or len(set(idx)) != len(idx) or len(idx) != len(objs):
        return False
    return all(relation(objs[idx[k]], objs[idx[k + 1]]) == REL[r] for k, r in enumerate(rels))


def main():
    tmp = tempfile.mkdtemp(prefix="dlv-shapesworld-")
    a, b, c = (os.path.join(tmp, x) for x in ("a", "b", "c"))
    generate(a, "--seed", "7")
    generate(b, "--seed", "7")
    generate(c, "--seed", "8")
    ta, tb, tc = tree(a), tree(b), tree(c)
    check(ta == tb, "same seed: byte-identical trees (%d files)" % len(ta))
    check(sorted(ta) == sorted(tc), "another seed: the same file names")
    check(sum(ta[k] != tc[k] for k in ta) > 100, "another seed: the contents differ")
    d = os.path.join(tmp, "prefix")
    rc, _, _ = run("shapesworld", "--out", d, "--seed", "7", "--train", "5", "--val", "0",
                   "--test", "10")
    lines = open(os.path.join(a, "test.jsonl")).read().splitlines()
    check(rc == 0 and open(os.path.join(d, "test.jsonl")).read().splitlines() == lines[:10],
          "--test 10 is a prefix of --test 40")
    check(all(ta["images/test/%05d.png" % i] == tree(d)["images/test/%05d.png" % i]
              for i in range(10)), "--test 10: the same PNGs")

    # ---- counts and schemas
    info = json.load(open(os.path.join(a, "info.json")))
    check(info["images"] == SPLITS and info["seed"] == 7 and info["size"] == 64, "info.json")
    check([tuple(p) for p in info["heldout_pairs"]] == HELDOUT, "info.json: held-out pairs")
    scenes = {}
    for line in open(os.path.join(a, "scenes.jsonl")):
        s = json.loads(line)
        scenes[s["image"]] = s
    check(len(scenes) == sum(SPLITS.values()), "scenes.jsonl: one line per image")
    data = {}
    for split, n in SPLITS.items():
        rows = [json.loads(x) for x in open(os.path.join(a, split + ".jsonl"))]
        data[split] = rows
        check(len(rows) == n, "%s.jsonl: %d lines" % (split, n))
        check(all(sorted(r) == ["caption", "image", "long_caption"] and
                  all(isinstance(v, str) and v for v in r.values()) for r in rows),
              "%s.jsonl: {image, caption, long_caption} strings" % split)
        check([r["image"] for r in rows] == ["images/%s/%05d.png" % (split, i)
                                             for i in range(n)], "%s.jsonl: image paths" % split)
        pngs = sorted(os.listdir(os.path.join(a, "images", split)))
        check(pngs == ["%05d.png" % i for i in range(n)], "images/%s: %d PNGs" % (split, n))
        check(all(scenes[r["image"]]["split"] == split and
                  1 <= len(scenes[r["image"]]["objects"]) <= 3 for r in rows),
              "%s: scenes of 1-3 objects" % split)

    # ---- captions are true of their scenes
    bad = []
    for split, rows in data.items():
        for r in rows:
            if not caption_true(r["caption"], scenes[r["image"]], 64):
                bad.append(r["caption"])
            lc = r["long_caption"]
            for o in scenes[r["image"]]["objects"]:
                if "A %s %s %s is" % (o["size"], o["color"], o["shape"]) not in lc:
                    bad.append(lc)
    check(not bad, "short captions true, long captions name every object (%s)" % bad[:2])
    n_obj = collections.Counter(len(s["objects"]) for s in scenes.values())
    check(set(n_obj) == {1, 2, 3}, "scenes with 1, 2 and 3 objects: %s" % dict(n_obj))
    check(all(len(s["objects"]) == len({o["color"] for o in s["objects"]})
              for s in scenes.values()), "the colours in a scene are distinct")

    # ---- held-out pairs
    heldout_text = [" %s %s" % p for p in HELDOUT]
    for split in ("train", "val"):
        objs = [(o["color"], o["shape"]) for r in data[split]
                for o in scenes[r["image"]]["objects"]]
        check(not any(p in HELDOUT for p in objs), "%s: no held-out pair in the images" % split)
        text = " ".join(" " + r["caption"] + " " + r["long_caption"].lower() for r in data[split])
        check(not any(h in text for h in heldout_text),
              "%s: no held-out pair in the captions" % split)
    test_flags = [scenes[r["image"]]["heldout"] for r in data["test"]]
    check(test_flags == [i % 2 == 0 for i in range(SPLITS["test"])],
          "test: even images hold a held-out pair, odd ones none")
    for i, r in enumerate(data["test"]):
        has = any((o["color"], o["shape"]) in HELDOUT for o in scenes[r["image"]]["objects"])
        if has != test_flags[i]:
            check(False, "test %d: heldout flag matches the objects" % i)
    text = " ".join(" " + r["caption"] + " " + r["long_caption"].lower() for r in data["test"])
    seen = [h for h in heldout_text if h in text]
    check(len(seen) >= 3, "test captions mention held-out pairs: %s" % seen)

    # ---- hard negatives
    for t in NEG_TYPES:
        path = os.path.join(a, "sugarcrepe", t + ".json")
        items = json.load(open(path))
        check(isinstance(items, dict) and len(items) > 0, "%s: %d items" % (t, len(items)))
        ok_schema = all(sorted(v) == ["caption", "filename", "negative_caption"] and
                        os.path.isfile(os.path.join(a, v["filename"])) and
                        v["filename"] == "images/test/%s.png" % k for k, v in items.items())
        check(ok_schema, "%s: {filename, caption, negative_caption}, files under DIR" % t)
        wrong = []
        for k, v in items.items():
            sc = scenes[v["filename"]]
            pos, neg = v["caption"], v["negative_caption"]
            if pos == neg or not caption_true(pos, sc, 64) or caption_true(neg, sc, 64):
                wrong.append((pos, neg))
            wp, wn = collections.Counter(words(pos)), collections.Counter(words(neg))
            if t in ("attribute_swap", "object_swap") and wp != wn:
                wrong.append(("words", pos, neg))
            if t == "relation_flip":
                diff = sorted((wp - wn) + (wn - wp))
                if diff not in (["left", "right"], ["above", "below"]):
                    wrong.append(("relation", pos, neg))
            if t == "attribute_replace":
                new = list((wn - wp).elements())
                if (len(new) != 1 or new[0] not in COLORS or
                        new[0] in {o["color"] for o in sc["objects"]}):
                    wrong.append(("replace", pos, neg))
            if t == "object_replace":
                new = list((wn - wp).elements())
                if (len(new) != 1 or new[0] not in SHAPES or
                        new[0] in {o["shape"] for o in sc["objects"]}):
                    wrong.append(("replace", pos, neg))
            if t != "count_change" and pos != data["test"][int(k)]["caption"]:
                wrong.append(("not the short caption", pos))
        check(not wrong,
              "%s: positives true, negatives false and of the type (%s)" % (t, wrong[:2]))
    n_neg = {t: len(json.load(open(os.path.join(a, "sugarcrepe", t + ".json"))))
             for t in NEG_TYPES}
    check(info["negatives"] == n_neg, "info.json: negative counts")
    check(all(n_neg[t] == SPLITS["test"]
              for t in ("attribute_replace", "count_change", "object_replace")),
          "attribute_replace, count_change and object_replace: one item per test image")

    # ---- retrieval file
    ret = json.load(open(os.path.join(a, "retrieval_test.json")))
    imgs = ret["images"]
    check(len(imgs) == SPLITS["test"] and all(im["split"] == "test" for im in imgs),
          "retrieval_test.json: %d test images" % len(imgs))
    bad = []
    for im in imgs:
        rel = im["filepath"] + "/" + im["filename"]
        raws = [s["raw"] for s in im["sentences"]]
        if len(raws) != 5 or len(set(raws)) != 5 or not os.path.isfile(os.path.join(a, rel)):
            bad.append(raws)
        elif not all(caption_true(x, scenes[rel], 64) for x in raws):
            bad.append(raws)
    check(not bad, "retrieval: 5 distinct true paraphrases per image (%s)" % bad[:1])

    # ---- images
    w, h, rows, chunks = decode_png(os.path.join(a, "images/test/00000.png"))
    check((w, h) == (64, 64), "PNG: 64 x 64")
    check(b"tIME" not in chunks and chunks[0] == b"IHDR", "PNG: no timestamp chunk")
    bad = []
    for r in data["val"] + data["test"][:10]:
        w, h, rows, _ = decode_png(os.path.join(a, r["image"]))
        for o in scenes[r["image"]]["objects"]:
            x, y = int(o["x"]), int(o["y"])
            if tuple(rows[y][3 * x:3 * x + 3]) != RGB[o["color"]]:
                bad.append((r["image"], o["color"], tuple(rows[y][3 * x:3 * x + 3])))
    check(not bad, "each object's centre pixel has its colour (%s)" % bad[:2])
    e = os.path.join(tmp, "big")
    rc, _, _ = run("shapesworld", "--out", e, "--train", "2", "--val", "0", "--test", "2",
                   "--size", "112")
    w, h, _, _ = decode_png(os.path.join(e, "images/train/00001.png"))
    check(rc == 0 and (w, h) == (112, 112), "--size 112: 112 x 112 PNGs")

    model = os.path.join(tmp, "tiny")
    subprocess.run([sys.executable, gen, model, "--with-tokenizer"], check=True,
                   capture_output=True)
    rc, _, se = run("preprocess", "--model", model, os.path.join(a, "images/train/00000.png"),
                    "--out", os.path.join(tmp, "px.npy"))
    check(rc == 0, "disclvlm preprocess decodes a generated PNG (%s)" % se.strip())

    # ---- the evaluations read the files
    rc, so, se = run("eval", "sugarcrepe", "--model", model, "--images", a, "--json", "--data",
                     *[os.path.join(a, "sugarcrepe", t + ".json") for t in NEG_TYPES])
    ok = rc == 0
    if ok:
        got = {os.path.basename(s["data"])[:-5]: s["items"] for s in json.loads(so)["subsets"]}
        ok = got == n_neg
    check(ok, "eval sugarcrepe --images DIR reads the %d subsets (%s)"
          % (len(NEG_TYPES), se.strip()[-200:]))
    rc, so, se = run("eval", "retrieval", "--model", model, "--images", a, "--json", "--data",
                     os.path.join(a, "retrieval_test.json"))
    ok = rc == 0 and json.loads(so)["counts"] == {"images": SPLITS["test"],
                                                  "texts": 5 * SPLITS["test"]}
    check(ok, "eval retrieval reads retrieval_test.json (%s)" % se.strip()[-200:])
    rc, so, se = run("eval", "retrieval", "--model", model, "--json", "--data",
                     os.path.join(a, "test.jsonl"))
    check(rc == 0 and json.loads(so)["counts"]["images"] == SPLITS["test"],
          "eval retrieval reads test.jsonl (%s)" % se.strip()[-200:])

    # ---- long captions: 30-150 Llama-2 tokens
    shared = os.environ.get("DLV_SHARED_ASSETS", "")
    tok = os.path.join(shared, "tokenizers", "llama2", "tokenizer.json")
    if shared and os.path.isfile(tok):
        longs = sorted({r["long_caption"] for rows in data.values() for r in rows}, key=len)
        lens = []
        for t in longs[:8] + longs[-8:]:
            rc, so, _ = run("tokenize", "--tokenizer", tok, t)
            lens.append(len(so.split()) if rc == 0 else -1)
        check(min(lens) >= 30 and max(lens) <= 150,
              "long captions: %d..%d Llama-2 tokens (shortest and longest 8)"
              % (min(lens), max(lens)))
    else:
        print("skip long-caption token counts: no %s" % tok)

    # ---- usage errors and failures
    rc, _, _ = run("shapesworld")
    check(rc == 2, "no --out: exit 2")
    for bad_args in (["--size", "16"], ["--train", "x"], ["--seed", "-1"], ["--bogus", "1"],
                     ["--test"]):
        rc, _, se = run("shapesworld", "--out", os.path.join(tmp, "u"), *bad_args)
        check(rc == 2 and se.startswith("disclvlm: shapesworld:") and se.count("\n") == 1,
              "%s: exit 2 with one line" % " ".join(bad_args))
    blocker = os.path.join(tmp, "file")
    open(blocker, "w").close()
    rc, _, se = run("shapesworld", "--out", blocker, "--train", "1", "--val", "0", "--test", "1")
    check(rc == 1 and blocker in se, "--out naming a file: exit 1 naming it (%s)" % se.strip())
    rc, so, _ = run("shapesworld", "--help")
    check(rc == 0 and "--out DIR" in so, "--help")

    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    subprocess.run(["rm", "-rf", tmp])
    return 0


sys.exit(main())
