"""What the Qwen2-VL and Qwen2.5-VL vision-tower references share: seeded
random parameters that all move the output, and writing the goldens (the
weights by HF name, f32 and rounded to bf16, the inputs, the outputs and
the gradients) under tests/model/golden/."""
import os

import torch
import transformers
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(os.path.dirname(HERE), "model", "golden")


def randomize(tower, gen):
    """Every parameter random: weights N(0, 1) / sqrt(fan-in), norm weights
    1 + N(0, 0.1^2), norm biases and biases N(0, 0.1^2)."""
    with torch.no_grad():
        for name, p in sorted(tower.named_parameters()):
            if "norm" in name or "ln_q" in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)


def write(prefix, config, tower, forward, grid, golden_f32, grads):
    """<prefix>_f32.safetensors: the weights (visual.*), golden.grid_thw,
    golden_f32 (golden.* tensors) and grads; <prefix>_bf16.safetensors: the
    weights rounded to bf16 and golden.out of forward() on their widened
    values. The tower's parameters are left at those bf16 values."""
    weights = {"visual." + name: p.detach().clone().contiguous()
               for name, p in tower.state_dict().items()}
    common = {"golden.grid_thw": grid.to(torch.int32)}
    f32 = dict(weights)
    f32.update(common)
    f32.update(golden_f32)
    f32.update(grads)
    bf16 = {name: t.to(torch.bfloat16) for name, t in weights.items()}
    with torch.no_grad():
        for name, p in tower.state_dict().items():
            p.copy_(bf16["visual." + name].float())
    bf16.update(common)
    bf16["golden.out"] = forward()
    print("bf16 vs f32 output, max |diff|:",
          (bf16["golden.out"] - golden_f32["golden.out"]).abs().max().item())
    meta = {"transformers": transformers.__version__, "torch": torch.__version__,
            "config": repr(config)}
    total = 0
    for suffix, tensors in (("f32", f32), ("bf16", bf16)):
        path = os.path.join(GOLDEN, "%s_%s.safetensors" % (prefix, suffix))
        save_file({k: v.contiguous() for k, v in sorted(tensors.items())}, path, metadata=meta)
        size = os.path.getsize(path)
        total += size
        print(path, size, "bytes")
    print("output", tuple(golden_f32["golden.out"].shape), "total", total, "bytes")
    assert total < 300 * 1024
