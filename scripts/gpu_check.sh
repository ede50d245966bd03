#!/usr/bin/env bash
# ONE command for a machine with a GPU: the wgpu parity checks, the train-step benchmark beside
# the PyTorch peer, compacted-model latency beside the PyTorch peer, and 300 steps of the main job
# (bert_movement.toml), all in one JSON. Made to finish in under 8 minutes on a GPU.
#
#   scripts/gpu_check.sh                 # on the GPU machine (or any machine with a GPU)
#   QUICK=1 scripts/gpu_check.sh         # tiny sizes: proves the script end to end on a software
#                                        # adapter (CUBECL_WGPU_DEFAULT_DEVICE=Cpu), not a speed
#
# Inputs (all optional):
#   TRAINER       the trainer binary (default: gpu_bundle/trainer, unpacked from trainer.xz, else
#                 $CARGO_TARGET_DIR/release/trainer, else target/release/trainer)
#   PYTHON        a Python with torch + transformers for the peer (default: python3; skipped if
#                 it has no torch)
#   OUT           where the JSON goes (default: bench/); file gpu_check_<adapter>.json
#   MODEL_SOURCE  the model of the 300-step run (default: gpu_bundle/minilm if present, else
#                 "minilm", fetched)
#   PRUNEKIT_CACHE  the data cache (default: gpu_bundle/cache if present)
# A machine without a Vulkan loader (the lent GPU machine): scripts/gpu_pack.sh puts Debian's
# libvulkan1 in gpu_bundle/vulkan; this script points the loader at the NVIDIA ICD it finds.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bundle=$root/gpu_bundle
out_dir=${OUT:-$root/bench}
mkdir -p "$out_dir"
tmp=$(mktemp -d)
log=$tmp/gpu_check.log
say() { echo "[gpu_check $(date +%H:%M:%S)] $*" | tee -a "$log" >&2; }

# --- the binary ------------------------------------------------------------------------------
bin=${TRAINER:-}
if [ -z "$bin" ]; then
  if [ -f "$bundle/trainer.xz" ]; then
    xz -dc "$bundle/trainer.xz" > "$tmp/trainer" && chmod +x "$tmp/trainer" && bin=$tmp/trainer
  elif [ -x "${CARGO_TARGET_DIR:-target}/release/trainer" ]; then
    bin=${CARGO_TARGET_DIR:-target}/release/trainer
  else
    bin=target/release/trainer
  fi
fi
[ -x "$bin" ] || { say "no trainer binary at $bin (build with cargo build --release -p trainer, or scripts/gpu_pack.sh)"; exit 2; }

# --- Vulkan loader and driver -----------------------------------------------------------------
if ! ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null && [ -d "$bundle/vulkan" ]; then
  export LD_LIBRARY_PATH="$(dirname "$(find "$bundle/vulkan" -name 'libvulkan.so.1' | head -1)"):${LD_LIBRARY_PATH:-}"
  say "Vulkan loader from the bundle: $LD_LIBRARY_PATH"
fi
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  icd=$(find /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d /usr/lib/x86_64-linux-gnu -maxdepth 2 -name 'nvidia_icd*.json' 2>/dev/null | head -1)
  [ -z "$icd" ] && icd=$(find / -xdev -name 'nvidia_icd*.json' 2>/dev/null | head -1)
  if [ -n "$icd" ]; then export VK_DRIVER_FILES=$icd; say "NVIDIA Vulkan ICD: $icd"; fi
fi

# --- sizes -----------------------------------------------------------------------------------
if [ "${QUICK:-0}" = 1 ]; then
  B=2; L=32; STEPS=1; WARM=1; LAT_B=1,2; LAT_RUNS=2; RUN_STEPS=5; RUN_BATCH=4; RUN_EVAL=16
else
  B=32; L=128; STEPS=5; WARM=2; LAT_B=1,32; LAT_RUNS=20; RUN_STEPS=300; RUN_BATCH=32; RUN_EVAL=""
fi
dev=${GPU_DEVICE:-wgpu}

# --- the peer --------------------------------------------------------------------------------
py=${PYTHON:-python3}
torch_dev=none
if "$py" -c "import torch, transformers" 2>/dev/null; then
  torch_dev=$("$py" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
  say "PyTorch peer: $("$py" -c 'import torch; print(torch.__version__)') on $torch_dev"
else
  say "no torch/transformers in $py: the PyTorch peer is skipped"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$tmp/nvidia_smi.txt" 2>&1

# --- 1. parity -------------------------------------------------------------------------------
say "1/4 parity checks on $dev"
"$bin" gpu-check --device "$dev" --out "$tmp/parity.json" > /dev/null 2>> "$log" || say "parity: FAILED (details in the JSON)"
grep -h '"device"' "$tmp/parity.json" 2>/dev/null | head -1 | tee -a "$log" >&2

# --- 2. train-step benchmark -----------------------------------------------------------------
say "2/4 train step, batch $B x $L"
for shape in minilm bert-base; do
  for pruning in dense movement; do
    "$bin" bench --device "$dev" --shape $shape --pruning $pruning --batch-size $B --seq-len $L --warmup $WARM --steps $STEPS \
      --out "$tmp/bench_burn_${shape}_${pruning}.json" > /dev/null 2>> "$log" || say "bench $shape $pruning failed"
  done
  if [ "$torch_dev" != none ]; then
    "$py" scripts/torch_step.py --device $torch_dev --shape $shape --batch-size $B --seq-len $L --warmup $WARM --steps $STEPS \
      > "$tmp/bench_torch_${shape}.json" 2>> "$log" || say "torch step $shape failed"
  fi
done

# --- 3. latency, dense vs compacted ----------------------------------------------------------
say "3/4 latency, batch $LAT_B"
"$bin" latency --device "$dev" --shape minilm --keep 0.5,0.25 --batch-sizes $LAT_B --seq-len $L --warmup 2 --runs $LAT_RUNS \
  --out "$tmp/latency_burn.json" > /dev/null 2>> "$log" || say "latency failed"
if [ "$torch_dev" != none ]; then
  "$py" scripts/torch_latency.py --device $torch_dev --keep 0.5,0.25 --batch-sizes $LAT_B --seq-len $L --warmup 2 --runs $LAT_RUNS \
    > "$tmp/latency_torch.json" 2>> "$log" || say "torch latency failed"
fi

# --- 4. the main job, RUN_STEPS steps --------------------------------------------------------
src=${MODEL_SOURCE:-}
weights=pretrained
if [ -z "$src" ] && [ -f "$bundle/minilm/config.json" ]; then
  src=$bundle/minilm
  if [ ! -f "$src/model.safetensors" ]; then
    # The bundle had no room for the weights: MiniLM's shapes, random-initialised by transformers.
    cp -r "$src" "$tmp/minilm" && src=$tmp/minilm && weights="random-initialised (transformers, MiniLM config): accuracy not meaningful"
    "$py" -c "import sys, torch; from transformers import BertConfig, BertModel; torch.manual_seed(0); BertModel(BertConfig.from_json_file(sys.argv[1] + '/config.json')).save_pretrained(sys.argv[1], safe_serialization=True)" "$src" 2>> "$log" \
      || say "could not make random weights (no torch/transformers?)"
  fi
fi
[ -z "$src" ] && src=minilm
[ -z "${PRUNEKIT_CACHE:-}" ] && [ -d "$bundle/cache" ] && export PRUNEKIT_CACHE=$bundle/cache
say "4/4 bert_movement.toml, $RUN_STEPS steps of $RUN_BATCH (model: $src, weights $weights)"
echo "$weights" > "$tmp/weights.txt"
# SpamAssassin "all": 4,864 training mails with the experiment's split; epochs = steps / batches.
sets=(--set device=$dev --set "output_dir=$tmp/bert_movement" --set "model.source=$src" --set train.batch_size=$RUN_BATCH --set train.eval_every=100000 --set train.checkpoint_every=0)
if [ -n "$RUN_EVAL" ]; then
  sets+=(--set data.max_train_samples=$((RUN_STEPS * RUN_BATCH)) --set data.max_eval_samples=$RUN_EVAL --set train.epochs=1 --set pruning.warmup_steps=1 --set pruning.cooldown_steps=1 --set train.lr_warmup_steps=1)
else
  sets+=(--set train.epochs=$(python3 -c "print(($RUN_STEPS - 0.5) / 152)"))
fi
"$bin" experiments/bert_movement.toml "${sets[@]}" > /dev/null 2>> "$log" || say "bert_movement failed"

# --- one JSON --------------------------------------------------------------------------------
commit=${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || cat "$bundle/COMMIT" 2>/dev/null || echo unknown)}
python3 - "$tmp" "$out_dir" "$commit" "${QUICK:-0}" "$B" "$L" <<'PY'
import json, os, sys, platform, glob, re
tmp, out_dir, commit, quick, b, l = sys.argv[1:]
def load(p):
    try: return json.load(open(p))
    except Exception: return None
parity = load(f"{tmp}/parity.json") or {}
adapter = parity.get("adapter") or {}
bench = {}
for shape in ["minilm", "bert-base"]:
    t = load(f"{tmp}/bench_torch_{shape}.json")
    for pruning in ["dense", "movement"]:
        r = load(f"{tmp}/bench_burn_{shape}_{pruning}.json")
        if r is None: continue
        row = {"burn_samples_per_second": r["samples_per_second"], "burn_median_step_s": r["median_step_s"]}
        if t:
            row["pytorch_samples_per_second"] = t["samples_per_second"]
            row["ratio_burn_over_pytorch_dense"] = r["samples_per_second"] / t["samples_per_second"]
        bench[f"{shape}/{pruning}"] = row
lat_b, lat_t = load(f"{tmp}/latency_burn.json"), load(f"{tmp}/latency_torch.json")
latency = []
if lat_b:
    for r in lat_b["results"]:
        row = {"variant": r["variant"], "batch_size": r["batch_size"], "burn_ms": 1e3 * r["median_s"], "burn_speedup_vs_dense": r["speedup_vs_dense"], "flop_ideal": r["flop_ideal_speedup"]}
        if lat_t:
            k = 1.0 if r["variant"] == "dense" else None
            m = re.match(r"structured, (\d+)% ", r["variant"])
            if m: k = int(m.group(1)) / 100
            peer = [x for x in lat_t["results"] if k is not None and abs(x["keep"] - k) < 1e-9 and x["batch_size"] == r["batch_size"]]
            if peer:
                row["pytorch_ms"] = 1e3 * peer[0]["median_s"]
                row["ratio_burn_over_pytorch_speed"] = peer[0]["median_s"] / r["median_s"]
        latency.append(row)
run = load(f"{tmp}/bert_movement/summary.json")
main_job = None
if run:
    main_job = {k: run.get(k) for k in ["data", "model_source", "device", "steps", "batch_size", "train_seconds", "train_samples_per_second", "prunable_remaining"]}
    main_job["validation_accuracy"] = (run.get("validation") or {}).get("accuracy")
    main_job["test_accuracy"] = (run.get("test") or {}).get("accuracy")
    main_job["weights"] = open(f"{tmp}/weights.txt").read().strip()
smi = open(f"{tmp}/nvidia_smi.txt").read().strip() if os.path.exists(f"{tmp}/nvidia_smi.txt") else None
res = {
    "what": "scripts/gpu_check.sh" + (" (QUICK=1: tiny sizes, a run-through, not a speed figure)" if quick == "1" else ""),
    "commit": commit, "machine": f"{platform.machine()}, {os.cpu_count()} cores", "nvidia_smi": smi,
    "adapter": adapter, "software_adapter": parity.get("software_adapter"),
    "note": "a software adapter (llvmpipe/lavapipe) is not a GPU result" if parity.get("software_adapter") else None,
    "pytorch": (load(f"{tmp}/bench_torch_minilm.json") or {}).get("impl"),
    "parity": {"passed": parity.get("passed"), "checks": parity.get("checks")},
    "train_step": {"batch_size": int(b), "seq_len": int(l), "results": bench},
    "latency": latency, "main_job": main_job,
    "log_tail": open(f"{tmp}/gpu_check.log").read()[-4000:],
}
name = re.sub(r"[^a-z0-9]+", "_", (adapter.get("name") or "unknown").lower()).strip("_")[:40]
path = os.path.join(out_dir, f"gpu_check_{name}{'_quick' if quick == '1' else ''}.json")
json.dump(res, open(path, "w"), indent=2)
print(f"adapter: {adapter.get('name')} ({adapter.get('device_type')}, driver {adapter.get('driver')} {adapter.get('driver_info')})")
print(f"parity: {'passed' if parity.get('passed') else 'FAILED'}")
for k, v in bench.items(): print(f"train step {k:20s} burn {v['burn_samples_per_second']:8.2f} samples/s" + (f"  pytorch {v['pytorch_samples_per_second']:8.2f}  ratio {v['ratio_burn_over_pytorch_dense']:.2f}" if 'pytorch_samples_per_second' in v else ""))
if main_job: print(f"bert_movement: {main_job['steps']} steps, {main_job['train_samples_per_second']:.1f} samples/s, validation {main_job['validation_accuracy']}")
print("wrote", path)
PY
