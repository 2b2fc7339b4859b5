#!/usr/bin/env python3
"""`disclvlm tokenize` / `disclvlm detokenize`: ids on one line separated by
spaces, stdin's exact bytes with '-' or no TEXT, --add-special, round trips,
and one-line errors with exit 1 (bad input) or 2 (usage).

usage: test_cli_tokenize.py DISCLVLM_EXE
Uses the committed fixtures in tests/tokenizer/fixtures/ (DLV_SOURCE_ROOT, else
relative to this file), whose expected ids are in their golden.json, written
by HF `tokenizers` (tests/reference/tokenizer_fixtures.py); never skips. With
../shared/assets/tokenizers (DLV_SHARED_ASSETS) it also checks a few ids of
the real Qwen2 and Llama-2 tokenizers.
"""
import json
import os
import subprocess
import sys


def run(exe, *args, stdin=b""):
    return subprocess.run([exe, *args], input=stdin, capture_output=True, timeout=60)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def golden(fixtures, name):
    """text -> case, from fixtures/<name>/golden.json."""
    with open(os.path.join(fixtures, name, "golden.json"), encoding="utf-8") as f:
        return {c["text"]: c for c in json.load(f)["cases"]}


def line(ids):
    return (" ".join(str(i) for i in ids) + "\n").encode()


def main():
    exe = sys.argv[1]
    src = os.environ.get("DLV_SOURCE_ROOT",
                         os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    fixtures = os.path.join(src, "tests", "tokenizer", "fixtures")
    qwen = os.path.join(fixtures, "qwen2")  # a directory: tokenizer.json + tokenizer_config.json
    llama_json = os.path.join(fixtures, "llama", "tokenizer.json")
    llama_model = os.path.join(fixtures, "llama", "tokenizer.model")
    gq, gl = golden(fixtures, "qwen2"), golden(fixtures, "llama")

    r = run(exe, "tokenize", "--tokenizer", qwen, "Hello world")
    check(r.returncode == 0 and r.stdout == line(gq["Hello world"]["ids"]),
          "qwen2 Hello world: %r" % (r,))
    # stdin, exact bytes (a trailing newline is part of the text).
    for args in (["-"], []):
        r = run(exe, "tokenize", "--tokenizer", llama_model, *args, stdin=b"Hello world\n")
        check(r.returncode == 0 and r.stdout == line(gl["Hello world\n"]["ids"]),
              "stdin %s: %r" % (args, r))
    r = run(exe, "tokenize", "--tokenizer", llama_json, "--add-special", "Hello world")
    check(r.stdout == line(gl["Hello world"]["ids_special"]), "add-special: %r" % (r,))
    r = run(exe, "tokenize", "--tokenizer", llama_json, "-", stdin=b"")
    check(r.returncode == 0 and r.stdout == b"\n", "empty text: %r" % (r,))

    text = "Grüße, 世界! <|im_start|>x 🙂\n\tend"
    for tok, g in ((qwen, gq), (llama_json, gl), (llama_model, gl)):
        r = run(exe, "tokenize", "--tokenizer", tok, "-", stdin=text.encode())
        check(r.returncode == 0 and r.stdout == line(g[text]["ids"]), "%s: %r" % (tok, r))
        ids = r.stdout.split()
        r = run(exe, "detokenize", "--tokenizer", tok, *[i.decode() for i in ids])
        check(r.returncode == 0 and r.stdout == text.encode() + b"\n",
              "%s round trip: %r" % (tok, r.stdout))
    r = run(exe, "detokenize", "--tokenizer", llama_json, "--skip-special",
            " ".join(str(i) for i in gl["Hello world"]["ids_special"]))
    check(r.stdout == b"Hello world\n", "skip-special: %r" % (r,))

    # Errors: one line on stderr.
    r = run(exe, "tokenize", "--tokenizer", qwen, "-", stdin=b"bad \xff byte")
    check(r.returncode == 1 and b"UTF-8" in r.stderr and r.stderr.count(b"\n") == 1,
          "invalid UTF-8: %r" % (r,))
    r = run(exe, "tokenize", "--tokenizer", "/nonexistent/tok.json", "x")
    check(r.returncode == 1 and b"/nonexistent/tok.json" in r.stderr, "missing: %r" % (r,))
    r = run(exe, "detokenize", "--tokenizer", qwen, "99999999")
    check(r.returncode == 1 and b"99999999" in r.stderr, "bad id: %r" % (r,))
    r = run(exe, "detokenize", "--tokenizer", qwen, "12x")
    check(r.returncode == 2, "bad id syntax: %r" % (r,))
    r = run(exe, "tokenize", "x")
    check(r.returncode == 2 and b"--tokenizer PATH is required" in r.stderr and r.stderr.count(b"\n") == 1, "no --tokenizer: one line naming it: %r" % (r,))
    r = run(exe, "tokenize", "--tokenizer", qwen, "a", "b")
    check(r.returncode == 2, "two texts: %r" % (r,))
    r = run(exe, "tokenize", "--help")
    check(r.returncode == 0 and b"usage" in r.stdout, "help")

    # The real tokenizers, when ../shared/assets is there (ids from
    # llama.cpp's vectors and HF).
    root = os.path.join(os.environ.get("DLV_SHARED_ASSETS", ""), "tokenizers")
    if os.path.isdir(os.path.join(root, "qwen2")) and os.path.isdir(os.path.join(root, "llama2")):
        r = run(exe, "tokenize", "--tokenizer", os.path.join(root, "qwen2"), "Hello world")
        check(r.returncode == 0 and r.stdout == b"9707 1879\n", "real qwen2: %r" % (r,))
        r = run(exe, "tokenize", "--tokenizer", os.path.join(root, "llama2", "tokenizer.model"),
                "-", stdin=b"Hello world\n")
        check(r.returncode == 0 and r.stdout == b"15043 3186 13\n", "real llama2: %r" % (r,))
        print("ok (fixtures and the real tokenizers in %s)" % root)
    else:
        print("ok (fixtures; SKIPPED the real-tokenizer checks: %s not found)" % root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
