#!/usr/bin/env python3
"""Independent PyTorch check of what hard movement pruning removes first (issue 3).

Fine-tunes MiniLM-L6 on SpamAssassin for --steps dense steps while movement scores accumulate
as in the paper's code (scores init 0, their own AdamW group, straight-through top-k over an
all-ones mask), then removes x% of every encoder matrix at once -- by lowest score (movement),
at random, or by smallest |W| (magnitude) -- and evaluates without any further training:
accuracy, AUROC, and how much the pooled representation still varies between inputs.

    python scripts/movement_probe.py --pooling cls   # tanh(pooler(CLS)), as BertForSequenceClassification
    python scripts/movement_probe.py --pooling mean  # mean of the last hidden states (sentence-transformers)

Needs torch and transformers, and the cached assets the trainer fetched
(~/.cache/prunekit/assets/all-minilm-l6-v2, ~/.cache/prunekit/downloads/spam-assassin/*.tgz).
The split here is a seeded stratified 80/10/10 split of its own, not bit-identical to the
trainer's. Prints one JSON line per (criterion, fraction removed).
"""
import argparse, json, random
import torch, torch.nn as nn, torch.nn.functional as F
from transformers import BertForSequenceClassification, BertTokenizerFast
from torch_common import MODEL, TopK, mails, wrap_encoder_linears

ap = argparse.ArgumentParser()
ap.add_argument("--pooling", choices=["cls", "mean"], default="cls")
ap.add_argument("--steps", type=int, default=60)
ap.add_argument("--batch-size", type=int, default=16)
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--scores-lr", type=float, default=1e-2)
ap.add_argument("--train-samples", type=int, default=2000)
ap.add_argument("--eval-samples", type=int, default=300)
ap.add_argument("--remove", default="0.01,0.05,0.10")
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=42)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)


class Masked(nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.lin, self.fixed = lin, None
        self.mask_scores = nn.Parameter(torch.zeros_like(lin.weight))

    def forward(self, x):
        m = self.fixed if self.fixed is not None else TopK.apply(self.mask_scores, 1.0)
        return F.linear(x, self.lin.weight * m, self.lin.bias)


model = BertForSequenceClassification.from_pretrained(MODEL, num_labels=2)
masked = wrap_encoder_linears(model, Masked)
tok = BertTokenizerFast.from_pretrained(MODEL)


def logits_and_pooled(enc):
    h = model.bert(**enc).last_hidden_state
    if a.pooling == "cls":
        pooled = model.bert.pooler(h)  # tanh(dense(h_CLS)), what BertForSequenceClassification reads
    else:
        m = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1)
    return model.classifier(model.dropout(pooled)), pooled


data = mails()
rng = random.Random(13)
train, evals = [], []
for label in (0, 1):
    idx = [i for i, (_, y) in enumerate(data) if y == label]
    rng.shuffle(idx)
    train += idx[: int(0.8 * len(idx))]
    evals += idx[int(0.8 * len(idx)): int(0.9 * len(idx))]
rng.shuffle(train)
rng.shuffle(evals)
train, evals = [data[i] for i in train[: a.train_samples]], [data[i] for i in evals[: a.eval_samples]]
enc = lambda b: tok([t for t, _ in b], truncation=True, max_length=64, padding=True, return_tensors="pt")
scores = [m.mask_scores for m in masked]
others = [p for n, p in model.named_parameters() if "mask_scores" not in n]
opt = torch.optim.AdamW([{"params": scores, "lr": a.scores_lr, "weight_decay": 0.0}, {"params": others, "lr": a.lr}])
model.train()
for step in range(a.steps):
    b = [train[(step * a.batch_size + k) % len(train)] for k in range(a.batch_size)]
    loss = F.cross_entropy(logits_and_pooled(enc(b))[0], torch.tensor([y for _, y in b]))
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
model.eval()


@torch.no_grad()
def evaluate():
    d, y, pooled = [], [], []
    for i in range(0, len(evals), 64):
        b = evals[i: i + 64]
        logits, p = logits_and_pooled(enc(b))
        d.append(logits[:, 1] - logits[:, 0]); pooled.append(p); y += [l for _, l in b]
    d, y, p = torch.cat(d), torch.tensor(y), torch.cat(pooled)
    auroc = (d[y == 1][:, None] > d[y == 0][None, :]).float().mean().item()
    return {"accuracy": ((d > 0).long() == y).float().mean().item(), "auroc": auroc, "pooled_sd_across_inputs": p.std(0).mean().item()}


print(json.dumps({"pooling": a.pooling, "dense_steps": a.steps, "criterion": "none", "removed": 0.0, **evaluate()}))
gen = torch.Generator().manual_seed(0)
for criterion in ["movement", "random", "magnitude"]:
    for frac in map(float, a.remove.split(",")):
        for m in masked:
            key = {"movement": lambda: m.mask_scores.detach(), "random": lambda: torch.rand(m.lin.weight.shape, generator=gen),
                   "magnitude": lambda: m.lin.weight.detach().abs()}[criterion]()
            m.fixed = TopK.apply(key, 1 - frac)
        print(json.dumps({"pooling": a.pooling, "dense_steps": a.steps, "criterion": criterion, "removed": frac, **evaluate()}), flush=True)
