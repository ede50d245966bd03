#!/usr/bin/env python3
"""One markdown table beside each other: a configuration's accuracy right after the removal (a
one-shot sweep's runs) and after the fine-tune (a fine-tune sweep's runs), mean ± sample sd over
the seeds (runs named <config>-seedN), with the weights remaining, the compacted parameters and
the training seconds of the fine-tune runs.

    python3 scripts/oneshot_finetune_table.py --oneshot runs/sweep_a --finetune runs/sweep_b \
        --split test --configs c_swap-0.5 ld_pruner-0.5 ... > table.md

A run directory holds summary.json (runs/...), or a collected folder holds <run>.summary.json.
"""
import argparse, glob, json, os, re, statistics

ap = argparse.ArgumentParser()
ap.add_argument("--oneshot", default=None)
ap.add_argument("--finetune", required=True)
ap.add_argument("--split", default="test", choices=["test", "validation"])
ap.add_argument("--configs", nargs="+", required=True)
a = ap.parse_args()


def load(d):
    out = {}
    if d is None:
        return out
    files = glob.glob(os.path.join(d, "*", "summary.json")) + glob.glob(os.path.join(d, "*.summary.json"))
    for f in files:
        name = os.path.basename(os.path.dirname(f)) if f.endswith("/summary.json") else os.path.basename(f)[: -len(".summary.json")]
        out.setdefault(re.sub(r"-seed\d+$", "", name), []).append(json.load(open(f)))
    return out


def ms(v, scale=100.0, digits=2):
    v = [x for x in v if x is not None]
    if not v:
        return "–"
    if len(v) == 1:
        return f"{scale * v[0]:.{digits}f}"
    return f"{scale * statistics.mean(v):.{digits}f} ± {scale * statistics.stdev(v):.{digits}f}"


def acc(s):
    e = s.get(a.split)
    return e["accuracy"] if e else None


one, ft = load(a.oneshot), load(a.finetune)
print(f"| configuration | seeds | {a.split} acc. % right after the removal | {a.split} acc. % after the fine-tune | weights remaining % | params after (compacted) | fine-tune train s |")
print("|---|---|---|---|---|---|---|")
for c in a.configs:
    o, f = one.get(c, []), ft.get(c, [])
    runs = f or o
    if not runs:
        print(f"| {c} | 0 | not run | not run | – | – | – |")
        continue
    # The remaining fraction of the removal itself (a fine-tune of a compacted model reports 100%).
    rem = [s.get("prunable_remaining") for s in (o or f)]
    params = [((s.get("compaction") or {}).get("params_after")) for s in (o or f)]
    params = [p for p in params if p]
    train = [s.get("train_seconds") for s in f]
    print(
        f"| {c} | {len(runs)} | {ms([acc(s) for s in o]) if o else '–'} | {ms([acc(s) for s in f]) if f else '–'} | {ms(rem)} | "
        f"{int(statistics.mean(params)) if params else '–'} | {int(statistics.mean(train)) if train else '–'} |"
    )
