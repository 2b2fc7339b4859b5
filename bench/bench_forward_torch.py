#!/usr/bin/env python3
"""The computation bench_forward times, in PyTorch: LlavaForConditionalGeneration
(transformers 4.46.3 on Debian's torch 1.13.1), eval, no_grad, float32, eager
attention, torch.set_num_threads = the C run's thread count.
  image path: vision tower -> feature selection -> projector on random
    pixels, then language_model.model on inputs_embeds of
    [BOS + 8 prefix ids + image features + 12 suffix ids]
  text path:  language_model.model on 20-token texts
for batch sizes 1 and 8, median of REPS after one warm-up.

First writes MODEL_DIR (if it has no config.json): a random ~125M-parameter
LLaVA (CLIP ViT-B/32-like tower at 224 px, 12 layers x 768; 12-layer Llama,
hidden 512, vocab 32064), seed 0, float32 safetensors; with --width realistic
llava-1.5's widths with fewer layers (ViT-L/14 at 224 px, 6 layers; Llama
2048 hidden / 5632 MLP, 4 layers; 352M parameters), --weights bf16 to store
them as real checkpoints are. Then, when the C binary is given, runs it on
the same directory with the same --compute so both tables print together,
with the weights held as stored and, when that differs, in the dtype PyTorch
holds them in (torch_dtype = the compute dtype; the C library's
--weight-dtype):
    /tmp/ref-embed/bin/python bench/bench_forward_torch.py /tmp/bench-llava \
        [build/bench/bench_forward] [--reps 5] [--threads 2] [--compute bf16]
"""
import argparse
import os
import subprocess
import sys
import time

import torch
from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig,
                          LlavaForConditionalGeneration)

N_PREFIX, N_SUFFIX, TEXT_LEN = 8, 12, 20


def make_config(width):
    if width == "realistic":
        # llava-1.5's widths with fewer layers: a CLIP ViT-L/14 tower at 224 px
        # (1024 hidden, 4096 MLP, 256 patches) and a Llama with TinyLlama's
        # widths (2048 hidden, 5632 MLP, 16 heads of 128).
        vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=6,
                                  num_attention_heads=16, image_size=224, patch_size=14,
                                  projection_dim=768, hidden_act="quick_gelu")
        text = LlamaConfig(vocab_size=32064, hidden_size=2048, intermediate_size=5632,
                           num_hidden_layers=4, num_attention_heads=16, num_key_value_heads=16,
                           max_position_embeddings=2048, rms_norm_eps=1e-5, bos_token_id=1,
                           eos_token_id=2, pad_token_id=0)
        n_img = 256
    else:
        vision = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                  num_attention_heads=12, image_size=224, patch_size=32,
                                  projection_dim=512, hidden_act="quick_gelu")
        text = LlamaConfig(vocab_size=32064, hidden_size=512, intermediate_size=1408,
                           num_hidden_layers=12, num_attention_heads=8, num_key_value_heads=8,
                           max_position_embeddings=2048, rms_norm_eps=1e-5, bos_token_id=1,
                           eos_token_id=2, pad_token_id=0)
        n_img = 49
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=32000,
                       vision_feature_layer=-2, vision_feature_select_strategy="default",
                       projector_hidden_act="gelu", image_seq_length=n_img)


def write_model(out, width, dtype):
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(make_config(width)).float().eval()
    if dtype == "bf16":
        model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print("wrote %s: %.1fM parameters, %s" % (out, n / 1e6, dtype))


def median_ms(fn, reps):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return sorted(ts)[len(ts) // 2]


def gemm(m, n, k):
    return 2.0 * m * n * k


def text_flops(t, n):
    hd = t.hidden_size // t.num_attention_heads
    q, kv = t.num_attention_heads * hd, t.num_key_value_heads * hd
    h, i = t.hidden_size, t.intermediate_size
    layer = (gemm(n, q, h) + 2 * gemm(n, kv, h) + gemm(n, h, q) + 3 * gemm(n, i, h)
             + 2 * t.num_attention_heads * gemm(n, n, hd))
    return t.num_hidden_layers * layer


def vision_flops(c, n_feat):
    v = c.vision_config
    np_ = (v.image_size // v.patch_size) ** 2
    s, d, i = np_ + 1, v.hidden_size, v.intermediate_size
    layer = (4 * gemm(s, d, d) + 2 * gemm(s, i, d)
             + 2 * v.num_attention_heads * gemm(s, s, d // v.num_attention_heads))
    sel = c.vision_feature_layer % (v.num_hidden_layers + 1)
    t = c.text_config.hidden_size
    return (gemm(np_, d, v.num_channels * v.patch_size ** 2) + sel * layer
            + gemm(n_feat, t, d) + gemm(n_feat, t, t))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("c_bench", nargs="?")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--width", choices=("small", "realistic"), default="small",
                    help="the model written when MODEL_DIR has none")
    ap.add_argument("--weights", choices=("f32", "bf16"), default="f32",
                    help="the dtype of the model written when MODEL_DIR has none")
    ap.add_argument("--compute", choices=("f32", "bf16"), default="f32",
                    help="f32: the model in float32; bf16: the model in bfloat16 "
                         "(model.to(torch.bfloat16)); the C run gets the same")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.model_dir, "config.json")):
        write_model(a.model_dir, a.width, a.weights)
    torch.set_num_threads(a.threads)
    dt = torch.bfloat16 if a.compute == "bf16" else torch.float32
    model = LlavaForConditionalGeneration.from_pretrained(
        a.model_dir, torch_dtype=dt, attn_implementation="eager").eval()
    c = model.config
    lm = model.language_model.model
    embed = lm.embed_tokens
    v = c.vision_config
    n_feat = (v.image_size // v.patch_size) ** 2
    img_seq = 1 + N_PREFIX + n_feat + N_SUFFIX
    bos = c.text_config.bos_token_id
    vocab = c.text_config.vocab_size

    def ids(batch, seq):
        x = (3 + (torch.arange(batch * seq) * 7919) % (vocab - 3)).view(batch, seq)
        x[x == c.image_token_index] = 3
        x[:, 0] = bos
        return x

    def image_path(px, tok):
        feats = model.get_image_features(px, c.vision_feature_layer,
                                         c.vision_feature_select_strategy)
        e = torch.cat([embed(tok[:, :1 + N_PREFIX]), feats,
                       embed(tok[:, 1 + N_PREFIX + n_feat:])], 1)
        return lm(inputs_embeds=e, attention_mask=torch.ones(e.shape[:2], dtype=torch.long))

    def text_path(tok):
        return lm(input_ids=tok, attention_mask=torch.ones_like(tok))

    print("torch %s, %d threads (%s), %s" % (torch.__version__, torch.get_num_threads(),
                                             torch.backends.mkldnn.is_available()
                                             and "oneDNN available" or "no oneDNN", dt))
    print("%-22s %5s %10s %10s %10s" % ("PyTorch", "batch", "ms/batch", "items/s", "GFLOP/s"))
    with torch.no_grad():
        for name in ("images", "texts"):
            for b in (1, 8):
                if name == "images":
                    g = torch.Generator().manual_seed(7)
                    px = (torch.rand(b, 3, v.image_size, v.image_size, generator=g) * 2 - 1).to(dt)
                    tok = ids(b, img_seq)
                    ms = median_ms(lambda: image_path(px, tok), a.reps)
                    fl = b * (vision_flops(c, n_feat) + text_flops(c.text_config, img_seq))
                else:
                    tok = ids(b, TEXT_LEN)
                    ms = median_ms(lambda: text_path(tok), a.reps)
                    fl = b * text_flops(c.text_config, TEXT_LEN)
                print("%-22s %5d %10.2f %10.2f %10.1f" % (name, b, ms, 1e3 * b / ms,
                                                          fl / (ms * 1e6)))
    if a.c_bench:
        print()
        sys.stdout.flush()
        held = ["auto"]
        if stored_dtypes(a.model_dir) != {a.compute.upper()}:
            held.append(a.compute)
        for w in held:
            subprocess.run([a.c_bench, a.model_dir, str(a.reps), str(a.threads), a.compute, w],
                           check=True)
            print()
            sys.stdout.flush()


def stored_dtypes(model_dir):
    """The dtypes of the tensors in MODEL_DIR's safetensors files ("F32", ...)."""
    import json
    import struct
    out = set()
    for f in os.listdir(model_dir):
        if f.endswith(".safetensors"):
            with open(os.path.join(model_dir, f), "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]
                hdr = json.loads(fh.read(n))
            out |= {v["dtype"] for k, v in hdr.items() if k != "__metadata__"}
    return out


if __name__ == "__main__":
    main()
