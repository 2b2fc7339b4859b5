#!/usr/bin/env python3
"""Writes the second pretraining stage's data: every example of a ShapesWorld
train.jsonl twice, once with its long caption as the next-token target and
once with its short caption in that place.

    mix_captions.py TRAIN.jsonl OUT.jsonl

Why: after the first stage the LVLM has learned the long captions' templates
and most of its loss is on the few words that depend on the image (colours,
shapes, places). A short caption ("a red triangle right of a large blue
circle") is almost all such words, so the same compute carries more of the
signal that teaches the model to look. OUT is written next to TRAIN (the image
paths stay relative to it), through a temporary file and a rename.
Python 3 standard library only.
"""
import json
import os
import sys


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__.split("\n\n")[1].strip())
    src, dst = argv
    tmp = dst + ".tmp"
    n = 0
    with open(src) as f, open(tmp, "w") as out:
        for line in f:
            ex = json.loads(line)
            for target in (ex["long_caption"], ex["caption"]):
                out.write(json.dumps({"image": ex["image"], "caption": ex["caption"],
                                      "long_caption": target}) + "\n")
            n += 1
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, dst)
    print("%s: %d examples, %d lines" % (dst, n, 2 * n))


if __name__ == "__main__":
    main(sys.argv[1:])
