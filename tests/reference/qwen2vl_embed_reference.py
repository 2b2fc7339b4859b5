#!/usr/bin/env python3
"""Goldens for the library's Qwen2-VL / Qwen2.5-VL embedding models (issue
19): image and text embeddings, base and with a PEFT adapter, computed by
Hugging Face transformers + peft on the tiny checkpoints of
tests/gen_tiny_checkpoint.py --family qwen2_vl / qwen2_5_vl --text qwen2
--with-tokenizer. The LLaVA counterparts are llava_embed_reference.py and
llava_next_reference.py, whose helpers (adapter layout, constants,
whole_split) this script imports.

Writes, under tests/model/golden/:
  adapters/<V>/               the variant's adapter, as llava_embed_reference.py
                              writes it: adapter_config.json (peft's; LoRA
                              r=4, alpha=8 on the language model's q, k, v,
                              o, gate, up, down), adapter_model.safetensors
                              (the language model's LoRA tensors only:
                              base_model.model.model.layers.{i}...; for
                              Qwen2.5-VL peft also wraps the tower's
                              mlp.gate/up/down_proj, whose B stays zero and
                              whose tensors are dropped), soft_prompts.safetensors
                              (image_prompt [3, H], text_prompt [5, H],
                              logit_scale [1] F32); no prompts.json
  embed_<V>.safetensors       the goldens below

Variants V:
  qwen2vl_f32, qwen2vl_bf16   --family qwen2_vl, transformers 4.46.3
  qwen25vl_f32, qwen25vl_bf16 --family qwen2_5_vl, transformers 4.51.3
Each variant needs its own transformers: the script runs the variants whose
version the running interpreter has and re-runs itself for the others with
--variants under the other venv's python (QWEN2VL_PYTHON, default
/tmp/ref-embed/bin/python, for 4.46.3; QWEN25VL_PYTHON, default
/tmp/ref-qwen25/bin/python, for 4.51.3). --variants V [V ...] runs only
those.

Images: tests/model/golden/images/img0..5.png (llava_embed_reference.py and
llava_next_reference.py write them), Pillow .convert("RGB"), through
Qwen2VLImageProcessor.from_pretrained(model dir) (min_pixels 256,
max_pixels 2048, patch 4, merge 2: factor 8). Features: model.visual(
pixel_values, grid_thw) -- the tower's merged output, t*h*w/4 rows per
image.

Sequences (eager attention, float32; bf16 checkpoints are loaded with
torch_dtype=float32, i.e. widened exactly; the bf16 variant's adapter is
stored in BF16 and used at those values, widened):
  image: ids(IMAGE_PREFIX) + F features + ids(IMAGE_INSTRUCTION) + ids(SUFFIX)
  text:  whole_split of "<|im_start|>user\\n" + caption +
         "\\nSummarize above sentence in one word:" + SUFFIX tokenized as ONE
         string (head, instruction, tail by the tokens' offsets)
with an adapter the instruction's ids are replaced by the soft prompt's
rows (the image side's soft prompt thus starts where <|vision_end|> was).
The image side's ids are checked to equal Qwen2VLProcessor's input_ids for
the whole string IMAGE_PREFIX + "<|image_pad|>" + IMAGE_INSTRUCTION + SUFFIX
(no BOS; the processor expands <|image_pad|> to F). Position ids: M-RoPE
from the model's own get_rope_index on the ids, with FILLER_ID at the soft
rows (a text token's position does not depend on its id). Rows of a batch
are right-padded (zero embeddings, attention_mask 0, pad id FILLER_ID),
positions from get_rope_index(padded ids, the batch's image grids,
attention_mask); the language model (model.model) runs on inputs_embeds +
position_ids [3, B, L]; the embedding is its final-norm state at each row's
last real position, L2-normalised. Checked: each row alone equals the batch;
the base image path equals HF's own forward on the processor's input_ids +
pixel_values (which computes positions itself).

Golden tensors (F32 unless said):
  image_features        [sum F_i, H]  model.visual(...) for img0..img5
  feature_lens          I32 [6]       F_i = t*h*w / merge^2
  grid_thw              I32 [6, 3]    the processor's image_grid_thw
  base_image_embeds     [6, H]        default prompts, no adapter
  base_text_embeds      [5, H]        the five CAPTIONS
  adapter_image_embeds  [6, H]        with the adapter (LoRA + soft prompts)
  adapter_text_embeds   [5, H]
  raw_ids               I32 [n]       RAW_PRE + [104, 106, 105] + RAW_POST
  raw_hidden            [1, H]        HF's own forward on raw_ids with the
                        one 106 expanded to F_0 copies, img0's pixel_values
                        and grid: hidden_states[-1] (after the final norm) at
                        the last position, not normalised
  raw_hidden_adapter    [1, H]        the same through the PeftModel
  image_pixel_values    [N_0, C*T*P*P] img0's patches from the processor
  image0_ids            I32 [L]       img0's base image sequence (processor ids)
  image0_position_ids   I32 [3, L]    get_rope_index of it
  adapter_image0_position_ids  I32 [3, L'] img0's adapter sequence's positions
                        (FILLER_ID at the soft rows)

Run by hand (not in CI), no PYTHONPATH:
    /tmp/ref-embed/bin/python tests/reference/qwen2vl_embed_reference.py
Versions used for the committed goldens:
  qwen2vl_*: torch 1.13.0a0 (Debian python3-torch 1.13.1), transformers
    4.46.3, peft 0.13.2, tokenizers 0.20.3, safetensors 0.4.5, pillow 11.0.0
    (the venv of llava_embed_reference.py);
  qwen25vl_*: torch 2.15.0+cu132 (PyPI, run on the CPU), transformers 4.51.3, peft 0.15.2,
    tokenizers 0.21.4, safetensors 0.8.0, pillow 11.0.0:
      python3 -m venv /tmp/ref-qwen25 && /tmp/ref-qwen25/bin/pip install \\
          torch transformers==4.51.3 peft==0.15.2 safetensors pillow==11.0.0
The script re-executes itself with PYTHONHASHSEED=0 (peft's target_modules
order) and is seeded: reruns reproduce the files.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)
os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
import transformers  # noqa: E402
import peft  # noqa: E402
import tokenizers  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import Qwen2TokenizerFast, Qwen2VLImageProcessor  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llava_embed_reference as ref  # noqa: E402

# name: (generator family, dtype, transformers version, interpreter env var, default)
VARIANTS = {
    "qwen2vl_f32": ("qwen2_vl", "f32", "4.46.3", "QWEN2VL_PYTHON", "/tmp/ref-embed/bin/python"),
    "qwen2vl_bf16": ("qwen2_vl", "bf16", "4.46.3", "QWEN2VL_PYTHON", "/tmp/ref-embed/bin/python"),
    "qwen25vl_f32": ("qwen2_5_vl", "f32", "4.51.3", "QWEN25VL_PYTHON",
                     "/tmp/ref-qwen25/bin/python"),
    "qwen25vl_bf16": ("qwen2_5_vl", "bf16", "4.51.3", "QWEN25VL_PYTHON",
                      "/tmp/ref-qwen25/bin/python"),
}

IMAGE_PREFIX = "<|im_start|>user\n<|vision_start|>"
IMAGE_INSTRUCTION = "<|vision_end|>\nSummarize above image in one word:"
TEXT_PREFIX = "<|im_start|>user\n"
TEXT_INSTRUCTION = "\nSummarize above sentence in one word:"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
VSTART, VEND, IMAGE_PAD = 104, 105, 106
FILLER_ID = 0  # the id at soft-prompt rows and padding, for get_rope_index only
RAW_PRE, RAW_POST = [17, 33, 54], [76, 9, 88, 23]
N_IMAGES = 6


def model_classes(family):
    if family == "qwen2_vl":
        from transformers import Qwen2VLForConditionalGeneration, Qwen2VLProcessor
        return Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    return Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor


def rope_index(model, ids, grids, mask):
    """get_rope_index's position ids [3, B, L] (int64)."""
    kw = {"image_grid_thw": grids, "video_grid_thw": None, "attention_mask": mask}
    pos, _ = model.get_rope_index(ids, **kw)
    return pos


def embed_batch(model, rows):
    """rows: lists of pieces, each ("ids", list), ("image", [F, H] tensor,
    grid [3]) or ("soft", [n, H] tensor). Right-pads, computes M-RoPE
    positions with get_rope_index, runs the language model on
    inputs_embeds. Returns (L2-normalised last states [B, H], raw last
    states [B, H], per row (ids, positions [3, len]))."""
    emb = model.model.embed_tokens
    xs, idss, grids = [], [], []
    for pieces in rows:
        parts, ids = [], []
        for p in pieces:
            if p[0] == "ids":
                if p[1]:
                    parts.append(emb(torch.tensor(p[1], dtype=torch.long)))
                    ids += p[1]
            elif p[0] == "image":
                parts.append(p[1].float())
                ids += [IMAGE_PAD] * p[1].shape[0]
                grids.append(p[2])
            else:
                parts.append(p[1].float())
                ids += [FILLER_ID] * p[1].shape[0]
        xs.append(torch.cat(parts, 0))
        idss.append(ids)
    lens = [len(i) for i in idss]
    T, H = max(lens), xs[0].shape[1]
    x = torch.zeros(len(rows), T, H)
    ids = torch.full((len(rows), T), FILLER_ID, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i in range(len(rows)):
        x[i, :lens[i]] = xs[i]
        ids[i, :lens[i]] = torch.tensor(idss[i])
        mask[i, :lens[i]] = 1
    g = torch.tensor(grids, dtype=torch.long) if grids else None
    pos = rope_index(model, ids, g, mask)
    out = model.model(inputs_embeds=x, attention_mask=mask, position_ids=pos, use_cache=False)
    hs = out.last_hidden_state
    last = torch.stack([hs[i, lens[i] - 1] for i in range(len(rows))])
    per_row = [(idss[i], pos[:, i, :lens[i]]) for i in range(len(rows))]
    return torch.nn.functional.normalize(last, dim=-1), last, per_row


def hf_forward(m, model, input_ids, pixel_values, grid):
    """HF's own forward of m (the model or its PeftModel) on expanded ids and
    an image: hidden_states[-1] (after the final norm) at the last position.
    4.51.3's forward computes the M-RoPE positions itself (get_rope_index);
    4.46.3's forward does not (a plain forward uses 1-D positions), its
    generate() does, in prepare_inputs_for_generation: the prefill step's
    inputs are taken from there."""
    mask = torch.ones_like(input_ids)
    kw = {"input_ids": input_ids, "pixel_values": pixel_values, "image_grid_thw": grid,
          "attention_mask": mask, "use_cache": False}
    if transformers.__version__ == "4.46.3":
        kw = model.prepare_inputs_for_generation(
            input_ids, attention_mask=mask, pixel_values=pixel_values, image_grid_thw=grid,
            cache_position=torch.arange(input_ids.shape[1]), use_cache=False)
        assert kw["position_ids"] is not None and kw["position_ids"].shape[0] == 3
    with torch.no_grad():
        out = m(**kw, output_hidden_states=True)
    return out.hidden_states[-1][:, -1].float().contiguous()


def emb_ids(model, ids):
    return model.model.embed_tokens(torch.tensor(ids, dtype=torch.long))


def check_rows_alone(model, rows, batch, what):
    for i, r in enumerate(rows):
        one, _, _ = embed_batch(model, [r])
        d = (one[0] - batch[i]).abs().max().item()
        assert d < 2e-6, (what, i, d)


def run(name, tmp, image_paths):
    family, dtype, version, _, _ = VARIANTS[name]
    assert transformers.__version__ == version, (name, transformers.__version__)
    model_dir = os.path.join(tmp, name)
    gen_args = ["--family", family, "--text", "qwen2", "--dtype", dtype, "--with-tokenizer"]
    subprocess.run([sys.executable, ref.GEN, model_dir] + gen_args, check=True)
    is_bf16 = dtype == "bf16"
    cls, proc_cls = model_classes(family)
    model = ref.load_model(model_dir, cls)
    cfg = model.config
    H = cfg.hidden_size
    assert cfg.image_token_id == IMAGE_PAD and cfg.vision_start_token_id == VSTART
    assert cfg.vision_end_token_id == VEND and cfg.rope_scaling["mrope_section"] == [2, 3, 3]
    assert cfg._attn_implementation == "eager"
    for mod in (model.visual.blocks[0].attn, model.model.layers[0].self_attn):
        kind = type(mod).__name__
        assert "Sdpa" not in kind and "Flash" not in kind, kind  # eager classes
    merge = cfg.vision_config.spatial_merge_size

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))

    def ids(s):
        return tok.encode(s, add_special_tokens=False).ids

    for t, i in (("<|vision_start|>", VSTART), ("<|vision_end|>", VEND),
                 ("<|image_pad|>", IMAGE_PAD), ("<|video_pad|>", 107)):
        assert tok.token_to_id(t) == i, t

    improc = Qwen2VLImageProcessor.from_pretrained(model_dir)
    hf_tok = Qwen2TokenizerFast.from_pretrained(model_dir)
    processor = proc_cls(image_processor=improc, tokenizer=hf_tok)
    imgs = []
    for p in image_paths:
        with Image.open(p) as im:
            imgs.append(im.convert("RGB"))
    enc = improc(images=imgs, return_tensors="pt")
    pv = enc["pixel_values"].to(torch.float32)
    grid = enc["image_grid_thw"]
    n_patches = (grid[:, 0] * grid[:, 1] * grid[:, 2]).tolist()
    lens = [n // (merge * merge) for n in n_patches]
    g = {}
    with torch.no_grad():
        feats_all = model.visual(pv, grid_thw=grid)
    assert feats_all.shape == (sum(lens), H), (feats_all.shape, lens)
    feats = list(torch.split(feats_all, lens, dim=0))
    g["image_features"] = feats_all.float().contiguous()
    g["feature_lens"] = torch.tensor(lens, dtype=torch.int32)
    g["grid_thw"] = grid.to(torch.int32)
    g["image_pixel_values"] = pv[:n_patches[0]].contiguous()

    # The library's image pieces against the processor's whole string.
    head, instr, tail = ids(IMAGE_PREFIX), ids(IMAGE_INSTRUCTION), ids(SUFFIX)
    assert head[-1] == VSTART and instr[0] == VEND, (head, instr)
    starts = [0] + torch.cumsum(torch.tensor(n_patches), 0).tolist()
    proc_ids = []
    for i, im in enumerate(imgs):
        out = processor(text=[IMAGE_PREFIX + "<|image_pad|>" + IMAGE_INSTRUCTION + SUFFIX],
                        images=[im], return_tensors="pt")
        got = out["input_ids"][0].tolist()
        want = head + [IMAGE_PAD] * lens[i] + instr + tail
        assert got == want, (name, i, got, want)
        assert torch.equal(out["image_grid_thw"][0], grid[i])
        assert torch.equal(out["pixel_values"].float(), pv[starts[i]:starts[i + 1]]), (name, i)
        proc_ids.append((got, out))
    # The text side's whole string: the processor's tokenizer agrees.
    text_pieces = [ref.whole_split(tok, TEXT_PREFIX, c, TEXT_INSTRUCTION, SUFFIX)
                   for c in ref.CAPTIONS]
    for c, (h, ins, t) in zip(ref.CAPTIONS, text_pieces):
        got = processor(text=[TEXT_PREFIX + c + TEXT_INSTRUCTION + SUFFIX],
                        return_tensors="pt")["input_ids"][0].tolist()
        assert got == h + ins + t, (name, c, got)

    def image_rows(soft):
        return [[("ids", head), ("image", feats[i], grid[i].tolist()),
                 ("soft", soft) if soft is not None else ("ids", instr), ("ids", tail)]
                for i in range(N_IMAGES)]

    def text_rows(soft):
        return [[("ids", h), ("soft", soft) if soft is not None else ("ids", ins), ("ids", t)]
                for h, ins, t in text_pieces]

    with torch.no_grad():
        rows = image_rows(None)
        g["base_image_embeds"], base_last, per_row = embed_batch(model, rows)
        check_rows_alone(model, rows, g["base_image_embeds"], "base image")
        g["image0_ids"] = torch.tensor(per_row[0][0], dtype=torch.int32)
        g["image0_position_ids"] = per_row[0][1].to(torch.int32).contiguous()
        # HF's own forward (its own positions and feature placement).
        for i in range(N_IMAGES):
            got, out = proc_ids[i]
            assert per_row[i][0] == got
            assert out["attention_mask"].all()
            hs = hf_forward(model, model, out["input_ids"], out["pixel_values"].float(),
                            out["image_grid_thw"])[0]
            d = (hs - base_last[i]).abs().max().item()
            assert d < 2e-5, (name, "HF forward vs inputs_embeds path", i, d)
        # The check has teeth: 1-D positions (what 4.46.3's plain forward
        # uses) give another state.
        L = len(per_row[0][0])
        flat = torch.arange(L).view(1, 1, L).expand(3, 1, L)
        x = torch.cat([emb_ids(model, head), feats[0], emb_ids(model, instr),
                       emb_ids(model, tail)])[None]
        h1 = model.model(inputs_embeds=x, position_ids=flat, use_cache=False).last_hidden_state
        assert (h1[0, -1] - base_last[0]).abs().max().item() > 1e-3, name
        assert not torch.equal(per_row[0][1], flat[:, 0]), name
        rows = text_rows(None)
        g["base_text_embeds"], _, _ = embed_batch(model, rows)
        check_rows_alone(model, rows, g["base_text_embeds"], "base text")

    # raw_ids through HF's own forward, the one 106 expanded to F_0.
    raw = RAW_PRE + [VSTART, IMAGE_PAD, VEND] + RAW_POST
    expanded = RAW_PRE + [VSTART] + [IMAGE_PAD] * lens[0] + [VEND] + RAW_POST
    g["raw_ids"] = torch.tensor(raw, dtype=torch.int32)

    def raw_forward(m):
        return hf_forward(m, model, torch.tensor([expanded]), pv[:n_patches[0]], grid[:1])

    g["raw_hidden"] = raw_forward(model)
    with torch.no_grad():  # hidden_states[-1] is after the final norm
        _, last, _ = embed_batch(model, [[("ids", RAW_PRE + [VSTART]),
                                          ("image", feats[0], grid[0].tolist()),
                                          ("ids", [VEND] + RAW_POST)]])
    assert (last - g["raw_hidden"]).abs().max().item() < 2e-5, name

    # ---- the adapter (as llava_embed_reference.py's, default prompts) ----
    gen = torch.Generator().manual_seed(1919 + sum(map(ord, name)))
    targets = ref.LORA_TARGETS["qwen2"]
    lcfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets)
    pm = get_peft_model(model, lcfg)
    pm.eval()
    n_lm = 0
    for mname, mod in pm.named_modules():
        if not hasattr(mod, "lora_A") or "default" not in mod.lora_A:
            continue
        if not mname.startswith("base_model.model.model.layers."):
            assert mname.startswith("base_model.model.visual."), mname
            continue  # Qwen2.5-VL's tower MLP: B stays zero, no effect
        A, B = mod.lora_A["default"].weight, mod.lora_B["default"].weight
        with torch.no_grad():
            a = torch.randn(A.shape, generator=gen) * 0.15
            b = torch.randn(B.shape, generator=gen) * 0.15
            if is_bf16:
                a, b = ref.bf16_round(a), ref.bf16_round(b)
            A.copy_(a)
            B.copy_(b)
        n_lm += 1
    assert n_lm == cfg.num_hidden_layers * len(targets), n_lm
    img_prompt = torch.randn(ref.N_IMAGE_PROMPT, H, generator=gen) * 0.05
    txt_prompt = torch.randn(ref.N_TEXT_PROMPT, H, generator=gen) * 0.05
    if is_bf16:
        img_prompt, txt_prompt = ref.bf16_round(img_prompt), ref.bf16_round(txt_prompt)

    adir = os.path.join(ref.ADAPTER_DIR, name)
    if os.path.exists(adir):
        shutil.rmtree(adir)
    pm.peft_config["default"].base_model_name_or_path = "tiny-" + name
    pm.create_or_update_model_card = lambda *a, **k: None
    pm.save_pretrained(adir)
    st_path = os.path.join(adir, "adapter_model.safetensors")
    kept, n_vision = {}, 0
    for k, v in load_file(st_path).items():
        if not k.startswith("base_model.model.model.layers."):
            assert k.startswith("base_model.model.visual."), k
            assert not v.any() or "lora_A" in k, k  # the tower's B is zero
            n_vision += 1
            continue
        kept[k] = v.to(torch.bfloat16) if is_bf16 else v.float()
    assert len(kept) == 2 * n_lm, len(kept)
    assert n_vision == (2 * 3 * cfg.vision_config.depth if family == "qwen2_5_vl" else 0), n_vision
    save_file(dict(sorted(kept.items())), st_path, metadata={"format": "pt"})
    save_file({"image_prompt": img_prompt.to(torch.bfloat16) if is_bf16 else img_prompt,
               "text_prompt": txt_prompt.to(torch.bfloat16) if is_bf16 else txt_prompt,
               "logit_scale": torch.tensor([ref.LOGIT_SCALE], dtype=torch.float32)},
              os.path.join(adir, "soft_prompts.safetensors"))
    for f in os.listdir(adir):
        assert f in ("adapter_config.json", "adapter_model.safetensors",
                     "soft_prompts.safetensors"), f
    with open(os.path.join(adir, "adapter_config.json")) as f:
        acfg = json.load(f)
    assert sorted(acfg["target_modules"]) == sorted(targets), acfg["target_modules"]

    with torch.no_grad():
        rows = image_rows(img_prompt)
        g["adapter_image_embeds"], _, per_row = embed_batch(model, rows)
        check_rows_alone(model, rows, g["adapter_image_embeds"], "adapter image")
        g["adapter_image0_position_ids"] = per_row[0][1].to(torch.int32).contiguous()
        rows = text_rows(txt_prompt)
        g["adapter_text_embeds"], _, _ = embed_batch(model, rows)
        check_rows_alone(model, rows, g["adapter_text_embeds"], "adapter text")
    g["raw_hidden_adapter"] = raw_forward(pm)

    with torch.no_grad(), pm.disable_adapter():
        again = raw_forward(pm)
    assert torch.equal(again, g["raw_hidden"]), name
    d_img = (g["adapter_image_embeds"] - g["base_image_embeds"]).abs().max().item()
    d_txt = (g["adapter_text_embeds"] - g["base_text_embeds"]).abs().max().item()
    d_raw = (g["raw_hidden_adapter"] - g["raw_hidden"]).abs().max().item()
    assert d_img > 1e-2 and d_txt > 1e-2 and d_raw > 1e-2, (d_img, d_txt, d_raw)

    order = ["image_features", "feature_lens", "grid_thw", "base_image_embeds",
             "base_text_embeds", "adapter_image_embeds", "adapter_text_embeds", "raw_ids",
             "raw_hidden", "raw_hidden_adapter", "image_pixel_values", "image0_ids",
             "image0_position_ids", "adapter_image0_position_ids"]
    assert sorted(order) == sorted(g), sorted(set(g) ^ set(order))
    out = {k: g[k].contiguous() if g[k].dtype == torch.int32 else g[k].float().contiguous()
           for k in order}
    path = os.path.join(ref.OUT, "embed_%s.safetensors" % name)
    save_file(out, path, metadata={
        "generator_args": " ".join(gen_args),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "tokenizers": tokenizers.__version__,
        "compute": "float32 (bf16 weights widened exactly), eager attention",
    })
    assert os.path.getsize(path) < 200 * 1024
    print("wrote %s F=%s grid=%s H=%d |adapter-base| image %.3g text %.3g raw %.3g"
          % (path, lens, grid.tolist(), H, d_img, d_txt, d_raw))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    a = ap.parse_args()
    here = [v for v in a.variants if VARIANTS[v][2] == transformers.__version__]
    others = {}
    for v in a.variants:
        if v not in here:
            env, default = VARIANTS[v][3], VARIANTS[v][4]
            others.setdefault(os.environ.get(env, default), []).append(v)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    paths = [os.path.join(ref.IMG_DIR, "img%d.png" % k) for k in range(N_IMAGES)]
    for p in paths:
        assert os.path.exists(p), p + " (llava_embed_reference.py / llava_next_reference.py)"
    with tempfile.TemporaryDirectory() as tmp:
        for name in here:
            run(name, tmp, paths)
    for python, vs in others.items():
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        subprocess.run([python, os.path.abspath(__file__), "--variants"] + vs, check=True,
                       env=env)


if __name__ == "__main__":
    main()
