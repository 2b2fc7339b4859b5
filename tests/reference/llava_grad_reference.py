#!/usr/bin/env python3
"""Goldens for libdisclvlm's training objective (issue 6): losses and
PyTorch autograd gradients, computed with Hugging Face transformers + peft on
the tiny checkpoints and golden adapters of llava_embed_reference.py.

Writes tests/model/golden/grad_<V>.safetensors for V in clip_llama_f32,
siglip_qwen2_f32 and clip_llama_bf16 (the bf16 checkpoint and bf16 adapter
widened to f32), next_clip_llama_f32 (LLaVA-NeXT), qwen2vl_f32 and
qwen2vl_bf16 (Qwen2-VL, transformers 4.46.3; bf16 as clip_llama_bf16: the
bf16 checkpoint and bf16 adapter widened to f32) and qwen25vl_f32 (Qwen2.5-VL,
transformers 4.51.3).
Reads tests/model/golden/images/img0..2.png and
tests/model/golden/adapters/<V>/ (written by llava_embed_reference.py,
llava_next_reference.py and qwen2vl_embed_reference.py; this script changes
neither).

The objective (exactly what the library implements)
---------------------------------------------------
Batch of 3 examples k = 0, 1, 2:
  image   images/img<k>.png
  short   ["a red circle", "Cat on a mat", "two dogs"]
  long    ["the quick brown fox jumps over the lazy dog",
           "A photo of a cat sitting on a mat near a window.", "sky"]
Adapter: the golden adapter of the variant: PEFT LoRA (adapter_config.json +
adapter_model.safetensors, LLM only), soft prompts image_prompt [3, H],
text_prompt [5, H], logit_scale [1] from soft_prompts.safetensors, prompt
pieces from prompts.json (ids authoritative; a missing id array is its
string tokenized alone without special tokens) or the defaults of
docs/adapter-format.md. B = [bos_token_id] if add_bos else [].

  image seq_k = B + image.prefix_ids + features(img_k) + image_prompt + image.suffix_ids
  text  seq_k = B + text.prefix_ids  + ids(short_k)    + text_prompt  + text.suffix_ids
  v_k = normalize(final-norm hidden state at the last position of image seq_k)
  t_k = normalize(final-norm hidden state at the last position of text seq_k)
(the 3 image sequences are one right-padded batch, the 3 text sequences
another; features(img) = model.get_image_features, i.e. vision tower +
projector as LLaVA selects them.)

Contrastive:
  s      = exp(min(logit_scale, log(100)))
  logits = s * V T^T                                   [3, 3], V = [v_k], T = [t_k]
  L_c    = (CE(logits, [0,1,2]) + CE(logits^T, [0,1,2])) / 2
CE is F.cross_entropy's default: mean over the rows of -log softmax(row)[target].
The gradient of logit_scale is 0 when logit_scale > log(100) (clamp).

Next-token prediction (NTP):
  ntp seq_k = image seq_k + ids(long_k) + [eos_token_id]
(ids without special tokens; eos_token_id from the text config). The three
sequences are one right-padded forward with an attention mask (padding rows
are zero embeddings; positions 0..n-1 in every row). LM logits =
lm_head(final-norm hidden) (lm_head is embed_tokens for Qwen2, tied). The
targets are every long-caption id and the EOS, each predicted from the
position just before it (so the first caption id is predicted from the last
image.suffix position). With N = total number of targets in the batch:
  L_ntp = (sum over all targets of -log softmax(logits at previous position)[target]) / N
i.e. the mean over tokens of the whole batch, NOT the mean of per-example means.

Total:  L = L_c + 1.0 * L_ntp.

Computed in float32, model.eval() (no dropout; lora_dropout is 0),
attn_implementation="eager", one backward with every tensor requiring grad
(gradients do not depend on which set is trainable).

Golden tensors (all F32 unless said)
------------------------------------
  L_c, L_ntp, L                [1]
  image_embeds, text_embeds    [3, H]  v_k, t_k (L2-normalised)
  ntp_token_count              I32 [1] N
  long_caption_ids, short_caption_ids  I32 [3, maxlen], padded with -1
  grad.image_prompt            [3, H]
  grad.text_prompt             [5, H]
  grad.logit_scale             [1]
  grad.<lora name>             the gradient of every tensor of
                               adapter_model.safetensors, same name, e.g.
                               grad.base_model.model.language_model.model.layers.0.self_attn.q_proj.lora_A.weight
  grad.<checkpoint name>       every floating tensor of the checkpoint (classic
                               layout names): vision tower (embeddings, pre/post
                               layernorm, every layer's norms and linears),
                               projector, LLM (embed_tokens, every norm, q/k/v/o/
                               gate/up/down weight and bias, norm, lm_head when
                               not tied). Gradients that are identically zero
                               are stored too (zeros): CLIP's last vision layer
                               and post_layernorm (feature layer -2), SigLIP's
                               post_layernorm (hidden_states[-1] is taken before
                               it). The tied Qwen2 embed_tokens gradient is the
                               sum of both uses (lookup + lm_head). Not stored:
                               position_ids (an integer buffer).
  c_only.L_c                   [1]  = L_c (same batch, contrastive loss only)
  c_only.grad.image_prompt, c_only.grad.text_prompt, c_only.grad.logit_scale,
  c_only.grad.<lora name>      gradients of L_c alone
  clamped.logit_scale          [1]  4.7 (> log(100) = 4.60517)
  clamped.L_c, clamped.L_ntp, clamped.L   [1]  the full objective with that
                               logit_scale (s = 100)
  clamped.grad.logit_scale     [1]  0
  clamped.grad.image_prompt    [3, H]

Qwen2-VL / Qwen2.5-VL (qwen2vl_f32, qwen2vl_bf16, qwen25vl_f32)
--------------------------------------------------------------
The same objective, batch, adapter files and golden names, with these
differences (the library's Qwen2-VL sequences, as qwen2vl_embed_reference.py
builds them):
  - checkpoint: gen_tiny_checkpoint.py --family qwen2_vl / qwen2_5_vl --text
    qwen2 --dtype f32 (qwen2vl_bf16: bf16) --with-tokenizer, loaded as
    Qwen2VLForConditionalGeneration / Qwen2_5_VLForConditionalGeneration
    (eager attention, float32; bf16 weights and adapter widened exactly);
  - no BOS; prompt pieces from prompts.json (none in the golden adapters) or
    the defaults: image prefix "<|im_start|>user\n<|vision_start|>",
    instruction "<|vision_end|>\nSummarize above image in one word:", suffix
    "<|im_end|>\n<|im_start|>assistant\n", each tokenized alone; text side
    whole_split of "<|im_start|>user\n" + caption + "\nSummarize above
    sentence in one word:" + suffix (one string, as for the Qwen2 LLaVA
    defaults). The soft prompt replaces the instruction, so it starts where
    <|vision_end|> was;
  - features(img_k) = model.visual(pixel_values, grid_thw) of
    Qwen2VLImageProcessor (min_pixels 256, max_pixels 2048, patch 4, merge 2),
    each image its own count F = t*h*w/4 (img0..2: 20, 16, 24 rows);
  - positions: M-RoPE [3, B, T] from the model's get_rope_index(ids,
    image_grid_thw of the batch's images in order, attention_mask) where ids
    has 106 (<|image_pad|>) at the feature rows, the real ids at id rows and
    0 (an ordinary text id; a text token's positions do not depend on its
    id) at soft-prompt rows and padding; the language model model.model runs
    on inputs_embeds + position_ids + attention_mask (right padding, zero
    embeddings); LM logits = lm_head(final-norm hidden), lm_head tied to
    model.embed_tokens;
  - checked also: text-only rows get positions 0..n-1; HF's top-level
    forward on (inputs_embeds, position_ids, attention_mask) gives the same
    NTP logits.
Golden names: the checkpoint's, e.g. grad.model.layers.0.self_attn.q_proj.weight,
grad.model.embed_tokens.weight (lookup + tied lm_head), grad.model.norm.weight,
and the tower's grad.visual.* (patch_embed, blocks, merger: the library does
not train them; no gradient is identically zero); LoRA tensors
grad.base_model.model.model.layers.{i}.<module>.lora_{A,B}.weight. Qwen2.5-VL:
peft also wraps the tower's mlp.gate/up/down_proj (not in the adapter file;
peft warns they are missing); their B is zero (checked), so they change
nothing. The finite-difference probes are the merger's first linear and the
patch embedding instead of the projector and CLIP's patch embedding, with
the tower's rotary embedding (which casts to float32) also kept in float64.

One SGD step (lr 1, no weight decay, momentum or clipping) from the golden
adapter gives new = old - grad for the soft prompts, logit_scale and LoRA
tensors: the script checks it with torch.optim.SGD; nothing extra is stored.
The script also checks ten gradients per objective (soft prompts,
logit_scale, a LoRA tensor, projector, patch embedding, embed_tokens rows,
final norm) against central finite differences (h = 1e-5) in float64, with
transformers' float32 upcasts in RMSNorm and the attention softmax made
float64 for the check (agreement ~1e-8 relative); that v_k equals the state at
the same position of the NTP forward; that every tensor of the adapter file
was loaded; that the only identically-zero gradients are the ones listed
above.

Run by hand (not in CI) in the virtualenv of llava_embed_reference.py
(/tmp/ref-embed: Debian's torch 1.13.1, transformers 4.46.3, peft 0.13.2,
tokenizers 0.20.3, safetensors 0.4.5, pillow 11.0.0), from the repository
root, without PYTHONPATH:
    /tmp/ref-embed/bin/python tests/reference/llava_grad_reference.py
(about 12 s on 2 cores; an argument list of variant names runs only those.)
qwen25vl_f32 needs transformers 4.51.3: the script runs the variants whose
transformers version the running interpreter has and re-runs itself, with
the others' names, under QWEN25VL_PYTHON (default /tmp/ref-qwen25/bin/python:
torch 2.15.0+cu132 run on the CPU, transformers 4.51.3, peft 0.15.2,
tokenizers 0.21.4, safetensors 0.8.0, pillow 11.0.0; see
qwen2vl_embed_reference.py) or, for the 4.46.3 variants, QWEN2VL_PYTHON
(default /tmp/ref-embed/bin/python).
Reruns reproduce every tensor bit for bit on one machine; only the order of
the __metadata__ keys varies. (Another CPU may differ in the last bits: on
an AMD EPYC machine the committed clip_llama_f32 / siglip_qwen2_f32 /
clip_llama_bf16 goldens reproduce to ~1e-7, not bitwise.) It imports
llava_embed_reference.py (variants, default pieces, image preprocessing,
model loading) and regenerates the tiny checkpoints with
tests/gen_tiny_checkpoint.py --with-tokenizer in a temporary directory.
"""
import json
import math
import os
import subprocess
import sys
import tempfile

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)
os.environ["HF_HUB_OFFLINE"] = "1"

import torch
import torch.nn.functional as F
import transformers
import peft
import tokenizers
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from peft import PeftModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llava_embed_reference as ER  # noqa: E402
import llava_next_reference as NR  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import LlavaNextImageProcessor, Qwen2VLImageProcessor  # noqa: E402

# next_*: LLaVA-NeXT (llava_next_reference.py's checkpoints and adapters):
# the features are the packed anyres tiles of each image (a different count
# per image), everything else as for LLaVA.
# qwen2vl_f32 / qwen2vl_bf16 / qwen25vl_f32: Qwen2-VL / Qwen2.5-VL (qwen2vl_embed_reference.py's
# checkpoints and adapters), M-RoPE positions, see "Qwen2-VL" in the docstring.
GRAD_VARIANTS = ["clip_llama_f32", "siglip_qwen2_f32", "clip_llama_bf16", "next_clip_llama_f32",
                 "qwen2vl_f32", "qwen2vl_bf16", "qwen25vl_f32"]

# The transformers version each variant is computed with, and the interpreter
# (environment variable, default) that has it: the script re-runs itself
# there for the variants the running interpreter cannot do.
VARIANT_ENV = {
    "4.46.3": ("QWEN2VL_PYTHON", "/tmp/ref-embed/bin/python"),
    "4.51.3": ("QWEN25VL_PYTHON", "/tmp/ref-qwen25/bin/python"),
}
# name: (generator family, dtype); the bf16 variant is qwen2vl_f32 with the bf16
# checkpoint and adapter widened to f32, as clip_llama_bf16 is to clip_llama_f32.
QWEN_FAMILY = {"qwen2vl_f32": ("qwen2_vl", "f32"), "qwen25vl_f32": ("qwen2_5_vl", "f32"),
               "qwen2vl_bf16": ("qwen2_vl", "bf16")}


def variant_version(name):
    return "4.51.3" if QWEN_FAMILY.get(name, ("",))[0] == "qwen2_5_vl" else "4.46.3"


def gen_args(name):
    if name in QWEN_FAMILY:
        family, dtype = QWEN_FAMILY[name]
        return ["--family", family, "--text", "qwen2", "--dtype", dtype]
    if name.startswith("next_"):
        return NR.VARIANTS[name] + ["--family", "llava_next"]
    return ER.VARIANTS[name]


# Qwen2-VL's default prompt pieces (the library's; qwen2vl_embed_reference.py's).
QWEN_IMAGE_PREFIX = "<|im_start|>user\n<|vision_start|>"
QWEN_IMAGE_INSTRUCTION = "<|vision_end|>\nSummarize above image in one word:"
QWEN_TEXT_PREFIX = "<|im_start|>user\n"
QWEN_TEXT_INSTRUCTION = "\nSummarize above sentence in one word:"
QWEN_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
QWEN_VSTART, QWEN_IMAGE_PAD = 104, 106
QWEN_FILLER_ID = 0  # the id at soft-prompt rows and padding, for get_rope_index only
SHORT = ["a red circle", "Cat on a mat", "two dogs"]
LONG = ["the quick brown fox jumps over the lazy dog",
        "A photo of a cat sitting on a mat near a window.", "sky"]
LAMBDA_NTP = 1.0
MAX_LOGIT_SCALE = math.log(100.0)
CLAMPED_LOGIT_SCALE = 4.7
FD_H, FD_ATOL, FD_RTOL = 1e-5, 1e-7, 1e-6


def resolve_pieces(adir, family, ids, has_bos, tok, image_token):
    """The prompt pieces of docs/adapter-format.md: prompts.json if present
    (ids authoritative, else the string tokenized alone, else empty),
    otherwise the family's defaults."""
    path = os.path.join(adir, "prompts.json")
    if not os.path.exists(path):
        return ER.default_pieces(tok, family, tok.id_to_token(image_token))
    with open(path, encoding="utf-8") as f:
        js = json.load(f)
    if js.get("tokenize") == "whole":
        return ER.whole_pieces(tok, js, has_bos and family != "qwen2",
                               tok.id_to_token(image_token))
    out = {"add_bos": js.get("add_bos", has_bos and family != "qwen2")}
    for side in ("image", "text"):
        obj = js.get(side, {})
        pieces = []
        for k in ("prefix", "instruction", "suffix"):
            if k + "_ids" in obj:
                pieces.append(list(obj[k + "_ids"]))
            elif k in obj:
                pieces.append(ids(obj[k]))
            else:
                pieces.append([])
        out[side] = tuple(pieces)
    out["text"] = ER.pieces_text(out["text"], ids)
    return out


def build_batch(emb, rows_pieces):
    """rows_pieces: per row a list of pieces (id lists or [n, H] tensors).
    Returns right-padded inputs_embeds [B, T, H], mask [B, T], lengths."""
    rows = []
    for pieces in rows_pieces:
        parts = []
        for p in pieces:
            if isinstance(p, torch.Tensor):
                parts.append(p)
            elif len(p):
                parts.append(emb(torch.tensor(p, dtype=torch.long)))
        rows.append(torch.cat(parts, 0))
    lens = [r.shape[0] for r in rows]
    T, H = max(lens), rows[0].shape[1]
    padded, mask = [], torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        padded.append(torch.cat([r, r.new_zeros(T - lens[i], H)], 0))
        mask[i, :lens[i]] = 1
    return torch.stack(padded), mask, lens


class Setup:
    pass


def qwen_batch(S, rows_pieces):
    """Qwen2-VL: rows of pieces, each ("ids", list), ("image", [F, H], grid)
    or ("soft", [n, H]). Right-padded inputs_embeds [B, T, H] (zero rows),
    attention_mask [B, T], lengths, and the M-RoPE position ids [3, B, T] of
    the model's get_rope_index on ids with 106 at the feature rows,
    QWEN_FILLER_ID at soft rows and padding."""
    emb = S.model.model.embed_tokens
    xs, idss, grids = [], [], []
    for pieces in rows_pieces:
        parts, ids = [], []
        for p in pieces:
            if p[0] == "ids":
                if p[1]:
                    parts.append(emb(torch.tensor(p[1], dtype=torch.long)))
                    ids += list(p[1])
            elif p[0] == "image":
                parts.append(p[1])
                ids += [QWEN_IMAGE_PAD] * p[1].shape[0]
                grids.append(p[2])
            else:
                parts.append(p[1])
                ids += [QWEN_FILLER_ID] * p[1].shape[0]
        xs.append(torch.cat(parts, 0))
        idss.append(ids)
    lens = [len(i) for i in idss]
    T, H = max(lens), xs[0].shape[1]
    padded = []
    ids = torch.full((len(xs), T), QWEN_FILLER_ID, dtype=torch.long)
    mask = torch.zeros(len(xs), T, dtype=torch.long)
    for i, r in enumerate(xs):
        assert r.shape[0] == lens[i]
        padded.append(torch.cat([r, r.new_zeros(T - lens[i], H)], 0))
        ids[i, :lens[i]] = torch.tensor(idss[i])
        mask[i, :lens[i]] = 1
    g = torch.stack(grids) if grids else None
    pos, _ = S.model.get_rope_index(ids, image_grid_thw=g, video_grid_thw=None,
                                    attention_mask=mask)
    if g is None:  # text only: positions 0..n-1
        for i in range(len(xs)):
            assert torch.equal(pos[:, i, :lens[i]], torch.arange(lens[i]).expand(3, -1))
    return torch.stack(padded), mask, lens, pos


def add_ntp(out, S, lg, lens, nl, L_c):
    """The next-token loss from the NTP batch's logits lg: each long caption
    id and the EOS predicted from the position before it (the first from the
    image prompt's last position), summed over the batch and divided by the
    number of targets; out gets L_ntp, L and ntp_count."""
    total, count = lg.new_zeros(()), 0
    for k in range(3):
        targets = S.long_ids[k] + [S.eos]
        n = len(targets)
        assert nl[k] == lens[k] + n
        p = torch.arange(lens[k] - 1, lens[k] - 1 + n)   # predicts position p + 1
        total = total + F.cross_entropy(lg[k, p], torch.tensor(targets), reduction="sum")
        count += n
    L_ntp = total / count
    out["L_ntp"] = L_ntp
    out["L"] = L_c + LAMBDA_NTP * L_ntp
    out["ntp_count"] = count


def objective_qwen(S, image_prompt, text_prompt, logit_scale, with_ntp=True):
    """The objective for Qwen2-VL / Qwen2.5-VL (model.model is the language
    model; lm_head is tied to model.model.embed_tokens)."""
    model = S.model
    body = model.model
    feats = torch.split(model.visual(S.pv, grid_thw=S.grid), S.flens, dim=0)
    P = S.pieces
    b = [S.bos] if P["add_bos"] else []
    ipre, _, isuf = P["image"]
    img_rows = [[("ids", b), ("ids", ipre), ("image", feats[k], S.grid[k]),
                 ("soft", image_prompt), ("ids", isuf)] for k in range(3)]
    txt_rows = []
    for k in range(3):
        head, _, tail = P["text"](SHORT[k])
        txt_rows.append([("ids", b), ("ids", head), ("soft", text_prompt), ("ids", tail)])

    x, m, lens, pos = qwen_batch(S, img_rows)
    hs = body(inputs_embeds=x, attention_mask=m, position_ids=pos,
              use_cache=False).last_hidden_state
    v_raw = torch.stack([hs[k, lens[k] - 1] for k in range(3)])
    V = F.normalize(v_raw, dim=-1)
    x, m, tl, pos = qwen_batch(S, txt_rows)
    hs = body(inputs_embeds=x, attention_mask=m, position_ids=pos,
              use_cache=False).last_hidden_state
    T = F.normalize(torch.stack([hs[k, tl[k] - 1] for k in range(3)]), dim=-1)

    s = torch.exp(torch.clamp(logit_scale, max=MAX_LOGIT_SCALE))
    logits = s * (V @ T.t())
    tgt = torch.arange(3)
    L_c = (F.cross_entropy(logits, tgt) + F.cross_entropy(logits.t(), tgt)) / 2
    out = {"L_c": L_c, "V": V, "T": T}
    if not with_ntp:
        out["L"] = L_c
        return out

    ntp_rows = [img_rows[k] + [("ids", S.long_ids[k] + [S.eos])] for k in range(3)]
    x, m, nl, pos = qwen_batch(S, ntp_rows)
    hs2 = body(inputs_embeds=x, attention_mask=m, position_ids=pos,
               use_cache=False).last_hidden_state
    lg = model.lm_head(hs2)
    add_ntp(out, S, lg, lens, nl, L_c)
    with torch.no_grad():
        # v_k is also the state at the same position of the NTP forward
        # (causal; the positions of the image sequence are the same).
        v2 = torch.stack([hs2[k, lens[k] - 1] for k in range(3)])
        assert torch.allclose(v2, v_raw, atol=1e-5), (v2 - v_raw).abs().max()
        # HF's own top-level forward (inputs_embeds, no pixel_values) gives
        # the same logits.
        if S.check_top:
            top = model(inputs_embeds=x, attention_mask=m, position_ids=pos,
                        use_cache=False, return_dict=True).logits
            assert torch.allclose(top.to(lg.dtype), lg, atol=1e-5), (top - lg).abs().max()
    return out


def objective(S, image_prompt, text_prompt, logit_scale, with_ntp=True):
    """The training objective above; returns a dict of tensors."""
    if S.qwen:
        return objective_qwen(S, image_prompt, text_prompt, logit_scale, with_ntp)
    model = S.model
    cfg = model.config
    lm = model.language_model            # LlamaForCausalLM / Qwen2ForCausalLM (LoRA-wrapped)
    body = lm.model
    emb = body.embed_tokens
    if S.next:
        tiles = model.get_image_features(S.pv, S.sizes, cfg.vision_feature_layer,
                                         cfg.vision_feature_select_strategy)
        packed, lens = model.pack_image_features(tiles, S.sizes,
                                                 cfg.vision_feature_select_strategy,
                                                 image_newline=model.image_newline)
        feats = list(torch.split(packed, lens.tolist(), dim=0))
    else:
        feats = model.get_image_features(S.pv, cfg.vision_feature_layer,
                                         cfg.vision_feature_select_strategy)
    P = S.pieces
    b = [S.bos] if P["add_bos"] else []
    ipre, _, isuf = P["image"]
    img_rows = [[b, ipre, feats[k], image_prompt, isuf] for k in range(3)]
    txt_rows = []
    for k in range(3):
        head, _, tail = P["text"](SHORT[k])
        txt_rows.append([b, head, text_prompt, tail])

    x, m, lens = build_batch(emb, img_rows)
    hs = body(inputs_embeds=x, attention_mask=m, use_cache=False).last_hidden_state
    v_raw = torch.stack([hs[k, lens[k] - 1] for k in range(3)])
    V = F.normalize(v_raw, dim=-1)
    x, m, tl = build_batch(emb, txt_rows)
    hs = body(inputs_embeds=x, attention_mask=m, use_cache=False).last_hidden_state
    T = F.normalize(torch.stack([hs[k, tl[k] - 1] for k in range(3)]), dim=-1)

    s = torch.exp(torch.clamp(logit_scale, max=MAX_LOGIT_SCALE))
    logits = s * (V @ T.t())
    tgt = torch.arange(3)
    L_c = (F.cross_entropy(logits, tgt) + F.cross_entropy(logits.t(), tgt)) / 2
    out = {"L_c": L_c, "V": V, "T": T}
    if not with_ntp:
        out["L"] = L_c
        return out

    ntp_rows = [img_rows[k] + [S.long_ids[k] + [S.eos]] for k in range(3)]
    x, m, nl = build_batch(emb, ntp_rows)
    o = lm(inputs_embeds=x, attention_mask=m, use_cache=False, return_dict=True)
    lg = o.logits
    add_ntp(out, S, lg, lens, nl, L_c)
    # v_k is also the state at the same position of the NTP forward (causal).
    with torch.no_grad():
        hs2 = body(inputs_embeds=x, attention_mask=m, use_cache=False).last_hidden_state
        v2 = torch.stack([hs2[k, lens[k] - 1] for k in range(3)])
        assert torch.allclose(v2, v_raw, atol=1e-5), (v2 - v_raw).abs().max()
    return out


def zero_all(S, leaves):
    for p in list(S.model.parameters()) + leaves:
        p.grad = None


def grad_of(p):
    return torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()


def qwen_pieces(adir, tok, ids):
    """Qwen2-VL's prompt pieces: prompts.json as for the other families (no
    BOS unless it says add_bos), otherwise the defaults: the image side's
    pieces each tokenized alone, the text side whole_split of its one string
    (as qwen2vl_embed_reference.py builds them)."""
    if os.path.exists(os.path.join(adir, "prompts.json")):
        return resolve_pieces(adir, "qwen2", ids, False, tok, QWEN_IMAGE_PAD)
    return {"add_bos": False,
            "image": (ids(QWEN_IMAGE_PREFIX), ids(QWEN_IMAGE_INSTRUCTION), ids(QWEN_SUFFIX)),
            "text": lambda c: ER.whole_split(tok, QWEN_TEXT_PREFIX, c, QWEN_TEXT_INSTRUCTION,
                                             QWEN_SUFFIX)}


def setup_qwen(S, name, gen_dir, image_paths):
    if QWEN_FAMILY[name][0] == "qwen2_vl":
        from transformers import Qwen2VLForConditionalGeneration as cls
    else:
        from transformers import Qwen2_5_VLForConditionalGeneration as cls
    base = ER.load_model(gen_dir, cls)
    cfg = base.config
    tcfg = getattr(cfg, "text_config", None) or cfg
    assert cfg.image_token_id == QWEN_IMAGE_PAD and cfg.vision_start_token_id == QWEN_VSTART
    assert cfg._attn_implementation == "eager"
    for mod in (base.visual.blocks[0].attn, base.model.layers[0].self_attn):
        kind = type(mod).__name__
        assert "Sdpa" not in kind and "Flash" not in kind, kind
    S.family = "qwen2"
    S.bos, S.eos = tcfg.bos_token_id, tcfg.eos_token_id
    S.tied = tcfg.tie_word_embeddings
    assert S.tied and base.lm_head.weight is base.model.embed_tokens.weight
    tok = Tokenizer.from_file(os.path.join(gen_dir, "tokenizer.json"))
    assert tok.token_to_id("<|image_pad|>") == QWEN_IMAGE_PAD
    assert tok.token_to_id("<|vision_start|>") == QWEN_VSTART

    def ids(s):
        return tok.encode(s, add_special_tokens=False).ids

    ckpt = load_file(os.path.join(gen_dir, "model.safetensors"))
    named = dict(base.named_parameters())
    S.ckpt_params = {}
    for k, v in sorted(ckpt.items()):
        if v.is_floating_point():
            assert k in named, k
            S.ckpt_params[k] = named[k]
    untracked = set(named) - set(S.ckpt_params)
    assert not untracked, untracked
    assert "lm_head.weight" not in S.ckpt_params

    adir = os.path.join(ER.ADAPTER_DIR, name)
    torch.manual_seed(0)  # peft's init of Qwen2.5-VL's (zero-B) tower LoRA modules
    pm = PeftModel.from_pretrained(base, adir, is_trainable=True)
    pm.eval()
    S.model = pm.base_model.model
    afile = load_file(os.path.join(adir, "adapter_model.safetensors"))
    pnamed = dict(pm.named_parameters())
    S.lora = {}
    for k, v in sorted(afile.items()):
        assert k.startswith("base_model.model.model.layers."), k
        pk = k.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight")
        assert pk in pnamed, pk
        assert torch.equal(pnamed[pk].detach(), v.float()), k
        S.lora[k] = pnamed[pk]
    assert len(S.lora) == 2 * 7 * tcfg.num_hidden_layers, len(S.lora)
    for k, p in pnamed.items():
        if "lora_B" in k and not k.startswith("base_model.model.model.layers."):
            assert k.startswith("base_model.model.visual."), k
            assert not p.detach().any(), k  # the tower's LoRA (Qwen2.5-VL): no effect
    for p in pm.parameters():
        p.requires_grad_(True)

    soft = load_file(os.path.join(adir, "soft_prompts.safetensors"))
    S.soft = {k: v.float() for k, v in soft.items()}
    assert S.soft["image_prompt"].shape[0] == 3 and S.soft["text_prompt"].shape[0] == 5
    S.pieces = qwen_pieces(adir, tok, ids)
    S.short_ids = [ids(c) for c in SHORT]
    S.long_ids = [ids(c) for c in LONG]
    V = tcfg.vocab_size
    special = {QWEN_VSTART, 105, QWEN_IMAGE_PAD, 107}
    text_ids = S.short_ids + S.long_ids + [x for c in SHORT for x in S.pieces["text"](c)]
    for seq in text_ids + [S.pieces["image"][2]]:
        assert all(0 <= i < V and i not in special for i in seq), seq
    ipre = S.pieces["image"][0]
    assert ipre and ipre[-1] == QWEN_VSTART and QWEN_VSTART not in ipre[:-1], ipre
    assert not special & set(ipre[:-1]), ipre
    assert QWEN_FILLER_ID not in special

    proc = Qwen2VLImageProcessor.from_pretrained(gen_dir)
    imgs = []
    for p in image_paths:
        with Image.open(p) as im:
            imgs.append(im.convert("RGB"))
    enc = proc(images=imgs, return_tensors="pt")
    S.pv, S.grid = enc["pixel_values"].to(torch.float32), enc["image_grid_thw"]
    merge = cfg.vision_config.spatial_merge_size
    S.flens = [int(t * h * w) // (merge * merge) for t, h, w in S.grid.tolist()]
    S.check_top = True
    return S


def setup(name, tmp, image_paths):
    S = Setup()
    gen_dir = os.path.join(tmp, name)
    subprocess.run([sys.executable, ER.GEN, gen_dir, "--with-tokenizer"] + gen_args(name),
                   check=True)
    S.qwen = name in QWEN_FAMILY
    S.next = name.startswith("next_")
    if S.qwen:
        return setup_qwen(S, name, gen_dir, image_paths)
    base = NR.load_model(gen_dir) if S.next else ER.load_model(gen_dir)
    cfg = base.config
    S.family = cfg.text_config.model_type
    S.bos = cfg.text_config.bos_token_id
    S.eos = cfg.text_config.eos_token_id
    tok = Tokenizer.from_file(os.path.join(gen_dir, "tokenizer.json"))

    def ids(s):
        return tok.encode(s, add_special_tokens=False).ids

    # checkpoint name -> parameter (before peft wraps modules; the Parameter
    # objects stay the same). Tied lm_head appears once (as embed_tokens).
    ckpt = load_file(os.path.join(gen_dir, "model.safetensors"))
    named = dict(base.named_parameters())
    S.ckpt_params = {}
    for k, v in sorted(ckpt.items()):
        if not v.is_floating_point():
            continue
        if k == "language_model.lm_head.weight" and k not in named:
            raise SystemExit("lm_head in checkpoint but not a parameter: " + k)
        assert k in named, k
        S.ckpt_params[k] = named[k]
    untracked = set(named) - set(S.ckpt_params)
    assert not untracked, untracked
    S.tied = cfg.text_config.tie_word_embeddings
    assert S.tied == ("language_model.lm_head.weight" not in S.ckpt_params)

    adir = os.path.join(ER.ADAPTER_DIR, name)
    torch.manual_seed(0)  # peft's init of the (zero-B) vision LoRA modules
    pm = PeftModel.from_pretrained(base, adir, is_trainable=True)
    pm.eval()
    S.model = pm.base_model.model
    # Every tensor of the adapter file is loaded; vision LoRA (not in the file) has B = 0.
    afile = load_file(os.path.join(adir, "adapter_model.safetensors"))
    pnamed = dict(pm.named_parameters())
    S.lora = {}
    for k, v in sorted(afile.items()):
        pk = k.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight")
        assert pk in pnamed, pk
        assert torch.equal(pnamed[pk].detach(), v.float()), k
        S.lora[k] = pnamed[pk]
    for k, p in pnamed.items():
        if "lora_B" in k and ".language_model." not in k:
            assert not p.detach().any(), k
    for p in pm.parameters():
        p.requires_grad_(True)

    soft = load_file(os.path.join(adir, "soft_prompts.safetensors"))
    S.soft = {k: v.float() for k, v in soft.items()}
    assert S.soft["image_prompt"].shape[0] == 3 and S.soft["text_prompt"].shape[0] == 5
    S.pieces = resolve_pieces(adir, S.family, ids, S.bos is not None, tok,
                              cfg.image_token_index)
    S.short_ids = [ids(c) for c in SHORT]
    S.long_ids = [ids(c) for c in LONG]
    V = cfg.text_config.vocab_size
    for seq in S.short_ids + S.long_ids + list(S.pieces["image"]) + [
            x for c in SHORT for x in S.pieces["text"](c)]:
        assert all(0 <= i < V and i != cfg.image_token_index for i in seq), seq
    if S.next:
        proc = LlavaNextImageProcessor.from_pretrained(gen_dir)
        imgs = []
        for p in image_paths:
            with Image.open(p) as im:
                imgs.append(im.convert("RGB"))
        enc = proc(images=imgs, return_tensors="pt")
        S.pv, S.sizes = enc["pixel_values"].to(torch.float32), enc["image_sizes"]
    else:
        S.pv = ER.pixel_values(gen_dir, image_paths)
    return S


def leaves_from(S, logit_scale=None):
    ip = S.soft["image_prompt"].clone().requires_grad_(True)
    tp = S.soft["text_prompt"].clone().requires_grad_(True)
    ls = (S.soft["logit_scale"] if logit_scale is None
          else torch.tensor([logit_scale])).clone().requires_grad_(True)
    return ip, tp, ls


class Float64Everywhere:
    """transformers' RMSNorm and eager attention compute in float32 whatever
    the input dtype; for the float64 finite-difference check they are made to
    keep float64 (the same formulas)."""
    def __enter__(self):
        from transformers.models.llama import modeling_llama
        from transformers.models.qwen2 import modeling_qwen2
        self.saved = [(torch.nn.functional, "softmax", torch.nn.functional.softmax)]
        orig = torch.nn.functional.softmax

        def softmax(x, dim=None, _stacklevel=3, dtype=None):
            return orig(x, dim=dim, dtype=None if x.dtype == torch.float64 else dtype)

        def rms_forward(self, x):
            var = x.pow(2).mean(-1, keepdim=True)
            return self.weight * (x * torch.rsqrt(var + self.variance_epsilon))
        torch.nn.functional.softmax = softmax
        classes = [modeling_llama.LlamaRMSNorm, modeling_qwen2.Qwen2RMSNorm]
        # Qwen2-VL / Qwen2.5-VL: their own RMSNorm (Qwen2.5-VL's tower uses it
        # too), and the tower's rotary embedding, which computes in float32.
        from transformers.models.qwen2_vl import modeling_qwen2_vl as mq2
        classes.append(mq2.Qwen2RMSNorm)

        def rot_vision_q2(tensor, freqs):
            cos = freqs.cos().unsqueeze(1).repeat(1, 1, 2).unsqueeze(0).to(tensor.dtype)
            sin = freqs.sin().unsqueeze(1).repeat(1, 1, 2).unsqueeze(0).to(tensor.dtype)
            return (tensor * cos) + (mq2.rotate_half(tensor) * sin)
        self.saved.append((mq2, "apply_rotary_pos_emb_vision", mq2.apply_rotary_pos_emb_vision))
        mq2.apply_rotary_pos_emb_vision = rot_vision_q2
        try:
            from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as mq25
        except ImportError:  # transformers 4.46
            mq25 = None
        if mq25 is not None:
            classes.append(mq25.Qwen2RMSNorm)

            def rot_vision_q25(q, k, cos, sin):
                cos, sin = cos.unsqueeze(-2).to(q.dtype), sin.unsqueeze(-2).to(q.dtype)
                return ((q * cos) + (mq25.rotate_half(q) * sin),
                        (k * cos) + (mq25.rotate_half(k) * sin))
            self.saved.append((mq25, "apply_rotary_pos_emb_vision",
                               mq25.apply_rotary_pos_emb_vision))
            mq25.apply_rotary_pos_emb_vision = rot_vision_q25
        for cls in classes:
            self.saved.append((cls, "forward", cls.forward))
            cls.forward = rms_forward
        return self

    def __exit__(self, *a):
        for obj, attr, val in self.saved:
            setattr(obj, attr, val)


def fd_check(S, with_ntp):
    """Central finite differences in float64 for a few scalars."""
    with Float64Everywhere():
        return fd_check64(S, with_ntp)


def fd_check64(S, with_ntp):
    S.model.double()
    ip, tp, ls = (t.detach().double().requires_grad_(True) for t in leaves_from(S))
    S.pv = S.pv.double()
    S.check_top = False  # HF's top-level forward returns float32 logits
    zero_all(S, [ip, tp, ls])
    objective(S, ip, tp, ls, with_ntp)["L"].backward()
    lora_k = sorted(S.lora)[1]
    if S.qwen:
        proj = ("merger", S.ckpt_params["visual.merger.mlp.0.weight"], (2, 3))
        patch = ("patch", S.ckpt_params["visual.patch_embed.proj.weight"], (1, 2, 1, 3, 2))
        lm = ""
    else:
        proj = ("proj", S.ckpt_params["multi_modal_projector.linear_1.weight"], (2, 3))
        patch = ("patch", S.ckpt_params[
            "vision_tower.vision_model.embeddings.patch_embedding.weight"], (1, 2, 3, 4))
        lm = "language_model."
    probes = [("image_prompt", ip, (1, 5)), ("text_prompt", tp, (4, 7)),
              ("logit_scale", ls, (0,)), (lora_k, S.lora[lora_k], (0, 0)), proj, patch,
              ("embed_tokens[eos]", S.ckpt_params[lm + "model.embed_tokens.weight"],
               (S.eos, 3)),
              ("embed_tokens[long0]", S.ckpt_params[lm + "model.embed_tokens.weight"],
               (S.long_ids[0][0], 7)),
              ("norm", S.ckpt_params[lm + "model.norm.weight"], (5,))]
    worst = 0.0
    for label, t, idx in probes:
        g = t.grad[idx].item()
        h = FD_H
        with torch.no_grad():
            old = t[idx].item()
            t[idx] = old + h
            fp = objective(S, ip, tp, ls, with_ntp)["L"].item()
            t[idx] = old - h
            fm = objective(S, ip, tp, ls, with_ntp)["L"].item()
            t[idx] = old
        fd = (fp - fm) / (2 * h)
        err = abs(fd - g) / max(1e-6, abs(g))
        worst = max(worst, err)
        print("   fd %s h=%g fd=%.9g autograd=%.9g" % (label, h, fd, g))
        assert abs(fd - g) <= FD_ATOL + FD_RTOL * abs(g), (label, fd, g)
    S.model.float()
    S.pv = S.pv.float()
    S.check_top = S.qwen
    return worst


def run(name, tmp, image_paths):
    S = setup(name, tmp, image_paths)
    H = S.soft["image_prompt"].shape[1]
    g = {}

    # ---- full objective, one backward over everything ----
    ip, tp, ls = leaves_from(S)
    zero_all(S, [ip, tp, ls])
    out = objective(S, ip, tp, ls)
    out["L"].backward()
    g["L_c"] = out["L_c"].detach().reshape(1)
    g["L_ntp"] = out["L_ntp"].detach().reshape(1)
    g["L"] = out["L"].detach().reshape(1)
    g["image_embeds"] = out["V"].detach()
    g["text_embeds"] = out["T"].detach()
    g["ntp_token_count"] = torch.tensor([out["ntp_count"]], dtype=torch.int32)
    for key, lst in (("short_caption_ids", S.short_ids), ("long_caption_ids", S.long_ids)):
        n = max(map(len, lst))
        g[key] = torch.tensor([x + [-1] * (n - len(x)) for x in lst], dtype=torch.int32)
    g["grad.image_prompt"] = grad_of(ip)
    g["grad.text_prompt"] = grad_of(tp)
    g["grad.logit_scale"] = grad_of(ls)
    for k, p in S.lora.items():
        g["grad." + k] = grad_of(p)
    zero_grads = []
    for k, p in S.ckpt_params.items():
        g["grad." + k] = grad_of(p)
        if not g["grad." + k].any():
            zero_grads.append(k)
    for k in zero_grads:  # only where the features do not reach (none for Qwen2-VL)
        assert not S.qwen, k
        assert "post_layernorm" in k or (
            name.startswith(("clip", "next_clip")) and ".encoder.layers.%d." %
            (len(S.model.vision_tower.vision_model.encoder.layers) - 1) in k), k

    # ---- one SGD step (lr 1) on soft prompts, logit_scale, LoRA ----
    trainable = [ip, tp, ls] + list(S.lora.values())
    old = [t.detach().clone() for t in trainable]
    grads = [t.grad.detach().clone() for t in trainable]
    opt = torch.optim.SGD(trainable, lr=1.0)
    opt.step()
    for t, o, gr in zip(trainable, old, grads):
        assert torch.equal(t.detach(), o - gr)
    with torch.no_grad():
        for t, o in zip(trainable, old):
            t.copy_(o)

    # ---- contrastive only ----
    ip, tp, ls = leaves_from(S)
    zero_all(S, [ip, tp, ls])
    out = objective(S, ip, tp, ls, with_ntp=False)
    out["L"].backward()
    g["c_only.L_c"] = out["L_c"].detach().reshape(1)
    assert torch.allclose(g["c_only.L_c"], g["L_c"], rtol=0, atol=0)
    g["c_only.grad.image_prompt"] = grad_of(ip)
    g["c_only.grad.text_prompt"] = grad_of(tp)
    g["c_only.grad.logit_scale"] = grad_of(ls)
    for k, p in S.lora.items():
        g["c_only.grad." + k] = grad_of(p)
    # text_prompt is not in the NTP sequences: its gradient is the same
    assert torch.allclose(g["c_only.grad.text_prompt"], g["grad.text_prompt"], atol=1e-7)

    # ---- clamped logit_scale ----
    ip, tp, ls = leaves_from(S, CLAMPED_LOGIT_SCALE)
    assert CLAMPED_LOGIT_SCALE > MAX_LOGIT_SCALE
    zero_all(S, [ip, tp, ls])
    out = objective(S, ip, tp, ls)
    out["L"].backward()
    g["clamped.logit_scale"] = torch.tensor([CLAMPED_LOGIT_SCALE], dtype=torch.float32)
    g["clamped.L_c"] = out["L_c"].detach().reshape(1)
    g["clamped.L_ntp"] = out["L_ntp"].detach().reshape(1)
    g["clamped.L"] = out["L"].detach().reshape(1)
    g["clamped.grad.logit_scale"] = grad_of(ls)
    g["clamped.grad.image_prompt"] = grad_of(ip)
    assert g["clamped.grad.logit_scale"].item() == 0.0
    assert torch.equal(g["clamped.L_ntp"], g["L_ntp"])

    worst = max(fd_check(S, True), fd_check(S, False))

    outd = {}
    for k in sorted(g):
        v = g[k].contiguous()
        outd[k] = v if v.dtype == torch.int32 else v.to(torch.float32)
    path = os.path.join(ER.OUT, "grad_%s.safetensors" % name)
    save_file(outd, path, metadata={
        "generator_args": " ".join(gen_args(name) + ["--with-tokenizer"]),
        "adapter": "tests/model/golden/adapters/%s" % name,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "tokenizers": tokenizers.__version__,
        "compute": "float32 (bf16 weights widened exactly)",
        "objective": "L = L_c + %g * L_ntp; s = exp(min(logit_scale, log(100)))" % LAMBDA_NTP,
    })
    size = os.path.getsize(path)
    assert size < 2 * 1024 * 1024, size
    print("wrote %s (%d bytes, %d tensors) H=%d L_c=%.9g L_ntp=%.9g L=%.9g N=%d "
          "c_only.L_c=%.9g clamped.L=%.9g grad.logit_scale=%.9g zero-grad tensors=%d "
          "fd worst rel err=%.2g" % (
              path, size, len(outd), H, g["L_c"].item(), g["L_ntp"].item(), g["L"].item(),
              g["ntp_token_count"].item(), g["c_only.L_c"].item(), g["clamped.L"].item(),
              g["grad.logit_scale"].item(), len(zero_grads), worst))
    print("  zero gradients: " + ", ".join(zero_grads))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    paths = [os.path.join(ER.IMG_DIR, "img%d.png" % k) for k in range(3)]
    for p in paths:
        assert os.path.exists(p), p
    only = sys.argv[1:] or GRAD_VARIANTS
    for name in only:
        assert name in GRAD_VARIANTS, name
    here = [v for v in only if variant_version(v) == transformers.__version__]
    others = {}
    for v in only:
        if v not in here:
            env, default = VARIANT_ENV[variant_version(v)]
            others.setdefault(os.environ.get(env, default), []).append(v)
    with tempfile.TemporaryDirectory() as tmp:
        for name in here:
            run(name, tmp, paths)
    for python, vs in others.items():
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        subprocess.run([python, os.path.abspath(__file__)] + vs, check=True, env=env)


if __name__ == "__main__":
    main()
