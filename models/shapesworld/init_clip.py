#!/usr/bin/env python3
"""Writes the untrained ShapesWorld CLIP-style dual encoder: a Hugging Face
CLIPModel directory (ViT of the same size as the LVLM's tower, a causal text
transformer pooled at its EOS token, linear projections, logit_scale) with
normal(0, 0.02) matrices/embeddings, unit norm weights, zero biases and
logit_scale log(1/0.07).

    init_clip.py OUT_DIR [--seed S] [--tokenizer DIR]

Tokenizer: the real Llama-2 tokenizer.json with one added special token,
<|endoftext|> = 32000, appended by the post-processor ("<s> $A <|endoftext|>")
and used as text_config.eos_token_id, so CLIPTextTransformer pools at it (with
eos_token_id 2 transformers would take the largest id instead). Python 3
standard library only; tensor names come from tests/gen_tiny_clip.py.
"""
import argparse
import json
import math
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
import gen_tiny_checkpoint as gen  # noqa: E402
import gen_tiny_clip as clip  # noqa: E402
from init_lvlm import IMAGE, VISION as LVLM_VISION  # noqa: E402

EOT = 32000
VOCAB = 32064
PROJ = 128


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", default=os.path.join(
        HERE, "..", "..", "..", "shared", "assets", "tokenizers", "llama2"))
    a = ap.parse_args(argv)
    os.makedirs(a.out_dir, exist_ok=True)
    vision = {k: LVLM_VISION[k] for k in ("hidden_size", "intermediate_size",
                                          "num_hidden_layers", "num_attention_heads",
                                          "image_size", "patch_size", "hidden_act",
                                          "layer_norm_eps")}
    vision.update({"num_channels": 3, "model_type": "clip_vision_model", "projection_dim": PROJ})
    text = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 3,
            "num_attention_heads": 4, "max_position_embeddings": 64,
            "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
            "model_type": "clip_text_model", "projection_dim": PROJ, "vocab_size": VOCAB,
            "bos_token_id": 1, "eos_token_id": EOT, "pad_token_id": 0}
    clip.VISION, clip.TEXT, clip.PROJECTION_DIM = vision, text, PROJ
    clip.vocab = lambda: range(VOCAB)  # tensor_specs only takes its length
    rng = random.Random(a.seed)
    tensors = []
    for name, shape in clip.tensor_specs():
        n = 1
        for d in shape:
            n *= d
        if name == "logit_scale":
            vals = [math.log(1 / 0.07)]
        elif name.endswith(".bias"):
            vals = [0.0] * n
        elif "layer_norm" in name or "layrnorm" in name or "layernorm" in name:
            vals = [1.0] * n
        else:
            vals = [rng.gauss(0.0, 0.02) for _ in range(n)]
        tensors.append((name, "F32", shape, struct.pack("<%df" % n, *vals)))
    gen.write_safetensors(os.path.join(a.out_dir, "model.safetensors"), tensors)
    cfg = {"architectures": ["CLIPModel"], "initializer_factor": 1.0,
           "logit_scale_init_value": math.log(1 / 0.07), "model_type": "clip",
           "projection_dim": PROJ, "text_config": text, "torch_dtype": "float32",
           "transformers_version": "4.46.3", "vision_config": vision}
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    pre = clip.preproc_json()
    pre["crop_size"] = {"height": IMAGE, "width": IMAGE}
    pre["size"] = {"shortest_edge": IMAGE}
    with open(os.path.join(a.out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2, sort_keys=True)
    with open(os.path.join(a.tokenizer, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    tok["added_tokens"].append({"id": EOT, "content": "<|endoftext|>", "single_word": False,
                                "lstrip": False, "rstrip": False, "normalized": False,
                                "special": True})
    bos = {"SpecialToken": {"id": "<s>", "type_id": 0}}
    eot = {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}
    tok["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [bos, {"Sequence": {"id": "A", "type_id": 0}}, eot],
        "pair": [bos, {"Sequence": {"id": "A", "type_id": 0}}, eot,
                 {"Sequence": {"id": "B", "type_id": 1}}, eot],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                           "<|endoftext|>": {"id": "<|endoftext|>", "ids": [EOT],
                                             "tokens": ["<|endoftext|>"]}}}
    with open(os.path.join(a.out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    with open(os.path.join(a.out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>",
                   "model_max_length": 64, "tokenizer_class": "LlamaTokenizerFast"}, f, indent=2)
    print("%s: %d parameters" % (a.out_dir, sum(len(t[3]) // 4 for t in tensors)))


if __name__ == "__main__":
    main(sys.argv[1:])
