#!/usr/bin/env python3
"""PyTorch peer of `trainer bench --ops`: the operation kinds of one BERT layer at the same
shapes, forward alone and forward + backward (gradient of the output's sum), median of N runs,
one JSON object with the same fields."""
import argparse, json, time

import torch

SHAPES = {"minilm": (384, 12, 1536), "bert-base": (768, 12, 3072)}
p = argparse.ArgumentParser()
p.add_argument("--shape", default="minilm", choices=SHAPES)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--seq-len", type=int, default=128)
p.add_argument("--steps", type=int, default=5)
a = p.parse_args()
torch.manual_seed(0)
h, heads, f = SHAPES[a.shape]
b, l, d, n = a.batch_size, a.seq_len, h // heads, a.steps


def med(fn):
    fn()
    t = []
    for _ in range(n):
        s = time.perf_counter()
        fn()
        t.append(time.perf_counter() - s)
    return sorted(t)[len(t) // 2]


def both(make, fwd):
    xs = make(False)
    xg = [x.requires_grad_() for x in make(True)]
    with torch.no_grad():
        tf = med(lambda: fwd(*xs))
    tb = med(lambda: fwd(*xg).sum().backward())
    return tf, tb


out = {}
for op, i, o in [("linear_hidden_to_hidden", h, h), ("linear_hidden_to_ffn", h, f), ("linear_ffn_to_hidden", f, h)]:
    tf, tb = both(lambda g: [torch.randn(b, l, i), torch.randn(o, i) * 0.02, torch.zeros(o)], torch.nn.functional.linear)
    out[op] = {"forward_s": tf, "forward_backward_s": tb, "forward_gflops": 2 * b * l * i * o / tf / 1e9}
tf, tb = both(lambda g: [torch.randn(b, heads, l, d) for _ in range(3)], lambda q, k, v: torch.softmax(q @ k.transpose(2, 3), 3) @ v)
out["attention_matmuls_softmax"] = {"forward_s": tf, "forward_backward_s": tb, "forward_gflops": 4 * b * heads * l * l * d / tf / 1e9}
tf, tb = both(lambda g: [torch.randn(b, heads, l, l)], lambda s: torch.softmax(s, 3))
out["softmax"] = {"forward_s": tf, "forward_backward_s": tb, "forward_gflops": 0.0}
ln = torch.nn.LayerNorm(h, eps=1e-12)
tf, tb = both(lambda g: [torch.randn(b, l, h)], ln)
out["layer_norm"] = {"forward_s": tf, "forward_backward_s": tb, "forward_gflops": 0.0}
tf, tb = both(lambda g: [torch.randn(b, l, f)], torch.nn.functional.gelu)
out["gelu"] = {"forward_s": tf, "forward_backward_s": tb, "forward_gflops": 0.0}
tf, tb = both(lambda g: [torch.randn(b, l, f)], lambda x: x + x)
out["add_ffn_sized"] = {"forward_s": tf, "forward_backward_s": tb, "forward_gflops": 0.0}
drop = torch.nn.Dropout(0.1).train()
_, tb = both(lambda g: [torch.randn(b, l, f)], drop)
out["dropout_ffn_sized"] = {"forward_s": float("nan"), "forward_backward_s": tb, "forward_gflops": 0.0}
print(json.dumps({"impl": f"pytorch {torch.__version__}", "device": "cpu", "shape": a.shape, "batch_size": b, "seq_len": l,
                  "steps": n, "threads": torch.get_num_threads(), "ops": out}))
