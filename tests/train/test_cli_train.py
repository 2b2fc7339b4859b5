#!/usr/bin/env python3
"""`disclvlm train` end to end on a tiny generated model (CLIP + Llama, with
a tokenizer) and PNG images written here: --steps 0 writes the initial
adapter (loadable, LoRA B all zero, A not); a few steps lower the loss;
4 steps in one run and 2 + --resume 2 give byte-identical adapters (file
order and shuffled); --shuffle is deterministic per seed and differs across
seeds; --epochs/--batch give ceil(n/B)*E steps with a short last batch;
--init continues from an adapter; bad examples (missing image, empty
caption, corrupt PNG) are skipped and listed, or with --on-bad-example fail
end the run with exit 1 naming the line; usage errors exit 2; --log has one
parseable JSON object per step.

usage: test_cli_train.py DISCLVLM_EXE GEN_TINY_CHECKPOINT_PY
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_data_util import png, read_log, st_tensors  # noqa: E402

exe, gen, clip_model = sys.argv[1:4]
failures = []


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


def run(*args):
    p = subprocess.run([exe, *with_backend(args)], capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


ADAPTER_FILES = ["soft_prompts.safetensors", "adapter_model.safetensors"]


def same_adapter(a, b):
    return all(os.path.exists(os.path.join(a, f)) and os.path.exists(os.path.join(b, f))
               and read_bytes(os.path.join(a, f)) == read_bytes(os.path.join(b, f))
               for f in ADAPTER_FILES)


tmp = tempfile.mkdtemp(prefix="dlv-cli-train-")
try:
    model = os.path.join(tmp, "model")
    p = subprocess.run([sys.executable, gen, model, "--vision", "clip", "--text", "llama",
                        "--dtype", "f32", "--with-tokenizer"], capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout + p.stderr)
        print("FAIL cannot generate the tiny model with a tokenizer")
        sys.exit(1)

    # ---- Data: 6 distinct pictures with short and long captions --------------
    os.makedirs(os.path.join(tmp, "img"))
    colours = [(220, 30, 30), (30, 200, 40), (30, 40, 220), (240, 240, 20), (200, 30, 200),
               (20, 220, 220)]
    words = ["red", "green", "blue", "yellow", "purple", "cyan"]
    rows = []
    for k, (c, w) in enumerate(zip(colours, words)):
        png(os.path.join(tmp, "img", "%d.png" % k), 24 + 2 * k, 20 + k,
            lambda x, y, c=c, k=k: (c[0] ^ (x * k & 63), c[1] ^ (y * 5 & 31), (c[2] + x + y) % 256))
        rows.append({"image": "img/%d.png" % k, "caption": "a %s square" % w,
                     "long_caption": "a picture of a %s square with a pattern" % w})
    rows[5].pop("long_caption")  # long captions are optional
    data = os.path.join(tmp, "train.jsonl")
    with open(data, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    n = len(rows)
    M = ["--model", model, "--data", data, "--threads", "2"]

    def out(name):
        return os.path.join(tmp, name)

    # ---- --steps 0: the initial adapter --------------------------------------
    rc, _, e = run("train", *M, "--out", out("a0"), "--steps", "0", "--lora-rank", "4")
    if check(rc == 0, "--steps 0: exit 0 " + e.strip().replace("\n", " | ")):
        ts = st_tensors(out("a0/adapter_model.safetensors"))
        bs = [v for k, v in ts.items() if "lora_B" in k]
        As = [v for k, v in ts.items() if "lora_A" in k]
        check(len(bs) > 0 and len(bs) == len(As), "--steps 0: %d lora_A and %d lora_B tensors"
              % (len(As), len(bs)))
        check(all(not any(raw) for _, _, raw in bs), "--steps 0: every lora_B is all zero")
        check(all(any(raw) for _, _, raw in As), "--steps 0: no lora_A is all zero")
        check(all(shape[0] == 4 for _, shape, _ in As), "--steps 0: --lora-rank 4 gives A [4, in]")
        sp = st_tensors(out("a0/soft_prompts.safetensors"))
        check(len(sp) > 0 and all(any(raw) for _, _, raw in sp.values()),
              "--steps 0: soft prompts present and not zero (%s)" % sorted(sp))
        check(os.path.exists(out("a0.ckpt/train_state.safetensors")),
              "--steps 0: the checkpoint a0.ckpt is written too")
        rc, _, e = run("encode-image", "--model", model, "--adapter", out("a0"),
                       os.path.join(tmp, "img", "0.png"), "--out", out("e0.npy"))
        check(rc == 0, "encode-image --adapter a0 loads the initial adapter " + e.strip())

    # ---- A few steps lower the loss; --log ----------------------------------
    rc, _, e = run("train", *M, "--out", out("fit"), "--steps", "8", "--batch", str(n),
                   "--lr", "1e-2", "--log", out("fit.jsonl"))
    if check(rc == 0, "8 full-batch steps: exit 0 " + e.strip()[-300:]):
        log = read_log(out("fit.jsonl"))
        check(len(log) == 8 and [r["step"] for r in log] == list(range(1, 9)),
              "--log: 8 lines, steps 1..8")
        keys = {"step", "total_steps", "epoch", "examples", "loss", "loss_c", "loss_ntp", "lr",
                "grad_norm", "examples_per_s", "eta_s"}
        check(all(keys <= set(r) for r in log), "--log: every line has %s" % sorted(keys))
        losses = [r["loss"] for r in log]
        print("losses: " + " ".join("%.5f" % x for x in losses))
        check(losses[-1] < losses[0] - 1e-3, "the loss falls: %.5f -> %.5f"
              % (losses[0], losses[-1]))
        check(all(abs(r["loss"] - r["loss_c"] - r["loss_ntp"]) < 1e-4 for r in log),
              "loss = loss_c + loss_ntp (ntp weight 1)")
        check(sum(ln.startswith("disclvlm: train: step ") for ln in e.split("\n")) == 8
              and "step 8/8" in e and "ETA" in e and "ex/s" in e,
              "a progress line per step on stderr")

    # ---- --epochs / --batch: ceil(n/B)*E steps, a short last batch ------------
    rc, _, e = run("train", *M, "--out", out("ep"), "--batch", "4", "--epochs", "2",
                   "--log", out("ep.jsonl"))
    if check(rc == 0, "--batch 4 --epochs 2: exit 0 " + e.strip()[-300:]):
        log = read_log(out("ep.jsonl"))
        check([r["examples"] for r in log] == [4, 2, 4, 2]
              and [r["epoch"] for r in log] == [1, 1, 2, 2],
              "--batch 4 --epochs 2 on 6 examples: batches 4,2,4,2 (%s)"
              % [r["examples"] for r in log])

    # ---- Resume equivalence --------------------------------------------------
    for label, extra in (("file order", []), ("shuffled", ["--shuffle", "--seed", "7"])):
        common = ["--batch", "4", "--lr", "5e-3", *extra]
        rc1, _, e1 = run("train", *M, *common, "--steps", "4", "--out", out("full"),
                         "--log", out("full.jsonl"), "--save-every", "2")
        rc2, _, e2 = run("train", *M, *common, "--steps", "2", "--out", out("half"),
                         "--log", out("half.jsonl"))
        rc3, _, e3 = run("train", *M, *common, "--steps", "4", "--out", out("half"),
                         "--log", out("half.jsonl"), "--resume", out("half.ckpt"))
        if check(rc1 == 0 and rc2 == 0 and rc3 == 0, "resume (%s): three runs exit 0 %s"
                 % (label, (e1 + e2 + e3).strip()[-400:])):
            check("resuming at step 2 of 4" in e3, "resume (%s): starts at step 2" % label)
            check(same_adapter(out("full"), out("half")),
                  "resume (%s): 4 steps == 2 steps + --resume 2 steps, byte for byte" % label)
            la, lb = read_log(out("full.jsonl")), read_log(out("half.jsonl"))
            check([r["loss"] for r in la] == [r["loss"] for r in lb] and len(lb) == 4,
                  "resume (%s): the appended log has the same 4 losses" % label)
            check(os.path.exists(out("full.ckpt/train_state.safetensors")),
                  "resume (%s): --save-every / final checkpoint in OUT.ckpt" % label)
        for d in ("full", "half", "full.ckpt", "half.ckpt"):
            shutil.rmtree(out(d), ignore_errors=True)
        for f in ("full.jsonl", "half.jsonl"):
            os.remove(out(f)) if os.path.exists(out(f)) else None

    # ---- --shuffle: deterministic per seed, different across seeds ----------
    def shuffled(name, *extra):
        rc, _, e = run("train", *M, "--batch", "2", "--steps", "3", "--lr", "5e-3", *extra,
                       "--out", out(name), "--log", out(name + ".jsonl"))
        return rc == 0 and [r["loss_c"] for r in read_log(out(name + ".jsonl"))], e

    s1, e = shuffled("s1", "--shuffle", "--seed", "3")
    s2, _ = shuffled("s2", "--shuffle", "--seed", "3")
    s3, _ = shuffled("s3", "--shuffle", "--seed", "4")
    s0, _ = shuffled("s0")
    if check(s1 and s2 and s3 and s0, "--shuffle runs exit 0 " + e.strip()[-300:]):
        check(s1 == s2 and same_adapter(out("s1"), out("s2")),
              "--shuffle --seed 3 twice: same losses and adapter")
        check(s1 != s3 and s1 != s0,
              "--shuffle --seed 3 differs from --seed 4 and from file order (%s / %s / %s)"
              % (s1, s3, s0))

    # ---- --init ---------------------------------------------------------------
    rc, _, e = run("train", *M, "--init", out("fit"), "--steps", "0", "--out", out("init0"))
    check(rc == 0 and same_adapter(out("fit"), out("init0")),
          "--init fit --steps 0 writes fit's adapter unchanged " + e.strip()[-200:])

    # ---- Bad examples ---------------------------------------------------------
    with open(os.path.join(tmp, "img", "corrupt.png"), "wb") as f:
        f.write(read_bytes(os.path.join(tmp, "img", "0.png"))[:40] + b"\x00garbage" * 8)
    bad_rows = [rows[0], {"image": "img/missing.png", "caption": "a ghost"},
                {"image": "img/1.png", "caption": ""}, rows[2],
                {"image": "img/corrupt.png", "caption": "a broken file"}, rows[3]]
    bad = os.path.join(tmp, "bad.jsonl")
    with open(bad, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in bad_rows))
    B = ["--model", model, "--data", bad, "--threads", "2"]
    rc, _, e = run("train", *B, "--out", out("bad"), "--batch", "3", "--log", out("badlog.jsonl"))
    summary = [ln for ln in e.split("\n") if "skipped" in ln]
    if check(rc == 0, "bad examples skipped: exit 0 " + e.strip()[-300:]):
        log = read_log(out("badlog.jsonl"))
        check(len(log) == 1 and log[0]["examples"] == 3,
              "bad examples: 3 usable examples make 1 step of 3")
        check(len(summary) == 1 and "skipped 3 bad examples of 6" in summary[0]
              and "bad.jsonl:2" in summary[0] and "bad.jsonl:3" in summary[0]
              and "bad.jsonl:5" in summary[0] and "bad.jsonl:1 " not in summary[0]
              and "empty caption" in summary[0],
              "bad examples: one summary line naming lines 2, 3, 5: " + " ".join(summary))
    rc, _, e = run("train", *B, "--out", out("badf"), "--on-bad-example", "fail")
    check(rc == 1 and "bad.jsonl:2" in e and "bad example" in e and not os.path.exists(out("badf")),
          "--on-bad-example fail: exit 1 naming line 2, nothing written: " + e.strip())
    # Captions longer than the model's 256 positions (issue 15): a bad example
    # naming FILE:LINE and the limit before any step runs, or cut with --truncate.
    huge = " ".join(["word"] * 300)
    long_rows = [rows[0], {"image": "img/1.png", "caption": huge}, rows[2],
                 {"image": "img/3.png", "caption": "fine", "long_caption": huge}]
    longd = os.path.join(tmp, "long.jsonl")
    with open(longd, "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in long_rows))
    L = ["--model", model, "--data", longd, "--threads", "2", "--batch", "2"]
    rc, _, e = run("train", *L, "--out", out("longf"), "--on-bad-example", "fail")
    check(rc == 1 and "long.jsonl:2" in e and "caption" in e and "(256)" in e
          and not os.path.exists(out("longf")),
          "a caption longer than the model: exit 1 naming line 2 and the limit: " + e.strip())
    rc, _, e = run("train", *L, "--out", out("longs"), "--steps", "1")
    check(rc == 0 and "long.jsonl:2" in e and "long.jsonl:4" in e and "long caption" in e,
          "too-long captions and long captions are skipped as bad examples: " + e.strip()[-300:])
    rc, _, e = run("train", *L, "--out", out("longt"), "--truncate", "--steps", "2")
    check(rc == 0 and "2 caption(s) longer than the model's positions are truncated" in e
          and "skipped" not in e,
          "--truncate: the long captions are cut, with a note: " + e.strip()[-300:])
    # Outputs are checked before the first step (issue 15): a foreign file in
    # --out or --save-model fails at once, and no OUT.ckpt is left behind.
    os.makedirs(out("foreign"))
    with open(out("foreign/notes.txt"), "w") as f:
        f.write("mine\n")
    rc, _, e = run("train", *M, "--out", out("foreign"), "--steps", "2", "--log",
                   out("foreign.jsonl"))
    check(rc == 1 and "notes.txt" in e and "step 1/" not in e
          and not os.path.exists(out("foreign.ckpt")) and os.path.exists(out("foreign/notes.txt")),
          "a foreign file in --out: exit 1 before any step, no checkpoint left: " + e.strip())
    rc, _, e = run("train", *M, "--out", out("fine"), "--steps", "2", "--save-model",
                   out("foreign"))
    check(rc == 1 and "notes.txt" in e and "step 1/" not in e and not os.path.exists(out("fine")),
          "a foreign file in --save-model: exit 1 before any step: " + e.strip())
    # One example per batch: the contrastive loss is identically zero.
    with open(out("one.jsonl"), "w") as f:
        f.write(json.dumps(rows[0]) + "\n")
    rc, _, e = run("train", "--model", model, "--data", out("one.jsonl"), "--out", out("one"),
                   "--ntp-weight", "0")
    check(rc == 1 and "identically zero" in e and "nothing would be learned" in e,
          "one example, no next-token loss: exit 1 saying the loss is zero: " + e.strip())
    rc, _, e = run("train", *M, "--out", out("b1"), "--batch", "1", "--steps", "1")
    check(rc == 0 and "identically zero" in e,
          "--batch 1 with long captions: a note that only the next-token loss trains: "
          + e.strip()[-200:])
    with open(out("allbad.jsonl"), "w") as f:
        f.write(json.dumps({"image": "img/missing.png", "caption": "x"}) + "\n")
    rc, _, e = run("train", "--model", model, "--data", out("allbad.jsonl"), "--out",
                   out("allbad"))
    check(rc == 1 and "no usable examples" in e, "no usable example: exit 1 " + e.strip())

    # ---- Usage errors exit 2 ---------------------------------------------------
    O = ["--out", out("u")]
    for label, args in [
            ("no arguments", []),
            ("no --out", M),
            ("no --data", ["--model", model, *O]),
            ("--batch 0", [*M, *O, "--batch", "0"]),
            ("--steps -1", [*M, *O, "--steps", "-1"]),
            ("--epochs x", [*M, *O, "--epochs", "x"]),
            ("--lr abc", [*M, *O, "--lr", "abc"]),
            ("--optimizer adam", [*M, *O, "--optimizer", "adam"]),
            ("--schedule linear", [*M, *O, "--schedule", "linear"]),
            ("--train soft,foo", [*M, *O, "--train", "soft,foo"]),
            ("--lora-targets x_proj", [*M, *O, "--lora-targets", "x_proj"]),
            ("--on-bad-example ignore", [*M, *O, "--on-bad-example", "ignore"]),
            ("--seed -3", [*M, *O, "--seed", "-3"]),
            ("unknown option", [*M, *O, "--frobnicate"]),
            ("unknown option with a value", [*M, "--frobnicate", "1", *O]),
            ("missing value", [*M, *O, "--lr"]),
            ("--init with --resume", [*M, *O, "--init", out("a0"), "--resume", out("a0.ckpt")]),
            ("--adapter", [*M, *O, "--adapter", out("a0")])]:
        rc, _, e = run("train", *args)
        check(rc == 2 and e.startswith("disclvlm: train: ") and e.count("\n") == 1
              and ("unknown" in e) == label.startswith("unknown"),
              "usage error (%s): exit 2, one line: %s" % (label, e.strip()))
    check(not os.path.exists(out("u")), "usage errors write nothing")
    rc, o, _ = run("train", "--help")
    check(rc == 0 and "--resume" in o and "--on-bad-example" in o, "--help: exit 0")
    rc, _, e = run("train", *M, "--out", out("r"), "--resume", out("nowhere"))
    check(rc == 1 and "nowhere" in e, "--resume of a missing checkpoint: exit 1 naming it: "
          + e.strip())

    # ---- A CLIPModel: no adapter; checkpoints, --resume and --save-model -----
    C = ["--model", clip_model, "--data", data, "--threads", "2", "--batch", "4", "--lr", "1e-3"]
    rc1, _, e1 = run("train", *C, "--steps", "3", "--out", out("cf"), "--save-model", out("cfm"))
    rc2, _, e2 = run("train", *C, "--steps", "1", "--out", out("ch"))
    rc3, _, e3 = run("train", *C, "--steps", "3", "--out", out("ch"), "--resume", out("ch.ckpt"),
                     "--save-model", out("chm"))
    if check(rc1 == 0 and rc2 == 0 and rc3 == 0, "CLIPModel: three runs exit 0 %s"
             % (e1 + e2 + e3).strip()[-400:]):
        check(not os.path.exists(out("cf")) and not os.path.exists(out("ch")),
              "CLIPModel: no adapter directory is written")
        check("no adapter" in e2 and "--resume" in e2 and "ch.ckpt" in e2,
              "CLIPModel without --save-model: the note says where the weights are: "
              + e2.strip().split("\n")[-2])
        check(("checkpoint in " + out("cf.ckpt")) in e1 and ("model in " + out("cfm")) in e1,
              "CLIPModel: the last line names the checkpoint and the model: "
              + e1.strip().split("\n")[-1])
        check(os.path.exists(out("ch.ckpt/train_state.safetensors")),
              "CLIPModel: a checkpoint is written")
        check("resuming at step 1 of 3" in e3, "CLIPModel: --resume starts at step 1")
        a = st_tensors(out("cfm/model.safetensors"))
        b = st_tensors(out("chm/model.safetensors"))
        check(a.keys() == b.keys() and all(a[k] == b[k] for k in a),
              "CLIPModel: 3 steps == 1 step + --resume 2 steps, every saved tensor byte for byte")
        base = st_tensors(os.path.join(clip_model, "model.safetensors"))
        check(any(base[k][2] != a[k][2] for k in base if k in a),
              "CLIPModel: the saved model differs from the base")
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
