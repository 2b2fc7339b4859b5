#!/usr/bin/env python3
"""The training step bench_train times, in PyTorch autograd: transformers
4.46.3 LlavaForConditionalGeneration (Debian's torch 1.13.1, float32, eager
attention, eval mode: no dropout) with peft 0.13.2 LoRA (rank 16, alpha 16,
dropout 0) on q/k/v/o/gate/up/down of every language-model layer (the vision
tower gets none, as in libdisclvlm), soft prompts and the logit scale as
nn.Parameter, AdamW (lr 1e-4, weight decay 0) over exactly those tensors;
torch.set_num_threads = the C run's thread count.

The objective is tests/reference/llava_grad_reference.py's (contrastive
InfoNCE both ways with s = exp(min(logit_scale, log 100)), plus the
next-token loss on the long captions, mean over the batch's tokens), computed
the way libdisclvlm computes it: one LLM pass over the image sequences with
their long captions appended (the embedding v_k is the state at the image
sequence's last position; causal attention makes it the same as a separate
image pass, which the reference checks), lm_head only at the predicting
positions, one LLM pass over the text sequences. The batch (random images,
word-list captions) is the same formula as bench_train.c. Images are
preprocessed once, outside the timed step (libdisclvlm preprocesses inside
its step; a few ms of the total).

MODEL_DIR is bench_forward_torch.py's model (written here if absent, f32, of
--width small or realistic) plus a
tokenizer (copied from --tokenizer-dir if absent) and a CLIP
preprocessor_config.json for 224 px (written if absent). With the C binary
given it runs it first on the same directory, before this process imports
torch (so that the child's peak RSS is its own):
    PYTHONPATH=/usr/lib/python3/dist-packages /tmp/ref-embed/bin/python \\
        bench/bench_train_torch.py /tmp/bench-llava build/bench/bench_train --threads 2
"""
import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

SIDE, SHORT_WORDS, LONG_WORDS = 224, 8, 40
WORDS = ["a", "photo", "of", "red", "blue", "green", "dog", "cat",
         "sitting", "on", "the", "old", "wooden", "table", "near", "window",
         "with", "small", "large", "bright", "yellow", "car", "parked", "street",
         "under", "tree", "in", "morning", "light", "and", "two", "people"]
PIECES = {"image": ("USER: ", "\nSummarize above image in one word:", " ASSISTANT:"),
          "text": ("USER: ", "\nSummarize above sentence in one word:", " ASSISTANT:")}
TARGETS = r"language_model\.model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)"
MAX_LOGIT_SCALE = math.log(100.0)
# CLIPImageProcessor at 224 px (OpenAI CLIP's mean / std, bicubic).
PREPROCESSOR = {
    "crop_size": {"height": SIDE, "width": SIDE}, "do_center_crop": True,
    "do_convert_rgb": True, "do_normalize": True, "do_rescale": True, "do_resize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
    "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": SIDE},
}


def caption(k, n):
    return " ".join(WORDS[(k * 7 + j * 13 + j * j) % 32] for j in range(n))


def image(k):
    import numpy as np
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    out = np.empty((SIDE, SIDE, 3), dtype=np.uint8)
    for c in range(3):
        out[:, :, c] = (x * 37 + y * 11 + c * 101 + k * 53 + ((x * y) % 17) * 7) % 256
    return out


def prepare_dir(d, tok_dir, width):
    if not os.path.exists(os.path.join(d, "config.json")):
        import bench_forward_torch
        bench_forward_torch.write_model(d, width, "f32")
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        if not os.path.exists(os.path.join(d, fn)):
            shutil.copy(os.path.join(tok_dir, fn), d)
    if not os.path.exists(os.path.join(d, "preprocessor_config.json")):
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(PREPROCESSOR, f, indent=2, sort_keys=True)


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("c_bench", nargs="?")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokenizer-dir", default=os.path.join(
        HERE, "..", "..", "shared", "assets", "tokenizers", "llama2"))
    ap.add_argument("--width", choices=("small", "realistic"), default="small",
                    help="the model written when MODEL_DIR has none (bench_forward_torch.py)")
    a = ap.parse_args()
    prepare_dir(a.model_dir, a.tokenizer_dir, a.width)
    if a.c_bench:
        # First, from this still small process: a child inherits the
        # parent's peak RSS through fork + exec (Linux keeps ru_maxrss
        # across execve), so it must not be started after torch has loaded
        # the model.
        print("Python before importing torch: peak RSS %d MiB" % maxrss_mib())
        sys.stdout.flush()
        subprocess.run([a.c_bench, a.model_dir, str(a.reps), str(a.threads), str(a.batch)],
                       check=True)
        print()
        sys.stdout.flush()
    import torch
    import torch.nn.functional as F
    from tokenizers import Tokenizer
    from transformers import CLIPImageProcessor, LlavaForConditionalGeneration
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)

    model = LlavaForConditionalGeneration.from_pretrained(
        a.model_dir, torch_dtype=torch.float32, attn_implementation="eager").eval()
    rss_loaded = maxrss_mib()
    c = model.config
    tok = Tokenizer.from_file(os.path.join(a.model_dir, "tokenizer.json"))

    def ids(s):
        return tok.encode(s, add_special_tokens=False).ids

    def split(prefix, middle, instr, suffix):
        """The library's default prompts (docs/adapter-format.md): the whole
        string tokenized at once, cut by character offsets into the tokens
        before the instruction, the instruction's and the rest."""
        enc = tok.encode(prefix + middle + instr + suffix, add_special_tokens=False)
        a = len(prefix) + len(middle)
        parts = ([], [], [])
        for i, (_, end) in zip(enc.ids, enc.offsets):
            parts[0 if end <= a else 2 if end > a + len(instr) else 1].append(i)
        return parts

    bos, eos = c.text_config.bos_token_id, c.text_config.eos_token_id
    pm = get_peft_model(model, LoraConfig(r=16, lora_alpha=16, lora_dropout=0.0,
                                          target_modules=TARGETS))
    pm.eval()
    lm = model.language_model
    body = lm.model
    emb = body.embed_tokens
    lora = [p for n, p in pm.named_parameters() if p.requires_grad]
    assert lora and all("lora_" in n for n, p in pm.named_parameters() if p.requires_grad)
    assert all(".language_model." in n for n, p in pm.named_parameters() if p.requires_grad)
    # This tokenizer has no <image> token: the image prefix is tokenized on
    # its own, the rest as one string; the text prompt's instruction starts
    # as its ids around a one-letter caption (as the library does).
    ipre = ids(PIECES["image"][0])
    _, iins, isuf = split("", "", *PIECES["image"][1:])
    _, tins, _ = split(PIECES["text"][0], "x", *PIECES["text"][1:])
    with torch.no_grad():
        image_prompt = torch.nn.Parameter(emb(torch.tensor(iins)).clone())
        text_prompt = torch.nn.Parameter(emb(torch.tensor(tins)).clone())
    logit_scale = torch.nn.Parameter(torch.tensor([math.log(1 / 0.07)]))
    params = lora + [image_prompt, text_prompt, logit_scale]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    print("torch %s, %d threads; %d LoRA tensors, %.2fM trainable parameters" % (
        torch.__version__, torch.get_num_threads(), len(lora),
        sum(p.numel() for p in params) / 1e6))

    B = a.batch
    proc = CLIPImageProcessor.from_pretrained(a.model_dir)
    pv = proc(images=[image(k) for k in range(B)], return_tensors="pt")["pixel_values"]
    short = [split(PIECES["text"][0], caption(k, SHORT_WORDS), *PIECES["text"][1:])
             for k in range(B)]
    long_ids = [ids(caption(k + 100, LONG_WORDS)) + [eos] for k in range(B)]
    b = [bos]

    def padded(rows):
        lens = [r.shape[0] for r in rows]
        T, H = max(lens), rows[0].shape[1]
        x = torch.stack([torch.cat([r, r.new_zeros(T - r.shape[0], H)], 0) for r in rows])
        m = torch.zeros(len(rows), T, dtype=torch.long)
        for i, n in enumerate(lens):
            m[i, :n] = 1
        return x, m, lens

    def e(x):
        return emb(torch.tensor(x, dtype=torch.long))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():  # frozen vision tower + projector
            feats = model.get_image_features(pv, c.vision_feature_layer,
                                             c.vision_feature_select_strategy)
        # Image sequences with the long caption (without its EOS) appended.
        rows, elen = [], []
        for k in range(B):
            head = torch.cat([e(b + ipre), feats[k], image_prompt, e(isuf)], 0)
            elen.append(head.shape[0])
            rows.append(torch.cat([head, e(long_ids[k][:-1])], 0))
        x, m, lens = padded(rows)
        hs = body(inputs_embeds=x, attention_mask=m, use_cache=False).last_hidden_state
        V = F.normalize(torch.stack([hs[k, elen[k] - 1] for k in range(B)]), dim=-1)
        pred = torch.cat([hs[k, elen[k] - 1:elen[k] - 1 + len(long_ids[k])] for k in range(B)])
        tgt = torch.tensor([t for k in range(B) for t in long_ids[k]])
        L_ntp = F.cross_entropy(lm.lm_head(pred), tgt)  # mean over the batch's tokens
        tokens = sum(lens)
        rows = [torch.cat([e(b + short[k][0]), text_prompt, e(short[k][2])], 0)
                for k in range(B)]
        x, m, tl = padded(rows)
        hs = body(inputs_embeds=x, attention_mask=m, use_cache=False).last_hidden_state
        T = F.normalize(torch.stack([hs[k, tl[k] - 1] for k in range(B)]), dim=-1)
        tokens += sum(tl)
        s = torch.exp(torch.clamp(logit_scale, max=MAX_LOGIT_SCALE))
        logits = s * (V @ T.t())
        lab = torch.arange(B)
        L_c = (F.cross_entropy(logits, lab) + F.cross_entropy(logits.t(), lab)) / 2
        (L_c + L_ntp).backward()
        opt.step()
        return L_c.item(), L_ntp.item(), tokens

    ts = []
    for r in range(a.reps + 1):
        t0 = time.perf_counter()
        lc, ln, tokens = step()
        ts.append((time.perf_counter() - t0) * 1e3)
        print("PyTorch step %d: %.0f ms  L_c %.6f  L_ntp %.6f  tokens %d" % (
            r + 1, ts[-1], lc, ln, tokens))
        sys.stdout.flush()
    med = sorted(ts[1:])[len(ts[1:]) // 2]
    print("PyTorch: batch %d, %d threads: median step %.0f ms, fastest %.0f ms (warm-up %.0f "
          "ms); peak RSS %d MiB (%d MiB after loading)" % (
              B, a.threads, med, min(ts[1:]), ts[0], maxrss_mib(), rss_loaded))


if __name__ == "__main__":
    main()
