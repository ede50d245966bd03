#!/usr/bin/env python3
"""Checks that a checkpoint written by this project loads in PyTorch `transformers` and gives the
same outputs there: token ids, last-layer CLS vector and classifier logits (within --tol), the
exact zeros of every pruned matrix, and masks.safetensors (if present) agreeing with the zeros.

    trainer encode --model runs/X --input sentences.txt > ours.jsonl
    python scripts/check_hf_load.py runs/X ours.jsonl

Needs torch, transformers and safetensors. Prints one line per check and exits 1 on a mismatch.
"""
import json, os, sys, argparse
import torch
from transformers import AutoTokenizer, BertForSequenceClassification

ap = argparse.ArgumentParser()
ap.add_argument("model_dir")
ap.add_argument("ours", help="output of `trainer encode` on the same directory")
ap.add_argument("--tol", type=float, default=1e-4)
a = ap.parse_args()

model = BertForSequenceClassification.from_pretrained(a.model_dir).eval()
# This project's key: the head reads the mean of the last hidden states (sentence-transformers
# pooling) instead of tanh(pooler(CLS)); transformers ignores the key, so apply it here.
mean_pooling = json.load(open(os.path.join(a.model_dir, "config.json"))).get("classifier_pooling") == "mean"
tok = AutoTokenizer.from_pretrained(a.model_dir)
bad = 0
worst_cls = worst_logit = 0.0
for line in open(a.ours):
    o = json.loads(line)
    enc = tok(o["text"], return_tensors="pt", truncation=True, max_length=512)
    ids = enc["input_ids"][0].tolist()
    if ids != o["input_ids"]:
        print("token ids differ:", o["text"][:60]); bad += 1; continue
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    cls = out.hidden_states[-1][0, 0]
    worst_cls = max(worst_cls, (cls - torch.tensor(o["cls"])).abs().max().item())
    logits = out.logits[0]
    if mean_pooling:
        with torch.no_grad():
            logits = model.classifier(out.hidden_states[-1][0].mean(0))
    if "logits" in o:
        worst_logit = max(worst_logit, (logits - torch.tensor(o["logits"])).abs().max().item())
print(f"max |CLS difference| {worst_cls:.2e}, max |logit difference| {worst_logit:.2e} (tolerance {a.tol})")
bad += worst_cls > a.tol or worst_logit > a.tol

sd = model.state_dict()
prunable = [k for k in sd if ".encoder.layer." in k and k.endswith(".weight") and sd[k].dim() == 2]
zeros = sum(int((sd[k] == 0).sum()) for k in prunable)
numel = sum(sd[k].numel() for k in prunable)
print(f"encoder Linear weights in transformers: {numel - zeros} of {numel} non-zero ({100 * zeros / numel:.2f}% sparsity)")
mpath = os.path.join(a.model_dir, "masks.safetensors")
if os.path.exists(mpath):
    from safetensors.torch import load_file
    masks = load_file(mpath)
    disagree = 0
    for name, m in masks.items():
        w = sd[name[: -len("_mask")]]
        disagree += int(((w != 0) != (m != 0)).sum())
    print(f"masks.safetensors: {len(masks)} masks, {disagree} entries disagree with the weights' zeros")
    bad += disagree > 0
sys.exit(1 if bad else 0)
