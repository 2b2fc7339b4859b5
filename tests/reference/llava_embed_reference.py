#!/usr/bin/env python3
"""Goldens for tests/model/test_embed.c: LLaVA image and text embeddings
(docs/adapter-format.md), base and with a PEFT adapter, computed by Hugging
Face transformers + peft.

Writes, under tests/model/golden/:
  images/img0.png .. img4.png   five small deterministic PNGs (Pillow)
  adapters/<V>/                 one adapter directory per variant V:
      adapter_config.json       as peft's save_pretrained wrote it (LoRA r=4,
                                alpha=8; base_model_name_or_path set to a
                                stable name)
      adapter_model.safetensors peft's file with the vision tower's LoRA
                                tensors removed (peft also wraps CLIP/SigLIP
                                q/k/v_proj; they stay zero here, so the
                                reference applies LoRA to the LLM only)
      soft_prompts.safetensors  image_prompt [3, H], text_prompt [5, H],
                                logit_scale [1] F32 = log(1/0.07) + 0.25
      prompts.json              siglip_qwen2 only (see PROMPTS_QWEN2)
  embed_<V>.safetensors         the goldens (names below)

Variants V: clip_llama_f32, clip_llama_bf16, siglip_qwen2_f32,
siglip_qwen2_bf16 (tests/gen_tiny_checkpoint.py --layout classic
--with-tokenizer plus the arguments in VARIANTS), and clip_llama_f32_new: the
same model in the NEW layout, sharded (--layout new --sharded). The generator
seeds values by tensor NAME, so the new layout has other values; it is loaded
by renaming its keys to the classic ones transformers 4.46 knows. Its adapter
uses the new layout's module paths (base_model.model.model.language_model...),
which docs/adapter-format.md also accepts.

Numerics: every checkpoint is loaded with torch_dtype=float32 (bf16 weights
widen exactly) and run in float32, eval mode, attn_implementation="eager".
libdisclvlm widens bf16 weights to f32 and keeps f32 activations, so this is
the computation it must match (HF's own bf16 path would round every
activation to bf16). For the bf16 variants the adapter files are stored in
BF16 (LoRA A/B and soft prompts; logit_scale stays F32) and the reference uses
those bf16-rounded values, widened.

Images are opened with Pillow, converted with .convert("RGB") (what the
library does for every image; CLIPImageProcessor would do it too, while
SiglipImageProcessor without do_convert_rgb would not) and preprocessed by the
model directory's image processor (CLIPImageProcessor / SiglipImageProcessor
from preprocessor_config.json).

Embedding sequences (docs/adapter-format.md), with B = [bos] if add_bos:
  image: B + image.prefix_ids + image features + soft prompt + image.suffix_ids
  text:  B + text.prefix_ids  + caption ids    + soft prompt + text.suffix_ids
where the soft prompt is the adapter's image_prompt / text_prompt rows, or
embed_tokens(instruction_ids) without an adapter. The five sequences of a
batch are right-padded (zero embeddings) and run through
model.language_model.model(inputs_embeds=..., attention_mask=...); the
embedding is last_hidden_state at each row's last real position,
L2-normalised. The default prompts (no prompts.json) are each side's
template tokenized as ONE string with `tokenizers` (add_special_tokens=False),
as a Hugging Face processor tokenizes "USER: <image>\nSummarize above image in
one word: ASSISTANT:" or the caption inside its template; the instruction's
tokens (which a soft prompt replaces) are found from the tokens' character
offsets (whole_split). prompts.json with ids (siglip_qwen2) keeps the pieces
mode: the pieces' ids concatenated around the caption tokenized alone.

Golden tensors (F32 unless said):
  image_features        [5, F, H]  model.get_image_features(img0..img4)
  base_image_embeds     [5, H]     no adapter, default prompts
  base_text_embeds      [5, H]     the five CAPTIONS
  adapter_image_embeds  [5, H]     with the variant's adapter (LoRA + soft
  adapter_text_embeds   [5, H]     prompts + prompts.json where present)
  caption_ids           I32 [5, maxlen]  padded with -1
  caption_lengths       I32 [5]
  default_{image,text}_{prefix,instruction,suffix}_ids  I32 [n]  each default
                        piece tokenized on its own (a tokenizer check) (all six pieces are non-empty for both
                        families, so none is omitted)
  raw_ids               I32 [n]    bos + ids + image_token_index + ids
  raw_hidden            [1, H]     HF's own LlavaForConditionalGeneration
                        forward on raw_ids with the image token expanded to F
                        copies (as the 4.46 processor does) and img0's pixels:
                        hidden_states[-1] (after the final norm) at the last
                        position
  raw_hidden_adapter    [1, H]     the same through the PeftModel (LoRA only)

Run by hand (not in CI) in a virtualenv that sees Debian's python3-torch:
    /usr/bin/python3 -m venv --system-site-packages /tmp/ref-embed
    /tmp/ref-embed/bin/pip install transformers==4.46.3 tokenizers==0.20.3 \\
        safetensors==0.4.5 pillow==11.0.0 accelerate==0.34.2
    /tmp/ref-embed/bin/pip install --no-deps peft==0.13.2
    /tmp/ref-embed/bin/python tests/reference/llava_embed_reference.py
(peft is installed without dependencies so that pip does not replace Debian's
torch 1.13 by a CUDA build; numpy is Debian's 1.24.2.) Versions used for the
committed goldens: torch 1.13.0a0 (Debian python3-torch 1.13.1),
transformers 4.46.3, peft 0.13.2, tokenizers 0.20.3, safetensors 0.4.5,
pillow 11.0.0, accelerate 0.34.2. Reruns reproduce every tensor and file bit for
bit, except the order of the goldens' __metadata__ keys. The script re-executes itself with
PYTHONHASHSEED=0 so that peft's target_modules list has a stable order.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)
# peft's save_pretrained looks base_model_name_or_path up on the Hub: stay offline.
os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import torch
import transformers
import peft
import tokenizers
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from transformers import (CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration,
                          SiglipImageProcessor)
from peft import LoraConfig, get_peft_model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GEN = os.path.join(ROOT, "tests", "gen_tiny_checkpoint.py")
OUT = os.path.join(ROOT, "tests", "model", "golden")
IMG_DIR = os.path.join(OUT, "images")
ADAPTER_DIR = os.path.join(OUT, "adapters")

VARIANTS = {
    "clip_llama_f32": ["--vision", "clip", "--text", "llama", "--dtype", "f32",
                       "--layout", "classic"],
    "clip_llama_bf16": ["--vision", "clip", "--text", "llama", "--dtype", "bf16",
                        "--layout", "classic"],
    "siglip_qwen2_f32": ["--vision", "siglip", "--text", "qwen2", "--dtype", "f32",
                         "--layout", "classic"],
    "siglip_qwen2_bf16": ["--vision", "siglip", "--text", "qwen2", "--dtype", "bf16",
                          "--layout", "classic"],
    "clip_llama_f32_new": ["--vision", "clip", "--text", "llama", "--dtype", "f32",
                           "--layout", "new", "--sharded"],
}

CAPTIONS = ["A photo.", "a red circle left of a small blue square", "Cat",
            "the quick brown fox jumps over the lazy dog, twice!", "sky"]

DEFAULT_PIECES = {
    "llama": {"add_bos": True,
              "image": ("USER: ", "\nSummarize above image in one word:", " ASSISTANT:"),
              "text": ("USER: ", "\nSummarize above sentence in one word:", " ASSISTANT:")},
    "qwen2": {"add_bos": False,
              "image": ("<|im_start|>user\n", "\nSummarize above image in one word:",
                        "<|im_end|>\n<|im_start|>assistant\n"),
              "text": ("<|im_start|>user\n", "\nSummarize above sentence in one word:",
                       "<|im_end|>\n<|im_start|>assistant\n")},
}

LORA_TARGETS = {
    "llama": ["q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}

N_IMAGE_PROMPT, N_TEXT_PROMPT = 3, 5
LOGIT_SCALE = math.log(1 / 0.07) + 0.25


def prompts_qwen2(tok):
    """prompts.json of the siglip_qwen2 adapters: non-default pieces that
    check the rules of docs/adapter-format.md:
      - add_bos true although Qwen2's default is false (B = [bos_token_id 100]);
      - image.prefix_ids given and equal to the string's tokenization;
      - text.prefix_ids given and DIFFERENT from the string's tokenization
        (the ids of "Text: " with its trailing space, the string is "Text:"):
        the ids are authoritative;
      - the suffixes are strings without ids: computed with the tokenizer
        ("<|im_end|>" is the added token 103);
      - the instructions are irrelevant here (the adapter has soft prompts).
    Returns (the JSON object, the resolved pieces)."""
    def ids(s):
        return tok.encode(s, add_special_tokens=False).ids
    js = {
        "add_bos": True,
        "image": {"prefix": "Image:", "prefix_ids": ids("Image:"),
                  "instruction": "\nOne word:", "instruction_ids": ids("\nOne word:"),
                  "suffix": "<|im_end|>"},
        "text": {"prefix": "Text:", "prefix_ids": ids("Text: "),
                 "instruction": "\nOne word:",
                 "suffix": "<|im_end|>"},
    }
    assert ids("Text: ") != ids("Text:")
    resolved = {
        "add_bos": True,
        "image": (js["image"]["prefix_ids"], js["image"]["instruction_ids"], ids("<|im_end|>")),
        "text": (js["text"]["prefix_ids"], ids("\nOne word:"), ids("<|im_end|>")),
    }
    return js, resolved


# ---- images -----------------------------------------------------------------

def make_images():
    """Five small deterministic PNGs of different sizes and modes (RGB, L,
    RGBA, P): smooth gradients with a few shapes, so they compress small."""
    os.makedirs(IMG_DIR, exist_ok=True)
    specs = [(40, 30, "RGB"), (28, 28, "L"), (64, 48, "RGB"), (17, 33, "RGBA"), (50, 50, "P")]
    paths = []
    for k, (w, h, mode) in enumerate(specs):
        img = Image.new("RGB", (w, h))
        px = img.load()
        for y in range(h):
            for x in range(w):
                px[x, y] = ((x * 255 // max(w - 1, 1) + 37 * k) % 256,
                            (y * 255 // max(h - 1, 1) + 91 * k) % 256,
                            ((x + y) * 97 + 53 * k) % 256 if k % 2 else (x * y * 3) % 256)
        d = ImageDraw.Draw(img)
        d.ellipse([w // 5, h // 6, w // 5 + w // 3, h // 6 + h // 3],
                  fill=(220, 30 + 40 * k, 40))
        d.rectangle([w // 2, h // 2, w - 2, h - 3], fill=(20, 60, 200 - 30 * k))
        d.line([0, h - 1, w - 1, 0], fill=(255, 255, 255), width=1)
        if mode == "L":
            img = img.convert("L")
        elif mode == "RGBA":
            a = Image.new("L", (w, h))
            ap = a.load()
            for y in range(h):
                for x in range(w):
                    ap[x, y] = (x * 15 + y * 7) % 256
            img = img.copy()
            img.putalpha(a)
        elif mode == "P":
            img = img.quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        path = os.path.join(IMG_DIR, "img%d.png" % k)
        img.save(path, optimize=True)
        size = os.path.getsize(path)
        assert size < 10 * 1024, (path, size)
        paths.append(path)
    return paths


def pixel_values(model_dir, paths):
    with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
        kind = json.load(f)["image_processor_type"]
    cls = {"CLIPImageProcessor": CLIPImageProcessor,
           "SiglipImageProcessor": SiglipImageProcessor}[kind]
    proc = cls.from_pretrained(model_dir)
    imgs = []
    for p in paths:
        with Image.open(p) as im:
            imgs.append(im.convert("RGB"))
    pv = proc(images=imgs, return_tensors="pt")["pixel_values"]
    return pv.to(torch.float32)


# ---- model ------------------------------------------------------------------

NEW_TO_CLASSIC = [("model.vision_tower.", "vision_tower."),
                  ("model.multi_modal_projector.", "multi_modal_projector."),
                  ("model.language_model.", "language_model.model."),
                  ("lm_head.", "language_model.lm_head.")]


def classic_copy(new_dir, out_dir):
    """A classic-layout single-file copy of a new-layout (sharded) checkpoint:
    the same values under the names transformers 4.46 loads."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(new_dir, "model.safetensors.index.json")) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    sd = {}
    for fn in files:
        for k, v in load_file(os.path.join(new_dir, fn)).items():
            for a, b in NEW_TO_CLASSIC:
                if k.startswith(a):
                    k = b + k[len(a):]
                    break
            else:
                raise SystemExit("unexpected tensor name " + k)
            assert k not in sd
            sd[k] = v
    save_file(sd, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    for fn in ("config.json", "preprocessor_config.json", "tokenizer.json",
               "tokenizer_config.json"):
        shutil.copy(os.path.join(new_dir, fn), out_dir)


def load_model(model_dir, cls=LlavaForConditionalGeneration):
    model, info = cls.from_pretrained(
        model_dir, torch_dtype=torch.float32, attn_implementation="eager",
        output_loading_info=True)
    if info["missing_keys"] or info["mismatched_keys"] or info["unexpected_keys"]:
        raise SystemExit("%s: not all weights loaded: %s" % (model_dir, info))
    model.eval()
    return model


def bf16_round(t):
    return t.to(torch.bfloat16).to(torch.float32)


def embed_batch(lm_body, embed_tokens, seqs):
    """seqs: list of lists of pieces, each piece a list of ids or a float
    tensor [n, H]. Right-pads, runs the LLM body, returns the L2-normalised
    final-norm state at each row's last real position [B, H] and the raw
    states [B, H]."""
    rows = []
    for pieces in seqs:
        parts = []
        for p in pieces:
            if isinstance(p, torch.Tensor):
                parts.append(p.to(torch.float32))
            elif len(p):
                parts.append(embed_tokens(torch.tensor(p, dtype=torch.long)))
        rows.append(torch.cat(parts, 0))
    lens = [r.shape[0] for r in rows]
    T, H = max(lens), rows[0].shape[1]
    x = torch.zeros(len(rows), T, H, dtype=torch.float32)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        x[i, :lens[i]] = r
        mask[i, :lens[i]] = 1
    out = lm_body(inputs_embeds=x, attention_mask=mask, use_cache=False)
    hs = out.last_hidden_state
    last = torch.stack([hs[i, lens[i] - 1] for i in range(len(rows))])
    return torch.nn.functional.normalize(last, dim=-1), last


def whole_split(tok, prefix, middle, instr, suffix):
    """The ids of prefix + middle + instr + suffix tokenized as ONE string,
    as a Hugging Face processor tokenizes its prompt (special tokens such as
    <image> split out, the rest in context), split by the tokens' character
    offsets into (head, instruction, tail): a token ending before the
    instruction starts is head, one ending after it ends is tail, the rest
    (inside it, or straddling its start) instruction."""
    enc = tok.encode(prefix + middle + instr + suffix, add_special_tokens=False)
    a = len(prefix) + len(middle)
    b = a + len(instr)
    head, ins, tail = [], [], []
    for i, (_, end) in zip(enc.ids, enc.offsets):
        (head if end <= a else tail if end > b else ins).append(i)
    return head, ins, tail


def default_pieces(tok, family, image_token):
    """The family's default prompts (docs/adapter-format.md): the image side
    as (prefix, instruction, suffix) ids around the image features, the text
    side as a function caption -> (head, instruction, tail) ids."""
    dp = DEFAULT_PIECES[family]
    ip, ii, isuf = dp["image"]
    head, ins, tail = whole_split(tok, ip, image_token, ii, isuf)
    assert head[-1] == tok.token_to_id(image_token), head
    tp, ti, tsuf = dp["text"]
    return {"add_bos": dp["add_bos"], "image": (head[:-1], ins, tail),
            "text": lambda c: whole_split(tok, tp, c, ti, tsuf)}


def whole_pieces(tok, js, add_bos, image_token):
    """prompts.json with "tokenize": "whole": the texts tokenized as each
    side's one string (ids in the file are only what its tokenizer made)."""
    def texts(side):
        obj = js.get(side, {})
        return tuple(obj.get(k, "") for k in ("prefix", "instruction", "suffix"))
    ip, ii, isuf = texts("image")
    head, ins, tail = whole_split(tok, ip, image_token, ii, isuf)
    assert head[-1] == tok.token_to_id(image_token), head
    tp, ti, tsuf = texts("text")
    return {"add_bos": js.get("add_bos", add_bos), "image": (head[:-1], ins, tail),
            "text": lambda c: whole_split(tok, tp, c, ti, tsuf)}


def pieces_text(pieces, ids):
    """A pieces-mode text side (prefix, instruction, suffix ids, the caption
    tokenized alone between them) as a function caption -> (head,
    instruction, tail)."""
    pre, ins, suf = pieces
    return lambda c: (list(pre) + ids(c), list(ins), list(suf))


def seqs_for(pieces, add_bos, bos, middles, soft):
    """pieces: (prefix_ids, instruction_ids, suffix_ids) around middles (per
    row a list of ids or a feature tensor), or a function caption -> (head,
    instruction, tail) with middles the captions; soft: a [n, H] tensor or
    None (then the instruction ids)."""
    b = [bos] if add_bos else []
    rows = []
    for m in middles:
        if callable(pieces):
            prefix, instr, suffix = pieces(m)
            m = []
        else:
            prefix, instr, suffix = pieces
        rows.append([b, list(prefix), m, soft if soft is not None else list(instr),
                     list(suffix)])
    return rows


def run(name, args, tmp, image_paths):
    gen_dir = os.path.join(tmp, name)
    subprocess.run([sys.executable, GEN, gen_dir, "--with-tokenizer"] + args, check=True)
    new_layout = "new" in args
    model_dir = gen_dir
    if new_layout:
        model_dir = gen_dir + "-classic"
        classic_copy(gen_dir, model_dir)
    is_bf16 = "bf16" in args
    model = load_model(model_dir)
    cfg = model.config
    family = cfg.text_config.model_type
    H = cfg.text_config.hidden_size
    bos = cfg.text_config.bos_token_id
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))

    def ids(s):
        return tok.encode(s, add_special_tokens=False).ids

    g = {}
    dp = DEFAULT_PIECES[family]
    # Each default piece tokenized on its own: a check of the tokenizer.
    for side in ("image", "text"):
        for k, text in zip(("prefix", "instruction", "suffix"), dp[side]):
            piece = ids(text)
            assert len(piece) > 0 and cfg.image_token_index not in piece
            g["default_%s_%s_ids" % (side, k)] = torch.tensor(piece, dtype=torch.int32)
    # The sequences: each side's prompt tokenized as one string.
    default = default_pieces(tok, family, tok.id_to_token(cfg.image_token_index))

    cap_ids = [ids(c) for c in CAPTIONS]
    maxlen = max(len(c) for c in cap_ids)
    g["caption_ids"] = torch.tensor([c + [-1] * (maxlen - len(c)) for c in cap_ids],
                                    dtype=torch.int32)
    g["caption_lengths"] = torch.tensor([len(c) for c in cap_ids], dtype=torch.int32)

    pv = pixel_values(model_dir, image_paths)
    with torch.no_grad():
        feats = model.get_image_features(pv, cfg.vision_feature_layer,
                                         cfg.vision_feature_select_strategy)
    F = feats.shape[1]
    assert F == cfg.image_seq_length, (F, cfg.image_seq_length)
    g["image_features"] = feats.float().contiguous()

    lm_body = model.language_model.model
    emb = lm_body.embed_tokens

    with torch.no_grad():
        g["base_image_embeds"], _ = embed_batch(
            lm_body, emb, seqs_for(default["image"], default["add_bos"], bos,
                                   [feats[i] for i in range(5)], None))
        g["base_text_embeds"], _ = embed_batch(
            lm_body, emb, seqs_for(default["text"], default["add_bos"], bos, CAPTIONS, None))
        # The batch is right-padded: row by row alone must agree.
        for i in range(5):
            one, _ = embed_batch(lm_body, emb, seqs_for(default["text"], default["add_bos"],
                                                         bos, [CAPTIONS[i]], None))
            assert torch.allclose(one[0], g["base_text_embeds"][i], atol=1e-6), name

    # raw_ids through HF's own forward, image token expanded to F copies.
    pre, post = [17, 33, 54], [76, 9, 88, 23]
    raw = ([bos] if bos is not None else []) + pre + [cfg.image_token_index] + post
    expanded = ([bos] if bos is not None else []) + pre + [cfg.image_token_index] * F + post
    g["raw_ids"] = torch.tensor(raw, dtype=torch.int32)

    def raw_forward(m):
        with torch.no_grad():
            out = m(input_ids=torch.tensor([expanded]), pixel_values=pv[:1],
                    attention_mask=torch.ones(1, len(expanded), dtype=torch.long),
                    output_hidden_states=True, use_cache=False)
        return out.hidden_states[-1][:, -1].float().contiguous()

    g["raw_hidden"] = raw_forward(model)
    # The last hidden state is after the final norm: check against the body.
    with torch.no_grad():
        e = emb(torch.tensor([expanded]))
        mask = torch.tensor(expanded) == cfg.image_token_index
        e[0, mask] = feats[0]
        body = lm_body(inputs_embeds=e, use_cache=False).last_hidden_state[:, -1]
    assert torch.allclose(body, g["raw_hidden"], atol=1e-6), name

    # ---- the adapter ----
    gen = torch.Generator().manual_seed(1234 + sum(map(ord, name)))
    lcfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=LORA_TARGETS[family])
    pm = get_peft_model(model, lcfg)
    pm.eval()
    n_lm = 0
    for mname, mod in pm.named_modules():
        if not hasattr(mod, "lora_A") or "default" not in mod.lora_A:
            continue
        if ".language_model." not in mname:
            continue  # vision tower: B stays zero (peft's init), no effect
        A = mod.lora_A["default"].weight
        B = mod.lora_B["default"].weight
        with torch.no_grad():
            a = torch.randn(A.shape, generator=gen) * 0.15
            b = torch.randn(B.shape, generator=gen) * 0.15
            if is_bf16:
                a, b = bf16_round(a), bf16_round(b)
            A.copy_(a)
            B.copy_(b)
        n_lm += 1
    n_layers = cfg.text_config.num_hidden_layers
    assert n_lm == n_layers * len(LORA_TARGETS[family]), n_lm
    img_prompt = torch.randn(N_IMAGE_PROMPT, H, generator=gen) * 0.05
    txt_prompt = torch.randn(N_TEXT_PROMPT, H, generator=gen) * 0.05
    if is_bf16:
        img_prompt, txt_prompt = bf16_round(img_prompt), bf16_round(txt_prompt)

    adir = os.path.join(ADAPTER_DIR, name)
    if os.path.exists(adir):
        shutil.rmtree(adir)
    pm.peft_config["default"].base_model_name_or_path = "tiny-llava-" + name
    # No model card (README.md): not part of the format, and it needs Jinja2.
    pm.create_or_update_model_card = lambda *a, **k: None
    pm.save_pretrained(adir)
    st_path = os.path.join(adir, "adapter_model.safetensors")
    sd = load_file(st_path)
    kept = {}
    for k, v in sd.items():
        if not k.startswith("base_model.model.language_model.model."):
            assert k.startswith("base_model.model.vision_tower."), k
            assert not v.any() or "lora_A" in k, k  # vision B is zero
            continue
        if new_layout:
            k = "base_model.model.model.language_model." + k[len(
                "base_model.model.language_model.model."):]
        kept[k] = v.to(torch.bfloat16) if is_bf16 else v.float()
    assert len(kept) == 2 * n_lm, len(kept)
    save_file(dict(sorted(kept.items())), st_path, metadata={"format": "pt"})
    soft = {"image_prompt": img_prompt.to(torch.bfloat16) if is_bf16 else img_prompt,
            "text_prompt": txt_prompt.to(torch.bfloat16) if is_bf16 else txt_prompt,
            "logit_scale": torch.tensor([LOGIT_SCALE], dtype=torch.float32)}
    save_file(soft, os.path.join(adir, "soft_prompts.safetensors"))
    if family == "qwen2":
        pj, pieces = prompts_qwen2(tok)
        pieces["text"] = pieces_text(pieces["text"], ids)
        with open(os.path.join(adir, "prompts.json"), "w", encoding="utf-8") as f:
            json.dump(pj, f, indent=2, ensure_ascii=False)
            f.write("\n")
    else:
        pieces = default
    for f in os.listdir(adir):
        assert f in ("adapter_config.json", "adapter_model.safetensors",
                     "soft_prompts.safetensors", "prompts.json"), f

    with torch.no_grad():
        g["adapter_image_embeds"], _ = embed_batch(
            lm_body, emb, seqs_for(pieces["image"], pieces["add_bos"], bos,
                                   [feats[i] for i in range(5)], img_prompt))
        g["adapter_text_embeds"], _ = embed_batch(
            lm_body, emb, seqs_for(pieces["text"], pieces["add_bos"], bos, CAPTIONS, txt_prompt))
    g["raw_hidden_adapter"] = raw_forward(pm)

    # The adapter must change things, and base must be unchanged by peft's
    # wrapping with B = 0 (checked through disable_adapter).
    with torch.no_grad(), pm.disable_adapter():
        again = raw_forward(pm)
    assert torch.equal(again, g["raw_hidden"]), name
    d_img = (g["adapter_image_embeds"] - g["base_image_embeds"]).abs().max().item()
    d_raw = (g["raw_hidden_adapter"] - g["raw_hidden"]).abs().max().item()
    assert d_img > 1e-2 and d_raw > 1e-2, (d_img, d_raw)

    order = ["image_features", "base_image_embeds", "base_text_embeds",
             "adapter_image_embeds", "adapter_text_embeds", "caption_ids", "caption_lengths"]
    order += sorted(k for k in g if k.startswith("default_"))
    order += ["raw_ids", "raw_hidden", "raw_hidden_adapter"]
    assert sorted(order) == sorted(g), sorted(set(g) ^ set(order))
    out = {k: g[k].contiguous() for k in order}
    for k, v in out.items():
        if v.dtype not in (torch.int32,):
            out[k] = v.to(torch.float32)
    path = os.path.join(OUT, "embed_%s.safetensors" % name)
    save_file(out, path, metadata={
        "generator_args": " ".join(args + ["--with-tokenizer"]),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "tokenizers": tokenizers.__version__,
        "compute": "float32 (bf16 weights widened exactly)",
    })
    assert os.path.getsize(path) < 200 * 1024
    print("wrote %s F=%d H=%d |adapter-base| image %.3g raw %.3g" % (path, F, H, d_img, d_raw))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    paths = make_images()
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in VARIANTS.items():
            run(name, args, tmp, paths)


if __name__ == "__main__":
    main()
