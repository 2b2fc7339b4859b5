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
    family = kw.get("family", "llava")
    next_ = family == "llava_next"
    arch = {"llava": "LlavaForConditionalGeneration",
            "llava_next": "LlavaNextForConditionalGeneration",
            "qwen2_vl": "Qwen2VLForConditionalGeneration",
            "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}[family]
    check(info["format"] == family, "format")
    check(info["architectures"] == [arch], "architectures")
    if next_:
        check(info["projector"]["image_grid_pinpoints"] == gen.NEXT_PINPOINTS,
              "projector.image_grid_pinpoints")
    check(info["embedding_size"] == man["embedding_size"], "embedding_size")
    ck = info["checkpoint"]
    check(ck["tensor_count"] == man["tensor_count"],
          "tensor_count %d != %d" % (ck["tensor_count"], man["tensor_count"]))
    check(ck["unused_tensors"] == man["unused_tensors"], "unused_tensors")
    check(ck["files"] == man["files"] and ck["sharded"] == man["sharded"], "files/sharded")
    layout = "qwen2vl" if family.startswith("qwen") else man["layout"]
    check(ck["tensor_layout"] == layout, "tensor_layout %r" % ck["tensor_layout"])
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

        # Qwen2-VL / Qwen2.5-VL: the merger counted as the projector; the
        # processor must cut the patches the tower embeds.
        for fam in ("qwen2_vl", "qwen2_5_vl"):
            check_ok(exe, gen, tmp, fam, vision="clip", text="qwen2", dtype="bf16",
                     family=fam, with_tokenizer=True)
        qd = os.path.join(tmp, "qwen-broken")
        gen.generate(qd, "clip", "qwen2", "f32", family="qwen2_vl", drop={"visual.merger.ln_q.bias"})
        check_fails(exe, qd, "visual.merger.ln_q.bias")
        gen.generate(qd, "clip", "qwen2", "f32", family="qwen2_vl")
        pp = os.path.join(qd, "preprocessor_config.json")
        with open(pp) as f:
            pc = json.load(f)
        pc["merge_size"] = 1
        with open(pp, "w") as f:
            json.dump(pc, f)
        check_fails(exe, qd, "merge_size differs from config.json's vision_config")
        with open(pp, "w") as f:
            json.dump(gen.preproc_json("clip"), f)
        check_fails(exe, qd, "does not go with config.json's model_type 'qwen2_vl'")
        gen.generate(qd, "clip", "qwen2", "f32", family="qwen2_vl", with_tokenizer=True)
        r = run(exe, "train", "--model", qd, "--data", data, "--out",
                os.path.join(tmp, "qwen-adapter"), "--steps", "1", "--batch", "2", "--train",
                "soft,projector", "--threads", "1")
        check(r.returncode != 0 and "vision tower or the merger" in r.stderr,
              "train --train projector on Qwen2-VL is refused (%d: %s)" % (r.returncode,
                                                                            r.stderr[-300:]))
        r = run(exe, "train", "--model", qd, "--data", data, "--out",
                os.path.join(tmp, "qwen-adapter"), "--steps", "1", "--batch", "2", "--train",
                "soft,lora,llm", "--threads", "1")
        check(r.returncode == 0, "train --train soft,lora,llm on Qwen2-VL (%d: %s)" %
              (r.returncode, r.stderr[-500:]))

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
