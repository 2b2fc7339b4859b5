#!/usr/bin/env python3
"""What does the generative LVLM itself see? For each test image, its long
caption is scored against edited copies by the next-token loss (a training
step with SGD at lr 0 changes nothing and reports the loss); the model wins
an item when the true caption has the lower loss. Chance is 50 % for each
probe:

  colour_replace  one colour named in the caption -> a colour absent from
                  the image (can the model see colours?)
  shape_replace   one shape -> a shape absent from the image (can it see
                  shapes?)
  colour_swap     the colours of two objects exchanged (does it bind colours
                  to shapes? the same words, other pairing)
  shape_swap      the shapes of two objects exchanged (the same question
                  from the other side)

Every edit applies to the whole caption, the count phrase ("one star, one
square and one circle") included and plurals kept, so that no edit can be
told from the text alone: the object sentences follow the count phrase's
order, and a caption edited in one place only would contradict itself.

    generative_binding.py SHAPESWORLD_DIR MODEL_DIR [N] [--threads T]

Needs the Python package (python/, NumPy) and the built library: run with
PYTHONPATH=python DISCLVLM_LIBRARY=build/lib/libdisclvlm.so.1 from the
repository root. Deterministic: the edits use the caption's own order.
"""
import argparse
import json
import os
import re

import disclvlm

COLOURS = ["red", "green", "blue", "yellow", "purple", "black"]
SHAPES = ["circle", "square", "triangle", "star", "diamond"]
PROBES = ["colour_replace", "shape_replace", "colour_swap", "shape_swap"]


def exchange(text, a, b):
    """Swaps every whole word a and b in text (a plural "s" stays)."""
    return re.sub(r"\b(%s|%s)(s?)\b" % (a, b),
                  lambda m: (b if m.group(1) == a else a) + m.group(2), text)


def replace(text, a, b):
    """Replaces every whole word a in text by b (a plural "s" stays)."""
    return re.sub(r"\b%s(s?)\b" % a, lambda m: b + m.group(1), text)


def edits(long_caption):
    """The edited captions of one long caption, by probe name."""
    colours = [c for c in COLOURS if re.search(r"\b%s\b" % c, long_caption)]
    shapes = [s for s in SHAPES if re.search(r"\b%ss?\b" % s, long_caption)]
    out = {}
    absent_colour = next(c for c in COLOURS if c not in colours)
    out["colour_replace"] = replace(long_caption, colours[0], absent_colour)
    absent_shape = next(s for s in SHAPES if s not in shapes)
    out["shape_replace"] = replace(long_caption, shapes[0], absent_shape)
    if len(colours) >= 2:
        out["colour_swap"] = exchange(long_caption, colours[0], colours[1])
    if len(shapes) >= 2:
        out["shape_swap"] = exchange(long_caption, shapes[0], shapes[1])
    return {k: v for k, v in out.items() if v != long_caption}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root")
    ap.add_argument("model")
    ap.add_argument("n", nargs="?", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    lines = [json.loads(l) for l in open(os.path.join(a.root, "test.jsonl"))]
    model = disclvlm.Model(a.model, threads=a.threads)
    session = model.session()
    session.train_begin(optimizer="sgd", lr=0, train="soft", contrastive=0, ntp_weight=1)

    def loss(image, ex, text):
        batch = disclvlm.Batch([(image, ex["caption"], text)])
        return session.train_step(batch).loss_ntp

    score = {p: [0, 0] for p in PROBES}
    for ex in lines[:a.n]:
        image = os.path.join(a.root, ex["image"])
        true_loss = loss(image, ex, ex["long_caption"])
        for probe, text in edits(ex["long_caption"]).items():
            score[probe][0] += true_loss < loss(image, ex, text)
            score[probe][1] += 1
    for probe in PROBES:
        wins, total = score[probe]
        print("%-15s %4d/%-4d = %5.1f %%" % (probe, wins, total,
                                            100.0 * wins / max(total, 1)))


if __name__ == "__main__":
    main()
