#!/usr/bin/env python3
"""Writes a tiny Hugging Face CLIPModel directory for tests: config.json (as
CLIPConfig.save_pretrained writes it), preprocessor_config.json (a
CLIPImageProcessor), model.safetensors with deterministic pseudo-random
values (seeded by tensor name, tests/gen_tiny_checkpoint.py's generator),
and a tiny CLIP-style tokenizer.json + tokenizer_config.json.

The tokenizer comes in two forms (--tokenizer):
  hf      exactly what transformers' CLIPConverter writes (what the real
          openai/clip-vit-* tokenizer.json files hold): normalizer NFC +
          Replace(Regex \\s+ -> " ") + Lowercase; pre-tokenizer
          Split(Regex CLIP pattern, Removed, invert) + ByteLevel; BPE with
          end_of_word_suffix "</w>"; RobertaProcessing (<|startoftext|> text
          <|endoftext|>); ByteLevel decoder.
  compat  the same ids for every input with simpler components (the form
          libdisclvlm loaded before it supported the two above; kept to
          check that both forms agree): no whitespace-collapsing Replace (the pre-tokenizer drops
          whitespace anyway), and Split(Regex \\s+, Removed) followed by
          Split(CLIP pattern, Isolated) in place of the inverted Split (the
          CLIP pattern never matches across whitespace, so both give the
          same pieces).

Vocabulary (ids): 0.. the characters of TOK_CHARS, then the same characters
with "</w>", then the merges' results, then <|startoftext|>, <|endoftext|>
(the last two ids, as in CLIP's 49406 / 49407).

Only the Python 3 standard library is used (it runs in CI).
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_tiny_checkpoint import encode, write_safetensors  # noqa: E402

TOK_CHARS = ([chr(c) for c in range(ord("a"), ord("z") + 1)]
             + [chr(c) for c in range(ord("0"), ord("9") + 1)] + list(".,!?'-"))
TOK_MERGES = [("a", "t</w>"), ("c", "at</w>"), ("d", "o"), ("do", "g</w>"), ("r", "e"),
              ("e", "d</w>"), ("re", "d</w>"), ("o", "f</w>"), ("t", "h"), ("th", "e</w>"),
              ("a", "n"), ("i", "n"), ("b", "l"), ("bl", "u"), ("blu", "e</w>"),
              ("c", "i"), ("ci", "r"), ("g", "re"), ("e", "n</w>"),
              ("gre", "en</w>")]
CLIP_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""

VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 2, "image_size": 28, "patch_size": 14,
          "num_channels": 3, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
          "model_type": "clip_vision_model", "projection_dim": 24}
TEXT = {"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 16, "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-05, "model_type": "clip_text_model", "projection_dim": 24,
        "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1}
PROJECTION_DIM = 24
LOGIT_SCALE = 2.6592


def vocab():
    v = {}
    for c in TOK_CHARS:
        v[c] = len(v)
    for c in TOK_CHARS:
        v[c + "</w>"] = len(v)
    for a, b in TOK_MERGES:
        assert a in v and b in v and a + b not in v, (a, b)
        v[a + b] = len(v)
    v["<|startoftext|>"] = len(v)
    v["<|endoftext|>"] = len(v)
    return v


def tokenizer_json(form):
    v = vocab()
    bos, eos = v["<|startoftext|>"], v["<|endoftext|>"]
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": c != "<|startoftext|>" and c != "<|endoftext|>", "special": True}
             for c, i in (("<|startoftext|>", bos), ("<|endoftext|>", eos))]
    # transformers writes the CLIP special tokens with normalized: true for
    # <|startoftext|> and false for <|endoftext|> in some versions; both are
    # special and matched before normalization here.
    for a in added:
        a["normalized"] = False
    if form == "hf":
        normalizer = {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Lowercase"}]}
        split = [{"type": "Split", "pattern": {"Regex": CLIP_PATTERN}, "behavior": "Removed",
                  "invert": True}]
    else:
        normalizer = {"type": "Sequence", "normalizers": [{"type": "NFC"},
                                                          {"type": "Lowercase"}]}
        split = [{"type": "Split", "pattern": {"Regex": r"\s+"}, "behavior": "Removed",
                  "invert": False},
                 {"type": "Split", "pattern": {"Regex": CLIP_PATTERN}, "behavior": "Isolated",
                  "invert": False}]
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": split + [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": True}]},
        "post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", eos],
                           "cls": ["<|startoftext|>", bos], "trim_offsets": False,
                           "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<|endoftext|>",
                  "continuing_subword_prefix": "", "end_of_word_suffix": "</w>",
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": v, "merges": ["%s %s" % m for m in TOK_MERGES]},
    }


def tokenizer_config_json():
    return {"add_prefix_space": False, "bos_token": "<|startoftext|>",
            "clean_up_tokenization_spaces": True, "do_lower_case": True,
            "eos_token": "<|endoftext|>", "errors": "replace",
            "model_max_length": TEXT["max_position_embeddings"],
            "pad_token": "<|endoftext|>", "processor_class": "CLIPProcessor",
            "tokenizer_class": "CLIPTokenizer", "unk_token": "<|endoftext|>"}


def config_json(eos_token_id, dtype):
    t = dict(TEXT)
    t["vocab_size"] = len(vocab())
    t["eos_token_id"] = eos_token_id
    return {"architectures": ["CLIPModel"], "initializer_factor": 1.0,
            "logit_scale_init_value": LOGIT_SCALE, "model_type": "clip",
            "projection_dim": PROJECTION_DIM, "text_config": t,
            "torch_dtype": "float32" if dtype == "f32" else "bfloat16",
            "transformers_version": "4.46.3", "vision_config": dict(VISION)}


def preproc_json():
    s = VISION["image_size"]
    return {"crop_size": {"height": s, "width": s}, "do_center_crop": True,
            "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
            "do_resize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_processor_type": "CLIPImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711], "processor_class": "CLIPProcessor",
            "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": s}}


def tensor_specs():
    """(name, shape) of every CLIPModel tensor, in transformers' order."""
    V, T, P = VISION, TEXT, PROJECTION_DIM
    vocab_size = len(vocab())
    out = []

    def layers(pre, h, im, n):
        for i in range(n):
            l = "%s.encoder.layers.%d." % (pre, i)
            for p in ("k_proj", "v_proj", "q_proj", "out_proj"):
                out.append((l + "self_attn.%s.weight" % p, [h, h]))
                out.append((l + "self_attn.%s.bias" % p, [h]))
            out.append((l + "layer_norm1.weight", [h]))
            out.append((l + "layer_norm1.bias", [h]))
            out.append((l + "mlp.fc1.weight", [im, h]))
            out.append((l + "mlp.fc1.bias", [im]))
            out.append((l + "mlp.fc2.weight", [h, im]))
            out.append((l + "mlp.fc2.bias", [h]))
            out.append((l + "layer_norm2.weight", [h]))
            out.append((l + "layer_norm2.bias", [h]))

    th = T["hidden_size"]
    out.append(("text_model.embeddings.token_embedding.weight", [vocab_size, th]))
    out.append(("text_model.embeddings.position_embedding.weight",
                [T["max_position_embeddings"], th]))
    layers("text_model", th, T["intermediate_size"], T["num_hidden_layers"])
    out.append(("text_model.final_layer_norm.weight", [th]))
    out.append(("text_model.final_layer_norm.bias", [th]))
    vh, p = V["hidden_size"], V["patch_size"]
    n_pos = (V["image_size"] // p) ** 2 + 1
    out.append(("vision_model.embeddings.class_embedding", [vh]))
    out.append(("vision_model.embeddings.patch_embedding.weight", [vh, 3, p, p]))
    out.append(("vision_model.embeddings.position_embedding.weight", [n_pos, vh]))
    out.append(("vision_model.pre_layrnorm.weight", [vh]))
    out.append(("vision_model.pre_layrnorm.bias", [vh]))
    layers("vision_model", vh, V["intermediate_size"], V["num_hidden_layers"])
    out.append(("vision_model.post_layernorm.weight", [vh]))
    out.append(("vision_model.post_layernorm.bias", [vh]))
    out.append(("visual_projection.weight", [P, vh]))
    out.append(("text_projection.weight", [P, th]))
    out.append(("logit_scale", []))
    return out


def generate(out_dir, dtype="f32", tokenizer="compat", eos_token_id=2, drop=(),
             position_ids=False):
    import struct
    os.makedirs(out_dir, exist_ok=True)
    wdt = "F32" if dtype == "f32" else "BF16"
    tensors = []
    for name, shape in tensor_specs():
        if name in drop:
            continue
        if name == "logit_scale":
            tensors.append((name, "F32", [], struct.pack("<f", LOGIT_SCALE)))
        else:
            tensors.append((name, wdt, shape, encode(name, shape, wdt)))
    if position_ids:  # older checkpoints keep these buffers; unused
        n_pos = (VISION["image_size"] // VISION["patch_size"]) ** 2 + 1
        tensors.append(("vision_model.embeddings.position_ids", "I64", [1, n_pos],
                        encode("p", [1, n_pos], "I64")))
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config_json(eos_token_id, dtype), f, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(preproc_json(), f, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(tokenizer), f, indent=2, ensure_ascii=False)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config_json(), f, indent=2, sort_keys=True)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--tokenizer", choices=["hf", "compat"], default="compat")
    ap.add_argument("--eos-token-id", type=int, default=2,
                    help="text_config.eos_token_id (2: the legacy argmax pooling)")
    ap.add_argument("--drop", action="append", default=[], metavar="TENSOR")
    ap.add_argument("--position-ids", action="store_true")
    a = ap.parse_args(argv)
    generate(a.out_dir, a.dtype, a.tokenizer, a.eos_token_id, set(a.drop), a.position_ids)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
