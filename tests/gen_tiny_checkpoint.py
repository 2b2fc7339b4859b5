#!/usr/bin/env python3
"""Writes a tiny LlavaForConditionalGeneration directory in the Hugging Face
format, for tests: config.json and preprocessor_config.json as
save_pretrained writes them, and the weights as safetensors (one file or two
shards with model.safetensors.index.json) with deterministic pseudo-random
values. --family llava_next writes a LlavaNextForConditionalGeneration,
--family qwen2_vl / qwen2_5_vl (with --text qwen2) a
Qwen2VLForConditionalGeneration / Qwen2_5_VLForConditionalGeneration.
With --with-tokenizer it also writes a tiny BPE tokenizer.json and
tokenizer_config.json whose ids fit the tiny vocabulary.

The safetensors writer here is independent of the library's, so a test that
loads these files checks the reader against a second implementation.

Besides the model files it writes tiny_manifest.json: what a loader should
report (tensor count, parameters per part, dtypes), for the tests.

Only the Python 3 standard library is used (it runs in CI).
"""
import argparse
import json
import os
import struct
import sys
import zlib

VISION = {
    "clip": {
        "model_type": "clip_vision_model",
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "image_size": 28, "patch_size": 14,
        "projection_dim": 16, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
    },
    "siglip": {
        "model_type": "siglip_vision_model",
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 2, "image_size": 28, "patch_size": 14,
        "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-06,
        "vision_use_head": False,
    },
}

TEXT = {
    "llama": {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"],
        "vocab_size": 128, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
    },
    "qwen2": {
        "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"],
        "vocab_size": 128, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "tie_word_embeddings": True, "bos_token_id": 100, "eos_token_id": 101,
        "use_sliding_window": False,
    },
}

PREFIXES = {
    "classic": {"vision": "vision_tower.", "projector": "multi_modal_projector.",
                "text": "language_model.model.", "lm_head": "language_model.", "top": ""},
    "new": {"vision": "model.vision_tower.", "projector": "model.multi_modal_projector.",
            "text": "model.language_model.", "lm_head": "", "top": "model."},
}

# --family llava_next: LlavaNextForConditionalGeneration with grid
# resolutions of whole 28 px tiles (the tiny tower's image_size): 1x2, 2x1,
# 2x2, 1x3 and 3x1 tiles.
NEXT_PINPOINTS = [[28, 56], [56, 28], [56, 56], [28, 84], [84, 28]]

# --family qwen2_vl / qwen2_5_vl (--text qwen2; --vision does not apply):
# Qwen2VLForConditionalGeneration as transformers 4.46.3's save_pretrained
# writes it and Qwen2_5_VLForConditionalGeneration as 4.51.3's does (the
# old layout of both: visual.*, model.*, lm_head.* unless tied). The
# language model is TEXT["qwen2"] with M-RoPE sections [2, 3, 3] (head_dim
# 16) and the vision tokens at 104..107 (the tiny tokenizer names them
# <|vision_start|>, <|vision_end|>, <|image_pad|>, <|video_pad|> for these
# families). QWEN_VL_VISION holds each tower's whole vision_config;
# config.json carries what that version's save_pretrained writes of it
# (4.46.3 leaves out the fields at their defaults: in_channels,
# spatial_merge_size, temporal_patch_size, hidden_act).
QWEN_VL_VISION = {
    "qwen2_vl": {
        "depth": 2, "embed_dim": 32, "num_heads": 2, "mlp_ratio": 2, "patch_size": 4,
        "temporal_patch_size": 2, "spatial_merge_size": 2, "in_channels": 3,
        "hidden_size": 64, "hidden_act": "quick_gelu",
    },
    "qwen2_5_vl": {
        "depth": 3, "hidden_size": 32, "intermediate_size": 48, "num_heads": 2,
        "out_hidden_size": 64, "patch_size": 4, "temporal_patch_size": 2,
        "spatial_merge_size": 2, "window_size": 16, "fullatt_block_indexes": [1],
        "hidden_act": "silu", "in_channels": 3, "tokens_per_second": 2,
    },
}
QWEN_VL_SAVED_VISION_KEYS = {
    "qwen2_vl": ["depth", "embed_dim", "hidden_size", "mlp_ratio", "num_heads", "patch_size"],
    "qwen2_5_vl": sorted(QWEN_VL_VISION["qwen2_5_vl"]),
}
QWEN_VL_ARCH = {"qwen2_vl": ("Qwen2VLForConditionalGeneration", "4.46.3", "Qwen2VLProcessor"),
                "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "4.51.3",
                               "Qwen2_5_VLProcessor")}
QWEN_VL_TOKENS = {"vision_start_token_id": 104, "vision_end_token_id": 105,
                  "image_token_id": 106, "video_token_id": 107}
QWEN_VL_PREFIXES = {"vision": "visual.", "projector": "visual.merger.", "text": "model.",
                    "lm_head": "", "top": ""}
QWEN_VL_MIN_PIXELS, QWEN_VL_MAX_PIXELS = 256, 2048


def is_qwen_vl(family):
    return family in QWEN_VL_VISION


def qwen_vl_vision_specs(family):
    """The tower (part "vision") and its patch merger (part "projector",
    the merger being what LLaVA's projector is), HF's parameter order."""
    v = QWEN_VL_VISION[family]
    q25 = family == "qwen2_5_vl"
    d = v["hidden_size"] if q25 else v["embed_dim"]
    p, t, c, m = v["patch_size"], v["temporal_patch_size"], v["in_channels"], \
        v["spatial_merge_size"]
    out_h = v["out_hidden_size"] if q25 else v["hidden_size"]
    out = [("vision", "patch_embed.proj.weight", [d, c, t, p, p], None)]
    for i in range(v["depth"]):
        l = "blocks.%d." % i
        for norm in ("norm1", "norm2"):
            out.append(("vision", l + norm + ".weight", [d], None))
            if not q25:  # Qwen2.5-VL's norms are RMSNorms: no bias
                out.append(("vision", l + norm + ".bias", [d], None))
        out += [("vision", l + "attn.qkv.weight", [3 * d, d], None),
                ("vision", l + "attn.qkv.bias", [3 * d], None),
                ("vision", l + "attn.proj.weight", [d, d], None),
                ("vision", l + "attn.proj.bias", [d], None)]
        if q25:
            f = v["intermediate_size"]
            out += [("vision", l + "mlp.gate_proj.weight", [f, d], None),
                    ("vision", l + "mlp.gate_proj.bias", [f], None),
                    ("vision", l + "mlp.up_proj.weight", [f, d], None),
                    ("vision", l + "mlp.up_proj.bias", [f], None),
                    ("vision", l + "mlp.down_proj.weight", [d, f], None),
                    ("vision", l + "mlp.down_proj.bias", [d], None)]
        else:
            f = d * v["mlp_ratio"]
            out += [("vision", l + "mlp.fc1.weight", [f, d], None),
                    ("vision", l + "mlp.fc1.bias", [f], None),
                    ("vision", l + "mlp.fc2.weight", [d, f], None),
                    ("vision", l + "mlp.fc2.bias", [d], None)]
    mdim = d * m * m
    out.append(("projector", "ln_q.weight", [d], None))
    if not q25:
        out.append(("projector", "ln_q.bias", [d], None))
    out += [("projector", "mlp.0.weight", [mdim, mdim], None),
            ("projector", "mlp.0.bias", [mdim], None),
            ("projector", "mlp.2.weight", [out_h, mdim], None),
            ("projector", "mlp.2.bias", [out_h], None)]
    return out


def tensor_specs(vision, text, family="llava"):
    """(part, canonical name, shape, dtype override or None) in a fixed order."""
    if is_qwen_vl(family):
        return qwen_vl_vision_specs(family) + text_specs(text)
    v = VISION[vision]
    vh, vi, p = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    n_patches = (v["image_size"] // p) ** 2
    out = []
    pre = "vision_model."
    if vision == "clip":
        out.append(("vision", pre + "embeddings.class_embedding", [vh], None))
        out.append(("vision", pre + "embeddings.patch_embedding.weight", [vh, 3, p, p], None))
        out.append(("vision", pre + "embeddings.position_embedding.weight",
                    [n_patches + 1, vh], None))
        # Older CLIP checkpoints carry this int64 buffer: an unused tensor.
        out.append(("vision", pre + "embeddings.position_ids", [1, n_patches + 1], "I64"))
        out.append(("vision", pre + "pre_layrnorm.weight", [vh], None))
        out.append(("vision", pre + "pre_layrnorm.bias", [vh], None))
    else:
        out.append(("vision", pre + "embeddings.patch_embedding.weight", [vh, 3, p, p], None))
        out.append(("vision", pre + "embeddings.patch_embedding.bias", [vh], None))
        out.append(("vision", pre + "embeddings.position_embedding.weight",
                    [n_patches, vh], None))
    for i in range(v["num_hidden_layers"]):
        l = "%sencoder.layers.%d." % (pre, i)
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out.append(("vision", l + "self_attn.%s.weight" % proj, [vh, vh], None))
            out.append(("vision", l + "self_attn.%s.bias" % proj, [vh], None))
        out += [("vision", l + "layer_norm1.weight", [vh], None),
                ("vision", l + "layer_norm1.bias", [vh], None),
                ("vision", l + "mlp.fc1.weight", [vi, vh], None),
                ("vision", l + "mlp.fc1.bias", [vi], None),
                ("vision", l + "mlp.fc2.weight", [vh, vi], None),
                ("vision", l + "mlp.fc2.bias", [vh], None),
                ("vision", l + "layer_norm2.weight", [vh], None),
                ("vision", l + "layer_norm2.bias", [vh], None)]
    out.append(("vision", pre + "post_layernorm.weight", [vh], None))
    out.append(("vision", pre + "post_layernorm.bias", [vh], None))

    th = TEXT[text]["hidden_size"]
    out += [("projector", "linear_1.weight", [th, vh], None),
            ("projector", "linear_1.bias", [th], None),
            ("projector", "linear_2.weight", [th, th], None),
            ("projector", "linear_2.bias", [th], None)]
    if family == "llava_next":
        out.append(("top", "image_newline", [th], None))
    return out + text_specs(text)


def text_specs(text):
    """The language model's tensors (parts "text" and "lm_head")."""
    t = TEXT[text]
    th, ti = t["hidden_size"], t["intermediate_size"]
    out = []
    hd = th // t["num_attention_heads"]
    q, kv = t["num_attention_heads"] * hd, t["num_key_value_heads"] * hd
    out.append(("text", "embed_tokens.weight", [t["vocab_size"], th], None))
    for i in range(t["num_hidden_layers"]):
        l = "layers.%d." % i
        out += [("text", l + "self_attn.q_proj.weight", [q, th], None),
                ("text", l + "self_attn.k_proj.weight", [kv, th], None),
                ("text", l + "self_attn.v_proj.weight", [kv, th], None),
                ("text", l + "self_attn.o_proj.weight", [th, q], None)]
        if text == "qwen2":
            out += [("text", l + "self_attn.q_proj.bias", [q], None),
                    ("text", l + "self_attn.k_proj.bias", [kv], None),
                    ("text", l + "self_attn.v_proj.bias", [kv], None)]
        out += [("text", l + "mlp.gate_proj.weight", [ti, th], None),
                ("text", l + "mlp.up_proj.weight", [ti, th], None),
                ("text", l + "mlp.down_proj.weight", [th, ti], None),
                ("text", l + "input_layernorm.weight", [th], None),
                ("text", l + "post_attention_layernorm.weight", [th], None)]
    out.append(("text", "norm.weight", [th], None))
    if not t["tie_word_embeddings"]:
        out.append(("lm_head", "lm_head.weight", [t["vocab_size"], th], None))
    return out


def values(name, n):
    """n deterministic floats for a tensor: a 32-bit LCG seeded by the name."""
    x = zlib.crc32(name.encode()) or 1
    norm = name.endswith("norm.weight") or ("layer_norm" in name and name.endswith(".weight"))
    # Qwen2-VL towers' norms (no other model has these names).
    norm = norm or name.endswith((".norm1.weight", ".norm2.weight", ".ln_q.weight"))
    vals = []
    for _ in range(n):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        u = (x >> 8) / float(1 << 24) - 0.5  # [-0.5, 0.5)
        vals.append(1.0 + 0.1 * u if norm else 0.2 * u)
    return vals


def f32_to_bf16_bits(f):
    """Round-to-nearest-even truncation of the float32 bit pattern."""
    (b,) = struct.unpack("<I", struct.pack("<f", f))
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF


def encode(name, shape, dtype):
    n = 1
    for d in shape:
        n *= d
    if dtype == "I64":
        return struct.pack("<%dq" % n, *range(n))
    if dtype == "I32":
        return struct.pack("<%di" % n, *range(n))
    vals = values(name, n)
    if dtype == "F32":
        return struct.pack("<%df" % n, *vals)
    if dtype == "BF16":
        return struct.pack("<%dH" % n, *[f32_to_bf16_bits(v) for v in vals])
    raise ValueError(dtype)


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, bytes). Header padded with spaces
    to a multiple of 8 bytes, data in the order given."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for _, _, _, data in tensors:
            f.write(data)
    return offset


def qwen_vl_config_json(text, dtype, family):
    """config.json of Qwen2VLForConditionalGeneration (4.46.3) /
    Qwen2_5_VLForConditionalGeneration (4.51.3): save_pretrained's fields,
    except rope_scaling, written as the published Qwen2-VL / Qwen2.5-VL
    checkpoints have it ({"type": "mrope", "mrope_section": ...});
    save_pretrained would write {"mrope_section": ..., "rope_type": "default",
    "type": "default"}, the form its config class turns "mrope" into."""
    t = TEXT[text]
    arch, version, _ = QWEN_VL_ARCH[family]
    v = QWEN_VL_VISION[family]
    vision = {k: v[k] for k in QWEN_VL_SAVED_VISION_KEYS[family]}
    vision["model_type"] = family
    cfg = {
        "architectures": [arch], "attention_dropout": 0.0,
        "bos_token_id": t["bos_token_id"], "eos_token_id": t["eos_token_id"],
        "hidden_act": "silu", "hidden_size": t["hidden_size"], "initializer_range": 0.02,
        "intermediate_size": t["intermediate_size"],
        "max_position_embeddings": t["max_position_embeddings"], "max_window_layers": 80,
        "model_type": family, "num_attention_heads": t["num_attention_heads"],
        "num_hidden_layers": t["num_hidden_layers"],
        "num_key_value_heads": t["num_key_value_heads"], "rms_norm_eps": t["rms_norm_eps"],
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
        "rope_theta": t["rope_theta"], "sliding_window": 4096,
        "tie_word_embeddings": t["tie_word_embeddings"],
        "torch_dtype": "float32" if dtype == "f32" else "bfloat16",
        "transformers_version": version, "use_cache": True,
        "use_sliding_window": t["use_sliding_window"], "vision_config": vision,
        "vocab_size": t["vocab_size"],
    }
    cfg.update(QWEN_VL_TOKENS)
    hd = t["hidden_size"] // t["num_attention_heads"]
    assert sum(cfg["rope_scaling"]["mrope_section"]) * 2 == hd
    return cfg


def config_json(vision, text, dtype, family="llava"):
    if is_qwen_vl(family):
        return qwen_vl_config_json(text, dtype, family)
    v = dict(VISION[vision])
    t = dict(TEXT[text])
    n_patches = (v["image_size"] // v["patch_size"]) ** 2
    if family == "llava_next":
        return {
            "architectures": ["LlavaNextForConditionalGeneration"],
            "image_grid_pinpoints": NEXT_PINPOINTS,
            "image_seq_length": n_patches,
            "image_token_index": 120,
            "model_type": "llava_next",
            "projector_hidden_act": "gelu",
            "text_config": t,
            "torch_dtype": "float32" if dtype == "f32" else "bfloat16",
            "transformers_version": "4.46.3",
            "vision_config": v,
            "vision_feature_layer": -2,
            "vision_feature_select_strategy": "default",
        }
    cfg = {
        "architectures": ["LlavaForConditionalGeneration"],
        "image_seq_length": n_patches,
        "image_token_index": 120,
        "model_type": "llava",
        "projector_hidden_act": "gelu",
        "text_config": t,
        "torch_dtype": "float32" if dtype == "f32" else "bfloat16",
        "transformers_version": "4.45.0",
        "vision_config": v,
        "vision_feature_layer": -2 if vision == "clip" else -1,
        "vision_feature_select_strategy": "default" if vision == "clip" else "full",
    }
    return cfg


def preproc_json(vision, family="llava"):
    if is_qwen_vl(family):
        # Qwen2VLImageProcessor (both families) as save_pretrained of the
        # processor writes it; "size" in each version's form (4.51.3 refuses
        # 4.46.3's {"min_pixels", "max_pixels"}, 4.46.3 ignores "size").
        v = QWEN_VL_VISION[family]
        if family == "qwen2_vl":
            size = {"max_pixels": QWEN_VL_MAX_PIXELS, "min_pixels": QWEN_VL_MIN_PIXELS}
        else:
            size = {"longest_edge": QWEN_VL_MAX_PIXELS, "shortest_edge": QWEN_VL_MIN_PIXELS}
        return {
            "do_convert_rgb": True, "do_normalize": True, "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_processor_type": "Qwen2VLImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "max_pixels": QWEN_VL_MAX_PIXELS, "merge_size": v["spatial_merge_size"],
            "min_pixels": QWEN_VL_MIN_PIXELS, "patch_size": v["patch_size"],
            "processor_class": QWEN_VL_ARCH[family][2], "resample": 3,
            "rescale_factor": 0.00392156862745098, "size": size,
            "temporal_patch_size": v["temporal_patch_size"],
        }
    v = VISION[vision]
    if family == "llava_next":
        return {
            "crop_size": {"height": v["image_size"], "width": v["image_size"]},
            "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
            "do_pad": True, "do_rescale": True, "do_resize": True,
            "image_grid_pinpoints": NEXT_PINPOINTS,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_processor_type": "LlavaNextImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "processor_class": "LlavaNextProcessor", "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"shortest_edge": v["image_size"]},
        }
    if vision == "clip":
        return {
            "crop_size": {"height": v["image_size"], "width": v["image_size"]},
            "do_center_crop": True, "do_convert_rgb": True, "do_normalize": True,
            "do_rescale": True, "do_resize": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073],
            "image_processor_type": "CLIPImageProcessor",
            "image_std": [0.26862954, 0.26130258, 0.27577711],
            "processor_class": "LlavaProcessor", "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"shortest_edge": v["image_size"]},
        }
    return {
        "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
        "image_std": [0.5, 0.5, 0.5], "processor_class": "LlavaProcessor", "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"height": v["image_size"], "width": v["image_size"]},
    }


# ---- Tiny tokenizer (--with-tokenizer) -------------------------------------
# A Llama-style (legacy, SentencePiece-converted) BPE tokenizer.json whose ids
# all fit the tiny vocabulary (128): normalizer Prepend("\u2581") +
# Replace(" ", "\u2581"), no pre-tokenizer, BPE with unk "<unk>" (fused, no
# byte fallback), decoder Replace/Fuse/Strip. Ids:
#   0 <unk>, 1 <s>, 2 </s>, 3.. single characters, then merges up to 99;
#   100 <|startoftext|>, 101 <|endoftext|> (Qwen2's bos/eos in the tiny
#   config), 102 <|im_start|>, 103 <|im_end|>, 104..119 <|reserved_N|>,
#   120 <image> (image_token_index).
# The same vocabulary serves both text families; only the post-processor and
# tokenizer_config.json differ (Llama adds <s>, Qwen2 adds nothing).
# For --family qwen2_vl / qwen2_5_vl, 104..107 are <|vision_start|>,
# <|vision_end|>, <|image_pad|> and <|video_pad|> (QWEN_VL_TOKENS' ids).
SPM_SPACE = "\u2581"
TOK_CHARS = ([SPM_SPACE, "\n"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
             + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
             + [chr(c) for c in range(ord("0"), ord("9") + 1)]
             + list(".,!?:;'\"-()/="))
TOK_MERGES = [(SPM_SPACE, "t"), ("h", "e"), (SPM_SPACE + "t", "he"), ("i", "n"),
              ("e", "r"), (SPM_SPACE, "a"), ("o", "n"), ("o", "r"), ("r", "e"),
              ("a", "r"), (SPM_SPACE, "s"), ("o", "u"), ("a", "g"), ("i", "m"),
              (SPM_SPACE, "im"), ("ag", "e"), (SPM_SPACE + "im", "age"), ("e", "n"),
              (SPM_SPACE, "o"), ("v", "e")]
# `tokenizers` ignores the ids written for added tokens that are not in the
# model's vocabulary and numbers them on from the vocabulary's size, so the
# ids are contiguous: 104..119 are reserved special tokens that put <image>
# at 120.
TOK_ADDED = ([(0, "<unk>"), (1, "<s>"), (2, "</s>"), (100, "<|startoftext|>"),
              (101, "<|endoftext|>"), (102, "<|im_start|>"), (103, "<|im_end|>")]
             + [(i, "<|reserved_%d|>" % (i - 104)) for i in range(104, 120)]
             + [(120, "<image>")])
QWEN_VL_TOK_NAMES = {104: "<|vision_start|>", 105: "<|vision_end|>", 106: "<|image_pad|>",
                     107: "<|video_pad|>"}


def tok_added(family="llava"):
    if not is_qwen_vl(family):
        return TOK_ADDED
    return [(i, QWEN_VL_TOK_NAMES.get(i, c)) for i, c in TOK_ADDED]


def tokenizer_json(text, family="llava"):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for c in TOK_CHARS:
        vocab[c] = len(vocab)
    for a, b in TOK_MERGES:
        assert a in vocab and b in vocab and a + b not in vocab, (a, b)
        vocab[a + b] = len(vocab)
    assert len(vocab) == 100, len(vocab)
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": True}
             for i, c in tok_added(family)]
    if text == "llama":
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                           {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                         {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    else:
        post = None
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPM_SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPM_SPACE}]},
        "pre_tokenizer": None,
        "post_processor": post,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPM_SPACE}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": ["%s %s" % m for m in TOK_MERGES]},
    }


def tokenizer_config_json(text, family="llava"):
    if is_qwen_vl(family):
        # Qwen2's (no BOS), with the class the published checkpoints name:
        # Qwen2VLProcessor accepts only Qwen2Tokenizer / Qwen2TokenizerFast.
        cfg = tokenizer_config_json(text)
        cfg["tokenizer_class"] = "Qwen2Tokenizer"
        return cfg
    if text == "llama":
        return {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
                "legacy": True, "clean_up_tokenization_spaces": False,
                "model_max_length": 256, "tokenizer_class": "LlamaTokenizer"}
    return {"add_bos_token": False, "add_eos_token": False,
            "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
            "unk_token": "<unk>", "pad_token": None,
            "clean_up_tokenization_spaces": False, "model_max_length": 256,
            "tokenizer_class": "PreTrainedTokenizerFast"}


def write_tokenizer(out_dir, text, family="llava"):
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(text, family), f, indent=2, ensure_ascii=False)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config_json(text, family), f, indent=2, sort_keys=True)


def generate(out_dir, vision, text, dtype, sharded=False, layout="classic",
             drop=(), bad_shape=(), bad_dtype=(), with_tokenizer=False, family="llava"):
    if family == "llava_next" and vision != "clip":
        raise SystemExit("gen_tiny_checkpoint: llava_next needs --vision clip")
    if is_qwen_vl(family):
        if text != "qwen2":
            raise SystemExit("gen_tiny_checkpoint: %s needs --text qwen2" % family)
        if layout != "classic":
            raise SystemExit("gen_tiny_checkpoint: %s has only the classic layout" % family)
        vision = family  # the family's own tower; VISION does not apply
    os.makedirs(out_dir, exist_ok=True)
    prefixes = QWEN_VL_PREFIXES if is_qwen_vl(family) else PREFIXES[layout]
    wdtype = "F32" if dtype == "f32" else "BF16"
    tensors, manifest_params = [], {"vision": 0, "projector": 0, "text": 0}
    dtype_count, n_unused = {}, 0
    for part, canonical, shape, override in tensor_specs(vision, text, family):
        name = prefixes[part] + canonical
        if name in drop:
            continue
        shape = list(shape)
        if name in bad_shape:
            shape[0] += 1
        tdtype = override or ("I32" if name in bad_dtype else wdtype)
        tensors.append((name, tdtype, shape, encode(name, shape, tdtype)))
        dtype_count[tdtype] = dtype_count.get(tdtype, 0) + 1
        n = 1
        for d in shape:
            n *= d
        if override:  # buffers such as position_ids are not weights
            n_unused += 1
        else:
            manifest_params[{"lm_head": "text", "top": "projector"}.get(part, part)] += n
    unknown = [n for n in list(drop) + list(bad_shape) + list(bad_dtype)
               if n not in {prefixes[p] + c for p, c, _, _ in tensor_specs(vision, text, family)}]
    if unknown:
        raise SystemExit("gen_tiny_checkpoint: no tensor named %s in this model"
                         % ", ".join(repr(n) for n in unknown))

    # Clear what an earlier run may have left (single vs sharded).
    for f in os.listdir(out_dir):
        if f.endswith(".safetensors") or f == "model.safetensors.index.json":
            os.remove(os.path.join(out_dir, f))
    if sharded:
        half = len(tensors) // 2
        shards = [tensors[:half], tensors[half:]]
        weight_map, total = {}, 0
        for i, shard in enumerate(shards):
            fname = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
            total += write_safetensors(os.path.join(out_dir, fname), shard)
            for name, _, _, _ in shard:
                weight_map[name] = fname
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        n_files = len(shards)
    else:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
        n_files = 1

    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config_json(vision, text, dtype, family), f, indent=2, sort_keys=True)
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(preproc_json(vision, family), f, indent=2, sort_keys=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(out_dir, f)):
            os.remove(os.path.join(out_dir, f))
    if with_tokenizer:
        write_tokenizer(out_dir, text, family)

    manifest_params["total"] = sum(manifest_params.values())
    manifest = {
        "family": family, "vision": vision, "text": text, "dtype": dtype, "layout": layout,
        "sharded": sharded, "files": n_files, "tensor_count": len(tensors),
        "unused_tensors": n_unused, "dtype_count": dtype_count,
        "parameters": manifest_params, "embedding_size": TEXT[text]["hidden_size"],
    }
    with open(os.path.join(out_dir, "tiny_manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--vision", choices=sorted(VISION), default=None,
                    help="the LLaVA families' tower (default clip); not for qwen2_vl, "
                         "qwen2_5_vl")
    ap.add_argument("--text", choices=sorted(TEXT), default="llama",
                    help="qwen2_vl and qwen2_5_vl need qwen2")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--sharded", action="store_true")
    ap.add_argument("--layout", choices=sorted(PREFIXES), default="classic")
    ap.add_argument("--drop", action="append", default=[], metavar="TENSOR",
                    help="leave this tensor (checkpoint name) out")
    ap.add_argument("--bad-shape", action="append", default=[], metavar="TENSOR",
                    help="write this tensor with its first dimension one too large")
    ap.add_argument("--bad-dtype", action="append", default=[], metavar="TENSOR",
                    help="write this tensor as I32")
    ap.add_argument("--with-tokenizer", action="store_true",
                    help="also write a tiny BPE tokenizer.json + tokenizer_config.json")
    ap.add_argument("--family", choices=["llava", "llava_next"] + sorted(QWEN_VL_VISION),
                    default="llava",
                    help="LlavaForConditionalGeneration (default), "
                         "LlavaNextForConditionalGeneration, Qwen2VLForConditionalGeneration "
                         "(qwen2_vl) or Qwen2_5_VLForConditionalGeneration (qwen2_5_vl)")
    a = ap.parse_args(argv)
    if is_qwen_vl(a.family) and a.vision is not None:
        raise SystemExit("gen_tiny_checkpoint: --vision does not apply to " + a.family)
    generate(a.out_dir, a.vision or "clip", a.text, a.dtype, a.sharded, a.layout,
             set(a.drop), set(a.bad_shape), set(a.bad_dtype), a.with_tokenizer, a.family)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
