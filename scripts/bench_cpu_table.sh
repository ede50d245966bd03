#!/usr/bin/env bash
# Issue 22's four CPU workloads, prunekit vs PyTorch, in one run on this machine:
#   1. MiniLM train step, batch 32 x 128 (random weights; trainer bench / torch_step.py)
#   2. SST-2 dense fine-tune, batch 32, max 64 tokens, 100 steps (real MiniLM weights;
#      experiments/speed_sst2_dense.toml / torch_finetune_sst2.py), training throughput only
#   3. MiniLM inference, batch 1 x 128, and 4. batch 32 x 128 (trainer latency / torch_latency.py)
# Optionally also an older trainer binary (BEFORE=path) in the same run, for before/after, and a
# binary built with `--features tch` (TCH=path) run on device = "libtorch" (LD_LIBRARY_PATH gets
# the pyenv's torch/lib).
# Writes bench/cpu_table.json.   SST2=/path/to/SST-2 [BEFORE=/path/trainer] scripts/bench_cpu_table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
sst2=$(realpath "${SST2:-../shared/data/glue/SST-2}")
venv=${PRUNEKIT_PYENV:-$HOME/.cache/prunekit/pyenv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/prunekit/target}
cargo build --release -q -p trainer
tmp=$(mktemp -d)
cp "$CARGO_TARGET_DIR/release/trainer" "$tmp/trainer_after"
bins="after"
if [ -n "${BEFORE:-}" ]; then cp "$BEFORE" "$tmp/trainer_before"; bins="before after"; fi
if [ -n "${TCH:-}" ]; then
  cp "$TCH" "$tmp/trainer_libtorch"; bins="$bins libtorch"
  export LD_LIBRARY_PATH="$("$venv/bin/python" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
dev() { if [ "$1" = libtorch ]; then echo libtorch; else echo "$2"; fi; }
py="$venv/bin/python"
for b in $bins; do
  "$tmp/trainer_$b" bench --device "$(dev "$b" flex)" --batch-size 32 --seq-len 128 --warmup 1 --steps 5 --out "$tmp/step_$b.json" >/dev/null 2>&1
done
"$py" scripts/torch_step.py --batch-size 32 --seq-len 128 --warmup 1 --steps 5 2>/dev/null > "$tmp/step_torch.json"
for b in $bins; do
  "$tmp/trainer_$b" experiments/speed_sst2_dense.toml --set "data.train=$sst2/train.tsv" --set "data.validation=$sst2/dev.tsv" \
    --set "output_dir=$tmp/sst2_$b" --set "device=$(dev "$b" cpu)" >/dev/null 2>&1
  cp "$tmp/sst2_$b/summary.json" "$tmp/sst2_$b.json"
done
(cd scripts && "$py" torch_finetune_sst2.py --train "$sst2/train.tsv" --steps 100 2>/dev/null) > "$tmp/sst2_torch.json"
for b in $bins; do
  "$tmp/trainer_$b" latency --device "$(dev "$b" cpu)" --model minilm --keep 0.5 --batch-sizes 1,32 --runs 10 --out "$tmp/lat_$b.json" >/dev/null 2>&1
done
"$py" scripts/torch_latency.py --keep 0.5 --batch-sizes 1,32 --runs 10 2>/dev/null > "$tmp/lat_torch.json"
python3 - "$tmp" "$bins" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import json, sys, os, platform
tmp, bins, commit = sys.argv[1], sys.argv[2].split(), sys.argv[3]
J = lambda n: json.load(open(f"{tmp}/{n}.json"))
def dense_latency(r, batch):
    return next(x["median_s"] for x in r["results"] if x["batch_size"] == batch and x.get("variant", "dense") == "dense" and x.get("keep", 1.0) == 1.0)
rows = {}
t_step, t_sst2, t_lat = J("step_torch"), J("sst2_torch"), J("lat_torch")
torch = {"train_step_32x128_samples_per_s": t_step["samples_per_second"], "sst2_finetune_samples_per_s": t_sst2["samples_per_second"],
         "inference_1x128_ms": 1e3 * dense_latency(t_lat, 1), "inference_32x128_ms": 1e3 * dense_latency(t_lat, 32)}
for b in bins:
    s, f, l = J(f"step_{b}"), J(f"sst2_{b}"), J(f"lat_{b}")
    rows[b] = {"train_step_32x128_samples_per_s": s["samples_per_second"], "sst2_finetune_samples_per_s": f["train_samples_per_second"],
               "inference_1x128_ms": 1e3 * dense_latency(l, 1), "inference_32x128_ms": 1e3 * dense_latency(l, 32)}
ratio = lambda r: {k: (r[k] / torch[k] if k.endswith("_per_s") else torch[k] / r[k]) for k in r}
out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "commit": commit, "pytorch": torch,
       "prunekit": rows, "ratio_vs_pytorch": {b: ratio(r) for b, r in rows.items()},
       "note": "ratio > 1: prunekit faster. Same run, same machine; SST-2 = first 3,200 train sentences, 100 steps."}
json.dump(out, open(os.environ.get("OUT", "bench/cpu_table.json"), "w"), indent=2)
print(f"{'workload':34s} {'PyTorch':>10s} " + " ".join(f"{b:>10s} {'ratio':>6s}" for b in bins))
for k in torch:
    print(f"{k:34s} {torch[k]:10.2f} " + " ".join(f"{rows[b][k]:10.2f} {out['ratio_vs_pytorch'][b][k]:6.2f}" for b in bins))
print("wrote", os.environ.get("OUT", "bench/cpu_table.json"))
PY
