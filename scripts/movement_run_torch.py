#!/usr/bin/env python3
"""PyTorch peer of a whole hard-movement run (issue 3): dense steps, the cubic ramp, steps at
the final density, then the test split -- the trainer's `method = "movement"` written
independently in PyTorch + transformers, to tell the method's behaviour from this project's.

Same recipe as experiments/movement_frozen_scores.toml by default: MiniLM-L6 (real weights),
a 2,000-mail slice of SpamAssassin, 64 tokens, batch 16, weights AdamW lr 1e-4 (decay 0.01,
none on biases/LayerNorm), scores their own AdamW group (lr 1e-2, no decay, init 0), linear
lr warm-up 10 steps then linear decay, 60 dense + 200-step ramp + 115 steps at 10%.

    --clip global         torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0): one norm over
                          every gradient, scores included (Hugging Face, the paper's code)
    --clip per_parameter  each weight tensor's gradient clipped on its own, scores not at all
                          (burn's GradientClipping::Norm, this project before 2026-12-04)
    --freeze-at N         from step N the scores get no gradient (the ranking reached at N)
    --pooling mean|cls    mean of the last hidden states (what the checkpoint declares) or the
                          CLS pooler

The split is a seeded stratified 80/10/10 split of its own (not bit-identical to the
trainer's). Prints one JSON line per evaluation and one for the test split.
"""
import argparse, json, random, time
import torch, torch.nn as nn, torch.nn.functional as F
from transformers import BertForSequenceClassification, BertTokenizerFast
from torch_common import adamw_with_scores, MODEL, TopK, mails, wrap_encoder_linears

ap = argparse.ArgumentParser()
ap.add_argument("--pooling", choices=["cls", "mean"], default="mean")
ap.add_argument("--clip", choices=["global", "per_parameter"], default="global")
ap.add_argument("--freeze-at", type=int, default=-1)
ap.add_argument("--dense", type=int, default=60)
ap.add_argument("--ramp", type=int, default=200)
ap.add_argument("--final", type=int, default=115)
ap.add_argument("--final-density", type=float, default=0.10)
ap.add_argument("--batch-size", type=int, default=16)
ap.add_argument("--lr", type=float, default=1e-4)
ap.add_argument("--scores-lr", type=float, default=1e-2)
ap.add_argument("--warmup", type=int, default=10)
ap.add_argument("--train-samples", type=int, default=2000)
ap.add_argument("--eval-samples", type=int, default=300)
ap.add_argument("--eval-every", type=int, default=25)
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--seed", type=int, default=42)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
total = a.dense + a.ramp + a.final


class Masked(nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.lin, self.keep, self.frozen = lin, 1.0, False
        self.mask_scores = nn.Parameter(torch.zeros_like(lin.weight))

    def forward(self, x):
        s = self.mask_scores.detach() if self.frozen else self.mask_scores
        return F.linear(x, self.lin.weight * TopK.apply(s, self.keep), self.lin.bias)


def cubic(step):
    if step < a.dense:
        return 1.0
    if step >= total - a.final:
        return a.final_density
    return a.final_density + (1 - a.final_density) * (1 - (step - a.dense) / a.ramp) ** 3


model = BertForSequenceClassification.from_pretrained(MODEL, num_labels=2)
masked = wrap_encoder_linears(model, Masked)
tok = BertTokenizerFast.from_pretrained(MODEL)


def logits(enc):
    h = model.bert(**enc).last_hidden_state
    if a.pooling == "cls":
        pooled = model.bert.pooler(h)
    else:
        m = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1)
    return model.classifier(model.dropout(pooled))


data = mails()
rng = random.Random(13)
train, val, test = [], [], []
for label in (0, 1):
    idx = [i for i, (_, y) in enumerate(data) if y == label]
    rng.shuffle(idx)
    n = len(idx)
    train += idx[: int(0.8 * n)]
    val += idx[int(0.8 * n): int(0.9 * n)]
    test += idx[int(0.9 * n):]
for part in (train, val, test):
    rng.shuffle(part)
train = [data[i] for i in train[: a.train_samples]]
val, test = [data[i] for i in val[: a.eval_samples]], [data[i] for i in test[: a.eval_samples]]
enc = lambda b: tok([t for t, _ in b], truncation=True, max_length=64, padding=True, return_tensors="pt")

scores = [m.mask_scores for m in masked]
opt, sched, decay, nodecay = adamw_with_scores(model, scores, a.lr, a.scores_lr, a.warmup, total)


@torch.no_grad()
def evaluate(items):
    model.eval()
    correct, loss = 0, 0.0
    tp = fp = fn = 0
    for i in range(0, len(items), 64):
        b = items[i: i + 64]
        out = logits(enc(b))
        y = torch.tensor([l for _, l in b])
        loss += F.cross_entropy(out, y, reduction="sum").item()
        p = out.argmax(-1)
        correct += (p == y).sum().item()
        tp += ((p == 1) & (y == 1)).sum().item(); fp += ((p == 1) & (y == 0)).sum().item(); fn += ((p == 0) & (y == 1)).sum().item()
    model.train()
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    return {"accuracy": correct / len(items), "f1": f1, "loss": loss / len(items)}


args = {k: v for k, v in vars(a).items()}
order, pos, t0 = list(range(len(train))), len(train), time.time()
data_rng = random.Random(a.seed)
run_loss, n_loss, gn_max = 0.0, 0, 0.0
model.train()
for step in range(total):
    keep = cubic(step)
    for m in masked:
        m.keep, m.frozen = keep, 0 <= a.freeze_at <= step
    if pos + a.batch_size > len(order):
        data_rng.shuffle(order)
        pos = 0
    b = [train[i] for i in order[pos: pos + a.batch_size]]
    pos += a.batch_size
    loss = F.cross_entropy(logits(enc(b)), torch.tensor([y for _, y in b]))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if a.clip == "global":
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
    else:
        gn = 0.0
        for p in decay + nodecay:
            if p.grad is not None:
                gn = max(gn, torch.nn.utils.clip_grad_norm_([p], 1.0).item())
    gn_max = max(gn_max, gn)
    opt.step()
    sched.step()
    run_loss += loss.item(); n_loss += 1
    done = step + 1
    if done % a.eval_every == 0 or done == total:
        kept = sum(int((TopK.apply(m.mask_scores.detach(), keep)).sum()) for m in masked) / sum(m.mask_scores.numel() for m in masked)
        print(json.dumps({"step": done, "density": keep, "kept": kept, "train_loss": run_loss / n_loss, "grad_norm_max": gn_max,
                          "validation": evaluate(val), "elapsed_s": round(time.time() - t0, 1)}), flush=True)
        run_loss, n_loss, gn_max = 0.0, 0, 0.0
print(json.dumps({"test": evaluate(test), "args": args, "elapsed_s": round(time.time() - t0, 1)}), flush=True)
