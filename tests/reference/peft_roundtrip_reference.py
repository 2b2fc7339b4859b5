#!/usr/bin/env python3
"""PEFT round trip of an adapter trained by libdisclvlm (issue 6): the
library trains, saves with dlv_adapter_save, and Hugging Face PEFT loads the
directory and reproduces the library's embeddings.

For each variant (tiny checkpoints of llava_embed_reference.py, generated
with tests/gen_tiny_checkpoint.py --with-tokenizer in a temporary
directory):
  1. libdisclvlm (through ctypes, the built shared library): a session with
     1 thread, dlv_train_begin with AdamW lr 1e-2 (large, so that the LoRA B
     matrices move far from 0), LoRA rank 4 / alpha 8 on every target, then 5
     dlv_train_step on tests/model/golden/images/img0..4.png with five short
     and five long captions; dlv_adapter_save to a temporary directory;
     dlv_encode_images on the five images and dlv_encode_text on five other
     captions with the trained adapter.
  2. PyTorch (transformers 4.46.3 + peft 0.13.2, float32, eager): the
     checkpoint through LlavaForConditionalGeneration, the saved directory
     through PeftModel.from_pretrained (adapter_config.json +
     adapter_model.safetensors as they are), the soft prompts from
     soft_prompts.safetensors and the prompt pieces from prompts.json (or
     docs/adapter-format.md's defaults), and the embeddings computed exactly
     as llava_embed_reference.py computes them (embed_batch / seqs_for).
  3. The max abs difference between the two sets of embeddings (expected
     ~1e-6: both f32 with different summation orders); it fails above 1e-4.
It also checks that every tensor of adapter_model.safetensors was loaded
into the PEFT model unchanged and that the LoRA really changed the
embeddings (PEFT with the adapter disabled differs by > 1e-3).

Run by hand (not in CI) in the virtualenv of llava_embed_reference.py, from
the repository root, after building the library:
    PYTHONPATH=/usr/lib/python3/dist-packages /tmp/ref-embed/bin/python \\
        tests/reference/peft_roundtrip_reference.py --lib build/lib/libdisclvlm.so
(a few seconds; arguments after the options name variants, default
clip_llama_f32 siglip_qwen2_f32 clip_llama_bf16 siglip_qwen2_bf16.)
"""
import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile

if os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)
os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer
from peft import PeftModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llava_embed_reference as ER  # noqa: E402

DEFAULT_VARIANTS = ["clip_llama_f32", "siglip_qwen2_f32", "clip_llama_bf16",
                    "siglip_qwen2_bf16"]
SHORT = ["a red circle", "Cat on a mat", "two dogs", "a blue square", "sky at night"]
LONG = ["the quick brown fox jumps over the lazy dog",
        "A photo of a cat sitting on a mat near a window.", "sky",
        "a small blue square below a large red circle", "stars above the dark hills"]
ENCODE_TEXTS = ER.CAPTIONS
STEPS = 5
TOL = 1e-4


class Lib:
    def __init__(self, path):
        L = ctypes.CDLL(path)
        vp, sz, cp = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
        fp = ctypes.POINTER(ctypes.c_float)
        sig = {
            "dlv_model_load": [cp, vp, ctypes.POINTER(vp)],
            "dlv_model_free": [vp],
            "dlv_model_embed_dim": [vp, ctypes.POINTER(sz)],
            "dlv_session_options_new": [ctypes.POINTER(vp)],
            "dlv_session_options_set_threads": [vp, ctypes.c_int],
            "dlv_session_options_free": [vp],
            "dlv_session_new": [vp, vp, ctypes.POINTER(vp)],
            "dlv_session_free": [vp],
            "dlv_image_from_file": [cp, ctypes.POINTER(vp)],
            "dlv_image_free": [vp],
            "dlv_train_options_new": [ctypes.POINTER(vp)],
            "dlv_train_options_set": [vp, cp, cp],
            "dlv_train_options_free": [vp],
            "dlv_train_begin": [vp, vp],
            "dlv_batch_new": [ctypes.POINTER(vp)],
            "dlv_batch_add": [vp, vp, cp, cp],
            "dlv_batch_free": [vp],
            "dlv_train_step": [vp, vp, ctypes.c_void_p],
            "dlv_adapter_save": [vp, cp],
            "dlv_encode_images": [vp, ctypes.POINTER(vp), sz, fp, sz],
            "dlv_encode_text": [vp, ctypes.POINTER(cp), sz, fp, sz],
            "dlv_last_error": [],
        }
        for name, args in sig.items():
            f = getattr(L, name)
            f.argtypes = args
            f.restype = (cp if name == "dlv_last_error" else
                         None if name.endswith("_free") else ctypes.c_int)
        self.L = L

    def __getattr__(self, name):
        f = getattr(self.L, name)
        if f.restype is not ctypes.c_int:
            return f

        def call(*a):
            st = f(*a)
            if st != 0:
                raise SystemExit("%s: status %d: %s" % (name, st,
                                                        self.L.dlv_last_error().decode()))
        return call


class TrainStats(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("loss", ctypes.c_double),
                ("loss_contrastive", ctypes.c_double), ("loss_ntp", ctypes.c_double),
                ("grad_norm", ctypes.c_double), ("learning_rate", ctypes.c_double),
                ("logit_scale", ctypes.c_double), ("step", ctypes.c_uint64),
                ("tokens", ctypes.c_uint64)]


def library_side(lib, model_dir, image_paths, adapter_dir):
    """Trains, saves the adapter, returns (image embeds, text embeds)."""
    vp = ctypes.c_void_p
    m, s, so, o, b = vp(), vp(), vp(), vp(), vp()
    lib.dlv_model_load(model_dir.encode(), None, ctypes.byref(m))
    lib.dlv_session_options_new(ctypes.byref(so))
    lib.dlv_session_options_set_threads(so, 1)
    lib.dlv_session_new(m, so, ctypes.byref(s))
    lib.dlv_session_options_free(so)
    dim = ctypes.c_size_t()
    lib.dlv_model_embed_dim(m, ctypes.byref(dim))
    lib.dlv_train_options_new(ctypes.byref(o))
    for k, v in (("optimizer", "adamw"), ("lr", "1e-2"), ("lora_rank", "4"),
                 ("lora_alpha", "8"), ("seed", "7"), ("train", "soft,lora,logit_scale")):
        lib.dlv_train_options_set(o, k.encode(), v.encode())
    lib.dlv_train_begin(s, o)
    lib.dlv_train_options_free(o)
    imgs = []
    for p in image_paths:
        h = vp()
        lib.dlv_image_from_file(p.encode(), ctypes.byref(h))
        imgs.append(h)
    lib.dlv_batch_new(ctypes.byref(b))
    for h, sc, lc in zip(imgs, SHORT, LONG):
        lib.dlv_batch_add(b, h, sc.encode(), lc.encode())
    for i in range(STEPS):
        st = TrainStats()
        st.struct_size = ctypes.sizeof(TrainStats)
        lib.dlv_train_step(s, b, ctypes.byref(st))
        print("   library step %d: L_c %.6f L_ntp %.6f |g| %.4f" % (
            st.step, st.loss_contrastive, st.loss_ntp, st.grad_norm))
    lib.dlv_batch_free(b)
    lib.dlv_adapter_save(s, adapter_dir.encode())
    n, d = len(imgs), dim.value
    iv = (ctypes.c_float * (n * d))()
    arr = (vp * n)(*imgs)
    lib.dlv_encode_images(s, arr, n, iv, n * d)
    texts = (ctypes.c_char_p * len(ENCODE_TEXTS))(*[t.encode() for t in ENCODE_TEXTS])
    tv = (ctypes.c_float * (len(ENCODE_TEXTS) * d))()
    lib.dlv_encode_text(s, texts, len(ENCODE_TEXTS), tv, len(ENCODE_TEXTS) * d)
    for h in imgs:
        lib.dlv_image_free(h)
    lib.dlv_session_free(s)
    lib.dlv_model_free(m)
    return (torch.from_numpy(np.frombuffer(iv, dtype=np.float32).reshape(n, d).copy()),
            torch.from_numpy(np.frombuffer(tv, dtype=np.float32).reshape(-1, d).copy()))


def pieces_of(adir, family, ids, has_bos, tok, image_token):
    """prompts.json (ids authoritative, else the string, else empty) or the
    family's defaults (docs/adapter-format.md)."""
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
        out[side] = tuple(list(obj[k + "_ids"]) if k + "_ids" in obj else
                          ids(obj[k]) if k in obj else []
                          for k in ("prefix", "instruction", "suffix"))
    out["text"] = ER.pieces_text(out["text"], ids)
    return out


def torch_side(model_dir, image_paths, adir):
    base = ER.load_model(model_dir)
    cfg = base.config
    family = cfg.text_config.model_type
    bos = cfg.text_config.bos_token_id
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))

    def ids(x):
        return tok.encode(x, add_special_tokens=False).ids

    pv = ER.pixel_values(model_dir, image_paths)
    with torch.no_grad():
        feats = base.get_image_features(pv, cfg.vision_feature_layer,
                                        cfg.vision_feature_select_strategy)
    torch.manual_seed(0)
    pm = PeftModel.from_pretrained(base, adir)
    pm.eval()
    # Every tensor of the file is in the model, unchanged.
    named = dict(pm.named_parameters())
    afile = load_file(os.path.join(adir, "adapter_model.safetensors"))
    for k, v in afile.items():
        pk = k.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight")
        assert pk in named, pk
        assert torch.equal(named[pk].detach(), v.float()), k
    n_lm = sum(1 for k in named if "lora_" in k and ".language_model." in k)
    assert n_lm == len(afile), (n_lm, len(afile))
    soft = {k: v.float() for k, v in
            load_file(os.path.join(adir, "soft_prompts.safetensors")).items()}
    P = pieces_of(adir, family, ids, bos is not None, tok, cfg.image_token_index)
    model = pm.base_model.model
    body = model.language_model.model
    emb = body.embed_tokens

    def run():
        with torch.no_grad():
            i, _ = ER.embed_batch(body, emb, ER.seqs_for(
                P["image"], P["add_bos"], bos, [feats[k] for k in range(len(image_paths))],
                soft.get("image_prompt")))
            t, _ = ER.embed_batch(body, emb, ER.seqs_for(
                P["text"], P["add_bos"], bos, list(ENCODE_TEXTS),
                soft.get("text_prompt")))
        return i, t

    i, t = run()
    with pm.disable_adapter():
        i0, t0 = run()
    lora_effect = max((i - i0).abs().max().item(), (t - t0).abs().max().item())
    return i, t, lora_effect, len(afile), sorted(os.listdir(adir))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build/lib/libdisclvlm.so")
    ap.add_argument("variants", nargs="*", default=DEFAULT_VARIANTS)
    a = ap.parse_args()
    torch.set_num_threads(1)
    lib = Lib(os.path.abspath(a.lib))
    paths = [os.path.join(ER.IMG_DIR, "img%d.png" % k) for k in range(5)]
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.variants:
            print(name)
            mdir = os.path.join(tmp, name)
            subprocess.run([sys.executable, ER.GEN, mdir, "--with-tokenizer"] + ER.VARIANTS[name],
                           check=True)
            adir = os.path.join(tmp, name + "-adapter")
            li, lt = library_side(lib, mdir, paths, adir)
            ti, tt, effect, n_lora, files = torch_side(mdir, paths, adir)
            di = (li - ti).abs().max().item()
            dt = (lt - tt).abs().max().item()
            worst = max(worst, di, dt)
            print("   adapter files %s, %d LoRA tensors; LoRA effect in PEFT %.3g" % (
                files, n_lora, effect))
            print("   max |library - PEFT|: images %.3g, texts %.3g" % (di, dt))
            assert effect > 1e-3, effect
            assert di <= TOL and dt <= TOL, (di, dt)
    print("worst max abs diff %.3g (limit %g)" % (worst, TOL))


if __name__ == "__main__":
    main()
