#!/usr/bin/env python3
"""Goldens for tests/model/test_qwen2vl_vision.c: Qwen2-VL's vision tower
(Qwen2VisionTransformerPretrainedModel, transformers 4.46.3, torch 1.13,
CPU, float32, eager attention) for lib/model/nn/qwen2vl_vit.c.

A tiny tower (CONFIG below) with seeded random weights, larger than HF's
init (std 0.02, zero biases, unit norms) so that every parameter moves the
output. One call over GRIDS (t, h, w): two images and a two-frame video,
whose frames HF attends to separately (cu_seqlens per frame).

Writes, under tests/model/golden/:
  qwen2vl_vision_f32.safetensors
    visual.*             the tower's weights by HF name, F32
    golden.grid_thw      I32 [G, 3]
    golden.patches       [N, 3 * T * P * P]   random, uniform in [-2, 2)
    golden.embed         [N, D]               patch_embed's output
    golden.block0        [N, D]               hidden state after blocks[0]
    golden.out           [N / 4, hidden_size] the tower's output
    golden.dout          [N / 4, hidden_size] random weights of the loss
                         sum(out * dout), and for the parameters GRAD_NAMES
    grad.<name>          d loss / d visual.<name> (autograd)
  qwen2vl_vision_bf16.safetensors
    visual.*             the same weights rounded to BF16
    golden.out           the f32 tower's output with those weights widened
                         (what the library computes from a bf16 checkpoint)

Run by hand (not in CI), without PYTHONPATH:
    /tmp/ref-embed/bin/python tests/reference/qwen2vl_vision_reference.py
"""
import os
import sys

import torch
import transformers
from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
from transformers.models.qwen2_vl.modeling_qwen2_vl import Qwen2VisionTransformerPretrainedModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vision_tower_goldens as vt  # noqa: E402

# Also written into the C test. patch_size 2 keeps the inputs small: the
# tower only sees the flattened patch, whose length is a linear's in-dim.
CONFIG = dict(depth=2, embed_dim=32, num_heads=2, mlp_ratio=2, patch_size=2,
              temporal_patch_size=2, spatial_merge_size=2, hidden_size=48, in_channels=3,
              hidden_act="quick_gelu")
GRIDS = [[1, 4, 6], [2, 2, 2], [1, 6, 4]]
# A gradient from each stage (the golden file stays small).
GRAD_NAMES = ["patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias",
              "blocks.0.norm1.weight", "blocks.1.attn.proj.weight", "blocks.1.norm2.bias",
              "merger.ln_q.weight", "merger.mlp.0.bias", "merger.mlp.2.bias"]


def run(tower, patches, grid):
    """The tower's output, with patch_embed's and blocks[0]'s outputs."""
    seen = {}
    h1 = tower.patch_embed.register_forward_hook(lambda m, i, o: seen.__setitem__("embed", o))
    h2 = tower.blocks[0].register_forward_hook(lambda m, i, o: seen.__setitem__("block0", o))
    with torch.no_grad():
        out = tower(patches, grid_thw=grid)
    h1.remove()
    h2.remove()
    return out, seen["embed"], seen["block0"]


def main():
    assert transformers.__version__ == "4.46.3", transformers.__version__
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(1919)
    cfg = Qwen2VLVisionConfig(**CONFIG)
    cfg._attn_implementation = "eager"
    tower = Qwen2VisionTransformerPretrainedModel._from_config(
        cfg, attn_implementation="eager", torch_dtype=torch.float32).eval()
    assert tower.blocks[0].attn.__class__.__name__ == "VisionAttention"
    vt.randomize(tower, gen)

    grid = torch.tensor(GRIDS, dtype=torch.int64)
    n = int((grid[:, 0] * grid[:, 1] * grid[:, 2]).sum())
    k = CONFIG["in_channels"] * CONFIG["temporal_patch_size"] * CONFIG["patch_size"] ** 2
    patches = torch.rand(n, k, generator=gen) * 4 - 2
    out, embed, block0 = run(tower, patches, grid)

    dout = torch.rand(out.shape, generator=gen) * 2 - 1
    tower.zero_grad()
    (tower(patches, grid_thw=grid) * dout).sum().backward()
    params = dict(tower.named_parameters())
    grads = {"grad." + name: params[name].grad.detach().clone() for name in GRAD_NAMES}

    golden = {"golden.patches": patches, "golden.embed": embed, "golden.block0": block0,
                "golden.out": out, "golden.dout": dout}
    vt.write("qwen2vl_vision", CONFIG, tower, lambda: run(tower, patches, grid)[0], grid, golden, grads)


if __name__ == "__main__":
    main()
