#!/usr/bin/env python3
"""Goldens for tests/model/test_embed_next.c: LLaVA-NeXT
(LlavaNextForConditionalGeneration) image and text embeddings, base and with
a PEFT adapter, computed by Hugging Face transformers + peft; the LLaVA
counterpart is llava_embed_reference.py, whose helpers (prompt pieces,
padded batches, the adapter's layout) this script reuses.

Writes, under tests/model/golden/:
  adapters/<V>/               the variant's adapter (LoRA r=4 on the LLM +
                              soft prompts), as llava_embed_reference.py does
  embed_<V>.safetensors       the goldens below

Variants V (tests/gen_tiny_checkpoint.py --family llava_next --with-tokenizer
plus the arguments in VARIANTS): next_clip_llama_f32, next_clip_llama_bf16,
next_clip_qwen2_f32. The tiny tower sees 28 px tiles; the grid resolutions
are 1x2, 2x1, 2x2, 1x3 and 3x1 tiles, so the six test images (40x30, 28x28,
64x48, 17x33, 50x50, 60x40) take different grids and feature counts.

Images: tests/model/golden/images/img0..4.png (llava_embed_reference.py
writes them) and img5.png (60 x 40, written here: its grid's feature map
loses a row above and below to unpadding), opened with Pillow, .convert("RGB"), through
LlavaNextImageProcessor.from_pretrained(model dir) (anyres tiles).
Features: model.get_image_features(pixel_values, image_sizes, ...) then
model.pack_image_features(..., image_newline=model.image_newline): the base
tile's features, then the grid's unpadded feature map with a newline row
after each row.

Golden tensors (F32 unless said):
  image_features        [sum F_i, H]  the five images' packed features
  feature_lens          I32 [6]       F_i
  image_sizes           I32 [6, 2]    (height, width) as the processor saw them
  base_image_embeds     [6, H]        default prompts, no adapter
  base_text_embeds      [5, H]        the five CAPTIONS
  adapter_image_embeds  [6, H]        with the adapter
  adapter_text_embeds   [5, H]
  raw_ids               I32 [n]       bos + ids + image_token_index + ids
  raw_hidden            [1, H]        HF's own forward on raw_ids with the
                        image token expanded to F_0 copies and img0's tiles:
                        hidden_states[-1] at the last position
  raw_hidden_adapter    [1, H]        the same through the PeftModel

The default image prompt's ids (bos + prefix + F_0 image tokens +
instruction + suffix) are checked here to equal LlavaNextProcessor's
input_ids for the same whole string "USER: <image>\\nSummarize above image in
one word: ASSISTANT:" (Qwen2's template for qwen2), image token expanded by
the processor's own count; the C test's embeddings equal the ones made from
these ids.

Run by hand (not in CI) in the venv of llava_embed_reference.py:
    /tmp/ref-embed/bin/python tests/reference/llava_next_reference.py
Versions used: torch 1.13.0a0 (Debian python3-torch 1.13.1), transformers
4.46.3, peft 0.13.2, tokenizers 0.20.3, safetensors 0.4.5, pillow 11.0.0.
"""
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
from transformers import (LlavaNextForConditionalGeneration, LlavaNextImageProcessor,  # noqa: E402
                          LlavaNextProcessor, PreTrainedTokenizerFast)
from peft import LoraConfig, get_peft_model  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llava_embed_reference as ref  # noqa: E402

VARIANTS = {
    "next_clip_llama_f32": ["--vision", "clip", "--text", "llama", "--dtype", "f32"],
    "next_clip_llama_bf16": ["--vision", "clip", "--text", "llama", "--dtype", "bf16"],
    "next_clip_qwen2_f32": ["--vision", "clip", "--text", "qwen2", "--dtype", "f32"],
}


def load_model(model_dir):
    return ref.load_model(model_dir, LlavaNextForConditionalGeneration)


def run(name, args, tmp, image_paths):
    model_dir = os.path.join(tmp, name)
    subprocess.run([sys.executable, ref.GEN, model_dir, "--with-tokenizer", "--family",
                    "llava_next"] + args, check=True)
    is_bf16 = "bf16" in args
    model = load_model(model_dir)
    cfg = model.config
    family = cfg.text_config.model_type
    H = cfg.text_config.hidden_size
    bos = cfg.text_config.bos_token_id
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    image_token = tok.id_to_token(cfg.image_token_index)
    default = ref.default_pieces(tok, family, image_token)

    proc = LlavaNextImageProcessor.from_pretrained(model_dir)
    imgs = []
    for p in image_paths:
        with Image.open(p) as im:
            imgs.append(im.convert("RGB"))
    enc = proc(images=imgs, return_tensors="pt")
    pv, sizes = enc["pixel_values"].to(torch.float32), enc["image_sizes"]
    g = {}
    with torch.no_grad():
        tiles = model.get_image_features(pv, sizes, cfg.vision_feature_layer,
                                         cfg.vision_feature_select_strategy)
        packed, lens = model.pack_image_features(tiles, sizes, cfg.vision_feature_select_strategy,
                                                 image_newline=model.image_newline)
    feats = list(torch.split(packed, lens.tolist(), dim=0))
    assert len(feats) == 6 and int(lens[5]) == 4 + 2 * 5, lens  # img5: 2 of 4 rows kept
    g["image_features"] = packed.float().contiguous()
    g["feature_lens"] = lens.to(torch.int32)
    g["image_sizes"] = sizes.to(torch.int32)

    lm_body = model.language_model.model
    emb = lm_body.embed_tokens
    with torch.no_grad():
        g["base_image_embeds"], _ = ref.embed_batch(
            lm_body, emb, ref.seqs_for(default["image"], default["add_bos"], bos, feats, None))
        g["base_text_embeds"], _ = ref.embed_batch(
            lm_body, emb, ref.seqs_for(default["text"], default["add_bos"], bos, ref.CAPTIONS,
                                       None))

    # The default image prompt as LlavaNextProcessor tokenizes it.
    hf_tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    processor = LlavaNextProcessor(image_processor=proc, tokenizer=hf_tok,
                                   patch_size=cfg.vision_config.patch_size,
                                   vision_feature_select_strategy=cfg.vision_feature_select_strategy,
                                   image_token=image_token)
    pre, ins, suf = ref.DEFAULT_PIECES[family]["image"]
    got = processor(text=pre + image_token + ins + suf, images=imgs[0],
                    return_tensors="pt")["input_ids"][0].tolist()
    head, instr, tail = default["image"]
    want = (([bos] if default["add_bos"] else []) + list(head)
            + [cfg.image_token_index] * int(lens[0]) + list(instr) + list(tail))
    assert got == want, (name, got, want)

    # raw_ids through HF's own forward, the image token expanded to F_0.
    pre_ids, post_ids = [17, 33, 54], [76, 9, 88, 23]
    b = [bos] if bos is not None else []
    raw = b + pre_ids + [cfg.image_token_index] + post_ids
    expanded = b + pre_ids + [cfg.image_token_index] * int(lens[0]) + post_ids
    g["raw_ids"] = torch.tensor(raw, dtype=torch.int32)

    def raw_forward(m):
        with torch.no_grad():
            out = m(input_ids=torch.tensor([expanded]), pixel_values=pv[:1],
                    image_sizes=sizes[:1],
                    attention_mask=torch.ones(1, len(expanded), dtype=torch.long),
                    output_hidden_states=True, use_cache=False)
        return out.hidden_states[-1][:, -1].float().contiguous()

    g["raw_hidden"] = raw_forward(model)

    # ---- the adapter (as llava_embed_reference.py's, default prompts) ----
    gen = torch.Generator().manual_seed(4321 + sum(map(ord, name)))
    lcfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                      target_modules=ref.LORA_TARGETS[family])
    pm = get_peft_model(model, lcfg)
    pm.eval()
    n_lm = 0
    for mname, mod in pm.named_modules():
        if not hasattr(mod, "lora_A") or "default" not in mod.lora_A:
            continue
        if ".language_model." not in mname:
            continue
        A, B = mod.lora_A["default"].weight, mod.lora_B["default"].weight
        with torch.no_grad():
            a = torch.randn(A.shape, generator=gen) * 0.15
            bb = torch.randn(B.shape, generator=gen) * 0.15
            if is_bf16:
                a, bb = ref.bf16_round(a), ref.bf16_round(bb)
            A.copy_(a)
            B.copy_(bb)
        n_lm += 1
    assert n_lm == cfg.text_config.num_hidden_layers * len(ref.LORA_TARGETS[family]), n_lm
    img_prompt = torch.randn(ref.N_IMAGE_PROMPT, H, generator=gen) * 0.05
    txt_prompt = torch.randn(ref.N_TEXT_PROMPT, H, generator=gen) * 0.05
    if is_bf16:
        img_prompt, txt_prompt = ref.bf16_round(img_prompt), ref.bf16_round(txt_prompt)
    adir = os.path.join(ref.ADAPTER_DIR, name)
    if os.path.exists(adir):
        shutil.rmtree(adir)
    pm.peft_config["default"].base_model_name_or_path = "tiny-llava-" + name
    pm.create_or_update_model_card = lambda *a, **k: None
    pm.save_pretrained(adir)
    st_path = os.path.join(adir, "adapter_model.safetensors")
    kept = {}
    for k, v in load_file(st_path).items():
        if not k.startswith("base_model.model.language_model.model."):
            assert k.startswith("base_model.model.vision_tower."), k
            continue
        kept[k] = v.to(torch.bfloat16) if is_bf16 else v.float()
    assert len(kept) == 2 * n_lm, len(kept)
    save_file(dict(sorted(kept.items())), st_path, metadata={"format": "pt"})
    save_file({"image_prompt": img_prompt.to(torch.bfloat16) if is_bf16 else img_prompt,
               "text_prompt": txt_prompt.to(torch.bfloat16) if is_bf16 else txt_prompt,
               "logit_scale": torch.tensor([ref.LOGIT_SCALE], dtype=torch.float32)},
              os.path.join(adir, "soft_prompts.safetensors"))
    with torch.no_grad():
        g["adapter_image_embeds"], _ = ref.embed_batch(
            lm_body, emb, ref.seqs_for(default["image"], default["add_bos"], bos, feats,
                                       img_prompt))
        g["adapter_text_embeds"], _ = ref.embed_batch(
            lm_body, emb, ref.seqs_for(default["text"], default["add_bos"], bos, ref.CAPTIONS,
                                       txt_prompt))
    g["raw_hidden_adapter"] = raw_forward(pm)
    d_img = (g["adapter_image_embeds"] - g["base_image_embeds"]).abs().max().item()
    assert d_img > 1e-2, d_img

    order = ["image_features", "feature_lens", "image_sizes", "base_image_embeds",
             "base_text_embeds", "adapter_image_embeds", "adapter_text_embeds", "raw_ids",
             "raw_hidden", "raw_hidden_adapter"]
    assert sorted(order) == sorted(g)
    out = {k: g[k].contiguous() if g[k].dtype == torch.int32 else g[k].float().contiguous()
           for k in order}
    path = os.path.join(ref.OUT, "embed_%s.safetensors" % name)
    save_file(out, path, metadata={
        "generator_args": " ".join(args + ["--with-tokenizer", "--family", "llava_next"]),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "peft": peft.__version__, "tokenizers": tokenizers.__version__,
        "compute": "float32 (bf16 weights widened exactly)",
    })
    assert os.path.getsize(path) < 200 * 1024
    print("wrote %s F=%s H=%d |adapter-base| image %.3g" % (path, lens.tolist(), H, d_img))


def wide_image():
    """images/img5.png, 60 x 40: the tiny grid takes 2 x 2 tiles (a 4 x 4
    feature map) and unpadding cuts a row above and below it, which none of
    img0..4 makes happen."""
    path = os.path.join(ref.IMG_DIR, "img5.png")
    w, h = 60, 40
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 4 + y) % 256, (y * 6 + 30) % 256, (x * y) % 256)
    img.save(path, optimize=True)
    return path


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    paths = [os.path.join(ref.IMG_DIR, "img%d.png" % k) for k in range(5)] + [wide_image()]
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in VARIANTS.items():
            run(name, args, tmp, paths)


if __name__ == "__main__":
    main()
