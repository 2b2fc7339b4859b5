#!/usr/bin/env python3
"""Goldens for tests/model/test_rope_tables.c: Qwen2-VL's rotary embeddings
as transformers 4.46.3 computes them (torch 1.13, CPU, float32), for the
table builders of lib/model/nn/rope_tables.c and the dlv_rope_table op.

Writes tests/model/golden/qwen2vl_rope.safetensors (F32 unless said):

  Multimodal RoPE (Qwen2VLRotaryEmbedding + apply_multimodal_rotary_pos_emb),
  per case C in MROPE_CASES (head_dim d, rope_theta, mrope_section, n_heads):
    mrope.C.positions  I32 [3, T]    temporal, height, width index per token
    mrope.C.section    I32 [3]       mrope_section
    mrope.C.inv_freq   [d/2]         the module's inv_freq buffer
    mrope.C.cos        [T, d/2]      the sectioned cos (first half of HF's d
    mrope.C.sin        [T, d/2]      values; the script checks the halves agree)
    mrope.C.q          [T, H, d]     a random input, uniform in [-1, 1)
    mrope.C.q_embed    [T, H, d]     apply_multimodal_rotary_pos_emb(q, ...)

  Vision 2-D RoPE (Qwen2VisionTransformerPretrainedModel.rot_pos_emb +
  apply_rotary_pos_emb_vision), one tower with head_dim VD, merge size 2,
  grids VISION_GRIDS (t, h, w) concatenated as the tower does:
    vision.grid_thw    I32 [G, 3]
    vision.hpos        I32 [N]       each patch's row (read back from
    vision.wpos        I32 [N]       rot_pos_emb's angles: inv_freq[0] = 1)
    vision.inv_freq    [VD/4]
    vision.cos         [N, VD/2]     cos / sin of rot_pos_emb(grid_thw)
    vision.sin         [N, VD/2]
    vision.q           [N, H, VD]    random input
    vision.q_embed     [N, H, VD]    apply_rotary_pos_emb_vision(q, freqs)

The case parameters (d, theta, heads, merge size) are also written into
the C test; positions mix text runs, an image's (t, h, w) block as
Qwen2VLForConditionalGeneration.get_rope_index lays it out, and positions
near 30000 where the f32 angle's rounding matters.

Run by hand (not in CI):
    PYTHONPATH=/usr/lib/python3/dist-packages /tmp/ref-embed/bin/python \\
        tests/reference/qwen2vl_rope_reference.py
"""
import os

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from transformers import Qwen2VLConfig
from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLVisionConfig
from transformers.models.qwen2_vl.modeling_qwen2_vl import (
    Qwen2VisionTransformerPretrainedModel, Qwen2VLRotaryEmbedding,
    apply_multimodal_rotary_pos_emb, apply_rotary_pos_emb_vision)

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "model", "golden")

# name: (head_dim, rope_theta, mrope_section, n_heads)
MROPE_CASES = {
    "a": (128, 1000000.0, [16, 24, 24], 1),   # Qwen2-VL-2B/7B's language model
    "b": (16, 10000.0, [2, 3, 3], 2),
}
VISION_HEAD_DIM = 80                          # Qwen2-VL: embed_dim 1280 / 16 heads
VISION_HEADS = 1
VISION_MERGE = 2
VISION_GRIDS = [[1, 4, 6], [2, 2, 4]]


def mrope_positions(n_text_before, grid, n_text_after, big):
    """[3, T]: text, an image of llm grid (t, h, w), text, then text at `big`."""
    t, h, w = grid
    rows = [[], [], []]
    for i in range(n_text_before):
        for r in rows:
            r.append(i)
    start = n_text_before
    for tt in range(t):
        for hh in range(h):
            for ww in range(w):
                rows[0].append(start + tt)
                rows[1].append(start + hh)
                rows[2].append(start + ww)
    nxt = start + max(t, h, w)
    for i in range(n_text_after):
        for r in rows:
            r.append(nxt + i)
    for i, p in enumerate(big):
        rows[0].append(p)
        rows[1].append(p + 7 * i)
        rows[2].append(p + 13 * i)
    return torch.tensor(rows, dtype=torch.int64)


def mrope_case(name, head_dim, theta, section, n_heads, positions, gen, out):
    hidden = head_dim * n_heads
    cfg = Qwen2VLConfig(hidden_size=hidden, num_attention_heads=n_heads,
                        num_key_value_heads=n_heads, rope_theta=theta,
                        rope_scaling={"type": "mrope", "mrope_section": section})
    rot = Qwen2VLRotaryEmbedding(config=cfg)
    T = positions.shape[1]
    q = torch.rand(1, n_heads, T, head_dim, generator=gen) * 2 - 1
    pos = positions[:, None, :]                              # [3, batch 1, T]
    cos, sin = rot(q, pos)                                   # [3, 1, T, d]
    q_embed, _ = apply_multimodal_rotary_pos_emb(q, q.clone(), cos, sin, section)
    # The per-token table the model actually uses: HF's section selection.
    sec2 = section * 2
    cos_sel = torch.cat([m[i % 3] for i, m in enumerate(cos.split(sec2, dim=-1))], dim=-1)[0]
    sin_sel = torch.cat([m[i % 3] for i, m in enumerate(sin.split(sec2, dim=-1))], dim=-1)[0]
    half = head_dim // 2
    assert torch.equal(cos_sel[:, :half], cos_sel[:, half:])
    assert torch.equal(sin_sel[:, :half], sin_sel[:, half:])
    p = f"mrope.{name}."
    out[p + "positions"] = positions.numpy().astype(np.int32)
    out[p + "section"] = np.array(section, dtype=np.int32)
    out[p + "inv_freq"] = rot.inv_freq.numpy().astype(np.float32)
    out[p + "cos"] = cos_sel[:, :half].contiguous().numpy()
    out[p + "sin"] = sin_sel[:, :half].contiguous().numpy()
    # [1, H, T, d] -> [T, H, d]: token rows with heads side by side.
    out[p + "q"] = q[0].transpose(0, 1).contiguous().numpy()
    out[p + "q_embed"] = q_embed[0].transpose(0, 1).contiguous().numpy()


def vision_case(gen, out):
    cfg = Qwen2VLVisionConfig(depth=0, embed_dim=VISION_HEAD_DIM * VISION_HEADS,
                              num_heads=VISION_HEADS, spatial_merge_size=VISION_MERGE,
                              hidden_size=VISION_HEAD_DIM * VISION_HEADS * 2)
    tower = Qwen2VisionTransformerPretrainedModel(cfg).eval()
    grid = torch.tensor(VISION_GRIDS, dtype=torch.int64)
    freqs = tower.rot_pos_emb(grid)                          # [N, VD/2]
    n = freqs.shape[0]
    quarter = VISION_HEAD_DIM // 4
    inv = tower.rotary_pos_emb.inv_freq
    assert inv.shape[0] == quarter and inv[0].item() == 1.0
    # inv_freq[0] = 1: the angles of frequency 0 are the indices themselves.
    hpos = freqs[:, 0].round().to(torch.int64)
    wpos = freqs[:, quarter].round().to(torch.int64)
    assert torch.equal(hpos.float(), freqs[:, 0]) and torch.equal(wpos.float(), freqs[:, quarter])
    q = torch.rand(n, VISION_HEADS, VISION_HEAD_DIM, generator=gen) * 2 - 1
    q_embed = apply_rotary_pos_emb_vision(q.unsqueeze(0), freqs).squeeze(0)
    out["vision.grid_thw"] = grid.numpy().astype(np.int32)
    out["vision.hpos"] = hpos.numpy().astype(np.int32)
    out["vision.wpos"] = wpos.numpy().astype(np.int32)
    out["vision.inv_freq"] = inv.numpy().astype(np.float32)
    out["vision.cos"] = freqs.cos().numpy()
    out["vision.sin"] = freqs.sin().numpy()
    out["vision.q"] = q.contiguous().numpy()
    out["vision.q_embed"] = q_embed.contiguous().numpy()


def main():
    assert transformers.__version__ == "4.46.3", transformers.__version__
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(19)
    out = {}
    pos_a = mrope_positions(4, (1, 3, 4), 3, [29990, 30001, 32767])
    mrope_case("a", *MROPE_CASES["a"], pos_a, gen, out)
    pos_b = mrope_positions(2, (2, 2, 1), 1, [4095])
    mrope_case("b", *MROPE_CASES["b"], pos_b, gen, out)
    vision_case(gen, out)
    for k, v in out.items():
        assert v.dtype in (np.float32, np.int32), (k, v.dtype)
    path = os.path.join(GOLDEN, "qwen2vl_rope.safetensors")
    save_file(dict(sorted(out.items())), path,
              metadata={"transformers": transformers.__version__, "torch": torch.__version__})
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
