#!/usr/bin/env python3
"""Goldens for tests/model/test_vision_forward.c: the LLaVA vision tower and
projector run by Hugging Face transformers itself.

For each tiny checkpoint below (written by tests/gen_tiny_checkpoint.py with
exactly the arguments listed; the C test regenerates it at build time), this
loads LlavaForConditionalGeneration in float32 (bf16 weights are widened
exactly, as the C side widens them on the fly), eval mode,
attn_implementation="eager", and runs the vision tower with
output_hidden_states=True on seeded normal pixels. It writes
tests/model/golden/vision_<name>.safetensors:
  pixel_values    F32 [2, C, H, W]   torch.manual_seed(SEED); torch.randn
  hidden_states   F32 [k+1, 2, S, Dv]  the tower's hidden_states tuple up to
                  the one LLaVA reads (k = vision_feature_layer as a
                  non-negative index): index 0 the embeddings output (after
                  pre_layrnorm for CLIP), index i the output of layer i
  selected        F32 [2, F, Dv]  hidden_states[k], token 0 dropped for the
                  "default" strategy
  image_features  F32 [2, F, Dt]  the projector output; checked equal to
                  model.get_image_features(...)

Run in a virtualenv outside the repository that sees Debian's python3-torch:
    python3 -m venv --system-site-packages /tmp/ref-vis
    /tmp/ref-vis/bin/pip install transformers==4.46.3 safetensors==0.4.5
    /tmp/ref-vis/bin/python tests/reference/llava_vision_reference.py
Versions used for the committed goldens: torch 1.13.0a0 (Debian python3-torch
1.13.1), transformers 4.46.3, safetensors 0.4.5.
"""
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlavaForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GEN = os.path.join(ROOT, "tests", "gen_tiny_checkpoint.py")
OUT = os.path.join(ROOT, "tests", "model", "golden")
SEED = 1234

# name -> generator arguments (classic layout: the names transformers 4.46
# loads). The CLIP configs read layer -2 with "default", the SigLIP ones
# layer -1 with "full", so both strategies and a partial tower are covered.
CHECKPOINTS = {
    "clip_llama_f32": ["--vision", "clip", "--text", "llama", "--dtype", "f32",
                       "--layout", "classic"],
    "clip_llama_bf16": ["--vision", "clip", "--text", "llama", "--dtype", "bf16",
                        "--layout", "classic"],
    "siglip_qwen2_f32": ["--vision", "siglip", "--text", "qwen2", "--dtype", "f32",
                         "--layout", "classic"],
}


def run(name, args, tmp):
    d = os.path.join(tmp, name)
    subprocess.run([sys.executable, GEN, d] + args, check=True)
    model, info = LlavaForConditionalGeneration.from_pretrained(
        d, torch_dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    if info["missing_keys"] or info["mismatched_keys"]:
        raise SystemExit("%s: not all weights loaded: %s" % (name, info))
    model.eval()
    cfg = model.config
    vc = cfg.vision_config
    torch.manual_seed(SEED)
    pixels = torch.randn(2, vc.num_channels, vc.image_size, vc.image_size, dtype=torch.float32)
    n_layers = vc.num_hidden_layers
    k = cfg.vision_feature_layer
    if k < 0:
        k += n_layers + 1
    with torch.no_grad():
        tower = model.vision_tower(pixels, output_hidden_states=True)
        hs = torch.stack(tower.hidden_states[:k + 1]).contiguous()
        selected = tower.hidden_states[k]
        if cfg.vision_feature_select_strategy == "default":
            selected = selected[:, 1:]
        selected = selected.contiguous()
        feats = model.multi_modal_projector(selected).contiguous()
        ref = model.get_image_features(pixels, cfg.vision_feature_layer,
                                       cfg.vision_feature_select_strategy)
    assert len(tower.hidden_states) == n_layers + 1, name
    assert torch.equal(feats, ref), name
    path = os.path.join(OUT, "vision_%s.safetensors" % name)
    save_file({
        "pixel_values": pixels.contiguous(),
        "hidden_states": hs.float(),
        "selected": selected.float(),
        "image_features": feats.float(),
    }, path, metadata={
        "generator_args": " ".join(args),
        "vision_feature_layer": str(cfg.vision_feature_layer),
        "vision_feature_select_strategy": cfg.vision_feature_select_strategy,
        "seed": str(SEED),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    })
    print("wrote", path, tuple(hs.shape), tuple(feats.shape))


def main():
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in CHECKPOINTS.items():
            run(name, args, tmp)


if __name__ == "__main__":
    main()
