#!/usr/bin/env python3
"""One markdown table from the runs of one or more sweep directories of structured runs: per
configuration (run name without -seedN), the test accuracy (mean ± sample sd over seeds), the
accuracy before pruning, the compacted parameters and MACs per example, the units kept, the
latency before/after when recorded, steps and training seconds.
    python3 scripts/compaction_table.py [--latency bench/cnn_latency.json] runs/sweep_a [runs/sweep_b ...] > table.md
With --latency (the JSON of `trainer latency --cnn-runs ...`), the latency column is that quiet,
interleaved measurement of each run's compacted shapes (mean over the seeds' shapes) instead of
the one recorded inside the run.
"""
import glob, json, os, re, statistics, sys

args = sys.argv[1:]
quiet = None
if args and args[0] == "--latency":
    bench = json.load(open(args[1]))
    args = args[2:]
    quiet = {}  # (run name, batch) -> median ms; ("dense", batch) -> dense median
    for r in bench["results"]:
        if r["dense"]:
            quiet[("dense", r["batch_size"])] = r["median_ms"]
        for n in r["runs"]:
            quiet[(n, r["batch_size"])] = r["median_ms"]

rows = {}
for d in args:
    for f in sorted(glob.glob(os.path.join(d, "*", "summary.json"))):
        name = os.path.basename(os.path.dirname(f))
        cfg = re.sub(r"-seed\d+$", "", name)
        rows.setdefault((os.path.basename(d.rstrip("/")), cfg), []).append(json.load(open(f)))

def ms(v):
    v = [x for x in v if x is not None]
    if not v:
        return "–"
    if len(v) == 1:
        return f"{100 * v[0]:.2f}"
    return f"{100 * statistics.mean(v):.2f} ± {100 * statistics.stdev(v):.2f}"

def mean(v, fmt="{:.0f}"):
    v = [x for x in v if x is not None]
    return fmt.format(statistics.mean(v)) if v else "–"

print("| sweep | configuration | seeds | test acc. % | before pruning % | units kept | params after | MACs after | latency b1 / b256 ms (before → after) | steps | train s |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (sweep, cfg), runs in rows.items():
    c = [r.get("compaction") or {} for r in runs]
    kept = c[0].get("kept")
    units = f"{sum(k[1] for k in kept)}/{sum(k[2] for k in kept)}" if kept else "–"
    if c[0].get("heads") is not None:  # ViT: heads kept per layer and FFN widths
        h = statistics.mean(sum(len(l) for l in x["heads"]) for x in c)
        f = statistics.mean(sum(x["ffn_widths"]) for x in c)
        units = f"heads {h:.1f}, neurons {f:.0f} (mean)"
    if kept and len(runs) > 1:
        units = f"{statistics.mean(sum(k[1] for k in x['kept']) for x in c if x.get('kept')):.0f}/{sum(k[2] for k in kept)} (mean)"
    lat = "–"
    if quiet is not None:
        after = {b: [quiet.get((r["name"], b)) for r in runs] for b in (1, 256)}
        if all(None not in v for v in after.values()) and ("dense", 1) in quiet:
            lat = (f"{quiet[('dense', 1)]:.2f} → {statistics.mean(after[1]):.2f} / "
                   f"{quiet[('dense', 256)]:.1f} → {statistics.mean(after[256]):.1f}")
    elif c[0].get("latency_ms_before"):
        b, a = c[0]["latency_ms_before"], c[0]["latency_ms_after"]
        lat = f"{b['batch_1']:.2f} → {a['batch_1']:.2f} / {b['batch_256']:.1f} → {a['batch_256']:.1f}"
    before = [((r.get("before_pruning") or {}).get("test") or {}).get("accuracy") for r in runs]
    print(f"| {sweep} | {cfg} | {len(runs)} | {ms([r['test']['accuracy'] for r in runs])} | {ms(before)} | {units} | "
          f"{mean([x.get('params_after') for x in c])} | {mean([x.get('macs_after') for x in c])} | {lat} | {runs[0]['steps']} | {mean([r['train_seconds'] for r in runs], '{:.1f}')} |")
