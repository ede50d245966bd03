#!/usr/bin/env bash
# Inference latency of dense vs compacted structured vs unstructured MiniLM-L6 (real weights), burn
# and the PyTorch peer in the same run on the same machine: bench/latency_<device>_minilm.json.
#   scripts/bench_latency.sh [device=cpu] [runs=15]
set -euo pipefail
cd "$(dirname "$0")/.."
dev=${1:-cpu}; runs=${2:-15}
venv=${PRUNEKIT_PYENV:-$HOME/.cache/prunekit/pyenv}
bin=${TRAINER:-target/release/trainer}
[ -x "$bin" ] || { cargo build --release --workspace -q; bin=${CARGO_TARGET_DIR:-target}/release/trainer; }
mkdir -p bench; tmp=$(mktemp -d)
"$bin" latency --device "$dev" --model minilm --keep 0.5,0.25 --batch-sizes 1,32 --runs "$runs" --out "$tmp/burn.json"
"$venv/bin/python" scripts/torch_latency.py --keep 0.5,0.25 --batch-sizes 1,32 --runs "$runs" > "$tmp/torch.json"
python3 - "$tmp" "bench/latency_${dev}_minilm.json" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import json, sys, platform, os
tmp, out, commit = sys.argv[1:]
b, t = json.load(open(f"{tmp}/burn.json")), json.load(open(f"{tmp}/torch.json"))
json.dump({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "commit": commit, "burn": b, "pytorch": t}, open(out, "w"), indent=2)
for r in t["results"]:
    print(f"pytorch batch {r['batch_size']:>3} keep {r['keep']:.2f}: {1e3*r['median_s']:8.2f} ms  speedup {r['speedup_vs_dense']:.2f}x  ideal {r['flop_ideal_speedup']:.2f}x")
print("wrote", out)
PY
