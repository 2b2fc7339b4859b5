#!/usr/bin/env python3
"""Does the generative LVLM itself bind colours to shapes? For each test image
with two or more objects, its long caption is scored against the same caption
with two objects' colours swapped, by the next-token loss (a training step
with SGD at lr 0 changes nothing and reports the loss); the model "binds" when
the true caption has the lower loss. Chance is 50 %.

    generative_binding.py SHAPESWORLD_DIR MODEL_DIR [N]

Needs the Python package (python/, NumPy) and the built library: run with
PYTHONPATH=python DISCLVLM_LIBRARY=build/lib/libdisclvlm.so.1 from the
repository root.
"""
import json
import os
import re
import sys

import disclvlm

root, model = sys.argv[1], sys.argv[2]
n_max = int(sys.argv[3]) if len(sys.argv) > 3 else 200
COLOURS = ["red", "green", "blue", "yellow", "purple", "black"]
lines = [json.loads(l) for l in open(os.path.join(root, "test.jsonl"))]
m = disclvlm.Model(model, threads=2)
s = m.session()
s.train_begin(optimizer="sgd", lr=0, train="soft", contrastive=0, ntp_weight=1)
wins = total = 0
for ex in lines[:n_max]:
    lc = ex["long_caption"]
    cols = [c for c in COLOURS if re.search(r"\b%s\b" % c, lc)]
    if len(cols) < 2: continue
    a, b = cols[0], cols[1]
    swapped = re.sub(r"\b(%s|%s)\b" % (a, b), lambda mm: b if mm.group(0) == a else a, lc)
    img = os.path.join(root, ex["image"])
    losses = []
    for text in (lc, swapped):
        batch = disclvlm.Batch([(img, ex["caption"], text)])
        st = s.train_step(batch)
        losses.append(st.loss_ntp)
    total += 1
    wins += losses[0] < losses[1]
print("generative binding (long caption vs colour-swapped): %d/%d = %.1f%%" % (wins, total, 100.0 * wins / total))
