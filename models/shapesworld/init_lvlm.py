#!/usr/bin/env python3
"""Writes the untrained ShapesWorld LVLM: a small LlavaForConditionalGeneration
(CLIP-style ViT + gelu projector + Llama-style decoder) in the Hugging Face
layout, with Hugging Face-style random initialisation (normal(0, 0.02) for
matrices and embeddings, ones for norm weights, zeros for biases), and the
real Llama-2 tokenizer copied from ../shared/assets/tokenizers/llama2/.

    init_lvlm.py OUT_DIR [--seed S] [--tokenizer DIR] [--image-size PX]
                 [--patch-size P] [--vision-from CLIP_DIR]

--image-size and --patch-size change the ViT's input (48 and 8 for the
committed model); --vision-from starts the vision tower from a trained
CLIPModel with the same ViT (models/shapesworld/clip), as LLaVA starts from
CLIP's; both were tried (docs/shapesworld.md) and the committed recipe uses
neither. Deterministic for a seed. Weights are f32 (training widens to f32 anyway);
the training recipe saves the trained model in bf16 (models/shapesworld/
Makefile). Python 3 standard library only: the tensor names and shapes come
from tests/gen_tiny_checkpoint.py, the safetensors writer too.
"""
import argparse
import json
import os
import random
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))
import gen_tiny_checkpoint as gen  # noqa: E402

IMAGE = 48
VISION = {
    "model_type": "clip_vision_model",
    "hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 3,
    "num_attention_heads": 4, "image_size": IMAGE, "patch_size": 8,
    "projection_dim": 128, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-05,
}
# vocab 32064 as llava-1.5 (32000 Llama-2 pieces, <image> at 32000, padding);
# tied embeddings keep the file small.
TEXT = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"],
    "vocab_size": 32064, "hidden_size": 128, "intermediate_size": 352,
    "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4,
    "max_position_embeddings": 512, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
}


def init_values(rng, name, n):
    if name.endswith("norm.weight") or "layer_norm" in name and name.endswith(".weight") \
            or name.endswith("layrnorm.weight"):
        return [1.0] * n
    if name.endswith(".bias"):
        return [0.0] * n
    return [rng.gauss(0.0, 0.02) for _ in range(n)]


def load_clip_vision(clip_dir):
    """The float tensors under vision_model. of a CLIPModel directory, as lists of
    floats keyed by name (bf16, f16 and f32 read)."""
    with open(os.path.join(clip_dir, "config.json")) as f:
        vc = json.load(f)["vision_config"]
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "image_size", "patch_size", "hidden_act"):
        if vc.get(key) != VISION[key]:
            sys.exit("%s: vision_config.%s is %r, the LVLM needs %r"
                     % (clip_dir, key, vc.get(key), VISION[key]))
    path = os.path.join(clip_dir, "model.safetensors")
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + hlen])
    out = {}
    for name, info in header.items():
        if not name.startswith("vision_model."):
            continue
        lo, hi = info["data_offsets"]
        raw = blob[8 + hlen + lo:8 + hlen + hi]
        if info["dtype"] == "F32":
            vals = list(struct.unpack("<%df" % (len(raw) // 4), raw))
        elif info["dtype"] == "BF16":
            halves = struct.unpack("<%dH" % (len(raw) // 2), raw)
            vals = list(struct.unpack("<%df" % len(halves),
                                      struct.pack("<%dI" % len(halves),
                                                  *(h << 16 for h in halves))))
        elif info["dtype"] == "F16":
            vals = list(struct.unpack("<%de" % (len(raw) // 2), raw))
        else:
            continue  # position_ids (I64) is rewritten by the generator
        out[name] = vals
    if not out:
        sys.exit("%s: no vision_model.* tensors (not a CLIPModel directory?)" % path)
    return out


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer", default=os.path.join(
        HERE, "..", "..", "..", "shared", "assets", "tokenizers", "llama2"))
    ap.add_argument("--vision-from", metavar="CLIP_DIR",
                    help="start the vision tower from this CLIPModel's (LLaVA's recipe: a "
                         "contrastively trained ViT); its vision_config must match")
    ap.add_argument("--image-size", type=int, default=VISION["image_size"])
    ap.add_argument("--patch-size", type=int, default=VISION["patch_size"])
    a = ap.parse_args(argv)
    if a.image_size % a.patch_size:
        sys.exit("--image-size %d is not a multiple of --patch-size %d"
                 % (a.image_size, a.patch_size))
    VISION["image_size"], VISION["patch_size"] = a.image_size, a.patch_size
    vision_init = load_clip_vision(a.vision_from) if a.vision_from else {}
    gen.TEXT["sw"] = TEXT
    os.makedirs(a.out_dir, exist_ok=True)
    rng = random.Random(a.seed)
    tensors = []
    prefixes = gen.PREFIXES["classic"]
    # tensor_specs tells CLIP from SigLIP by the key "clip": borrow it.
    gen.VISION["clip"], saved = VISION, gen.VISION["clip"]
    try:
        specs = gen.tensor_specs("clip", "sw")
    finally:
        gen.VISION["clip"] = saved
    for part, canonical, shape, override in specs:
        name = prefixes[part] + canonical
        n = 1
        for d in shape:
            n *= d
        if override == "I64":
            data = struct.pack("<%dq" % n, *range(n))
            tensors.append((name, "I64", shape, data))
            continue
        vals = init_values(rng, name, n)
        if part == "vision" and a.vision_from:
            if canonical not in vision_init:
                sys.exit("%s: no %s" % (a.vision_from, canonical))
            # Draw anyway, so that the other tensors' values do not depend on the option.
            vals = vision_init.pop(canonical)
            if len(vals) != n:
                sys.exit("%s: %s has %d values, expected %d" % (a.vision_from, canonical,
                                                                 len(vals), n))
        tensors.append((name, "F32", shape, struct.pack("<%df" % n, *vals)))
    if vision_init:
        sys.exit("%s: tensors the LVLM has no place for: %s"
                 % (a.vision_from, ", ".join(sorted(vision_init))))
    gen.write_safetensors(os.path.join(a.out_dir, "model.safetensors"), tensors)
    cfg = {
        "architectures": ["LlavaForConditionalGeneration"],
        "image_seq_length": (VISION["image_size"] // VISION["patch_size"]) ** 2,
        "image_token_index": 32000, "model_type": "llava", "projector_hidden_act": "gelu",
        "text_config": TEXT, "torch_dtype": "float32", "transformers_version": "4.46.3",
        "vision_config": VISION, "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
    }
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
    saved = gen.VISION["clip"]
    gen.VISION["clip"] = VISION
    try:
        pre = gen.preproc_json("clip")
    finally:
        gen.VISION["clip"] = saved
    with open(os.path.join(a.out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2, sort_keys=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(a.tokenizer, name), os.path.join(a.out_dir, name))
    n_params = sum(len(t[3]) // 4 for t in tensors if t[1] == "F32")
    print("%s: %d parameters" % (a.out_dir, n_params))


if __name__ == "__main__":
    main(sys.argv[1:])
