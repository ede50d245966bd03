#!/usr/bin/env bash
# Where a training step's time goes, burn (flex) vs PyTorch, same machine, same shapes, same run:
# the step split into forward / backward / clip / optimizer (`trainer bench --profile`,
# `torch_step.py --profile`, which also lists PyTorch's top operators), and each operation kind
# of a BERT layer timed alone, forward and forward + backward (`trainer bench --ops`,
# `torch_ops.py`). Writes bench/profile_cpu_<tag>.json and prints the tables.
#   scripts/profile_cpu.sh [tag=minilm] [batch=32] [seq=128]
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-minilm}; batch=${2:-32}; seq=${3:-128}
venv=${PRUNEKIT_PYENV:-$HOME/.cache/prunekit/pyenv}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/prunekit/target}
cargo build --release -q -p trainer
bin=$CARGO_TARGET_DIR/release/trainer
tmp=$(mktemp -d)
"$bin" bench --device flex --batch-size "$batch" --seq-len "$seq" --warmup 1 --steps 3 --profile --out "$tmp/burn_step.json" >/dev/null 2>&1
"$venv/bin/python" scripts/torch_step.py --batch-size "$batch" --seq-len "$seq" --warmup 1 --steps 3 --profile 2>/dev/null > "$tmp/torch_step.json"
"$bin" bench --device flex --ops --batch-size "$batch" --seq-len "$seq" --steps 5 --out "$tmp/burn_ops.json" >/dev/null 2>&1
"$venv/bin/python" scripts/torch_ops.py --batch-size "$batch" --seq-len "$seq" --steps 5 2>/dev/null > "$tmp/torch_ops.json"
python3 - "$tmp" "bench/profile_cpu_${tag}.json" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import json, sys, os, platform
tmp, out, commit = sys.argv[1:]
r = {k: json.load(open(f"{tmp}/{k}.json")) for k in ["burn_step", "torch_step", "burn_ops", "torch_ops"]}
num = lambda v: float("nan") if v is None else v
bp, tp = r["burn_step"]["profile_median_s"], r["torch_step"]["profile_median_s"]
phases = {k: {"burn_s": bp[k], "pytorch_s": tp[k], "ratio": tp[k] / bp[k]} for k in ["forward", "backward", "clip", "optimizer", "total"]}
ops = {}
for k, b in r["burn_ops"]["ops"].items():
    t = r["torch_ops"]["ops"].get(k)
    if t is None or b["forward_backward_s"] is None:
        continue  # burn-only timings (matmul by operand layout: bench --ops)
    ops[k] = {"burn_forward_s": b["forward_s"], "pytorch_forward_s": t["forward_s"], "burn_forward_backward_s": b["forward_backward_s"],
              "pytorch_forward_backward_s": t["forward_backward_s"], "ratio_forward_backward": num(t["forward_backward_s"]) / num(b["forward_backward_s"])}
res = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "commit": commit,
       "step": {"burn_samples_per_second": r["burn_step"]["samples_per_second"], "pytorch_samples_per_second": r["torch_step"]["samples_per_second"],
                "ratio": r["burn_step"]["samples_per_second"] / r["torch_step"]["samples_per_second"], "phases": phases},
       "ops": ops, "pytorch_top_ops_self_cpu_s": r["torch_step"].get("ops_self_cpu_s"), "raw": r}
json.dump(res, open(out, "w"), indent=2)
s = res["step"]
print(f"step: burn {s['burn_samples_per_second']:.2f} samples/s, PyTorch {s['pytorch_samples_per_second']:.2f} = {s['ratio']:.2f}x")
for k, v in phases.items():
    print(f"  {k:10s} burn {v['burn_s']:.3f}s  PyTorch {v['pytorch_s']:.3f}s  ratio {v['ratio']:.2f}")
print(f"{'op (ms)':28s} {'burn fwd':>9s} {'torch fwd':>9s} | {'burn f+b':>9s} {'torch f+b':>9s} {'ratio':>6s}")
for k, v in ops.items():
    print(f"{k:28s} {num(v['burn_forward_s'])*1e3:9.1f} {num(v['pytorch_forward_s'])*1e3:9.1f} | {v['burn_forward_backward_s']*1e3:9.1f} {v['pytorch_forward_backward_s']*1e3:9.1f} {v['ratio_forward_backward']:6.2f}")
print("wrote", out)
PY
