#!/usr/bin/env python3
"""Goldens for tests/model/test_qwen2vl_vision.c --qwen25: Qwen2.5-VL's vision
tower (Qwen2_5_VisionTransformerPretrainedModel, transformers 4.51.3, CPU,
float32, eager attention) for lib/model/nn/qwen2vl_vit.c's Qwen2.5 variant.

A tiny tower (CONFIG below) with seeded random weights (as
qwen2vl_vision_reference.py: every parameter moves the output). embed_dim
24 rather than 32 keeps both files under 300 KB. window_size 8 with
patch_size 2 and spatial_merge_size 2 makes windows of 2 x 2 merged units:
GRIDS hold an image with partial windows at the right and bottom edges, one
whose windows tile it exactly (HF's padding then adds an empty window row,
dropped by unique_consecutive), and a two-frame video with partial windows.
Block 1 attends over each whole frame (fullatt_block_indexes), blocks 0 and
2 within windows.

Writes, under tests/model/golden/:
  qwen25vl_vision_f32.safetensors
    visual.*             the tower's weights by HF name, F32
    golden.grid_thw      I32 [G, 3]
    golden.patches       [N, 3 * T * P * P]   random, uniform in [-2, 2)
    golden.block0        [N, D] hidden state after blocks[0], put back in
                         the patches' order (HF keeps it in window order)
    golden.out           [N / 4, out_hidden_size] the tower's output
    golden.dout          [N / 4, out_hidden_size] random weights of the
                         loss sum(out * dout)
    grad.<name>          d loss / d visual.<name> (autograd) for GRAD_NAMES
  qwen25vl_vision_bf16.safetensors
    visual.*             the same weights rounded to BF16
    golden.out           the f32 tower's output with those weights widened

Run by hand (not in CI), without PYTHONPATH:
    /tmp/ref-qwen25/bin/python tests/reference/qwen25vl_vision_reference.py
"""
import os
import sys

import torch
import transformers
from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VisionTransformerPretrainedModel)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vision_tower_goldens as vt  # noqa: E402

# Also written into the C test.
CONFIG = dict(depth=3, hidden_size=24, num_heads=2, intermediate_size=48, patch_size=2,
              temporal_patch_size=2, spatial_merge_size=2, window_size=8, out_hidden_size=48,
              fullatt_block_indexes=[1], in_channels=3, hidden_act="silu")
GRIDS = [[1, 6, 10], [1, 8, 4], [2, 4, 6]]
GRAD_NAMES = ["patch_embed.proj.weight", "blocks.0.attn.qkv.bias", "blocks.0.norm1.weight",
              "blocks.0.mlp.gate_proj.bias", "blocks.1.attn.proj.bias",
              "blocks.1.mlp.up_proj.weight", "blocks.2.mlp.down_proj.bias",
              "blocks.2.norm2.weight", "merger.ln_q.weight", "merger.mlp.0.bias",
              "merger.mlp.2.bias"]


def run(tower, patches, grid):
    """The tower's output and blocks[0]'s output in the patches' order."""
    seen = {}
    hook = tower.blocks[0].register_forward_hook(lambda m, i, o: seen.__setitem__("b0", o))
    with torch.no_grad():
        out = tower(patches, grid_thw=grid)
    hook.remove()
    window_index, _ = tower.get_window_index(grid)
    unit = CONFIG["spatial_merge_size"] ** 2
    b0 = seen["b0"]
    b0 = b0.reshape(-1, unit, b0.shape[-1])[torch.argsort(window_index)].reshape(b0.shape)
    return out, b0


def main():
    assert transformers.__version__ == "4.51.3", transformers.__version__
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(2525)
    cfg = Qwen2_5_VLVisionConfig(**CONFIG)
    cfg._attn_implementation = "eager"
    tower = Qwen2_5_VisionTransformerPretrainedModel._from_config(
        cfg, attn_implementation="eager", torch_dtype=torch.float32).eval()
    assert tower.blocks[0].attn.__class__.__name__ == "Qwen2_5_VLVisionAttention"
    vt.randomize(tower, gen)

    grid = torch.tensor(GRIDS, dtype=torch.int64)
    window_index, cu = tower.get_window_index(grid)
    print("window_index", window_index.tolist())
    print("cu_window_seqlens", torch.unique_consecutive(torch.tensor(cu)).tolist())
    n = int((grid[:, 0] * grid[:, 1] * grid[:, 2]).sum())
    k = CONFIG["in_channels"] * CONFIG["temporal_patch_size"] * CONFIG["patch_size"] ** 2
    patches = torch.rand(n, k, generator=gen) * 4 - 2
    out, block0 = run(tower, patches, grid)

    dout = torch.rand(out.shape, generator=gen) * 2 - 1
    tower.zero_grad()
    (tower(patches, grid_thw=grid) * dout).sum().backward()
    params = dict(tower.named_parameters())
    grads = {"grad." + name: params[name].grad.detach().clone() for name in GRAD_NAMES}

    golden = {"golden.patches": patches, "golden.block0": block0, "golden.out": out,
                "golden.dout": dout}
    vt.write("qwen25vl_vision", CONFIG, tower, lambda: run(tower, patches, grid)[0], grid, golden, grads)


if __name__ == "__main__":
    main()
