#!/usr/bin/env python3
"""Golden token ids for the tokenizer tests, from Hugging Face `tokenizers`.

Pinned reference: tokenizers==0.21.4 (PyPI). Run it in a virtualenv outside
the repository; CI only reads the committed goldens:

    python3 -m venv /tmp/ref-tok && /tmp/ref-tok/bin/pip install tokenizers==0.21.4
    /tmp/ref-tok/bin/python tests/reference/tokenizers_reference.py \
        ../shared/assets/tokenizers tests/tokenizer/golden

For each of llama2, qwen2 and mistral it loads tokenizer.json alone (no
tokenizer_config.json: that is what `tokenizers` itself does) and writes
<name>.json with, for every string of tokenizer_corpus.json: the ids without
and with special tokens, decode(ids) and decode(ids_special, skip special).

It also writes features.json: small synthetic tokenizer.json files (Metaspace
with each prepend_scheme, merges in both forms, added tokens with lstrip,
rstrip, single_word and normalized, fuse_unk, Lowercase + NFKC) and their ids
for a few strings.

With --bench FILE it instead times encoding FILE (the 1 MB benchmark text)
with each tokenizer and prints seconds per encode.
"""
import json
import os
import sys
import time

import tokenizers
from tokenizers import Tokenizer

PINNED = "0.21.4"
NAMES = ["llama2", "qwen2", "mistral"]


def main():
    if tokenizers.__version__ != PINNED:
        sys.exit(f"need tokenizers=={PINNED}, have {tokenizers.__version__}")
    if len(sys.argv) == 4 and sys.argv[1] == "--bench":
        assets, text = sys.argv[2], open(sys.argv[3], encoding="utf-8").read()
        for name in NAMES:
            t0 = time.perf_counter()
            tok = Tokenizer.from_file(os.path.join(assets, name, "tokenizer.json"))
            t1 = time.perf_counter()
            best = min(timed(tok, text) for _ in range(3))
            n = len(tok.encode(text, add_special_tokens=False).ids)
            print(f"{name} load_s={t1 - t0:.4f} encode_s={best:.4f} ids={n}")
        return
    assets, out_dir = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "tokenizer_corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)
    for name in NAMES:
        tok = Tokenizer.from_file(os.path.join(assets, name, "tokenizer.json"))
        cases = []
        for text in corpus:
            plain = tok.encode(text, add_special_tokens=False).ids
            special = tok.encode(text, add_special_tokens=True).ids
            cases.append({
                "text": text,
                "ids": plain,
                "ids_special": special,
                "decoded": tok.decode(plain, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(special, skip_special_tokens=True),
            })
        doc = {"reference": f"tokenizers=={PINNED}", "tokenizer": f"{name}/tokenizer.json",
               "vocab_size": tok.get_vocab_size(with_added_tokens=True), "cases": cases}
        with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=True, separators=(",", ":"))
            f.write("\n")
    with open(os.path.join(out_dir, "features.json"), "w", encoding="utf-8") as f:
        json.dump(features(), f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")


def synthetic(pre, added, norm, merges, string_merges, fuse):
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for c in "abcdefghijklmnopqrstuvwxyz\u2581ABC":
        vocab[c] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["[MASK]"] = len(vocab)
    vocab["<sw>"] = len(vocab)
    special = lambda t: {"id": t, "ids": [vocab[t]], "tokens": [t]}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [dict(id=vocab[c], content=c, **kw) for c, kw in added],
        "normalizer": norm, "pre_tokenizer": pre,
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "pair": [], "special_tokens": {"<s>": special("<s>"),
                                                          "</s>": special("</s>")}},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                    "split": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>",
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": fuse, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab,
                  "merges": [a + " " + b for a, b in merges] if string_merges else merges},
    }


def features():
    merges = [["a", "b"], ["ab", "c"], ["\u2581", "a"], ["h", "e"], ["he", "l"], ["hel", "l"],
              ["hell", "o"], ["\u2581", "hello"]]
    flags = dict(single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
    added = [(t, dict(flags)) for t in ["<unk>", "<s>", "</s>"]]
    added.append(("[MASK]", dict(flags, lstrip=True, rstrip=True)))
    added.append(("<sw>", dict(flags, single_word=True, special=False)))
    added.append(("abc", dict(flags, normalized=True, special=False)))
    texts = ["hello abc", "x [MASK]  y", "a<sw>b", "a <sw> b", "hello\u00e9XYZ hello",
             " hello", "<s>hello", "abcabc", "HELLO", "", "  ", "[MASK]", "ab c<sw>"]
    meta = lambda scheme, split=True: {"type": "Metaspace", "replacement": "\u2581",
                                       "prepend_scheme": scheme, "split": split}
    specs = {
        "meta_first": synthetic(meta("first"), added, None, merges, False, True),
        "meta_always": synthetic(meta("always"), added, None, merges, False, False),
        "meta_never": synthetic(meta("never"), added, None, merges, True, True),
        "meta_lower": synthetic(meta("first", False), added,
                                {"type": "Sequence", "normalizers": [{"type": "Lowercase"},
                                                                     {"type": "NFKC"}]},
                                merges, True, True),
    }
    out = {}
    for name, spec in specs.items():
        tok = Tokenizer.from_str(json.dumps(spec))
        cases = []
        for text in texts:
            special = tok.encode(text).ids
            cases.append({"text": text, "ids": tok.encode(text, add_special_tokens=False).ids,
                          "ids_special": special,
                          "decoded_skip_special": tok.decode(special, skip_special_tokens=True)})
        out[name] = {"tokenizer": spec, "cases": cases}
    return out


def timed(tok, text):
    t0 = time.perf_counter()
    tok.encode(text, add_special_tokens=False)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
