#!/usr/bin/env python3
"""Goldens for tests/model/test_clip.c: a tiny Hugging Face CLIPModel
(tests/gen_tiny_clip.py) run by transformers 4.46.3: image and text
embeddings, logits, the contrastive loss and the gradient of every weight.

Writes tests/model/golden/clip_f32.safetensors (F32 unless said):
  caption_ids          I32 [5, 16]  CLIPTokenizerFast (the "hf" tokenizer.json,
                                    exactly CLIPConverter's), truncation=True,
                                    max_length=16, padded with -1
  caption_lengths      I32 [5]
  compat_ids_equal     I32 [1]      1 if the "compat" tokenizer.json gives the
                                    same ids for the captions and CORPUS
  image_embeds         [5, P]       get_image_features(img0..img4), L2-normalised
  text_embeds          [5, P]       get_text_features(each caption alone), normalised
  image_embeds_raw, text_embeds_raw  the same before normalisation
  logits_per_image     [5, 5]       CLIPModel(...).logits_per_image
  raw_ids              I32 [2, 5]   id rows with no <|endoftext|> and with it
                                    not at the largest id
  raw_text_legacy      [2, P]       get_text_features(raw_ids) with
                                    text_config.eos_token_id = 2 (argmax pooling)
  raw_text_eos         [2, P]       the same model with eos_token_id = 105
                                    (first-<|endoftext|> pooling, 0 if none)
  train_loss           [1]          CLIPModel(return_loss=True) on img0..3 with
                                    captions 0..3 (padded with the tokenizer's
                                    pad token, attention_mask)
  grad.<tensor>        every parameter's gradient of train_loss (shape as the
                                    tensor; logit_scale [1])

Numerics: torch_dtype=float32, attn_implementation="eager", eval mode
(CLIP has no dropout at attention_dropout 0). Images: Pillow
.convert("RGB"), then the directory's CLIPImageProcessor.

Run by hand (not in CI) in the virtualenv of llava_embed_reference.py:
    /tmp/ref-embed/bin/python tests/reference/clip_reference.py
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.numpy import save_file
from tokenizers import Tokenizer
from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
GOLDEN = os.path.join(TESTS, "model", "golden")
GEN = os.path.join(TESTS, "gen_tiny_clip.py")

CAPTIONS = ["a red cat", "The  BLUE dog!!", "a green circle of the cat", "it's 42 red",
            "the cat and the dog and the red blue green circle of a cat, then a dog"]
CORPUS = ["", " ", "héllo wörld", "a\tb\nc", "GREEN-ish 1234", "<|endoftext|> cat",
          "don't stop", "x" * 50]
RAW_IDS = [[104, 30, 7, 60, 12], [104, 42, 105, 90, 2]]


def gen(path, *args):
    subprocess.check_call([sys.executable, GEN, path] + list(args))


def main():
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp()
    d_hf, d_compat, d_eos = (os.path.join(tmp, x) for x in ("hf", "compat", "eos"))
    gen(d_hf, "--tokenizer", "hf")
    gen(d_compat, "--tokenizer", "compat")
    gen(d_eos, "--tokenizer", "hf", "--eos-token-id", "105")

    tok = CLIPTokenizerFast.from_pretrained(d_hf)
    t_hf = Tokenizer.from_file(os.path.join(d_hf, "tokenizer.json"))
    t_c = Tokenizer.from_file(os.path.join(d_compat, "tokenizer.json"))
    same = all(t_hf.encode(s).ids == t_c.encode(s).ids for s in CAPTIONS + CORPUS)

    model = CLIPModel.from_pretrained(d_hf, torch_dtype=torch.float32,
                                      attn_implementation="eager").eval()
    model_eos = CLIPModel.from_pretrained(d_eos, torch_dtype=torch.float32,
                                          attn_implementation="eager").eval()
    assert model.text_model.eos_token_id == 2 and model_eos.text_model.eos_token_id == 105
    proc = CLIPImageProcessor.from_pretrained(d_hf)
    imgs = [Image.open(os.path.join(GOLDEN, "images", "img%d.png" % i)).convert("RGB")
            for i in range(5)]
    pixels = proc(images=imgs, return_tensors="pt")["pixel_values"]

    ids = [tok(c, truncation=True, max_length=16)["input_ids"] for c in CAPTIONS]
    out = {}
    pad = np.full((5, 16), -1, np.int32)
    for i, r in enumerate(ids):
        pad[i, :len(r)] = r
    out["caption_ids"] = pad
    out["caption_lengths"] = np.array([len(r) for r in ids], np.int32)
    out["compat_ids_equal"] = np.array([1 if same else 0], np.int32)

    with torch.no_grad():
        ie = model.get_image_features(pixel_values=pixels)
        te = torch.cat([model.get_text_features(input_ids=torch.tensor([r])) for r in ids])
        out["image_embeds_raw"] = ie.numpy()
        out["text_embeds_raw"] = te.numpy()
        ien = ie / ie.norm(dim=-1, keepdim=True)
        ten = te / te.norm(dim=-1, keepdim=True)
        out["image_embeds"] = ien.numpy()
        out["text_embeds"] = ten.numpy()
        out["logits_per_image"] = (model.logit_scale.exp() * ien @ ten.t()).numpy()
        raw = torch.tensor(RAW_IDS)
        out["raw_ids"] = raw.numpy().astype(np.int32)
        out["raw_text_legacy"] = model.get_text_features(input_ids=raw).numpy()
        out["raw_text_eos"] = model_eos.get_text_features(input_ids=raw).numpy()

    batch = tok(CAPTIONS[:4], padding=True, truncation=True, max_length=16,
                return_tensors="pt")
    model.zero_grad()
    res = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                pixel_values=pixels[:4], return_loss=True)
    res.loss.backward()
    out["train_loss"] = np.array([res.loss.item()], np.float32)
    for name, p in model.named_parameters():
        g = p.grad.detach().numpy().astype(np.float32)
        out["grad." + name] = g.reshape(1) if g.ndim == 0 else g
    out = {k: np.ascontiguousarray(v) for k, v in out.items()}
    save_file(out, os.path.join(GOLDEN, "clip_f32.safetensors"))
    print("compat ids equal:", same, "loss", res.loss.item(), "tensors", len(out))
    print("ids", ids)


if __name__ == "__main__":
    main()
