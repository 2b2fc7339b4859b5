#!/usr/bin/env python3
"""`disclvlm tokenize` / `disclvlm detokenize`: ids on one line separated by
spaces, stdin's exact bytes with '-' or no TEXT, --add-special, round trips,
and one-line errors with exit 1 (bad input) or 2 (usage).

usage: test_cli_tokenize.py DISCLVLM_EXE
Uses ../shared/assets/tokenizers (DLV_SHARED_ASSETS); skips (77) without it.
"""
import os
import subprocess
import sys


def run(exe, *args, stdin=b""):
    return subprocess.run([exe, *args], input=stdin, capture_output=True, timeout=60)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    exe = sys.argv[1]
    root = os.path.join(os.environ.get("DLV_SHARED_ASSETS", ""), "tokenizers")
    if not os.path.isdir(os.path.join(root, "qwen2")):
        print("skipping: ../shared/assets/tokenizers not found (DLV_SHARED_ASSETS)")
        return 77
    qwen = os.path.join(root, "qwen2")
    llama_json = os.path.join(root, "llama2", "tokenizer.json")
    llama_model = os.path.join(root, "llama2", "tokenizer.model")

    r = run(exe, "tokenize", "--tokenizer", qwen, "Hello world")
    check(r.returncode == 0 and r.stdout == b"9707 1879\n", "qwen2 Hello world: %r" % (r,))
    # stdin, exact bytes (a trailing newline is part of the text).
    for args in (["-"], []):
        r = run(exe, "tokenize", "--tokenizer", llama_model, *args, stdin=b"Hello world\n")
        check(r.returncode == 0 and r.stdout == b"15043 3186 13\n", "stdin %s: %r" % (args, r))
    r = run(exe, "tokenize", "--tokenizer", llama_json, "--add-special", "Hello world")
    check(r.stdout == b"1 15043 3186\n", "add-special: %r" % (r,))
    r = run(exe, "tokenize", "--tokenizer", llama_json, "-", stdin=b"")
    check(r.returncode == 0 and r.stdout == b"\n", "empty text: %r" % (r,))

    text = "Grüße, 世界! <|im_start|>x 🙂\n\tend"
    for tok in (qwen, llama_json, llama_model):
        r = run(exe, "tokenize", "--tokenizer", tok, "-", stdin=text.encode())
        check(r.returncode == 0, "%s: %r" % (tok, r))
        ids = r.stdout.split()
        r = run(exe, "detokenize", "--tokenizer", tok, *[i.decode() for i in ids])
        check(r.returncode == 0 and r.stdout == text.encode() + b"\n",
              "%s round trip: %r" % (tok, r.stdout))
    r = run(exe, "detokenize", "--tokenizer", llama_json, "--skip-special", "1 15043 3186")
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
    check(r.returncode == 2 and b"usage" in r.stderr, "no --tokenizer: %r" % (r,))
    r = run(exe, "tokenize", "--tokenizer", qwen, "a", "b")
    check(r.returncode == 2, "two texts: %r" % (r,))
    r = run(exe, "tokenize", "--help")
    check(r.returncode == 0 and b"usage" in r.stdout, "help")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
