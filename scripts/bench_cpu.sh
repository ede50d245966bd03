#!/usr/bin/env bash
# CPU training-step throughput: burn (flex and ndarray backends) vs PyTorch + transformers, same
# machine, same shapes, same run. Writes bench/cpu_<shape>.json with the ratio.
#   scripts/bench_cpu.sh [shape=minilm] [batch=32] [seq=128] [steps=5]
set -euo pipefail
cd "$(dirname "$0")/.."
shape=${1:-minilm}; batch=${2:-32}; seq=${3:-128}; steps=${4:-5}
venv=${PRUNEKIT_PYENV:-$HOME/.cache/prunekit/pyenv}
if ! "$venv/bin/python" -c "import torch, transformers" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==2.9.1" "transformers==4.57.1"
fi
mkdir -p bench
tmp=$(mktemp -d)
cargo build --release -q -p trainer
for dev in flex ndarray; do
  cargo run --release -q -p trainer -- bench --device "$dev" --shape "$shape" --batch-size "$batch" --seq-len "$seq" --steps "$steps" --out "$tmp/burn_$dev.json" >/dev/null
done
cargo run --release -q -p trainer -- bench --device flex --pruning movement --shape "$shape" --batch-size "$batch" --seq-len "$seq" --steps "$steps" --out "$tmp/burn_flex_movement.json" >/dev/null
"$venv/bin/python" scripts/torch_step.py --shape "$shape" --batch-size "$batch" --seq-len "$seq" --steps "$steps" > "$tmp/torch.json"
python3 - "$tmp" "bench/cpu_${shape}.json" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import json, sys, platform, os
tmp, out, commit = sys.argv[1:]
r = {k: json.load(open(f"{tmp}/{k}.json")) for k in ["burn_flex", "burn_ndarray", "burn_flex_movement", "torch"]}
t = r["torch"]["samples_per_second"]
res = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "commit": commit, "results": r,
       "ratio_vs_pytorch": {k: r[k]["samples_per_second"] / t for k in r if k != "torch"}}
json.dump(res, open(out, "w"), indent=2)
for k, v in res["ratio_vs_pytorch"].items():
    print(f"{k:22s} {r[k]['samples_per_second']:7.2f} samples/s  = {v:.2f} x PyTorch ({t:.2f} samples/s)")
print("wrote", out)
PY
