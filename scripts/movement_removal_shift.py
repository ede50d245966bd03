#!/usr/bin/env python3
"""Issue 25: is the damage of movement's first removals a coherent shift of each layer's outputs?

Movement scores accumulate -sum_t W * dL/dW (through the straight-through top-k). A weight gets a
low score when, step after step, its contribution W_ij * x_j pushes the output a_i the way the
loss dislikes. So the weights cut first from a row tend to share the sign of their
contribution: removing them moves a_i by a systematic amount on every input (a bias shift),
where a random removal of the same count mostly cancels out. This probe measures that.

It fine-tunes MiniLM-L6 (the cached real weights) on SST-2 for --dense-steps steps as the
trainer's experiments/sst2_movement.toml does before its ramp (batch 32, 64 tokens, AdamW lr 5e-5
with 50 warm-up steps, scores their own AdamW group at lr 1e-2, init 0, global clip 1.0), then
removes a fraction of every encoder matrix at once by lowest movement score, at random, or by
smallest |W| (per matrix, as the trainer's default scope), and reports, without further
training:
  - per matrix kind, the removed part's output R = (W * (1-M)) x on held-out training tokens:
    its energy against the layer's output (mean ||R||^2 / mean ||W x||^2) and its coherent
    share ||mean_t R||^2 / mean_t ||R||^2 (1 = the same shift on every token, ~0 = noise);
  - dev accuracy and loss (872 sentences), as removed and with the removed part's mean output
    added to the layer's bias ("bias compensation", computed on those held-out tokens with the
    dense model's inputs): if compensation gives back most of the accuracy, the damage was the
    shift.

    python scripts/movement_removal_shift.py --sst2 ../shared/data/glue/SST-2 --out OUT.json

Independent of the trainer (PyTorch + transformers); its data order is its own (seeded shuffle
of the first --train-samples sentences), not the trainer's.
"""
import argparse, json, random, time
import torch, torch.nn as nn, torch.nn.functional as F
from transformers import BertForSequenceClassification, BertTokenizerFast
from torch_common import MODEL, TopK, wrap_encoder_linears

ap = argparse.ArgumentParser()
ap.add_argument("--sst2", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--dense-steps", type=int, default=100)
ap.add_argument("--total-steps", type=int, default=800, help="for the linear lr decay, as the trainer's run")
ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--lr", type=float, default=5e-5)
ap.add_argument("--warmup", type=int, default=50)
ap.add_argument("--scores-lr", type=float, default=1e-2)
ap.add_argument("--train-samples", type=int, default=25600)
ap.add_argument("--calib-sentences", type=int, default=256)
ap.add_argument("--remove", default="0.05,0.123")
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=42)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
KINDS = ["query", "key", "value", "attn_out", "ffn_in", "ffn_out"]


def read_tsv(path):
    rows = [l.split("\t") for l in open(path, encoding="utf-8").read().splitlines()[1:]]
    return [(r[0], int(r[1])) for r in rows if len(r) >= 2]


train_all = read_tsv(f"{a.sst2}/train.tsv")[: a.train_samples]
dev = read_tsv(f"{a.sst2}/dev.tsv")
rng = random.Random(a.seed)
order = list(range(len(train_all)))
rng.shuffle(order)
train = [train_all[i] for i in order]
calib = train[-a.calib_sentences:]  # held out from the dense steps below (they read the front)


class Masked(nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.lin, self.fixed, self.bias_shift = lin, None, None
        self.mask_scores = nn.Parameter(torch.zeros_like(lin.weight))
        self.inputs = None  # set to a list to record inputs

    def forward(self, x):
        if self.inputs is not None:
            self.inputs.append(x.detach().reshape(-1, x.shape[-1]))
        m = self.fixed if self.fixed is not None else TopK.apply(self.mask_scores, 1.0)
        y = F.linear(x, self.lin.weight * m, self.lin.bias)
        return y if self.bias_shift is None else y + self.bias_shift


model = BertForSequenceClassification.from_pretrained(MODEL, num_labels=2)
masked = wrap_encoder_linears(model, Masked)
tok = BertTokenizerFast.from_pretrained(MODEL)
enc = lambda b: tok([t for t, _ in b], truncation=True, max_length=64, padding=True, return_tensors="pt")


def logits(e):
    h = model.bert(**e).last_hidden_state
    m = e["attention_mask"].unsqueeze(-1).float()
    return model.classifier(model.dropout((h * m).sum(1) / m.sum(1)))


scores = [m.mask_scores for m in masked]
decay = [p for n, p in model.named_parameters() if "mask_scores" not in n and not (n.endswith("bias") or "LayerNorm" in n)]
no_decay = [p for n, p in model.named_parameters() if "mask_scores" not in n and (n.endswith("bias") or "LayerNorm" in n)]
opt = torch.optim.AdamW([{"params": scores, "lr": a.scores_lr, "weight_decay": 0.0},
                         {"params": decay, "lr": a.lr, "weight_decay": 0.01}, {"params": no_decay, "lr": a.lr, "weight_decay": 0.0}])
sched = lambda s: (s + 1) / a.warmup if s < a.warmup else max(0.0, (a.total_steps - s) / (a.total_steps - a.warmup))
t0 = time.time()
model.train()
for step in range(a.dense_steps):
    for g, base in zip(opt.param_groups, [a.scores_lr, a.lr, a.lr]):
        g["lr"] = base if g["params"] is scores else base * sched(step)
    b = train[step * a.batch_size: (step + 1) * a.batch_size]
    loss = F.cross_entropy(logits(enc(b)), torch.tensor([y for _, y in b]))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if (step + 1) % 25 == 0:
        print(json.dumps({"step": step + 1, "loss": loss.item(), "seconds": round(time.time() - t0, 1)}), flush=True)
model.eval()


@torch.no_grad()
def evaluate():
    correct, total_loss = 0, 0.0
    for i in range(0, len(dev), 64):
        b = dev[i: i + 64]
        lg = logits(enc(b))
        y = torch.tensor([l for _, l in b])
        correct += (lg.argmax(-1) == y).sum().item()
        total_loss += F.cross_entropy(lg, y, reduction="sum").item()
    return {"accuracy": correct / len(dev), "loss": total_loss / len(dev)}


# The dense model's inputs to every wrapped matrix on held-out tokens (padding dropped).
with torch.no_grad():
    for m in masked:
        m.inputs = []
    keep_rows = []
    for i in range(0, len(calib), 64):
        e = enc(calib[i: i + 64])
        keep_rows.append(e["attention_mask"].reshape(-1).bool())
        logits(e)
    keep = torch.cat(keep_rows)
    X = []
    for m in masked:
        X.append(torch.cat(m.inputs)[keep])
        m.inputs = None

dense = evaluate()
results = {"recipe": vars(a), "dense_after_steps": dense, "calibration_tokens": int(keep.sum()), "removals": []}
print(json.dumps({"dense": dense}), flush=True)
gen = torch.Generator().manual_seed(a.seed)
for criterion in ["movement", "random", "magnitude"]:
    for frac in map(float, a.remove.split(",")):
        per_kind = {k: {"energy": [], "coherent": []} for k in KINDS}
        shifts = []
        with torch.no_grad():
            for idx, (m, x) in enumerate(zip(masked, X)):
                w = m.lin.weight
                key = {"movement": lambda: m.mask_scores.detach(), "random": lambda: torch.rand(w.shape, generator=gen),
                       "magnitude": lambda: w.abs()}[criterion]()
                m.fixed = TopK.apply(key, 1 - frac)
                r = x @ (w * (1 - m.fixed)).t()  # the removed part's output, [tokens, out]
                full = x @ w.t()
                mean_r = r.mean(0)
                per_kind[KINDS[idx % 6]]["energy"].append(((r ** 2).sum(1).mean() / (full ** 2).sum(1).mean()).item())
                per_kind[KINDS[idx % 6]]["coherent"].append(((mean_r ** 2).sum() / (r ** 2).sum(1).mean()).item())
                shifts.append(mean_r)
        removed = evaluate()
        for m, s in zip(masked, shifts):
            m.bias_shift = s
        compensated = evaluate()
        for m in masked:
            m.bias_shift = None
        row = {"criterion": criterion, "removed": frac, "as_removed": removed, "bias_compensated": compensated,
               "per_kind": {k: {q: sum(v) / len(v) for q, v in d.items()} for k, d in per_kind.items()}}
        results["removals"].append(row)
        print(json.dumps(row), flush=True)
for m in masked:
    m.fixed = None
results["seconds"] = round(time.time() - t0, 1)
json.dump(results, open(a.out, "w"), indent=1)
