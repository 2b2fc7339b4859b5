#!/usr/bin/env python3
"""Small in-repository tokenizer fixtures and their goldens, so that the
tokenizer tests never depend on ../shared/assets.

Pinned references (PyPI): tokenizers==0.21.4 (Hugging Face, the reference for
every tokenizer.json and for the converted tokenizer.model pipeline) and
sentencepiece==0.2.0 (trains the SentencePiece model and checks its ids;
its protobuf module, which needs `protobuf`, rewrites the scores of
spm_ties). Run by hand in a virtualenv outside the repository; CI only
reads the committed outputs:

    python3 -m venv /tmp/ref-tokfix && \\
        /tmp/ref-tokfix/bin/pip install tokenizers==0.21.4 sentencepiece==0.2.0 protobuf
    /tmp/ref-tokfix/bin/python tests/reference/tokenizer_fixtures.py tests/tokenizer/fixtures

Training is deterministic (one SentencePiece thread; HF's BpeTrainer only
where every initial symbol is in its sorted alphabet; CLIP's merges by the
small trainer below), so a rerun rewrites identical files.

Everything is trained on corpus() below: text written for this script
(English, accents, CJK, emoji, digits, whitespace runs, code, repeated
letters), no third-party data. It writes, under OUT_DIR:

  llama/tokenizer.model        SentencePiece BPE with byte_fallback, trained with
                               Llama 2's options (identity normalization, dummy
                               prefix, no whitespace squeezing, split digits)
  llama/tokenizer.json         the same vocabulary converted the way
                               transformers' LlamaConverter does (legacy
                               LlamaTokenizerFast: Prepend + Replace normalizer,
                               BPE with byte_fallback, merges from
                               generate_merges, <unk>/<s>/</s> special, BOS
                               template, Replace/ByteFallback/Fuse/Strip decoder)
  llama/tokenizer_config.json  add_bos_token true, add_eos_token false
  llama/golden.json            ids for llama/tokenizer.json AND tokenizer.model
  llama_metaspace/tokenizer.json, golden.json
                               the non-legacy conversion: no normalizer,
                               Metaspace(prepend_scheme "first", split false)
  spm/tokenizer.model, golden.json
                               SentencePiece BPE with byte_fallback and
                               SentencePiece's default options (whitespace
                               squeezing on), identity normalization; goldens
                               from `sentencepiece` itself (see spm_goldens)
  spm_ties/tokenizer.model, golden.json
                               llama/tokenizer.model with equal scores: every
                               run of SCORE_STEP consecutive merged pieces
                               shares one (tie_scores); goldens from
                               `sentencepiece` itself, which breaks ties
                               between equal-score pairs by position; cases
                               whose ids change when equal scores get
                               distinct ranks in vocabulary order are marked
                               "score_tie"
  qwen2/tokenizer.json         byte-level BPE trained by HF's BpeTrainer in the
                               Qwen2 shape: NFC, Split(Qwen2 regex, Isolated) +
                               ByteLevel(use_regex false), ByteLevel post-processor
                               and decoder, <|endoftext|> <|im_start|> <|im_end|>
                               ... as special added tokens, <tool_call> plain
  qwen2/tokenizer_config.json  add_bos_token false
  qwen2/golden.json
  nfkc/tokenizer.json, golden.json
                               byte-level BPE (ByteLevel with the GPT-2 regex)
                               trained by HF's BpeTrainer behind an NFKC
                               normalizer, with overlapping added tokens
                               (NFKC_SPECIAL raw, NFKC_PLAIN normalized); its
                               cases add NFKC_CASES and ADDED_CASES, marked
                               "nfkc" (NFKC != NFC) and "added_overlap" (two
                               added tokens start at one position)
  llama3/tokenizer.json        byte-level BPE trained by HF's BpeTrainer in the
                               Llama 3 shape: no normalizer, Split(Llama 3
                               regex, Isolated) + ByteLevel(use_regex false),
                               BPE with ignore_merges and "a b" merges, plus
                               LLAMA3_WHOLE in the vocabulary without merges;
                               256 special tokens (LLAMA3_SPECIAL) after it,
                               TemplateProcessing adding <|begin_of_text|>,
                               ByteLevel decoder
  llama3/tokenizer_config.json no add_bos_token, as Llama 3's
  llama3/golden.json           its cases add LLAMA3_CASES, marked
                               "ignore_merges", "digit_groups" and
                               "contraction_case" (llama3_flags)
  clip/tokenizer.json, golden.json
                               the shape transformers' CLIPConverter writes: NFC,
                               Replace(\\s+ -> " "), Lowercase; Split(CLIP regex,
                               Removed, invert) + ByteLevel(use_regex true); BPE
                               with end_of_word_suffix "</w>" and unk;
                               RobertaProcessing; ByteLevel decoder. Merges
                               from train_suffix_bpe (HF's trainer numbers
                               "</w>" symbols in hash order, run to run)

Each golden.json has the format of tests/tokenizer/golden/*.json (written by
tokenizers_reference.py): for every case, the ids without and with special
tokens, decode(ids) and decode(ids_special, skip special), all from
`tokenizers`; plus "tie": true where the case depends on how BPE breaks ties
between equal-rank pairs (below). The cases are tokenizer_corpus.json, TIE_CASES
and the strings test_cli_tokenize.py tokenizes.

Reference for tokenizer.model: the library maps a SentencePiece model onto
the pipeline of its HF conversion (docs/tokenizers.md: control pieces are
special added tokens, merging follows piece scores, leftmost on ties), and
the existing tests compare the real llama2 tokenizer.model with HF's goldens
for the converted tokenizer.json. So llama/golden.json serves both files, and
this script asserts that `sentencepiece` itself gives the same ids as HF on
the converted file for every case that does not contain a control piece's
text ("<s>", "</s>", "<unk>": HF splits those out as special tokens,
sentencepiece encodes them as plain text), with and without BOS.

Tie-break check: a pure-Python copy of HF's merge loop (Word::merge_all,
a heap ordered by (rank, position)) and of SentencePiece's (agenda ordered by
(score, left position)) is run on every case twice, once preferring the
leftmost of equal-rank pairs (what both libraries do) and once the
rightmost. The leftmost run must reproduce the reference ids exactly (so the
copy is faithful); a case is marked "tie" when the rightmost run gives other
ids. The script fails unless every fixture has at least MIN_TIES such cases,
among them repeated letters, spaces or newlines (not for CLIP, whose
normalizer squeezes whitespace) and repeated CJK characters.
"""
import heapq
import io
import json
import os
import sys
import unicodedata

import sentencepiece as spm
import tokenizers
from sentencepiece import sentencepiece_model_pb2
from tokenizers import Tokenizer, pre_tokenizers, trainers

PINNED_TOKENIZERS = "0.21.4"
PINNED_SENTENCEPIECE = "0.2.0"
MIN_TIES = 20  # tests/tokenizer/test_tok_fixtures.c requires as many
# spm_ties: scores shared by runs of SCORE_STEP consecutive merges; at least
# MIN_SCORE_TIES cases whose ids depend on equal scores sharing a rank.
SCORE_STEP = 32
MIN_SCORE_TIES = 10
# nfkc: at least as many cases with compatibility characters and with
# overlapping added tokens (test_tok_fixtures.c requires as many).
MIN_NFKC_CASES = 30
MIN_OVERLAP_CASES = 15
# llama3: at least as many cases whose ids depend on ignore_merges, on
# Llama 3's digit runs and on its case-insensitive contractions
# (test_tok_fixtures.c requires as many).
LLAMA3_MIN = {"ignore_merges": 8, "digit_groups": 20, "contraction_case": 15}

# Our own training text. Repeated letters, syllables, spaces, newlines and
# CJK characters are frequent on purpose, so that merges such as "a a",
# "ab ab", "▁ ▁" and "哈 哈" exist and equal-rank pairs overlap.
BASE = [
    "The quick brown fox jumps over the lazy dog.",
    "A small tokenizer learns a few hundred merges from this text and nothing else.",
    "Hello world! Hello again, world. hello, HELLO, Hello.",
    "We write tests so that a wrong merge order is caught in every build.",
    "It's a test; they're small, we've checked, I'm sure, you'll see, he'd agree.",
    "naïve café résumé, Grüße aus Köln, señor Ångström, élève, où, façade, Æsir.",
    "Ça va? Été à Paris, hiver à Zürich, fjord på Ålesund.",
    "こんにちは世界。東京は大きい町です。ひらがなとカタカナ。",
    "你好，世界！我们在这里写中文。哈哈哈哈哈，好好好。",
    "안녕하세요 세계. 하하하하.",
    "Привет, мир! Как дела? Хорошо.",
    "emoji: 🙂 🙂🙂 🎉🎉🎉 👍🏽 ❤️ 🦙🦙",
    "digits 0123456789 and 2024-01-31, 3.14159, 1000000, 42, 007.",
    "def double(x):\n    return x * 2  # twice\n",
    "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
    "if (a == b && c != d) { return -1; } else { x = y ** 2; }",
    "<div class=\"box\">text</div> <span>more</span>",
    "    indented    with    runs    of    spaces",
    "tabs\t\tand\nnewlines\n\n\nhere\n\n",
    "aaaa bbbb aaaaaaa ababab abababab zzz ooo mmmm lalala hahaha",
    "Mississippi, bookkeeper, committee, balloon, coffee, aardvark, Hawaii.",
    "----- ===== ..... !!! ??? ### ***",
]


def corpus():
    lines = list(BASE)
    for k in range(1, 13):
        lines += ["a" * k, "ab" * k, "哈" * k, "好" * k, " " * k + "x", "x" + "\n" * k + "y",
                  "-" * k, "0" * k, "o" * k, "la" * k, "!" * k, "\t" * k + "z", "e" * k + "h"]
    return lines * 3


# Strings whose ids depend on the tie-break between equal-rank pairs: runs of
# one symbol (the same pair overlapping itself) and of two-symbol units.
TIE_CASES = (
    ["a" * k for k in range(2, 12)]
    + ["x" + "a" * k + "y" for k in (3, 5, 7)]
    + [" " + "a" * k for k in (3, 5)]
    + ["ab" * k for k in range(2, 8)] + ["ab" * k + "a" for k in (2, 3)]
    + ["la" * k for k in (3, 5)] + ["ha" * k for k in (3, 5)]
    + ["o" * k for k in (3, 5, 7)] + ["e" * k + "h" for k in (3, 5)]
    + ["z" * k for k in (3, 5)] + ["m" * k for k in (3, 5)]
    + [" " * k for k in range(3, 10)] + ["x" + " " * k + "y" for k in (3, 5, 7)]
    + ["\n" * k for k in (3, 5)] + ["x" + "\n" * k + "y" for k in (3, 5, 7)]
    + ["\t" * k + "z" for k in (3, 5)]
    + ["哈" * k for k in range(2, 8)] + ["好" * k for k in (3, 5)]
    + ["x哈哈哈y", "哈 哈哈哈", "하하하하하"]
    + ["-" * k for k in (3, 5, 7)] + ["!" * k for k in (3, 5)] + ["0" * k for k in (3, 5, 7)]
    + ["🙂" * k for k in (3, 5)] + ["🦙🦙🦙"]
    + ["aaa bbb", "Hello aaa world", "ababab lalala", "   aaa   ", "aaa\n\n\naaa"]
)

# What test_cli_tokenize.py tokenizes (its expected ids come from here).
CLI_CASES = ["Hello world", "Hello world\n", "Grüße, 世界! <|im_start|>x 🙂\n\tend"]

# Compatibility characters that NFKC folds and NFC keeps (ligatures,
# full-width and half-width forms, super- and subscripts, circled and
# squared forms, letterlike symbols, mathematical alphanumerics, vulgar
# fractions, an 18-character expansion), for the nfkc fixture on top of the
# corpus's own NFKC cases.
NFKC_CASES = [
    "ﬁ", "ﬁne ﬂour", "eﬃcient oﬀer", "ﬅ ﬆ", "ＡＢＣ１２３", "ｈｅｌｌｏ　ｗｏｒｌｄ",
    "Ｈｅｌｌｏ， ｗｏｒｌｄ！", "x² + y³ = z⁴", "H₂O and CO₂", "①②③ ⑩", "㎏ ㎞ ㎡ ㍻",
    "ｶﾀｶﾅ ﾊﾞﾊﾟ", "Ⅻ ⅻ Ⅳ", "™ ℡ №", "⅓ ⅔ ⅛", "ǆ Ǆ ǉ", "ſ µ Å K", "ℌ ℍ ℝ ℤ",
    "𝐀𝐁𝐂 𝟏𝟐𝟑 𝒶𝒷𝒸", "ﷺ", "⁽¹⁾ ₍₂₎", "…… ‥", "ｆｉ", "ＡＡＡＡ", "ａａａａａ",
]

# Added tokens of the nfkc fixture, in added_tokens order (a shorter token
# before every token it is a prefix of): special ones matched on the raw text
# (normalized false), plain ones on the NFKC-normalized text (normalized
# true; HF normalizes their contents too, so "ﬁx" matches "fix" and "ｆｉｘ").
# HF's automaton matches leftmost-longest.
NFKC_SPECIAL = ["<x>", "<x><y>", "<y>", "<x><y><z>"]
NFKC_PLAIN = ["ok", "okay", "okay!", "\ufb01x"]
# Texts where one added token starts where a longer one also matches, and
# the other ways added tokens meet: adjacent, nested, broken, spaced, after
# normalization (full-width text that NFKC turns into a plain token; a
# full-width special token, which stays text).
ADDED_CASES = [
    "<x>", "<x><y>", "<x><y><z>", "<x><y><y>", "<x><x><y>", "a<x><y>b", "<x> <y>",
    "<x><y", "<x<x><y>>", "<x><y><z", "<y><x><y>", "<x><y>x<y>", "say <x><y><z> ok",
    "ok", "okay", "okay!", "okay!!", "okayok", "ok okay okay! okayokay", "bookkeeper okay",
    "ｏｋａｙ", "ｏｋ ok okay", "ｏｋａｙ！", "＜ｘ＞＜ｙ＞", "<x>ｏｋａｙ<x><y>", "Okay OKAY okay",
    "\ufb01x", "fix", "ｆｉｘ", "prefix fixture \ufb01x", "\ufb01xok okfix",
]

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
CLIP_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
QWEN2_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|image_pad|>"]
QWEN2_PLAIN = ["<tool_call>", "</tool_call>"]

# Llama 3 (Meta-Llama-3-*, llama3-llava-next-8b): Qwen2's regex with digits in
# runs of up to three; 256 special tokens after the BPE vocabulary, in
# Llama 3's order (its ids 128000-128255).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# The same pattern with case-sensitive contractions, to mark the cases where
# "(?i:" decides ("contraction_case").
LLAMA3_PATTERN_CASED = LLAMA3_PATTERN.replace("(?i:", "(?:")
LLAMA3_NAMED = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 6: "<|start_header_id|>",
                7: "<|end_header_id|>", 9: "<|eot_id|>"}


def llama3_special():
    """<|reserved_special_token_N|> fill the slots the named tokens leave,
    numbered in order, as in Llama 3's tokenizer.json."""
    out, k = [], 0
    for i in range(256):
        if i in LLAMA3_NAMED:
            out.append(LLAMA3_NAMED[i])
        else:
            out.append(f"<|reserved_special_token_{k}|>")
            k += 1
    return out


LLAMA3_SPECIAL = llama3_special()
# Whole pre-tokens put into the vocabulary without a merge that builds them
# (byte-level form: "Ġ" is a space, "Ċ" a newline, "Ã¼" is "ü"). With
# ignore_merges, as in Llama 3, HF emits a pre-token found in the vocabulary
# as one token before trying merges; the cases where that changes the ids
# are marked "ignore_merges".
LLAMA3_WHOLE = ["\u0120tokenizer", "Llama", "\u0120multimodal", "!!!\u010a\u010a",
                "\u0120Z\u00c3\u00bcrich"]
# Extra training text: numbers and upper-case contractions, so that the
# vocabulary has multi-digit tokens and "'LL" and the like.
LLAMA3_TRAIN = [
    "Numbers: 1234567, 89012, 345, 678, 9000, 100, 250, 999 and 2024, 2025, 1999.",
    "I'LL GO, DON'T STOP, WE'RE HERE, THEY'VE WON, I'M OK, SHE'D SAY, IT'S FINE.",
    "I'll go, don't stop, we're here, they've won, I'm ok, she'd say, it's fine.",
] + [
    # Capitalised words that begin like a contraction ("S", "T", "D", "M",
    # "Re", "Ve", "Ll"), on lines of their own (no "Ġ" in front) and often
    # enough that merges inside them come before "' S" and the like: then
    # case-sensitive contractions ("'Sorry" one pre-token instead of "'S" +
    # "orry") change the ids.
    "\n".join("Sorry Sure Sam Sunday Today Tom Tea Don Dave Dear Mary More Many Monday "
              "Really Rest Red Very Vest Lloyd".split())] * 4

# Cases for what Llama 3's pre-tokenizer adds: contractions in any case
# (and U+017F, whose case folding is "s"), digits in threes in every
# script, whitespace and CR/LF runs, punctuation followed by newlines, the
# chat format's special tokens and lookalikes, and the LLAMA3_WHOLE words.
LLAMA3_CASES = [
    "I'LL", "DON'T", "I'll", "i'Ll", "WE'RE", "They'Ve", "SHE'D", "I'M", "it'S", "IT'S",
    "'S'T'RE'VE'M'LL'D", "'LL'll'Ll'lL", "O'NEIL", "ROCK'N'ROLL", "'Sup", "it'\u017f",
    "'\u017f", "''s", "'s'", "don\u2019t DON\u2019T", "I'LL BE BACK. YOU'D BETTER NOT.",
    "'TWAS THE NIGHT", "SAY 'STOP' NOW", "'REALLY?'", "'MAYBE'", "'LATER'", "'DONE'",
    "'TRUE'", "'Sorry'", "'Maybe'", "'Tis", "'Twas", "'Very", "'Dear", "he said 'Ready'",
    "x'Ss", "'Ssss", "'\u017fup", "'Monday'", "'Ve'Re", "'DJ'", "'LLAMA'",
    "'Sure'", "'Sam'", "'Sunday'", "'Today'", "'Tom'", "'Tea'", "'Don'", "'Dave'", "'Mary'",
    "'More'", "'Many'", "'Really'", "'Rest'", "'Red'", "'Vest'", "'Llama'", "'Lloyd'",
    "x'Sorry", "She said 'Sorry' and 'Really'", "'\u017forry'",
    "1234567", "12345678901234", "1 22 333 4444 55555 666666", "1,234,567.89", "v1.2.3-rc45",
    "abc12345def", "2024\u5e7412\u670831\u65e5", "\u0663\u0664\u0665\u0666\u0667",
    "\u0967\u0968\u0969\u096a", "\u00b2\u00b3\u2074\u2075", "\u2160\u2161\u2162\u2163",
    "\u2460\u2461\u2462\u2463\u2464", "\U0001d7d8\U0001d7d9\U0001d7da\U0001d7db",
    "0.0000001", "-1234", "+12345", "1234 5678", " 1234", "12\n345", "x1234567y",
    "a   b", "abc   ", "abc \n", "   abc", "\n\n\r\n", "a\n\n\r\nb", "\r\n\r\n", "\r",
    "x\ry", " \r\n ", "\t\tx", "a\t\tb", "x \t\n\ty", "  \n  \n  ", "end.  \n\n  ",
    "\u00a0\u00a0x", "a\u180eb", "a\u3000\u3000b", "a\u2028\u2029b", "a\x85b", "a\x0b\x0cb",
    "!!!\n\n", "...\r\n", "?!\n\nNext", ") {\n", "};\n\n}", "--\n", " ==>\r\n\r\nx",
    "a, b; c: d.\n", "'''\n", '"""docstring"""\n', "#!/bin/sh\n\n", "**bold**\n",
    "->\n\t", ":)\n\n:(", "x = [1, 2, 3];\r\n", "\u00bf\u00a1Hola!? \n",
    "\U0001f642\U0001f642\n", "\U0001f468\u200d\U0001f469\u200d\U0001f467 family",
    "\u4e2d\u6587\uff0c\u6807\u70b9\u3002\n", "\u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8123",
    "\u00dcn\u00efc\u00f6d\u00e9 \u00c0\u00c9\u00ce\u00d5\u00dc", "cr\u00e8me br\u00fbl\u00e9e",
    "e\u0301t\u0301e\u0301",
    "<|begin_of_text|>", "<|begin_of_text|>Hello", "<|end_of_text|>", "<|eot_id|><|eot_id|>",
    "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n<image>\nWhat is this?<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "<|reserved_special_token_0|>", "<|reserved_special_token_250|>",
    "x<|reserved_special_token_17|>y", "<|reserved_special_token_251|>", "<|eot_id|",
    "<|begin_of_text|> spaced <|end_of_text|>", "<|EOT_ID|>",
    " tokenizer", "the tokenizer works", "tokenizer", " tokenizers", "Llama", "Llama-3",
    " Llama", "LlamaLlama", " multimodal model", "wow!!!\n\nok", "!!!\n\n\n", " Z\u00fcrich",
    "Z\u00fcrich", "Llama tokenizer", "Hello Llama!", " tokenizer multimodal",
    "A multimodal tokenizer from Z\u00fcrich",
]


def added(content, tid, special, normalized=False):
    return {"id": tid, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": normalized, "special": special}


# --- SentencePiece + its transformers-style conversion --------------------

def train_spm(lines, llama=True):
    """Trained from an iterator into memory, so that no temporary path ends
    up in trainer_spec and reruns write identical bytes. SentencePiece
    trains on lines: text after a newline is a new sentence. llama: Llama
    2's options; else SentencePiece's defaults (remove_extra_whitespaces
    on), only BPE, byte fallback and the identity normalization (the
    library refuses precompiled character maps) set."""
    sentences = [s for line in lines for s in line.split("\n")]
    out = io.BytesIO()
    opts = dict(remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=True,
                allow_whitespace_only_pieces=True, character_coverage=0.9995,
                unk_id=0, bos_id=1, eos_id=2, pad_id=-1) if llama else {}
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=out, model_type="bpe",
        vocab_size=560 if llama else 520, byte_fallback=True,
        normalization_rule_name="identity", hard_vocab_limit=False, num_threads=1,
        max_sentence_length=100000, minloglevel=2, **opts)
    return out.getvalue()


def generate_merges(vocab, vocab_scores):
    """transformers' convert_slow_tokenizer.generate_merges: every split of a
    piece into two pieces, ordered by the merged piece's score."""
    scores = dict(vocab_scores)
    merges = []
    for merge, score in scores.items():
        local = [(merge[:i], merge[i:], score) for i in range(1, len(merge))
                 if merge[:i] in vocab and merge[i:] in vocab]
        merges.extend(sorted(local, key=lambda x: (vocab[x[0]], vocab[x[1]])))
    merges.sort(key=lambda v: (v[2], len(v[0]), len(v[1])), reverse=True)
    return [[a, b] for a, b, _ in merges]


def convert_spm(sp, legacy):
    """The tokenizer.json LlamaTokenizerFast builds from tokenizer.model
    (transformers' LlamaConverter; legacy=True is Llama 2 / Mistral)."""
    n = sp.get_piece_size()
    # LlamaConverter.vocab: the first three pieces get score 0.
    vocab_scores = [(sp.id_to_piece(i), 0.0 if i < 3 else sp.get_score(i)) for i in range(n)]
    vocab = {p: i for i, (p, _) in enumerate(vocab_scores)}
    specials = [sp.unk_id(), sp.bos_id(), sp.eos_id()]
    bos = sp.id_to_piece(sp.bos_id())
    if legacy:
        normalizer = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
        pre = None
    else:
        normalizer = None
        pre = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first",
               "split": False}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(sp.id_to_piece(i), i, True) for i in specials],
        "normalizer": normalizer, "pre_tokenizer": pre,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [sp.bos_id()], "tokens": [bos]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": sp.id_to_piece(sp.unk_id()),
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": generate_merges(vocab, vocab_scores)},
    }


def tie_scores(model_bytes, step):
    """The SentencePiece model with equal scores: the trainer gives the
    k-th merged piece score -k; here every run of step consecutive merged
    pieces shares one score, -(k // step). Built with sentencepiece's own
    protobuf module; nothing else changes. sentencepiece's BPE encoder then
    breaks ties between equal-score pairs by position (leftmost first)."""
    m = sentencepiece_model_pb2.ModelProto()
    m.ParseFromString(model_bytes)
    normal = sentencepiece_model_pb2.ModelProto.SentencePiece.NORMAL
    for p in m.pieces:
        if p.type == normal:
            k = -p.score
            if k != int(k) or k < 0:
                sys.exit(f"spm_ties: unexpected trained score {p.score} for {p.piece!r}")
            p.score = -float(int(k) // step)
    return m.SerializeToString(deterministic=True)


# --- byte-level BPE trained by HF's BpeTrainer ----------------------------

def train_hf(spec, lines, vocab_size):
    """Trains the BPE model of spec (a tokenizer.json dict whose model is
    empty) with HF's BpeTrainer and returns spec with the trained vocab and
    merges. Deterministic here: every initial symbol is in the (sorted)
    byte-level alphabet, and equal counts are ordered by symbol id."""
    tok = Tokenizer.from_str(json.dumps(spec))
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    trained = json.loads(tok.to_str())["model"]
    spec = json.loads(json.dumps(spec))
    spec["model"]["vocab"] = trained["vocab"]
    spec["model"]["merges"] = trained["merges"]
    return spec


def byte_level_spec(normalizer, pre, post, model_extra):
    model = {"type": "BPE", "dropout": None, "unk_token": None,
             "continuing_subword_prefix": None, "end_of_word_suffix": None, "fuse_unk": False,
             "byte_fallback": False, "ignore_merges": False, "vocab": {}, "merges": []}
    model.update(model_extra)
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
            "normalizer": normalizer, "pre_tokenizer": pre, "post_processor": post,
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                        "use_regex": False},
            "model": model}


def qwen2_spec(lines):
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
          "use_regex": False}
    spec = byte_level_spec(
        {"type": "NFC"},
        {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated",
             "invert": False}, bl]},
        dict(bl), {"continuing_subword_prefix": "", "end_of_word_suffix": ""})
    spec = train_hf(spec, lines, 640)
    vocab = spec["model"]["vocab"]
    # Special tokens after the BPE vocabulary, as in Qwen2.
    for i, t in enumerate(QWEN2_SPECIAL + QWEN2_PLAIN):
        spec["added_tokens"].append(added(t, len(vocab) + i, t in QWEN2_SPECIAL))
    return spec


def llama3_spec(lines):
    """Llama 3's shape: no normalizer; Split(Llama 3 regex, Isolated) +
    ByteLevel(use_regex false); BPE with ignore_merges and no prefix or
    suffix; LLAMA3_WHOLE appended to the vocabulary without merges, then the
    256 special tokens; TemplateProcessing adding <|begin_of_text|>; the
    ByteLevel decoder with Llama 3's options."""
    spec = byte_level_spec(
        None,
        {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]},
        None, {"ignore_merges": True})
    spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                       "use_regex": True}
    spec = train_hf(spec, lines + LLAMA3_TRAIN * 3, 700)
    vocab = spec["model"]["vocab"]
    for w in LLAMA3_WHOLE:
        if w in vocab:
            sys.exit(f"llama3: {w!r} is already in the trained vocabulary")
        vocab[w] = len(vocab)
    bos = LLAMA3_SPECIAL[0]
    for i, t in enumerate(LLAMA3_SPECIAL):
        spec["added_tokens"].append(added(t, len(vocab) + i, True))
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                 {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": bos, "type_id": 1}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {bos: {"id": bos, "ids": [len(vocab)], "tokens": [bos]}}}
    return spec


def llama3_flags(tok):
    """A flags function for goldens(): marks a case with each way of
    getting Llama 3 slightly wrong that changes its ids (HF on a copy of the
    tokenizer with that change): "ignore_merges" (off), "digit_groups"
    (Qwen2's one-digit \\p{N}), "contraction_case" (contractions matched
    case-sensitively)."""
    spec = json.loads(tok.to_str())
    variants = {}
    for key in ("ignore_merges", "digit_groups", "contraction_case"):
        v = json.loads(json.dumps(spec))
        if key == "ignore_merges":
            v["model"]["ignore_merges"] = False
        else:
            v["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = \
                QWEN2_PATTERN if key == "digit_groups" else LLAMA3_PATTERN_CASED
        variants[key] = Tokenizer.from_str(json.dumps(v))

    def flags(text):
        ids = tok.encode(text, add_special_tokens=False).ids
        return {k: True for k, v in variants.items()
                if v.encode(text, add_special_tokens=False).ids != ids}
    return flags


def nfkc_spec(lines):
    """Byte-level BPE (GPT-2's shape: ByteLevel with its regex) behind an
    NFKC normalizer, trained by HF's BpeTrainer, with overlapping added
    tokens (NFKC_SPECIAL raw, NFKC_PLAIN normalized) after the vocabulary."""
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
          "use_regex": True}
    spec = byte_level_spec({"type": "NFKC"}, bl, None,
                           {"continuing_subword_prefix": "", "end_of_word_suffix": ""})
    spec = train_hf(spec, lines, 512)
    vocab = spec["model"]["vocab"]
    for i, t in enumerate(NFKC_SPECIAL + NFKC_PLAIN):
        spec["added_tokens"].append(added(t, len(vocab) + i, t in NFKC_SPECIAL,
                                          normalized=t in NFKC_PLAIN))
    return spec


def train_suffix_bpe(words, n_merges, suffix):
    """Plain BPE training (most frequent adjacent pair first, ties to the
    smallest pair) on words whose last symbol carries suffix. HF's
    BpeTrainer numbers the suffixed symbols in hash-map order, so its
    output changes from run to run; this is deterministic. Only the shape
    matters here: the goldens come from `tokenizers` on the result."""
    seqs = {}
    for w in words:
        key = tuple(w[:-1]) + (w[-1] + suffix,)
        seqs[key] = seqs.get(key, 0) + 1
    seqs = [[list(k), c] for k, c in sorted(seqs.items())]
    merges = []
    while len(merges) < n_merges:
        counts = {}
        for sym, c in seqs:
            for pair in zip(sym, sym[1:]):
                counts[pair] = counts.get(pair, 0) + c
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        if counts[best] < 2:
            break
        merges.append(list(best))
        for entry in seqs:
            sym, out, i = entry[0], [], 0
            while i < len(sym):
                if i + 1 < len(sym) and (sym[i], sym[i + 1]) == best:
                    out.append(sym[i] + sym[i + 1])
                    i += 2
                else:
                    out.append(sym[i])
                    i += 1
            entry[0] = out
    return merges


def clip_spec(lines):
    start, end = "<|startoftext|>", "<|endoftext|>"
    spec = byte_level_spec(
        {"type": "Sequence", "normalizers": [
            {"type": "NFC"},
            {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "},
            {"type": "Lowercase"}]},
        {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": CLIP_PATTERN}, "behavior": "Removed",
             "invert": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": True}]},
        None, {"continuing_subword_prefix": "", "end_of_word_suffix": "</w>",
               "unk_token": end})
    # Words exactly as HF's normalizer and pre-tokenizer cut them.
    shell = Tokenizer.from_str(json.dumps(spec))
    words = [w for line in lines
             for w, _ in shell.pre_tokenizer.pre_tokenize_str(shell.normalizer.normalize_str(line))]
    # CLIP's layout: the 256 byte symbols, the same with "</w>", the merges,
    # then the two special tokens.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {}
    for t in alphabet + [c + "</w>" for c in alphabet]:
        vocab[t] = len(vocab)
    merges = train_suffix_bpe(words, 300, "</w>")
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab[start] = len(vocab)
    vocab[end] = len(vocab)
    spec["model"]["vocab"] = vocab
    spec["model"]["merges"] = merges
    spec["added_tokens"] = [added(start, vocab[start], True), added(end, vocab[end], True)]
    spec["post_processor"] = {"type": "RobertaProcessing", "sep": [end, vocab[end]],
                              "cls": [start, vocab[start]], "trim_offsets": False,
                              "add_prefix_space": False}
    return spec


# --- pure-Python merge loops, to find the tie-sensitive cases -------------

def hf_bpe_word(model, word, rightmost):
    """HF BPE::merge_word + Word::merge_all, with the heap's position order
    reversed when rightmost is set."""
    vocab, prefix, suffix = model["vocab"], model["continuing_subword_prefix"], \
        model["end_of_word_suffix"]
    # HF's BPE::tokenize_with_cache: a word in the vocabulary, as it is.
    if model.get("ignore_merges") and word in vocab:
        return [vocab[word]]
    unk = vocab.get(model["unk_token"]) if model["unk_token"] else None
    syms, pending = [], None
    for i, ch in enumerate(word):
        s = (prefix if i > 0 and prefix else "") + ch + \
            (suffix if i == len(word) - 1 and suffix else "")
        if s in vocab:
            if pending is not None:
                syms.append(pending)
                pending = None
            syms.append(vocab[s])
            continue
        if model["byte_fallback"]:
            bs = ["<0x%02X>" % b for b in s.encode()]
            if all(b in vocab for b in bs):
                if pending is not None:
                    syms.append(pending)
                    pending = None
                syms += [vocab[b] for b in bs]
                continue
        if unk is not None:
            if pending is not None and not model["fuse_unk"]:
                syms.append(pending)
            pending = unk
    if pending is not None:
        syms.append(pending)
    ranks = model["_ranks"]
    ids = list(syms)
    alive = [True] * len(ids)
    nxt = list(range(1, len(ids))) + [-1]
    prv = list(range(-1, len(ids) - 1))
    sign = -1 if rightmost else 1
    heap = []
    for i in range(len(ids) - 1):
        m = ranks.get((ids[i], ids[i + 1]))
        if m:
            heapq.heappush(heap, (m[0], sign * i, m[1]))
    while heap:
        rank, spos, new_id = heapq.heappop(heap)
        pos = sign * spos
        if not alive[pos] or nxt[pos] < 0:
            continue
        r = nxt[pos]
        m = ranks.get((ids[pos], ids[r]))
        if not m or m[1] != new_id:
            continue
        ids[pos] = new_id
        alive[r] = False
        nxt[pos] = nxt[r]
        if nxt[r] >= 0:
            prv[nxt[r]] = pos
        if prv[pos] >= 0:
            m = ranks.get((ids[prv[pos]], ids[pos]))
            if m:
                heapq.heappush(heap, (m[0], sign * prv[pos], m[1]))
        if nxt[pos] >= 0:
            m = ranks.get((ids[pos], ids[nxt[pos]]))
            if m:
                heapq.heappush(heap, (m[0], sign * pos, m[1]))
    return [ids[i] for i in range(len(ids)) if alive[i]]


def hf_simulate(tok, spec, text, rightmost):
    """Ids for text with no added tokens in it: normalizer, pre-tokenizer
    (both HF's), then the copied merge loop on each word."""
    model = spec["model"]
    if "_ranks" not in model:
        vocab = model["vocab"]
        merges = [m.split(" ") if isinstance(m, str) else m for m in model["merges"]]
        model["_ranks"] = {(vocab[a], vocab[b]): (r, vocab[a + b])
                           for r, (a, b) in enumerate(merges)}
    norm = tok.normalizer.normalize_str(text) if tok.normalizer else text
    words = [w for w, _ in tok.pre_tokenizer.pre_tokenize_str(norm)] if tok.pre_tokenizer \
        else ([norm] if norm else [])
    out = []
    for w in words:
        out += hf_bpe_word(model, w, rightmost)
    return out


def spm_simulate(sp, text, rightmost, squeeze=False, by_id=False):
    """SentencePiece's bpe_model.cc Encode (agenda by score, then left
    position; reversed when rightmost) after its normalization: squeeze
    (remove_extra_whitespaces) drops leading and trailing spaces and
    shortens runs to one; then the dummy prefix and the escaped spaces.
    by_id: equal scores do not tie but are ordered by the merged piece's
    id (each piece its own rank in vocabulary order, as a conversion to
    ranked merges gives), then by position."""
    if squeeze:
        text = " ".join(w for w in text.split(" ") if w)
    if not text:
        return []
    s = "\u2581" + text.replace(" ", "\u2581")
    score = {}
    for i in range(sp.get_piece_size()):
        if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i)):
            score[sp.id_to_piece(i)] = sp.get_score(i)
    syms = list(s)
    nxt = list(range(1, len(syms))) + [-1]
    prv = list(range(-1, len(syms) - 1))
    sign = -1 if rightmost else 1
    agenda = []

    def push(left):
        if left < 0 or nxt[left] < 0:
            return
        piece = syms[left] + syms[nxt[left]]
        if piece in score:
            heapq.heappush(agenda, (-score[piece], sp.piece_to_id(piece) if by_id else 0,
                                    sign * left, len(piece), nxt[left]))

    for i in range(len(syms) - 1):
        push(i)
    while agenda:
        _, _, sl, size, right = heapq.heappop(agenda)
        left = sign * sl
        if not syms[left] or not syms[right] or len(syms[left]) + len(syms[right]) != size:
            continue
        syms[left] += syms[right]
        syms[right] = ""
        nxt[left] = nxt[right]
        if nxt[right] >= 0:
            prv[nxt[right]] = left
        push(prv[left])
        push(left)
    out = []
    for p in syms:
        if not p:
            continue
        if p in score:
            out.append(sp.piece_to_id(p))
        else:
            out += [sp.piece_to_id("<0x%02X>" % b) for b in p.encode()]
    return out


# --- goldens ---------------------------------------------------------------

def goldens(tok, spec, cases, label, added_texts, spm_proc=None, normalized_texts=(),
            flags=None):
    """normalized_texts: the added tokens matched on the normalized text
    (the merge-loop copy skips a case holding one there too). flags: a
    function of the text returning extra keys for its case."""
    out, ties = [], []
    for text in cases:
        plain = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        case = {"text": text, "ids": plain, "ids_special": special,
                "decoded": tok.decode(plain, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(special, skip_special_tokens=True)}
        if flags:
            case.update(flags(text))
        norm = tok.normalizer.normalize_str(text) if normalized_texts else text
        # A normalized added token is matched with its content normalized.
        norm_added = [tok.normalizer.normalize_str(a) for a in normalized_texts]
        if not any(a in text for a in added_texts) and \
                not any(a in norm for a in norm_added):
            left = hf_simulate(tok, spec, text, False)
            if left != plain:
                sys.exit(f"{label}: the copied merge loop gives {left} for {text!r}, "
                         f"HF {plain}")
            tie = hf_simulate(tok, spec, text, True) != plain
            if spm_proc is not None:
                # The same cases through SentencePiece itself.
                ref = spm_proc.encode(text)
                if ref != plain or [spm_proc.bos_id()] + ref != special:
                    sys.exit(f"{label}: sentencepiece gives {ref} for {text!r}, HF {plain}")
                if spm_simulate(spm_proc, text, False) != ref:
                    sys.exit(f"{label}: the copied SentencePiece loop differs on {text!r}")
                tie = tie or spm_simulate(spm_proc, text, True) != ref
            if tie:
                case["tie"] = True
                ties.append(text)
        out.append(case)
    return out, ties


def spm_goldens(sp, cases, label, squeeze=True, score_ties=False):
    """Goldens straight from `sentencepiece` (for the model whose
    remove_extra_whitespaces has no HF counterpart: transformers'
    LlamaConverter ignores it, and for the one with equal scores, which
    the conversion's ranked merges cannot express). The cases holding a
    control piece's text are left out: sentencepiece encodes them as plain
    text, the library as special tokens (the HF conversion's behaviour).
    squeeze: the model's remove_extra_whitespaces. score_ties: also mark
    "score_tie" the cases whose ids change when equal scores are ranked in
    vocabulary order instead of sharing a rank (such cases are "tie" too)."""
    out, ties = [], []
    for text in cases:
        if any(c in text for c in ("<s>", "</s>", "<unk>")):
            continue
        ids = sp.encode(text)
        case = {"text": text, "ids": ids, "ids_special": [sp.bos_id()] + ids,
                "decoded": sp.decode(ids), "decoded_skip_special": sp.decode(ids)}
        if spm_simulate(sp, text, False, squeeze) != ids:
            sys.exit(f"{label}: the copied SentencePiece loop differs on {text!r}")
        score_tie = score_ties and spm_simulate(sp, text, False, squeeze, by_id=True) != ids
        if score_tie:
            case["score_tie"] = True
        if score_tie or spm_simulate(sp, text, True, squeeze) != ids:
            case["tie"] = True
            ties.append(text)
        out.append(case)
    return out, ties


def write_json(path, obj, pretty):
    with open(path, "w", encoding="utf-8") as f:
        if pretty:
            json.dump(obj, f, ensure_ascii=False, indent=1)
        else:
            json.dump(obj, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")


def main():
    if tokenizers.__version__ != PINNED_TOKENIZERS:
        sys.exit(f"need tokenizers=={PINNED_TOKENIZERS}, have {tokenizers.__version__}")
    if spm.__version__ != PINNED_SENTENCEPIECE:
        sys.exit(f"need sentencepiece=={PINNED_SENTENCEPIECE}, have {spm.__version__}")
    if len(sys.argv) != 2:
        sys.exit("usage: tokenizer_fixtures.py OUT_DIR")
    out_dir = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "tokenizer_corpus.json"), encoding="utf-8") as f:
        cases = json.load(f)
    for t in TIE_CASES + CLI_CASES:
        if t not in cases:
            cases.append(t)
    lines = corpus()

    model_bytes = train_spm(lines)
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)

    fixtures = {
        "llama": (convert_spm(sp, True), ["<s>", "</s>", "<unk>"], sp,
                  {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
                   "eos_token": "</s>", "unk_token": "<unk>", "legacy": True,
                   "tokenizer_class": "LlamaTokenizer"}),
        "llama_metaspace": (convert_spm(sp, False), ["<s>", "</s>", "<unk>"], None, None),
        "qwen2": (qwen2_spec(lines), QWEN2_SPECIAL + QWEN2_PLAIN, None,
                  {"add_bos_token": False, "add_prefix_space": False,
                   "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                   "tokenizer_class": "Qwen2Tokenizer"}),
        "clip": (clip_spec(lines), ["<|startoftext|>", "<|endoftext|>"], None, None),
    }
    # The SentencePiece-defaults model: goldens from sentencepiece alone.
    spm_bytes = train_spm(lines, llama=False)
    sp2 = spm.SentencePieceProcessor(model_proto=spm_bytes)
    d = os.path.join(out_dir, "spm")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.model"), "wb") as f:
        f.write(spm_bytes)
    golden, ties = spm_goldens(sp2, cases, "spm")
    write_json(os.path.join(d, "golden.json"),
               {"reference": f"sentencepiece=={PINNED_SENTENCEPIECE}",
                "tokenizer": "fixtures/spm/tokenizer.model", "vocab_size": sp2.get_piece_size(),
                "cases": golden}, False)
    report("spm", sp2.get_piece_size(), golden, ties, {"letters", "cjk"})

    # The llama model with equal scores: goldens from sentencepiece alone.
    tied_bytes = tie_scores(model_bytes, SCORE_STEP)
    sp3 = spm.SentencePieceProcessor(model_proto=tied_bytes)
    d = os.path.join(out_dir, "spm_ties")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.model"), "wb") as f:
        f.write(tied_bytes)
    golden, ties = spm_goldens(sp3, cases, "spm_ties", squeeze=False, score_ties=True)
    write_json(os.path.join(d, "golden.json"),
               {"reference": f"sentencepiece=={PINNED_SENTENCEPIECE}",
                "tokenizer": "fixtures/spm_ties/tokenizer.model",
                "vocab_size": sp3.get_piece_size(), "cases": golden}, False)
    report("spm_ties", sp3.get_piece_size(), golden, ties, {"letters", "cjk", "whitespace"})
    score_ties = [c["text"] for c in golden if c.get("score_tie")]
    # For information: HF's conversion (ranked merges, no equal ranks) of
    # this model gives other ids wherever equal scores decide.
    conv = Tokenizer.from_str(json.dumps(convert_spm(sp3, True)))
    n_conv = sum(conv.encode(c["text"], add_special_tokens=False).ids != c["ids"]
                 for c in golden)
    print(f"spm_ties: {len(score_ties)} cases depend on equal scores sharing a rank; "
          f"HF's conversion differs from sentencepiece on {n_conv}")
    print("   ", " ".join(repr(t) for t in score_ties))
    if len(score_ties) < MIN_SCORE_TIES:
        sys.exit(f"spm_ties: only {len(score_ties)} cases depend on equal scores")

    # The NFKC fixture: its own cases on top of the common ones.
    nfkc_cases = cases + [t for t in NFKC_CASES + ADDED_CASES if t not in cases]
    extra = {"nfkc": dict(cases=nfkc_cases, normalized_texts=NFKC_PLAIN, flags=nfkc_flags)}
    fixtures["nfkc"] = (nfkc_spec(lines), NFKC_SPECIAL, None, None)
    # Llama 3: its own cases on top of the common ones, flagged by what they
    # exercise (llama3_flags needs the tokenizer, so it is made in the loop).
    extra["llama3"] = dict(cases=cases + [t for t in LLAMA3_CASES if t not in cases],
                           flags_of=llama3_flags)
    fixtures["llama3"] = (llama3_spec(lines), LLAMA3_SPECIAL, None,
                          {"bos_token": LLAMA3_SPECIAL[0], "eos_token": "<|eot_id|>",
                           "model_input_names": ["input_ids", "attention_mask"],
                           "model_max_length": 8192,
                           "tokenizer_class": "PreTrainedTokenizerFast"})

    for name, (spec, added_texts, spm_proc, config) in fixtures.items():
        d = os.path.join(out_dir, name)
        os.makedirs(d, exist_ok=True)
        tok = Tokenizer.from_str(json.dumps(spec))
        # What is written is what HF reads back, and the goldens come from it.
        final = json.loads(tok.to_str())
        if name == "llama3":
            # Llama 3's file has its merges as "a b" strings (tokenizers
            # before 0.20 wrote them so); byte-level tokens hold no space.
            final["model"]["merges"] = [" ".join(m) for m in final["model"]["merges"]]
        write_json(os.path.join(d, "tokenizer.json"), final, True)
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        if name == "llama":
            with open(os.path.join(d, "tokenizer.model"), "wb") as f:
                f.write(model_bytes)
        if config:
            write_json(os.path.join(d, "tokenizer_config.json"), config, True)
        opts = extra.get(name, {})
        flags = opts["flags_of"](tok) if "flags_of" in opts else opts.get("flags")
        golden, ties = goldens(tok, final, opts.get("cases", cases), name, added_texts, spm_proc,
                               opts.get("normalized_texts", ()), flags)
        doc = {"reference": f"tokenizers=={PINNED_TOKENIZERS}"
                            + (f", sentencepiece=={PINNED_SENTENCEPIECE}" if spm_proc else ""),
               "tokenizer": f"fixtures/{name}/tokenizer.json",
               "vocab_size": tok.get_vocab_size(with_added_tokens=True), "cases": golden}
        write_json(os.path.join(d, "golden.json"), doc, False)
        # CLIP's normalizer squeezes whitespace runs to one space: no ties there.
        report(name, doc["vocab_size"], golden, ties,
               {"letters", "cjk"} | (set() if name == "clip" else {"whitespace"}))
        if name == "nfkc":
            n_compat = sum(1 for c in golden if c.get("nfkc"))
            n_overlap = sum(1 for c in golden if c.get("added_overlap"))
            print(f"nfkc: {n_compat} cases with compatibility characters, {n_overlap} with "
                  f"overlapping added tokens")
            if n_compat < MIN_NFKC_CASES or n_overlap < MIN_OVERLAP_CASES:
                sys.exit("nfkc: too few compatibility or overlapping-added-token cases")
        if name == "llama3":
            counts = {k: sum(1 for c in golden if c.get(k)) for k in LLAMA3_MIN}
            print("llama3: " + ", ".join(f"{n} cases marked {k!r}" for k, n in counts.items()))
            if any(counts[k] < n for k, n in LLAMA3_MIN.items()):
                sys.exit(f"llama3: too few cases of a kind: {counts}, need {LLAMA3_MIN}")


def overlapping(text, tokens):
    """Whether at some position of text two of tokens match (one is a
    prefix of the other): the leftmost-longest rule decides there."""
    return any(sum(text.startswith(t, i) for t in tokens) > 1 for i in range(len(text)))


def nfkc_flags(text):
    """"nfkc": NFKC and NFC of text differ (Python's unicodedata);
    "added_overlap": two added tokens of the nfkc fixture start at one
    position, the special ones in the raw text, the normalized ones in its
    NFKC form."""
    f = {}
    norm = unicodedata.normalize("NFKC", text)
    if norm != unicodedata.normalize("NFC", text):
        f["nfkc"] = True
    if overlapping(text, NFKC_SPECIAL) or overlapping(norm, NFKC_PLAIN):
        f["added_overlap"] = True
    return f


def report(name, vocab_size, golden, ties, need):
    """Prints the tie-sensitive cases; fails unless there are MIN_TIES of
    them, of each kind in need."""
    kinds = {"letters": any(t.strip("\n ").isascii() and t.strip().isalpha() for t in ties),
             "whitespace": any(t and not t.strip("xyz").strip() for t in ties),
             "cjk": any("\u4e00" <= c <= "\u9fff" for t in ties for c in t)}
    print(f"{name}: vocab {vocab_size}, {len(golden)} cases, {len(ties)} tie-sensitive"
          f" ({', '.join(k for k, v in kinds.items() if v)})")
    print("   ", " ".join(repr(t) for t in ties))
    if len(ties) < MIN_TIES or not all(kinds[k] for k in need):
        sys.exit(f"{name}: too few tie-sensitive cases, or a kind is missing: {kinds}")


if __name__ == "__main__":
    main()
