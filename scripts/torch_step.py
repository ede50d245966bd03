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
print(json.dumps({"impl": f"pytorch {torch.__version__}", "device": a.device, "shape": a.shape, "batch_size": a.batch_size,
                  "seq_len": a.seq_len, "steps": a.steps, "warmup": a.warmup, "median_step_s": med,
                  "samples_per_second": a.batch_size / med, "step_times_s": times, "threads": torch.get_num_threads()}))
