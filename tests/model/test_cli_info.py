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
    next_ = kw.get("family") == "llava_next"
    check(info["format"] == ("llava_next" if next_ else "llava"), "format")
    check(info["architectures"] == ["LlavaNextForConditionalGeneration" if next_ else
                                    "LlavaForConditionalGeneration"], "architectures")
    if next_:
        check(info["projector"]["image_grid_pinpoints"] == gen.NEXT_PINPOINTS,
              "projector.image_grid_pinpoints")
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
        # LLaVA-NeXT: image_newline counted with the projector; both files
        # must agree on the grids and the tile size.
        check_ok(exe, gen, tmp, "next", vision="clip", text="llama", dtype="f32",
                 sharded=False, layout="new", family="llava_next", with_tokenizer=True)
        data = os.path.join(tmp, "next.jsonl")
        with open(data, "w") as f:
            img = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "images",
                               "img0.png")
            f.write(json.dumps({"image": img, "caption": "a cat"}) + "\n")
            f.write(json.dumps({"image": img.replace("img0", "img5"), "caption": "a dog",
                                "long_caption": "a dog on the grass"}) + "\n")
        r = run(exe, "train", "--model", os.path.join(tmp, "next"), "--data", data, "--out",
                os.path.join(tmp, "next-adapter"), "--steps", "1", "--batch", "2", "--train",
                "soft,lora,projector", "--threads", "1")
        check(r.returncode == 0 and os.path.exists(os.path.join(tmp, "next-adapter",
                                                                "soft_prompts.safetensors")),
              "train --train soft,lora,projector on LLaVA-NeXT (%d: %s)" % (r.returncode,
                                                                          r.stderr[-500:]))
        nxt = os.path.join(tmp, "next-broken")
        gen.generate(nxt, "clip", "llama", "f32", family="llava_next",
                     drop={"image_newline"})
        check_fails(exe, nxt, "image_newline")
        gen.generate(nxt, "clip", "llama", "f32", family="llava_next")
        pp = os.path.join(nxt, "preprocessor_config.json")
        with open(pp) as f:
            pc = json.load(f)
        pc["image_grid_pinpoints"] = pc["image_grid_pinpoints"][:2]
        with open(pp, "w") as f:
            json.dump(pc, f)
        check_fails(exe, nxt, "image_grid_pinpoints differ from config.json's")
        with open(pp, "w") as f:
            json.dump(gen.preproc_json("clip"), f)
        check_fails(exe, nxt, "does not go with config.json's model_type 'llava_next'")

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
