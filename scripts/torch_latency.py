#!/usr/bin/env python3
"""PyTorch peer of `trainer latency`: the same MiniLM-shaped model dense and compacted (half /
a quarter of the heads and FFN neurons of every layer removed with transformers' prune_heads and
a narrower FFN), inference latency at the same batch sizes, median of --runs after --warmup.
Prints JSON (one object)."""
import argparse, json, time, os
import torch
from transformers import BertConfig, BertForSequenceClassification

ap = argparse.ArgumentParser()
ap.add_argument("--keep", default="0.5,0.25")
ap.add_argument("--batch-sizes", default="1,32")
ap.add_argument("--seq-len", type=int, default=128)
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--runs", type=int, default=15)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)

def build(keep):
    m = BertForSequenceClassification(cfg).eval()
    if keep < 1.0:
        nh = round(12 * keep)
        m.prune_heads({i: list(range(nh, 12)) for i in range(6)})
        f = round(1536 * keep)
        for layer in m.bert.encoder.layer:
            inter, out = layer.intermediate.dense, layer.output.dense
            ni = torch.nn.Linear(384, f); ni.weight.data = inter.weight.data[:f].clone(); ni.bias.data = inter.bias.data[:f].clone()
            no = torch.nn.Linear(f, 384); no.weight.data = out.weight.data[:, :f].clone(); no.bias.data = out.bias.data.clone()
            layer.intermediate.dense, layer.output.dense = ni, no
    return m.to(a.device)

def sync():
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()

def timeit(m, b):
    ids = torch.randint(1000, 29000, (b, a.seq_len), device=a.device)
    ts = []
    with torch.inference_mode():
        for r in range(a.warmup + a.runs):
            sync(); t = time.perf_counter(); m(input_ids=ids); sync(); dt = time.perf_counter() - t
            if r >= a.warmup: ts.append(dt)
    return sorted(ts)[len(ts) // 2]

rows = []
keeps = [1.0] + [float(k) for k in a.keep.split(",")]
models = {k: build(k) for k in keeps}
for b in [int(x) for x in a.batch_sizes.split(",")]:
    base = timeit(models[1.0], b)
    for k in keeps:
        t = base if k == 1.0 else timeit(models[k], b)
        rows.append({"keep": k, "batch_size": b, "median_s": t, "speedup_vs_dense": base / t, "flop_ideal_speedup": 1 / k})
print(json.dumps({"impl": f"pytorch {torch.__version__}", "device": a.device, "threads": a.threads, "seq_len": a.seq_len, "results": rows}))
