#!/usr/bin/env python3
"""Picks soft movement's lambda for a target density before spending a 20-minute run on it
(issue 25: "soft movement must actually prune; pick lambda and the threshold so it lands near the
target"). Soft movement keeps a weight when sigmoid(S) > tau; how many it keeps is an outcome of
lambda, the L1 pull on sigmoid(S), against the task gradient on S (dL/dW' * W, straight-through).

1. Measures the task gradient on the scores in PyTorch + transformers: MiniLM-L6 (the cached real
   weights the trainer uses, mean pooling, a new 2-way head), the first SST-2 training sentences,
   batch 32, 64 tokens, AdamW lr 5e-5 (50 warm-up steps, clip 1.0): --dense steps of training,
   then --measure more steps during which, for every weight of the 36 encoder matrices, the
   mean mu and standard deviation sd of g = dL/dW * W over the steps are kept (a random sample of
   --sample weights per matrix).
2. Simulates the trainer's score optimizer on those weights: Adam (lr = scores_lr) moves S by
   about lr * E[g] / sqrt(E[g^2]) a step, with g = mu + the penalty's gradient
   lambda_t / n_matrices * sigmoid'(S) / numel and E[g^2] = (mu + penalty)^2 + sd^2; tau and
   lambda_t = lambda * tau_t / tau_final follow the run's cubic schedule (0 before --warmup,
   ramp over --ramp steps, then --cooldown steps at the end values); a weight is kept when
   sigmoid(S) > tau_final at the end. Reports the kept fraction for a grid of lambdas and the
   lambdas that give each --target.

The simulation assumes the gradient statistics stay as measured (they change once weights are
masked), so the result is a starting point to be checked by the real run, whose summary reports
the density reached.

    python scripts/soft_movement_calibrate.py --train ../shared/data/glue/SST-2/train.tsv
"""
import argparse, csv, json, math, random
import torch, torch.nn as nn, torch.nn.functional as F
from transformers import BertModel, BertTokenizerFast
from torch_common import MODEL

ap = argparse.ArgumentParser()
ap.add_argument("--train", required=True, help="SST-2 train.tsv")
ap.add_argument("--dense", type=int, default=100, help="training steps before measuring")
ap.add_argument("--measure", type=int, default=40, help="steps over which mu and sd are taken")
ap.add_argument("--sample", type=int, default=20000, help="weights sampled per matrix")
ap.add_argument("--warmup", type=int, default=100)
ap.add_argument("--ramp", type=int, default=500)
ap.add_argument("--cooldown", type=int, default=200)
ap.add_argument("--final-threshold", type=float, default=0.1)
ap.add_argument("--scores-lr", type=float, default=1e-2)
ap.add_argument("--targets", default="0.10,0.03")
ap.add_argument("--seed", type=int, default=42)
a = ap.parse_args()
torch.manual_seed(a.seed)
random.seed(a.seed)

with open(a.train, newline="") as f:
    rows = [(r["sentence"], int(r["label"])) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
rows = rows[: (a.dense + a.measure) * 32]
random.shuffle(rows)
tok = BertTokenizerFast.from_pretrained(MODEL)
bert = BertModel.from_pretrained(MODEL, add_pooling_layer=False).train()
head = nn.Linear(bert.config.hidden_size, 2)
params = list(bert.parameters()) + list(head.parameters())
opt = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01)
mats = [(f"{i}.{n}", m) for i, layer in enumerate(bert.encoder.layer) for n, m in
        [("q", layer.attention.self.query), ("k", layer.attention.self.key), ("v", layer.attention.self.value),
         ("o", layer.attention.output.dense), ("ffn_in", layer.intermediate.dense), ("ffn_out", layer.output.dense)]]
idx = {name: torch.randperm(m.weight.numel())[: a.sample] for name, m in mats}
s1 = {name: torch.zeros(len(i), dtype=torch.float64) for name, i in idx.items()}
s2 = {name: torch.zeros(len(i), dtype=torch.float64) for name, i in idx.items()}
for step in range(a.dense + a.measure):
    for g in opt.param_groups:
        g["lr"] = 5e-5 * min(1.0, (step + 1) / 50)
    batch = rows[step * 32:(step + 1) * 32]
    enc = tok([t for t, _ in batch], truncation=True, max_length=64, padding=True, return_tensors="pt")
    h = bert(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    loss = F.cross_entropy(head((h * m).sum(1) / m.sum(1)), torch.tensor([l for _, l in batch]))
    loss.backward()
    if step >= a.dense:
        for name, lin in mats:
            g = (lin.weight.grad * lin.weight.detach()).flatten()[idx[name]].double()
            s1[name] += g
            s2[name] += g * g
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
mu = torch.cat([s1[n] / a.measure for n, _ in mats])
sd = torch.cat([(s2[n] / a.measure - (s1[n] / a.measure) ** 2).clamp_min(0).sqrt() for n, _ in mats])
numel = torch.cat([torch.full((len(idx[n]),), float(m.weight.numel()), dtype=torch.float64) for n, m in mats])
n_mats = len(mats)


def tau_frac(step):
    """tau_t / tau_final: 0 before the ramp, the cubic ramp, then 1."""
    if step < a.warmup:
        return 0.0
    p = min(1.0, (step - a.warmup) / a.ramp)
    return 1.0 - (1.0 - p) ** 3


def kept(lams):
    """Fraction kept at the end for each lambda (one column each)."""
    lam = torch.tensor(lams, dtype=torch.float64).unsqueeze(0)
    S = torch.zeros(len(mu), len(lams), dtype=torch.float64)
    m_, s_ = mu.unsqueeze(1), sd.unsqueeze(1)
    for step in range(a.warmup + a.ramp + a.cooldown):
        sig = torch.sigmoid(S)
        g = m_ + lam * tau_frac(step) / n_mats * sig * (1 - sig) / numel.unsqueeze(1)
        S = S - a.scores_lr * g / (g * g + s_ * s_).sqrt().clamp_min(1e-30)
    return (torch.sigmoid(S) > a.final_threshold).double().mean(0).tolist()


grid = [10 ** (e / 4) for e in range(4, 33)]  # 10 .. 1e8
fr = kept(grid)
out = {"what": "soft movement: fraction of encoder weights kept at the end, simulated from measured score gradients",
       "data": f"SST-2 {a.train}, first {len(rows)} sentences", "model": MODEL, "dense_steps": a.dense, "measure_steps": a.measure,
       "sampled_weights": len(mu), "schedule": {"warmup": a.warmup, "ramp": a.ramp, "cooldown": a.cooldown},
       "final_threshold": a.final_threshold, "scores_lr": a.scores_lr,
       "median_abs_mu": mu.abs().median().item(), "median_sd": sd.median().item(),
       "grid": [{"lambda": l, "kept": k} for l, k in zip(grid, fr)], "for_target": {}}
for t in [float(x) for x in a.targets.split(",")]:
    # log-linear interpolation between the grid points around the target (kept falls with lambda)
    pairs = list(zip(grid, fr))
    for (l0, k0), (l1, k1) in zip(pairs, pairs[1:]):
        if k0 >= t >= k1 and k0 != k1:
            w = (k0 - t) / (k0 - k1)
            out["for_target"][str(t)] = math.exp(math.log(l0) + w * (math.log(l1) - math.log(l0)))
            break
print(json.dumps(out, indent=1))
