#!/usr/bin/env python3
"""Goldens for libdisclvlm's optimizers (issue 21): torch.optim.AdamW and
torch.optim.SGD, with LambdaLR schedules and clip_grad_norm_, driven by the
training objective of llava_grad_reference.py (same tiny checkpoint, golden
adapter, images and captions; see that script's docstring for the
objective).

Writes tests/model/golden/optim_clip_llama_f32.safetensors.

What is trained (the library's `train` option
"soft,lora,logit_scale,projector,llm"): image_prompt, text_prompt,
logit_scale, every LoRA tensor of the adapter, the projector (two matrices,
two biases) and every language-model weight (embed_tokens, q/k/v/o,
gate/up/down, the RMSNorm weights, the final norm, lm_head). The vision
tower is left out: its key biases have gradients that are zero in exact
arithmetic (softmax is shift invariant), i.e. float noise that Adam's
normalisation would turn into updates of size lr with random signs.

The library's decay rule (docs/training.md, "Optimizer"), written here as
PyTorch parameter groups: weight decay on model and LoRA tensors of two or
more dimensions; never on the soft prompts (matrices, but not weights),
the logit scale, norms or biases.

AdamW run ("adamw."): lr 1e-2, weight_decay 0.5 (large on purpose, so that
decay applied to the wrong tensors moves them visibly), betas 0.9/0.999,
eps 1e-8, no clipping; schedule warmup 2 then cosine to 0 at total_steps 5,
as a LambdaLR whose lambda is the documented rule:
    k < warmup:  (k + 1) / warmup
    otherwise:   0.5 (1 + cos(pi min(1, (k - warmup) / (total - warmup))))
Four steps on the same batch; the lrs are 5e-3, 1e-2, 1e-2, 7.5e-3.

SGD run ("sgd."): from the same start, one step of torch.optim.SGD (lr 0.5,
weight_decay 0.05 in the decaying group, no momentum) after
clip_grad_norm_(trainable, max_norm) with max_norm a third of the gradient
norm (rounded to 3 significant digits, stored), so clipping is active.

Golden tensors (F32):
  adamw.lr           [4]   the lr of each step (LambdaLR's get_last_lr)
  adamw.L            [4]   the loss of each step (before its update)
  adamw.grad_norm    [4]   the global gradient norm of each step
  adamw.step<k>.<name>     every trained tensor after step k (k = 1, 4)
  sgd.max_norm, sgd.grad_norm, sgd.L   [1]
  sgd.<name>               every trained tensor after the SGD step
<name> is image_prompt, text_prompt, logit_scale, a LoRA tensor's name in
adapter_model.safetensors, or a checkpoint tensor's (classic layout) name.

Run by hand (not in CI) in the virtualenv of llava_embed_reference.py
(/tmp/ref-embed: Debian's torch 1.13.1, transformers 4.46.3, peft 0.13.2,
tokenizers 0.20.3, safetensors 0.4.5, pillow 11.0.0), from the repository
root:
    /tmp/ref-embed/bin/python tests/reference/optim_reference.py
(about 10 s on 2 cores.)
"""
import math
import os
import sys
import tempfile

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)
os.environ["HF_HUB_OFFLINE"] = "1"

import torch
import transformers
import peft
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llava_embed_reference as ER  # noqa: E402
import llava_grad_reference as GR  # noqa: E402

VARIANT = "clip_llama_f32"
ADAMW = dict(lr=1e-2, weight_decay=0.5, betas=(0.9, 0.999), eps=1e-8)
WARMUP, TOTAL, STEPS = 2, 5, 4
SGD = dict(lr=0.5, weight_decay=0.05)


def schedule(k):
    """docs/training.md: the multiplier of lr for step k (0-based)."""
    if k < WARMUP:
        return (k + 1) / WARMUP
    progress = min(1.0, (k - WARMUP) / (TOTAL - WARMUP))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def trainable_set(S):
    """(name, tensor, decays) for every trained tensor, in a fixed order."""
    ip, tp, ls = GR.leaves_from(S)
    out = [("image_prompt", ip, False), ("text_prompt", tp, False), ("logit_scale", ls, False)]
    for k, p in sorted(S.lora.items()):
        out.append((k, p, p.dim() >= 2))
    for k, p in sorted(S.ckpt_params.items()):
        if k.startswith("vision_tower."):
            p.requires_grad_(False)
            continue
        out.append((k, p, p.dim() >= 2))
    return out


def loss_and_grads(S, named):
    ip, tp, ls = (t for _, t, _ in named[:3])
    GR.zero_all(S, [t for _, t, _ in named])
    out = GR.objective(S, ip, tp, ls)
    out["L"].backward()
    return out["L"].detach().reshape(1)


def global_norm(named):
    return math.sqrt(sum(float((t.grad.double() ** 2).sum()) for _, t, _ in named
                         if t.grad is not None))


def snapshot(g, prefix, named):
    for name, t, _ in named:
        g[prefix + name] = t.detach().clone()


def groups(named, wd):
    return [{"params": [t for _, t, d in named if d], "weight_decay": wd},
            {"params": [t for _, t, d in named if not d], "weight_decay": 0.0}]


def run_adamw(S, g):
    named = trainable_set(S)
    opt = torch.optim.AdamW(groups(named, ADAMW["weight_decay"]), lr=ADAMW["lr"],
                            betas=ADAMW["betas"], eps=ADAMW["eps"], foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    lrs, losses, norms = [], [], []
    for k in range(STEPS):
        lrs.append(sched.get_last_lr()[0])
        assert abs(lrs[-1] - ADAMW["lr"] * schedule(k)) < 1e-15
        losses.append(loss_and_grads(S, named))
        norms.append(global_norm(named))
        opt.step()
        sched.step()
        if k + 1 in (1, STEPS):
            snapshot(g, "adamw.step%d." % (k + 1), named)
    g["adamw.lr"] = torch.tensor(lrs, dtype=torch.float32)
    g["adamw.L"] = torch.cat(losses)
    g["adamw.grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    print("adamw: lr %s  L %s  grad norm %s" % (lrs, g["adamw.L"].tolist(), norms))
    return named


def run_sgd(S, g):
    named = trainable_set(S)
    L = loss_and_grads(S, named)
    gnorm = global_norm(named)
    max_norm = float("%.3g" % (gnorm / 3))
    total = torch.nn.utils.clip_grad_norm_([t for _, t, _ in named], max_norm)
    assert abs(float(total) - gnorm) <= 1e-5 * gnorm, (float(total), gnorm)
    assert max_norm < gnorm
    after = global_norm(named)
    assert abs(after - max_norm) < 1e-3 * max_norm, (after, max_norm)
    opt = torch.optim.SGD(groups(named, SGD["weight_decay"]), lr=SGD["lr"], momentum=0.0)
    opt.step()
    snapshot(g, "sgd.", named)
    g["sgd.max_norm"] = torch.tensor([max_norm], dtype=torch.float32)
    g["sgd.grad_norm"] = torch.tensor([gnorm], dtype=torch.float32)
    g["sgd.L"] = L
    print("sgd: L %.9g  grad norm %.9g  max_norm %g" % (L.item(), gnorm, max_norm))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    paths = [os.path.join(ER.IMG_DIR, "img%d.png" % k) for k in range(3)]
    g = {}
    with tempfile.TemporaryDirectory() as tmp:
        # Each run starts from the checkpoint and the golden adapter.
        run_adamw(GR.setup(VARIANT, tmp, paths), g)
    with tempfile.TemporaryDirectory() as tmp:
        run_sgd(GR.setup(VARIANT, tmp, paths), g)
    out = {k: g[k].contiguous().to(torch.float32) for k in sorted(g)}
    path = os.path.join(ER.OUT, "optim_%s.safetensors" % VARIANT)
    save_file(out, path, metadata={
        "generator_args": " ".join(ER.VARIANTS[VARIANT] + ["--with-tokenizer"]),
        "adapter": "tests/model/golden/adapters/%s" % VARIANT,
        "train": "soft,lora,logit_scale,projector,llm",
        "adamw": "lr %g weight_decay %g betas %s eps %g warmup %d cosine total %d, %d steps"
                 % (ADAMW["lr"], ADAMW["weight_decay"], ADAMW["betas"], ADAMW["eps"],
                    WARMUP, TOTAL, STEPS),
        "sgd": "lr %g weight_decay %g, clip_grad_norm_ to a third of the norm"
               % (SGD["lr"], SGD["weight_decay"]),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__,
    })
    size = os.path.getsize(path)
    assert size < 2 * 1024 * 1024, size
    print("wrote %s (%d bytes, %d tensors)" % (path, size, len(out)))


if __name__ == "__main__":
    main()
