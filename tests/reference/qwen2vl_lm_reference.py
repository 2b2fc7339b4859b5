#!/usr/bin/env python3
"""Goldens for tests/model/test_qwen2vl_lm.c: the language-model side of
Qwen2VLForConditionalGeneration as transformers 4.46.3 computes it (torch
1.13, CPU, float32, eval, eager attention) on a tiny random model.

Writes under tests/model/golden/:

  qwen2vl_lm_weights.safetensors  the decoder's weights by Hugging Face name
                                  (model.embed_tokens.weight,
                                  model.layers.{i}.*, model.norm.weight), F32

  qwen2vl_lm.safetensors          (F32 unless said)
    input_ids        I32 [B, T]     right-padded with PAD (ids of the prompt,
                                    vision_start, image placeholders, ...)
    lengths          I32 [B]        real tokens per row (the attention mask)
    image_grid_thw   I32 [N, 3]     each image's patch grid, in order
    position_ids     I32 [3, B, T]  get_rope_index(input_ids, image_grid_thw,
                                    None, attention_mask)[0]
    inputs_embeds    [B, T, H]      embed_tokens(input_ids) with the image
                                    rows replaced by random "features" (what
                                    the language model receives from the
                                    vision tower), uniform in [-1, 1)
    hidden           [B, T, H]      Qwen2VLModel(inputs_embeds, attention_mask,
                                    position_ids).last_hidden_state (after
                                    the final norm); padded rows are not
                                    meaningful
    probe            [B, T, H]      a fixed random tensor, zero at padded rows
    grad.inputs_embeds  [B, T, H]   d sum(hidden * probe) / d inputs_embeds
    grad.<weight name>              the same for a few weights (GRAD_WEIGHTS)

Run by hand (not in CI), without PYTHONPATH:
    /tmp/ref-embed/bin/python tests/reference/qwen2vl_lm_reference.py
"""
import os

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "model", "golden")

PAD, VSTART, VEND, IMAGE, VIDEO = 0, 118, 119, 120, 121
MERGE = 2

TEXT = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
            rope_theta=1000000.0, max_position_embeddings=256,
            rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
            image_token_id=IMAGE, video_token_id=VIDEO, vision_start_token_id=VSTART,
            vision_end_token_id=VEND, tie_word_embeddings=False)
VISION = dict(depth=1, embed_dim=16, hidden_size=64, mlp_ratio=2, num_heads=2,
              in_channels=3, patch_size=14, spatial_merge_size=MERGE, temporal_patch_size=2)

GRAD_WEIGHTS = [
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_proj.bias",
    "model.layers.0.input_layernorm.weight",
    "model.layers.1.mlp.down_proj.weight",
    "model.norm.weight",
]


def image(grid):
    t, h, w = grid
    return [VSTART] + [IMAGE] * (t * (h // MERGE) * (w // MERGE)) + [VEND]


def sequences(gen):
    """Rows of ids and the grids of their images, in order."""
    def text(n):
        return torch.randint(1, VSTART, (n,), generator=gen).tolist()
    g0, g1, g2 = [1, 4, 6], [1, 4, 4], [2, 4, 4]
    rows = [
        text(3) + image(g0) + text(4),                       # text, image, text
        image(g1) + text(2) + image(g2) + text(3),           # image first; t = 2
        text(9),                                             # text only
    ]
    return rows, [g0, g1, g2]


def main():
    assert transformers.__version__ == "4.46.3", transformers.__version__
    torch.set_num_threads(1)
    torch.manual_seed(19)
    gen = torch.Generator().manual_seed(1919)
    cfg = Qwen2VLConfig(vision_config=VISION, attn_implementation="eager", **TEXT)
    model = Qwen2VLForConditionalGeneration(cfg).eval()
    # Non-trivial norm weights and biases (the init leaves them 1 and 0).
    with torch.no_grad():
        for name, p in model.model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5, generator=gen)
            elif name.endswith(".bias"):
                p.uniform_(-0.1, 0.1, generator=gen)
    assert model.model.config._attn_implementation == "eager"

    rows, grids = sequences(gen)
    B, T = len(rows), max(len(r) for r in rows)
    ids = torch.full((B, T), PAD, dtype=torch.int64)
    mask = torch.zeros((B, T), dtype=torch.int64)
    for b, r in enumerate(rows):
        ids[b, :len(r)] = torch.tensor(r)
        mask[b, :len(r)] = 1
    grid_thw = torch.tensor(grids, dtype=torch.int64)
    pos, _ = model.get_rope_index(ids, grid_thw, None, mask)

    H = TEXT["hidden_size"]
    with torch.no_grad():
        emb = model.model.embed_tokens(ids)
        is_img = ids == IMAGE
        emb[is_img] = torch.rand(int(is_img.sum()), H, generator=gen) * 2 - 1
    emb = emb.detach().clone().requires_grad_(True)
    out = model.model(inputs_embeds=emb, attention_mask=mask, position_ids=pos,
                      use_cache=False, return_dict=True)
    hidden = out.last_hidden_state
    probe = (torch.rand(B, T, H, generator=gen) * 2 - 1) * mask[..., None].float()
    (hidden * probe).sum().backward()

    params = dict(model.named_parameters())
    res = {
        "input_ids": ids.numpy().astype(np.int32),
        "lengths": mask.sum(1).numpy().astype(np.int32),
        "image_grid_thw": grid_thw.numpy().astype(np.int32),
        "position_ids": pos.numpy().astype(np.int32),
        "inputs_embeds": emb.detach().numpy(),
        "hidden": hidden.detach().numpy(),
        "probe": probe.numpy(),
        "grad.inputs_embeds": emb.grad.numpy(),
    }
    for n in GRAD_WEIGHTS:
        res["grad." + n] = params[n].grad.numpy()
    for k, v in res.items():
        assert v.dtype in (np.float32, np.int32), (k, v.dtype)
    meta = {"transformers": transformers.__version__, "torch": torch.__version__}
    path = os.path.join(GOLDEN, "qwen2vl_lm.safetensors")
    save_file({k: np.ascontiguousarray(v) for k, v in sorted(res.items())}, path, metadata=meta)
    print(path, os.path.getsize(path), "bytes")

    weights = {n: p.detach().numpy() for n, p in model.named_parameters()
               if n.startswith("model.")}
    path = os.path.join(GOLDEN, "qwen2vl_lm_weights.safetensors")
    save_file(dict(sorted(weights.items())), path, metadata=meta)
    print(path, os.path.getsize(path), "bytes")
    print("position_ids:\n", pos)


if __name__ == "__main__":
    main()
