#!/usr/bin/env python3
"""The README's main job: ShapesWorld with the committed models.

    demo.py DISCLVLM_EXE [--out DIR] [--test N] [--threads N]

1. generates the ShapesWorld test split (seed 0, 48 px; the same images and
   captions the numbers in docs/shapesworld.md were measured on);
2. scores a few test images against their caption and hard negatives with
   the CLIP-style baseline and the fine-tuned LVLM (prints them);
3. evaluates every model (the eval progress lines show on stderr), then
   prints the comparison table: image->text and text->image R@1 and the
   accuracy per hard-negative type, for the CLIP-style baseline, the base
   LVLM with handcrafted prompts and each fine-tuned variant;
4. keeps the results in the output folder: results.json (the table) and
   hard_negatives.png (a bar chart of the hard-negative accuracies per
   model, the chance line drawn). Embeddings are cached there (cache/), so
   a rerun is fast.

Everything runs through the disclvlm tool (`eval retrieval`, `eval
sugarcrepe`, `score`); Python 3 standard library only.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from chart import bar_chart  # noqa: E402
TYPES = ["attribute_swap", "object_swap", "relation_flip", "attribute_replace", "object_replace",
         "count_change"]
# (label, model dir, adapter dir or None)
ROWS = [
    ("CLIP-style dual encoder", "clip", None),
    ("LVLM, handcrafted prompts", "lvlm", None),
    ("LVLM + soft prompts", "lvlm", "adapters/soft"),
    ("LVLM + LoRA", "lvlm", "adapters/lora"),
    ("LVLM + soft prompts + LoRA", "lvlm", "adapters/soft_lora"),
    ("LVLM + soft + LoRA + NTP", "lvlm", "adapters/soft_lora_ntp"),
]


def run(cmd, show_progress=False):
    """The command's stdout; its stderr (progress lines) passes through when
    show_progress, else is shown only when it fails."""
    r = subprocess.run(cmd, stdout=subprocess.PIPE,
                       stderr=None if show_progress else subprocess.PIPE, text=True)
    if r.returncode != 0:
        if not show_progress:
            sys.stderr.write(r.stderr)
        raise SystemExit("demo: %s failed (exit %d)" % (" ".join(cmd[:3]), r.returncode))
    return r.stdout


def model_args(model, adapter, threads):
    a = ["--model", os.path.join(HERE, model), "--threads", str(threads)]
    if adapter:
        a += ["--adapter", os.path.join(HERE, adapter)]
    return a


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("exe")
    ap.add_argument("--out", default="build/shapesworld-demo")
    ap.add_argument("--test", type=int, default=500)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", help="also write the table as JSON here (it is always written "
                    "to OUT/results.json)")
    a = ap.parse_args(argv)
    t0 = time.time()
    data = a.out
    # (Re)generate when any file is missing, e.g. a folder from an older tool.
    wanted = ["retrieval_test.json"] + [os.path.join("sugarcrepe", t + ".json") for t in TYPES]
    if not all(os.path.exists(os.path.join(data, w)) for w in wanted):
        run([a.exe, "shapesworld", "--out", data, "--seed", "0", "--size", "48", "--train", "0",
             "--val", "0", "--test", str(a.test)])
    print("ShapesWorld test split: %d images in %s (seed 0)\n" % (a.test, data))

    # A few examples: caption vs each hard negative, baseline vs fine-tuned.
    negs = {}
    for t in TYPES:
        with open(os.path.join(data, "sugarcrepe", t + ".json")) as f:
            for item in json.load(f).values():
                negs.setdefault(item["filename"], []).append((t, item["caption"],
                                                              item["negative_caption"]))
    shown = 0
    for fname in sorted(negs):
        pairs = [p for p in negs[fname] if p[0] in ("attribute_swap", "relation_flip",
                                                    "object_swap")]
        if len(pairs) < 2:
            continue
        image = os.path.join(data, fname)
        caption = pairs[0][1]
        texts = [caption] + [p[2] for p in pairs]
        print("%s" % fname)
        for label, model, adapter in (ROWS[0], ROWS[-1]):
            out = json.loads(run([a.exe, "score"] + model_args(model, adapter, a.threads) +
                                 ["--json", "--image", image, "--text"] + texts))
            s = out["scores"][0]
            print("  %-27s" % label)
            print("      %+.3f  %s" % (s[0], caption))
            for (t, _, neg), v in zip(pairs, s[1:]):
                mark = "ok " if s[0] > v else "WRONG"
                print("      %+.3f  %s   [%s: %s]" % (v, neg, t, mark))
        print()
        shown += 1
        if shown == 2:
            break

    rows = []
    cache = os.path.join(data, "cache")
    for k, (label, model, adapter) in enumerate(ROWS):
        # The cache holds each model's embeddings: the hard negatives reuse
        # the retrieval run's images, and a rerun encodes nothing.
        ma = model_args(model, adapter, a.threads) + ["--cache", cache]
        print("[%d/%d] %s" % (k + 1, len(ROWS), label), flush=True)
        r = json.loads(run([a.exe, "eval", "retrieval"] + ma + [
            "--images", data, "--data", os.path.join(data, "retrieval_test.json"), "--json"],
            show_progress=True))
        s = json.loads(run([a.exe, "eval", "sugarcrepe"] + ma + [
            "--images", data, "--json", "--data"] +
            [os.path.join(data, "sugarcrepe", t + ".json") for t in TYPES], show_progress=True))
        acc = {os.path.basename(x["data"])[:-5]: x["accuracy"] for x in s["subsets"]}
        rows.append({"model": label, "i2t_R@1": r["metrics"]["image_to_text"]["R@1"],
                     "t2i_R@1": r["metrics"]["text_to_image"]["R@1"],
                     **{t: acc[t] for t in TYPES}})
    head = ["model", "i2t R@1", "t2i R@1", "att.swap", "obj.swap", "rel.flip", "att.repl",
            "obj.repl", "count"]
    print("%-28s %8s %8s %9s %9s %9s %9s %9s %9s" % tuple(head))
    for row in rows:
        print("%-28s %8.1f %8.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f" % (
            row["model"], row["i2t_R@1"], row["t2i_R@1"], *[row[t] for t in TYPES]))
    print("\nR@1 over %d images x 5 captions; accuracy = %% of (image, caption, negative) "
          "triples where the caption scores strictly higher (chance 50)." % a.test)
    result = {"test_images": a.test, "seed": 0, "chance": 50.0,
              "metrics": "R@1 in %; hard-negative accuracy in % (chance 50)", "rows": rows}
    paths = [os.path.join(data, "results.json")] + ([a.json] if a.json else [])
    for p in paths:
        with open(p, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    png = os.path.join(data, "hard_negatives.png")
    bar_chart(png, "ShapesWorld hard negatives: accuracy (%%), %d test images" % a.test,
              TYPES, [(row["model"], [row[t] for t in TYPES]) for row in rows])
    print("\nresults: %s, chart: %s" % (paths[0], png))
    print("demo: %.1f s" % (time.time() - t0))


if __name__ == "__main__":
    main(sys.argv[1:])
