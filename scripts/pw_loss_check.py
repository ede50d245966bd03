"""Cross-check of the performance-weighted loss in PyTorch, on the same encoded data.

Reads an encoded tabular dataset from prunekit's cache (`<cache>/encoded/*.json` + `.f32`), trains
the same MLP dense with cross-entropy for `--dense-epochs`, then continues for `--more-epochs`
either with cross-entropy or with the performance-weighted loss (Meyer & Wong: weights
w = β + (1−β)(1 − p̂_y)^γ and targets from the model at the switch, cached), and prints test
accuracy and the accuracy of each subgroup. No pruning: this isolates the loss.

    python scripts/pw_loss_check.py ~/.cache/prunekit/encoded/compas-XXXX --hidden 64 64 \
        --batch 64 --dense-epochs 10 --more-epochs 20
"""
import argparse, json
import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("cache")
p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
p.add_argument("--batch", type=int, default=64)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--dense-epochs", type=int, default=10)
p.add_argument("--more-epochs", type=int, default=20)
p.add_argument("--beta", type=float, default=0.75)
p.add_argument("--gamma", type=float, default=5.0)
p.add_argument("--seed", type=int, default=1)
a = p.parse_args()

meta = json.load(open(a.cache + ".json"))
x = np.fromfile(a.cache + ".f32", dtype="<f4")
d = len(meta["feature_names"])
splits, off = {}, 0
for s in ["train", "validation", "test"]:
    n = len(meta[s]["y"])
    splits[s] = (torch.tensor(x[off * d:(off + n) * d].reshape(n, d)), torch.tensor(meta[s]["y"]), meta[s]["groups"])
    off += n


def run(loss_kind):
    torch.manual_seed(a.seed)
    dims = [d] + a.hidden + [len(meta["label_names"])]
    layers = []
    for i in range(len(dims) - 1):
        layers.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    xtr, ytr, _ = splits["train"]
    n = len(ytr)
    total = (a.dense_epochs + a.more_epochs) * ((n + a.batch - 1) // a.batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / total))
    g = torch.Generator().manual_seed(a.seed)
    w_all = t_all = None
    for epoch in range(a.dense_epochs + a.more_epochs):
        if epoch == a.dense_epochs and loss_kind == "pw":
            with torch.no_grad():
                p_ = torch.softmax(model(xtr), 1)
                py = p_.gather(1, ytr[:, None])[:, 0]
                w_all = a.beta + (1 - a.beta) * (1 - py) ** a.gamma
                right = (p_.argmax(1) == ytr)[:, None].float()
                t_all = p_ * right + torch.nn.functional.one_hot(ytr, p_.shape[1]).float() * (1 - right)
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, a.batch):
            idx = perm[i:i + a.batch]
            logits = model(xtr[idx])
            if w_all is None:
                loss = torch.nn.functional.cross_entropy(logits, ytr[idx])
            else:
                ce = -(t_all[idx] * torch.log_softmax(logits, 1)).sum(1)
                loss = (w_all[idx] * ce).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
    xte, yte, groups = splits["test"]
    with torch.no_grad():
        pred = model(xte).argmax(1)
    acc = (pred == yte).float().mean().item()
    out = {"loss": loss_kind, "test_accuracy": round(acc, 4)}
    for attr, values in zip(meta["group_by"], groups):
        per = {}
        for v in sorted(set(values)):
            m = torch.tensor([x == v for x in values])
            if m.sum() >= 30:
                per[v] = round((pred[m] == yte[m]).float().mean().item(), 4)
        out[attr + "_gap"] = round(max(per.values()) - min(per.values()), 4)
    return out


for kind in ["ce", "pw"]:
    print(json.dumps(run(kind)))
