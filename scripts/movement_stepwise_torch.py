#!/usr/bin/env python3
"""Issue 25: the trainer's hard-movement run on SST-2 and a PyTorch + transformers one, step by
step, from the same start: the same weights (classifier included), the same batches in the same
order, no dropout. What differs is only the arithmetic (burn's flex kernels against PyTorch's)
and any difference in the method's implementation, which is what this looks for.

The start: a trainer run of one step at lr 1e-30 (weights unchanged) saves MiniLM-L6 with the
classifier the trainer initialised from its seed as a Hugging Face directory; its config.json's
dropout probabilities are set to 0, and both runs start from that directory. The order: the
trainer shuffles 0..n with SplitMix64(seed) (crates/datasets/src/split.rs, Fisher-Yates with
j = next % (i + 1)), replayed here. The recipe is experiments/sst2_movement.toml's: the first
25,600 training sentences, 64 tokens, batch 32, AdamW lr 5e-5 (decay 0.01, none on biases and
LayerNorm), 50 warm-up steps then linear decay to 0 at step 800, global gradient clipping at 1.0
(scores included), scores in their own group (lr 1e-2, no decay, init 0), 100 dense steps, a
cubic ramp to 10% over 500 steps, 200 steps at 10%. Mean pooling (what the checkpoint declares).

Writes, under --out: steps.jsonl (per step: loss, the global gradient norm before clipping,
density), evals.jsonl (dev accuracy every --eval-every steps), and masks_step{S}.pt for the
steps in --mask-steps (the masks used by step S's forward pass, S counted from 1 like the
trainer's checkpoints). scripts/movement_stepwise_compare.py puts the two runs side by side.

    python3 scripts/movement_stepwise_torch.py --init DIR --sst2 ../shared/data/glue/SST-2 --out OUT --steps 175
"""
import argparse, json, os, time
import torch, torch.nn as nn, torch.nn.functional as F
from transformers import BertForSequenceClassification, BertTokenizerFast
from torch_common import adamw_with_scores, TopK, wrap_encoder_linears

ap = argparse.ArgumentParser()
ap.add_argument("--init", required=True)
ap.add_argument("--sst2", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--steps", type=int, default=175, help="stop after this many steps (the schedule is still that of --total)")
ap.add_argument("--total", type=int, default=800)
ap.add_argument("--dense", type=int, default=100)
ap.add_argument("--cooldown", type=int, default=200)
ap.add_argument("--final-density", type=float, default=0.10)
ap.add_argument("--train-samples", type=int, default=25600)
ap.add_argument("--batch-size", type=int, default=32)
ap.add_argument("--lr", type=float, default=5e-5)
ap.add_argument("--warmup", type=int, default=50)
ap.add_argument("--scores-lr", type=float, default=1e-2)
ap.add_argument("--seed", type=int, default=42)
ap.add_argument("--eval-every", type=int, default=25)
ap.add_argument("--mask-steps", default="101,110,125,150")
ap.add_argument("--threads", type=int, default=1)
a = ap.parse_args()
torch.set_num_threads(a.threads)
os.makedirs(a.out, exist_ok=True)
mask_steps = {int(s) for s in a.mask_steps.split(",") if s}


def density(step):  # crates/pruners/src/schedule.rs, step counted from 0
    if step < a.dense:
        return 1.0
    span = a.total - a.dense - a.cooldown
    if step >= a.total - a.cooldown:
        return a.final_density
    return a.final_density + (1 - a.final_density) * (1 - (step - a.dense) / span) ** 3


M64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def shuffle(self, v):
        for i in range(len(v) - 1, 0, -1):
            j = self.next() % (i + 1)
            v[i], v[j] = v[j], v[i]


class Masked(nn.Module):
    def __init__(self, lin):
        super().__init__()
        self.lin, self.keep = lin, 1.0
        self.mask_scores = nn.Parameter(torch.zeros_like(lin.weight))
        self.last_mask = None

    def forward(self, x):
        m = TopK.apply(self.mask_scores, self.keep)
        self.last_mask = m.detach()
        return F.linear(x, self.lin.weight * m, self.lin.bias)


def rows(path):
    lines = open(path).read().splitlines()[1:]
    out = []
    for l in lines:
        s, y = l.rsplit("\t", 1)
        out.append((s, int(y)))
    return out


train = rows(os.path.join(a.sst2, "train.tsv"))[: a.train_samples]
dev = rows(os.path.join(a.sst2, "dev.tsv"))
model = BertForSequenceClassification.from_pretrained(a.init)
assert model.config.hidden_dropout_prob == 0 and model.config.attention_probs_dropout_prob == 0, "set the dropouts of --init's config.json to 0"
masked = wrap_encoder_linears(model, Masked)
tok = BertTokenizerFast.from_pretrained(a.init)
enc = lambda b: tok([t for t, _ in b], truncation=True, max_length=64, padding=True, return_tensors="pt")


def logits(e):
    h = model.bert(**e).last_hidden_state
    m = e["attention_mask"].unsqueeze(-1).float()
    return model.classifier((h * m).sum(1) / m.sum(1))


scores = [m.mask_scores for m in masked]
opt, sched, decay, nodecay = adamw_with_scores(model, scores, a.lr, a.scores_lr, a.warmup, a.total)


@torch.no_grad()
def evaluate():
    model.eval()
    correct = 0
    for i in range(0, len(dev), 64):
        b = dev[i: i + 64]
        correct += (logits(enc(b)).argmax(-1) == torch.tensor([y for _, y in b])).sum().item()
    model.train()
    return correct / len(dev)


order = list(range(len(train)))
SplitMix64(a.seed).shuffle(order)
names = [f"bert.encoder.layer.{i // 6}.{['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense', 'intermediate.dense', 'output.dense'][i % 6]}" for i in range(len(masked))]
steps_f, evals_f = open(os.path.join(a.out, "steps.jsonl"), "w"), open(os.path.join(a.out, "evals.jsonl"), "w")
t0 = time.time()
model.train()
for step in range(a.steps):
    keep = density(step)
    for m in masked:
        m.keep = keep
    b = [train[i] for i in order[step * a.batch_size: (step + 1) * a.batch_size]]
    loss = F.cross_entropy(logits(enc(b)), torch.tensor([y for _, y in b]))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
    opt.step()
    sched.step()
    done = step + 1
    steps_f.write(json.dumps({"step": done, "loss": loss.item(), "grad_norm": gn, "density": keep}) + "\n")
    if done in mask_steps:
        torch.save({n: m.last_mask.to(torch.uint8) for n, m in zip(names, masked)}, os.path.join(a.out, f"masks_step{done}.pt"))
    if done % a.eval_every == 0:
        evals_f.write(json.dumps({"step": done, "accuracy": evaluate(), "elapsed_s": round(time.time() - t0, 1)}) + "\n")
        evals_f.flush(); steps_f.flush()
        print(f"step {done} loss {loss.item():.4f} grad norm {gn:.2f} density {keep:.4f}", flush=True)
