#!/usr/bin/env python3
"""Issue 25: the trainer's movement run and the PyTorch one (scripts/movement_stepwise_torch.py),
side by side, step by step: training loss and gradient norm at every step, dev accuracy every 25
steps, and at each trainer checkpoint the masks: how many weights each side has removed and how
many of the removed weights are the same (Jaccard index of the removed sets, over all matrices).

    python3 scripts/movement_stepwise_compare.py --ours RUN_DIR --torch OUT_DIR --out JSON
RUN_DIR is the trainer run (log_every = 1, checkpoint_every = 25, checkpoints kept).
"""
import argparse, glob, json, os, re
import torch
from safetensors.torch import load_file

ap = argparse.ArgumentParser()
ap.add_argument("--ours", required=True)
ap.add_argument("--torch", required=True)
ap.add_argument("--out", required=True)
a = ap.parse_args()

ours_steps, ours_evals = {}, {}
for l in open(os.path.join(a.ours, "metrics.jsonl")):
    r = json.loads(l)
    if r.get("split") == "validation":
        ours_evals[r["step"]] = r["accuracy"]
    elif "loss" in r and "grad_norm_max" in r:
        ours_steps[r["step"]] = r
torch_steps = {r["step"]: r for r in map(json.loads, open(os.path.join(a.torch, "steps.jsonl")))}
torch_evals = {r["step"]: r["accuracy"] for r in map(json.loads, open(os.path.join(a.torch, "evals.jsonl")))}

steps = sorted(set(ours_steps) & set(torch_steps))
per_step = [{"step": s, "loss_ours": ours_steps[s]["loss"], "loss_torch": torch_steps[s]["loss"],
             "grad_norm_ours": ours_steps[s]["grad_norm_max"], "grad_norm_torch": torch_steps[s]["grad_norm"],
             "density_ours": ours_steps[s]["density"], "density_torch": torch_steps[s]["density"]} for s in steps]


def window(lo, hi):
    w = [r for r in per_step if lo <= r["step"] <= hi]
    if not w:
        return None
    d = [abs(r["loss_ours"] - r["loss_torch"]) for r in w]
    return {"steps": f"{lo}-{hi}", "n": len(w),
            "mean_loss_ours": sum(r["loss_ours"] for r in w) / len(w), "mean_loss_torch": sum(r["loss_torch"] for r in w) / len(w),
            "max_abs_loss_diff": max(d), "mean_abs_loss_diff": sum(d) / len(d),
            "max_grad_norm_ours": max(r["grad_norm_ours"] for r in w), "max_grad_norm_torch": max(r["grad_norm_torch"] for r in w)}


windows = [x for x in (window(1, 1), window(1, 10), window(11, 50), window(51, 100), window(101, 110), window(111, 125), window(126, 150), window(151, 175)) if x]

masks = []
for d in sorted(glob.glob(os.path.join(a.ours, "checkpoints", "step-*"))):
    s = int(re.search(r"step-0*(\d+)", d).group(1))
    f = os.path.join(d, "masks.safetensors")
    if not os.path.exists(f):
        continue
    ours = {k.removesuffix(".weight_mask"): v.bool() for k, v in load_file(f).items()}
    removed_ours = sum(int((~v).sum()) for v in ours.values())
    if removed_ours == 0:
        continue
    row = {"step": s, "removed_ours": removed_ours, "vs_torch": []}
    for ts in (s - 1, s, s + 1):
        tf = os.path.join(a.torch, f"masks_step{ts}.pt")
        if not os.path.exists(tf):
            continue
        th = {k: v.bool() for k, v in torch.load(tf).items()}
        inter = union = removed_torch = 0
        for k, v in ours.items():
            t = th[k]
            inter += int(((~v) & (~t)).sum()); union += int(((~v) | (~t)).sum()); removed_torch += int((~t).sum())
        row["vs_torch"].append({"torch_step": ts, "removed_torch": removed_torch, "jaccard_removed": inter / max(1, union)})
    masks.append(row)

out = {"per_window": windows, "dev_accuracy": [{"step": s, "ours": ours_evals.get(s), "torch": torch_evals.get(s)} for s in sorted(set(ours_evals) | set(torch_evals))],
       "masks": masks, "per_step": per_step}
json.dump(out, open(a.out, "w"), indent=1)
print(json.dumps({k: out[k] for k in ("per_window", "dev_accuracy", "masks")}, indent=1))
