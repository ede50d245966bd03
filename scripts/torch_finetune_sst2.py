#!/usr/bin/env python3
"""PyTorch + transformers peer of experiments/speed_sst2_dense.toml: MiniLM-L6 (the same cached
real weights) fine-tuned on the first sentences of GLUE SST-2's train.tsv, max 64 tokens
(padded per batch to the longest, as the trainer's batcher does), batch 32, AdamW lr 5e-5,
dropout on, global gradient clip 1.0, shuffled with a fixed seed. Prints one JSON object with
the training throughput (the steps only, no evaluation)."""
import argparse, csv, json, random, time
import torch
from transformers import BertForSequenceClassification, BertTokenizerFast
from torch_common import MODEL

ap = argparse.ArgumentParser()
ap.add_argument("--train", required=True, help="SST-2 train.tsv")
ap.add_argument("--steps", type=int, default=100)
ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--max-length", type=int, default=64)
a = ap.parse_args()
torch.manual_seed(42)
random.seed(42)
with open(a.train, newline="") as f:
    rows = [(r["sentence"], int(r["label"])) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
rows = rows[: a.steps * a.batch_size]
random.shuffle(rows)
tok = BertTokenizerFast.from_pretrained(MODEL)
model = BertForSequenceClassification.from_pretrained(MODEL, num_labels=2).train()
opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
t0 = time.perf_counter()
for s in range(a.steps):
    batch = rows[s * a.batch_size:(s + 1) * a.batch_size]
    enc = tok([t for t, _ in batch], truncation=True, max_length=a.max_length, padding=True, return_tensors="pt")
    loss = model(**enc, labels=torch.tensor([l for _, l in batch])).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
secs = time.perf_counter() - t0
print(json.dumps({"impl": f"pytorch {torch.__version__}", "steps": a.steps, "batch_size": a.batch_size, "max_length": a.max_length,
                  "train_seconds": secs, "samples_per_second": a.steps * a.batch_size / secs, "threads": torch.get_num_threads(), "last_loss": loss.item()}))
