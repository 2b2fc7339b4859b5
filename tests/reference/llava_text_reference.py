#!/usr/bin/env python3
"""Goldens for tests/model/test_text_forward.c: the LLaVA language model's
forward pass run by Hugging Face transformers itself.

For each tiny checkpoint below (written by tests/gen_tiny_checkpoint.py with
exactly the arguments listed; the C test regenerates it at build time), this
loads LlavaForConditionalGeneration in float32 (bf16 weights are widened
exactly), eval mode, attn_implementation="eager", and runs its language model
on a right-padded batch of token ids (no image tokens) with attention_mask and
output_hidden_states=True. It writes tests/model/golden/text_<name>.safetensors:
  input_ids      I32 [B, T]   right-padded with 0
  lengths        I32 [B]      real tokens per row
  hidden_states  F32 [L+1, B, T, hidden]  HF's hidden_states tuple: index 0 is
                 the input embeddings, index i (1 <= i < L) the output of
                 layer i-1, index L the last layer's output AFTER the final
                 norm (checked here against last_hidden_state)
  last_hidden    F32 [B, hidden]  final-norm hidden state at each row's last
                 real position

Run in a virtualenv outside the repository that sees Debian's python3-torch:
    python3 -m venv --system-site-packages /tmp/ref-llm
    /tmp/ref-llm/bin/pip install transformers==4.46.3 safetensors==0.4.5
    /tmp/ref-llm/bin/python tests/reference/llava_text_reference.py
Reruns reproduce every tensor bit for bit (only the order of the header's
__metadata__ keys may change). Versions used for the committed goldens: torch 1.13.0a0 (Debian python3-torch
1.13.1), transformers 4.46.3, safetensors 0.4.5.
"""
import os
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlavaForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
GEN = os.path.join(ROOT, "tests", "gen_tiny_checkpoint.py")
OUT = os.path.join(ROOT, "tests", "model", "golden")

# name -> generator arguments (classic layout: the names transformers 4.46 loads).
CHECKPOINTS = {
    "clip_llama_f32": ["--vision", "clip", "--text", "llama", "--dtype", "f32",
                       "--layout", "classic"],
    "clip_llama_bf16": ["--vision", "clip", "--text", "llama", "--dtype", "bf16",
                        "--layout", "classic"],
    "siglip_qwen2_f32": ["--vision", "siglip", "--text", "qwen2", "--dtype", "f32",
                         "--layout", "classic"],
}

# B = 3 rows of different lengths, right-padded; ids avoid the image token
# (120) and vary per row. T = 9.
IDS = [
    [1, 17, 33, 54, 76, 98, 12, 43, 65],
    [1, 88, 9, 111, 23],
    [1, 71, 5, 60, 19, 101, 34],
]


def batch():
    t = max(len(r) for r in IDS)
    ids = torch.zeros((len(IDS), t), dtype=torch.long)
    mask = torch.zeros((len(IDS), t), dtype=torch.long)
    for i, r in enumerate(IDS):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def run(name, args, tmp):
    d = os.path.join(tmp, name)
    subprocess.run([sys.executable, GEN, d] + args, check=True)
    model, info = LlavaForConditionalGeneration.from_pretrained(
        d, torch_dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    if info["missing_keys"] or info["mismatched_keys"]:
        raise SystemExit("%s: not all weights loaded: %s" % (name, info))
    model.eval()
    lm = model.language_model
    ids, mask = batch()
    with torch.no_grad():
        out = lm(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                 return_dict=True)
        body = lm.model(input_ids=ids, attention_mask=mask, return_dict=True)
    hs = torch.stack(out.hidden_states).contiguous()
    n_layers = model.config.text_config.num_hidden_layers
    assert hs.shape[0] == n_layers + 1, hs.shape
    # The last entry is after the final norm.
    assert torch.equal(hs[-1], body.last_hidden_state), name
    # Index 0 is the plain embedding lookup (no scaling).
    assert torch.equal(hs[0], lm.get_input_embeddings()(ids)), name
    lengths = mask.sum(dim=1)
    last = torch.stack([hs[-1, b, lengths[b] - 1] for b in range(ids.shape[0])]).contiguous()
    path = os.path.join(OUT, "text_%s.safetensors" % name)
    save_file({
        "input_ids": ids.to(torch.int32).contiguous(),
        "lengths": lengths.to(torch.int32).contiguous(),
        "hidden_states": hs.float(),
        "last_hidden": last.float(),
    }, path, metadata={
        "generator_args": " ".join(args),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    })
    print("wrote", path, tuple(hs.shape))


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in CHECKPOINTS.items():
            run(name, args, tmp)


if __name__ == "__main__":
    main()
