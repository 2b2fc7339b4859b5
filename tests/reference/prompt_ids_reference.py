#!/usr/bin/env python3
"""Goldens for the default prompts' token ids (tests/model/test_prompt_ids.c,
docs/adapter-format.md "Default prompts").

A Hugging Face LLaVA processor tokenizes its whole prompt at once, e.g.
"USER: <image>\\nSummarize above image in one word: ASSISTANT:" or the
caption inside "USER: {caption}\\nSummarize above sentence in one word:
ASSISTANT:": the special tokens (<image>) are split out and each stretch
between them is normalized and merged in context. This script writes what
`tokenizers` makes of those strings, split by the tokens' character offsets
into head / instruction / tail (llava_embed_reference.whole_split: a token
ending before the instruction is head, one ending after it is tail, the rest
instruction), for each tokenizer below with "<image>" added as a special
token after its vocabulary (as llava-hf's tokenizers have it):

  fixture-llama            tests/tokenizer/fixtures/llama (legacy: Prepend + Replace)
  fixture-llama-metaspace  tests/tokenizer/fixtures/llama_metaspace (Metaspace, "first")
  fixture-qwen2            tests/tokenizer/fixtures/qwen2 (byte-level, regex)
  llama2-legacy            ../shared/assets/tokenizers/llama2 (Llama-2 / Vicuna / LLaVA-1.5)
  llama2-nonlegacy         the same vocabulary with the normalizer and pre-tokenizer
                           transformers gives it with legacy=False (checked here against
                           LlamaTokenizerFast(tokenizer.model, legacy=False, from_slow=True))
  qwen2                    ../shared/assets/tokenizers/qwen2
  qwen2vl                  the same tokenizer with Qwen2-VL's template: the image is
                           its own <|image_pad|> between <|vision_start|> and
                           <|vision_end|> (no edit); the image side's ids are also
                           checked against Qwen2VLProcessor's input_ids for the whole
                           string and an image of 2 x 2 merged tokens

"edit" in the output says how the C test must derive the tokenizer.json it
loads (it cannot copy the shared files): "image" appends the added token,
"nonlegacy" first replaces the legacy normalizer by a Metaspace
pre-tokenizer with prepend_scheme "first", as transformers' converter does.

Run by hand (not in CI) in the virtualenv of llava_embed_reference.py (it also
needs `sentencepiece` and `protobuf` for the slow-tokenizer check):
    /tmp/ref-embed/bin/python tests/reference/prompt_ids_reference.py
Versions used for the committed golden: tokenizers 0.20.3, transformers 4.46.3,
sentencepiece 0.2.0.
"""
import json
import os
import sys

import tokenizers
import transformers
from tokenizers import Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llava_embed_reference as ER  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASSETS = os.path.join(os.path.dirname(ROOT), "shared", "assets")
OUT = os.path.join(ROOT, "tests", "model", "golden", "prompt_ids.json")
IMAGE = "<image>"

# Captions that meet the template's boundaries in different ways: a full
# stop before "\n" (Qwen2 merges ".\n"), trailing and leading spaces, a
# newline, a special token, non-ASCII, nothing at all.
CAPTIONS = ["a cat", "A photo.", "Two dogs play in the snow!", "sky ", " leading space",
            "ends with a newline\n", "see <s> here", "caf\u00e9 \u6570\u5b57 na\u00efve", ""]

TOKENIZERS = [
    ("fixture-llama", "llama", "tests/tokenizer/fixtures/llama/tokenizer.json", "image"),
    ("fixture-llama-metaspace", "llama", "tests/tokenizer/fixtures/llama_metaspace/tokenizer.json",
     "image"),
    ("fixture-qwen2", "qwen2", "tests/tokenizer/fixtures/qwen2/tokenizer.json", "image"),
    ("llama2-legacy", "llama", "$ASSETS/tokenizers/llama2/tokenizer.json", "image"),
    ("llama2-nonlegacy", "llama", "$ASSETS/tokenizers/llama2/tokenizer.json", "nonlegacy,image"),
    ("qwen2", "qwen2", "$ASSETS/tokenizers/qwen2/tokenizer.json", "image"),
    ("qwen2vl", "qwen2vl", "$ASSETS/tokenizers/qwen2/tokenizer.json", ""),
]

# Qwen2-VL's default pieces (lib/model/prompts.c): <|vision_end|> opens the
# image instruction, the image is <|image_pad|>.
QWEN2VL_PIECES = {
    "image": ("<|im_start|>user\n<|vision_start|>",
              "<|vision_end|>\nSummarize above image in one word:",
              "<|im_end|>\n<|im_start|>assistant\n"),
    "text": ER.DEFAULT_PIECES["qwen2"]["text"],
}
QWEN2VL_IMAGE = "<|image_pad|>"


def check_qwen2vl_processor(js, head, instr, tail):
    """Qwen2VLProcessor on the whole image string and a 56 x 56 image (min
    pixels 3136, patch 14: a 4 x 4 patch grid, 4 merged tokens) gives the
    pieces' ids with <|image_pad|> expanded 4 times."""
    import numpy as np
    from transformers import Qwen2TokenizerFast, Qwen2VLImageProcessor, Qwen2VLProcessor
    tk = Qwen2TokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(js)))
    proc = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tk)
    pre, ins, suf = QWEN2VL_PIECES["image"]
    img = np.zeros((56, 56, 3), dtype=np.uint8)
    got = proc(text=[pre + QWEN2VL_IMAGE + ins + suf], images=[img])["input_ids"][0]
    pad = tk.convert_tokens_to_ids(QWEN2VL_IMAGE)
    assert got == head[:-1] + [pad] * 4 + instr + tail, got


def resolve(path):
    return path.replace("$ASSETS", ASSETS) if path.startswith("$ASSETS") else os.path.join(ROOT, path)


def edited(js, edits):
    js = json.loads(json.dumps(js))
    for e in filter(None, edits.split(",")):
        if e == "nonlegacy":
            js["normalizer"] = None
            js["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581",
                                   "prepend_scheme": "first", "split": False}
        elif e == "image":
            n = max([len(js["model"]["vocab"])] + [t["id"] + 1 for t in js["added_tokens"]])
            js["added_tokens"].append({"id": n, "content": IMAGE, "single_word": False,
                                       "lstrip": False, "rstrip": False, "normalized": False,
                                       "special": True})
    return js


def check_nonlegacy(js, tok, strings):
    """The edit above is what transformers' converter makes of tokenizer.model
    with legacy=False (and add_prefix_space=True, SentencePiece's own
    default; without it this transformers version picks prepend_scheme
    "never"): the same normalizer and pre-tokenizer, and the same ids for
    every string this script tokenizes."""
    model = os.path.join(ASSETS, "tokenizers", "llama2", "tokenizer.model")
    slow = transformers.LlamaTokenizerFast(vocab_file=model, legacy=False, from_slow=True,
                                           add_prefix_space=True, add_bos_token=False,
                                           add_eos_token=False)
    conv = json.loads(slow.backend_tokenizer.to_str())
    assert conv["normalizer"] == js["normalizer"], conv["normalizer"]
    assert conv["pre_tokenizer"] == js["pre_tokenizer"], conv["pre_tokenizer"]
    slow.add_special_tokens({"additional_special_tokens": [IMAGE]})
    for s in strings:
        want = slow(s, add_special_tokens=False)["input_ids"]
        assert want == tok.encode(s, add_special_tokens=False).ids, s


def main():
    out = {"versions": {"tokenizers": tokenizers.__version__,
                        "transformers": transformers.__version__},
           "image_token": IMAGE, "captions": CAPTIONS, "tokenizers": []}
    for name, family, path, edits in TOKENIZERS:
        with open(resolve(path), encoding="utf-8") as f:
            js = edited(json.load(f), edits)
        tok = Tokenizer.from_str(json.dumps(js))
        dp = QWEN2VL_PIECES if family == "qwen2vl" else ER.DEFAULT_PIECES[family]
        image = QWEN2VL_IMAGE if family == "qwen2vl" else IMAGE
        pre, ins, suf = dp["image"]
        head, instr, tail = ER.whole_split(tok, pre, image, ins, suf)
        image_id = tok.token_to_id(image)
        assert head[-1] == image_id, (name, head)
        entry = {"name": name, "family": family, "path": path, "edit": edits,
                 "image_id": image_id,
                 "image": {"prefix": head[:-1], "instruction": instr, "suffix": tail},
                 "text": []}
        tp, ti, ts = dp["text"]
        for c in CAPTIONS:
            h, i, t = ER.whole_split(tok, tp, c, ti, ts)
            entry["text"].append({"head": h, "instruction": i, "tail": t})
        # What the pieces, each tokenized alone, give: the old defaults.
        def ids(s):
            return tok.encode(s, add_special_tokens=False).ids
        entry["pieces_image_extra"] = (len(ids(pre)) + len(ids(ins)) + len(ids(suf))
                                       - len(head) + 1 - len(instr) - len(tail))
        if family == "qwen2vl":
            check_qwen2vl_processor(js, head, instr, tail)
        if "nonlegacy" in edits:
            check_nonlegacy(js, tok, [pre + IMAGE + ins + suf] + [tp + c + ti + ts for c in CAPTIONS])
        out["tokenizers"].append(entry)
        print("%-24s image %d+%d+%d ids, old pieces %+d" % (
            name, len(head) - 1, len(instr), len(tail), entry["pieces_image_extra"]))
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
