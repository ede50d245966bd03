#!/usr/bin/env bash
# The CPU backends in one run beside PyTorch on the same machine: burn's flex and ndarray, a
# MiniLM-shaped train step (batch 32 x 128) and inference latency (batch 1 and 32 x 128, dense and
# compacted), random weights. Writes bench/cpu_backends.json and prints a Markdown table.
# burn 0.22's `cpu` backend (cubecl + LLVM JIT) is not here: its build script downloads an LLVM
# bundle, which machines without general network access cannot fetch.
#   scripts/bench_cpu_backends.sh [steps=5] [runs=10]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-5}; runs=${2:-10}
venv=${PRUNEKIT_PYENV:-$HOME/.cache/prunekit/pyenv}
if ! "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==2.9.1" "transformers==4.57.1"
fi
cargo build --release -q -p trainer
bin=${CARGO_TARGET_DIR:-target}/release/trainer
tmp=$(mktemp -d)
for dev in flex ndarray; do
  "$bin" bench --device $dev --shape minilm --batch-size 32 --seq-len 128 --steps "$steps" --out "$tmp/step_$dev.json" >/dev/null
  "$bin" latency --device $dev --shape minilm --keep 0.5 --batch-sizes 1,32 --runs "$runs" --out "$tmp/lat_$dev.json" >/dev/null
done
"$venv/bin/python" scripts/torch_step.py --shape minilm --batch-size 32 --seq-len 128 --steps "$steps" > "$tmp/step_torch.json"
"$venv/bin/python" scripts/torch_latency.py --keep 0.5 --batch-sizes 1,32 --runs "$runs" > "$tmp/lat_torch.json"
python3 - "$tmp" bench/cpu_backends.json "$(git rev-parse --short HEAD)" "$steps" "$runs" <<'PY'
import json, sys, os, platform
tmp, out, commit, steps, runs = sys.argv[1:]
L = lambda n: json.load(open(f"{tmp}/{n}.json"))
step = {k: L(f"step_{k}") for k in ["flex", "ndarray", "torch"]}
lat = {k: L(f"lat_{k}") for k in ["flex", "ndarray", "torch"]}
def burn_ms(r, batch, dense):
    for x in r["results"]:
        if x["batch_size"] == batch and (x["variant"] == "dense") == dense and (dense or x["variant"].startswith("structured")):
            return 1e3 * x["median_s"]
def torch_ms(batch, dense):
    for x in lat["torch"]["results"]:
        if x["batch_size"] == batch and (x["keep"] == 1.0) == dense:
            return 1e3 * x["median_s"]
rows = []
t_step = step["torch"]["samples_per_second"]
rows.append(("train step, batch 32 x 128 (samples/s)", {k: step[k]["samples_per_second"] for k in ["flex", "ndarray"]}, t_step, True))
for b in [1, 32]:
    for dense in [True, False]:
        name = f"inference, batch {b} x 128, {'dense' if dense else 'compacted to 50% of heads and neurons'} (ms)"
        rows.append((name, {k: burn_ms(lat[k], b, dense) for k in ["flex", "ndarray"]}, torch_ms(b, dense), False))
table = []
for name, burn, torch, higher_better in rows:
    ratio = {k: (v / torch if higher_better else torch / v) for k, v in burn.items()}
    table.append({"workload": name, "flex": burn["flex"], "ndarray": burn["ndarray"], "pytorch": torch, "flex_speed_vs_pytorch": ratio["flex"], "ndarray_speed_vs_pytorch": ratio["ndarray"]})
res = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "commit": commit, "pytorch": step["torch"]["impl"],
       "threads": {"burn": step["flex"]["threads"], "pytorch": step["torch"]["threads"]}, "steps": int(steps), "runs": int(runs),
       "table": table, "raw": {"step": step, "latency": lat}}
json.dump(res, open(out, "w"), indent=2)
print(f"| workload | flex | ndarray | {res['pytorch']} | flex / PyTorch | ndarray / PyTorch |\n|---|---|---|---|---|---|")
for r in table:
    print(f"| {r['workload']} | {r['flex']:.2f} | {r['ndarray']:.2f} | {r['pytorch']:.2f} | {r['flex_speed_vs_pytorch']:.2f}x | {r['ndarray_speed_vs_pytorch']:.2f}x |")
print("(ratios: speed relative to PyTorch, >1 = faster)\nwrote", out)
PY
