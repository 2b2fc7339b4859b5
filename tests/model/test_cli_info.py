#!/usr/bin/env python3
"""`disclvlm info DIR` on tiny generated checkpoints: exit 0 and JSON on
stdout matching what the generator wrote; on a broken directory a non-zero
exit and a one-line message on stderr naming the problem.

usage: test_cli_info.py DISCLVLM_EXE GEN_TINY_CHECKPOINT_PY
"""
import importlib.util
import json
import os
import subprocess
import sys
import tempfile


def load_generator(path):
    spec = importlib.util.spec_from_file_location("gen_tiny_checkpoint", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(exe, *args):
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def check_ok(exe, gen, tmp, name, **kw):
    d = os.path.join(tmp, name)
    man = gen.generate(d, **kw)
    r = run(exe, "info", d)
    check(r.returncode == 0, "%s: exit %d, stderr: %s" % (name, r.returncode, r.stderr))
    info = json.loads(r.stdout)
    check(info["format"] == "llava", "format")
    check(info["architectures"] == ["LlavaForConditionalGeneration"], "architectures")
    check(info["embedding_size"] == man["embedding_size"], "embedding_size")
    ck = info["checkpoint"]
    check(ck["tensor_count"] == man["tensor_count"],
          "tensor_count %d != %d" % (ck["tensor_count"], man["tensor_count"]))
    check(ck["unused_tensors"] == man["unused_tensors"], "unused_tensors")
    check(ck["files"] == man["files"] and ck["sharded"] == man["sharded"], "files/sharded")
    check(ck["tensor_layout"] == man["layout"], "tensor_layout")
    for part in ("vision", "projector", "text", "total"):
        check(info["parameters"][part] == man["parameters"][part],
              "parameters.%s: %d != %d" % (part, info["parameters"][part], man["parameters"][part]))
    check(info["dtype"] == man["dtype_count"], "dtype %r != %r" % (info["dtype"], man["dtype_count"]))
    check(info["text"]["type"] == man["text"], "text.type")
    return r.stdout


def check_fails(exe, d, fragment):
    r = run(exe, "info", d)
    check(r.returncode != 0, "%s: exit 0 on a broken directory" % d)
    lines = r.stderr.splitlines()
    check(len(lines) == 1, "%s: expected one stderr line, got %r" % (d, r.stderr))
    check(fragment in lines[0], "%s: %r not in %r" % (d, fragment, lines[0]))
    check(r.stdout == "", "%s: stdout not empty on failure" % d)


def main():
    exe, gen_path = sys.argv[1], sys.argv[2]
    gen = load_generator(gen_path)
    with tempfile.TemporaryDirectory(prefix="dlv-cli-info-") as tmp:
        out = check_ok(exe, gen, tmp, "clip-llama", vision="clip", text="llama", dtype="bf16",
                       sharded=True, layout="classic")
        check_ok(exe, gen, tmp, "siglip-qwen2", vision="siglip", text="qwen2", dtype="f32",
                 sharded=False, layout="new")
        print(out)

        broken = os.path.join(tmp, "broken")
        gen.generate(broken, "clip", "llama", "f32",
                     drop={"language_model.model.norm.weight"})
        check_fails(exe, broken, "language_model.model.norm.weight")
        with open(os.path.join(broken, "config.json"), "w") as f:
            f.write("{not json")
        check_fails(exe, broken, "config.json")
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        check_fails(exe, empty, "config.json")
        r = run(exe, "info")
        check(r.returncode == 2, "no MODEL_DIR: exit %d" % r.returncode)
    print("cli-info: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
