#!/usr/bin/env python3
"""PyTorch + transformers peer of `trainer bench`: times the same fine-tuning step (BERT
sequence classification, random weights with the given shapes, AdamW, train mode with dropout)
on the same machine, and prints one JSON object with the same fields."""
import argparse, json, os, time

import torch
from transformers import BertConfig, BertForSequenceClassification

SHAPES = {"minilm": (384, 6, 12, 1536), "bert-base": (768, 12, 12, 3072)}

p = argparse.ArgumentParser()
p.add_argument("--shape", default="minilm", choices=SHAPES)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--seq-len", type=int, default=128)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--device", default="cpu")
p.add_argument("--profile", action="store_true", help="also split steps into forward/backward/clip/optimizer, and by operator (torch.profiler)")
a = p.parse_args()

torch.manual_seed(0)
h, l, heads, ffn = SHAPES[a.shape]
cfg = BertConfig(vocab_size=30522, hidden_size=h, num_hidden_layers=l, num_attention_heads=heads, intermediate_size=ffn, num_labels=2)
model = BertForSequenceClassification(cfg).to(a.device).train()
opt = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.01, eps=1e-8)
ids = torch.randint(0, 30000, (a.batch_size, a.seq_len), device=a.device)
mask = torch.ones_like(ids)
labels = torch.randint(0, 2, (a.batch_size,), device=a.device)
times = []
for step in range(a.warmup + a.steps):
    t = time.perf_counter()
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    if step >= a.warmup:
        times.append(time.perf_counter() - t)
times.sort()
med = times[len(times) // 2]
profile = {}
if a.profile:
    phases = {k: [] for k in ["forward", "backward", "clip", "optimizer", "total"]}
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        t3 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        if step >= a.warmup:
            for k, v in zip(phases, [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0]):
                phases[k].append(v)
    profile["profile_median_s"] = {k: sorted(v)[len(v) // 2] for k, v in phases.items()}
    # By operator: self CPU time per aten op over one step, the top 25.
    from torch.profiler import profile as tprofile, ProfilerActivity
    with tprofile(activities=[ProfilerActivity.CPU]) as prof:
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:25]
    profile["ops_self_cpu_s"] = {e.key: e.self_cpu_time_total / 1e6 for e in ops}
print(json.dumps({**profile, "impl": f"pytorch {torch.__version__}", "device": a.device, "shape": a.shape, "batch_size": a.batch_size,
                  "seq_len": a.seq_len, "steps": a.steps, "warmup": a.warmup, "median_step_s": med,
                  "samples_per_second": a.batch_size / med, "step_times_s": times, "threads": torch.get_num_threads()}))
