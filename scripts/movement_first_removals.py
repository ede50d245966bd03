#!/usr/bin/env python3
"""Issue 25: which weights does movement pruning remove first, and do they matter?

Reads the hard masks of a run's checkpoint (masks.safetensors, one U8 mask per prunable matrix,
1 = kept) and compares the removed weights with the kept ones, per matrix kind, on:
  - |W| of the starting checkpoint (Adam moves a weight by at most about one learning rate a
    step, at most 0.005 over 100 steps at lr <= 5e-5, so the starting weights stand in for the
    ones cut);
  - the input feature's activation norm ||x_j|| (over SST-2 training sentences, hooks on the
    HF model): whether removals fall on the few input dimensions that carry large activations;
  - the Wanda score |W_ij|·||x_j|| (Sun et al. 2023): the percentile of the removed weights in
    each matrix's Wanda ranking (50 = what a random removal gives, low = Wanda would remove
    them too, high = Wanda would keep them).

    python scripts/movement_first_removals.py --masks RUN/checkpoints/step-00000125/masks.safetensors \
        --model ~/.cache/prunekit/assets/all-minilm-l6-v2 --sst2 ../shared/data/glue/SST-2 --out OUT.json
"""
import argparse, json
import torch
from safetensors.torch import load_file
from transformers import BertModel, BertTokenizerFast

ap = argparse.ArgumentParser()
ap.add_argument("--masks", required=True)
ap.add_argument("--model", required=True)
ap.add_argument("--sst2", required=True)
ap.add_argument("--sentences", type=int, default=512)
ap.add_argument("--out", required=True)
ap.add_argument("--label", default="")
a = ap.parse_args()

torch.manual_seed(0)
tok = BertTokenizerFast.from_pretrained(a.model)
model = BertModel.from_pretrained(a.model, add_pooling_layer=False).eval()
masks = load_file(a.masks)

lines = open(f"{a.sst2}/train.tsv").read().splitlines()[1 : 1 + a.sentences]
sents = [l.split("\t")[0] for l in lines]

# ||x_j|| over every non-padding token, per prunable linear's input.
norms, hooks = {}, []
for name, mod in model.named_modules():
    if isinstance(mod, torch.nn.Linear) and "encoder.layer" in name:
        key = "bert." + name

        def hook(m, inp, out, key=key):
            x = inp[0].reshape(-1, inp[0].shape[-1])
            x = x[hook.keep]
            norms[key] = norms.get(key, 0) + (x.double() ** 2).sum(0)

        hooks.append(mod.register_forward_hook(hook))
with torch.no_grad():
    for i in range(0, len(sents), 64):
        b = tok(sents[i : i + 64], padding=True, truncation=True, max_length=64, return_tensors="pt")
        hook.keep = b["attention_mask"].reshape(-1).bool()
        model(**b)
for h in hooks:
    h.remove()
norms = {k: v.sqrt() for k, v in norms.items()}

params = dict(model.named_parameters())
kinds = {"query": "attention.q", "key": "attention.k", "value": "attention.v", "attention.output.dense": "attention.out", "intermediate.dense": "ffn.in", "output.dense": "ffn.out"}


def kind_of(name):
    for k, v in kinds.items():
        if name.endswith(k):
            return v
    return "other"


rows, per_kind = [], {}
for name, m in masks.items():
    name = name.removesuffix(".weight_mask")
    w = params[name.removeprefix("bert.") + ".weight"].detach().abs().double()
    keep = m.bool()
    removed = ~keep
    if removed.sum() == 0:
        continue
    xn = norms[name]
    wanda = w * xn[None, :]
    # Percentile of each weight in the matrix's Wanda ranking (0 = smallest score).
    flat = wanda.flatten()
    ranks = torch.empty_like(flat)
    ranks[flat.argsort()] = torch.arange(flat.numel(), dtype=flat.dtype)
    pct = (100.0 * ranks / (flat.numel() - 1)).reshape(wanda.shape)
    top = xn >= xn.quantile(0.99)  # the 1% of input dimensions with the largest activations
    row = {
        "matrix": name,
        "kind": kind_of(name),
        "removed_fraction": removed.double().mean().item(),
        "abs_w_removed_over_kept": (w[removed].mean() / w[keep].mean()).item(),
        "wanda_percentile_of_removed": pct[removed].mean().item(),
        "removed_fraction_in_top1pct_input_dims": removed[:, top].double().mean().item(),
    }
    rows.append(row)
    per_kind.setdefault(row["kind"], []).append(row)


def mean(v):
    return sum(v) / len(v)


summary = {
    k: {f: round(mean([r[f] for r in rs]), 4) for f in ["removed_fraction", "abs_w_removed_over_kept", "wanda_percentile_of_removed", "removed_fraction_in_top1pct_input_dims"]}
    for k, rs in sorted(per_kind.items())
}
out = {"label": a.label, "masks": a.masks, "model": a.model, "sentences": len(sents), "by_kind": summary, "per_matrix": rows}
json.dump(out, open(a.out, "w"), indent=1)
print(json.dumps({"label": a.label, "by_kind": summary}, indent=1))
