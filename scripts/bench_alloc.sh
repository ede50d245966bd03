#!/usr/bin/env bash
# What keeping freed memory in the process (trainer::device::keep_freed_memory, glibc mallopt)
# changes: a MiniLM training step (batch 32 x 128, random weights) and the per-op bench, each with
# the default (kept) and with PRUNEKIT_KEEP_FREED_MEMORY=0 (glibc's defaults), alternating, REPS
# times each. Records samples/s, user and system CPU seconds, page faults and peak RSS.
# Writes bench/alloc_cpu_minilm.json.     [THREADS=2] [REPS=2] [NOTE="..."] scripts/bench_alloc.sh
# Page faults and system time do not depend on other load; samples/s does (say so in NOTE).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/prunekit/target}
cargo build --release -q -p trainer
bin=$CARGO_TARGET_DIR/release/trainer
tmp=$(mktemp -d)
threads=${THREADS:-2}; reps=${REPS:-2}
for r in $(seq "$reps"); do
  for keep in 1 0; do
    RAYON_NUM_THREADS=$threads PRUNEKIT_KEEP_FREED_MEMORY=$keep /usr/bin/time -f '{"user_s": %U, "sys_s": %S, "wall_s": %e, "major_faults": %F, "minor_faults": %R, "max_rss_kb": %M}' \
      -o "$tmp/time_step_${keep}_$r.json" "$bin" bench --device flex --batch-size 32 --seq-len 128 --warmup 1 --steps 3 --out "$tmp/step_${keep}_$r.json" >/dev/null 2>&1
  done
done
NOTE=${NOTE:-} python3 - "$tmp" "$reps" "$threads" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import json, sys, os, platform
tmp, reps, threads, commit = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows = {}
for keep, name in (("1", "kept (default)"), ("0", "glibc defaults (PRUNEKIT_KEEP_FREED_MEMORY=0)")):
    runs = []
    for r in range(1, reps + 1):
        t = json.load(open(f"{tmp}/time_step_{keep}_{r}.json"))
        t["samples_per_second"] = json.load(open(f"{tmp}/step_{keep}_{r}.json"))["samples_per_second"]
        runs.append(t)
    rows[name] = runs
out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "commit": commit, "threads": threads,
       "workload": "trainer bench: MiniLM-L6 shapes, batch 32 x 128, 1 warm-up + 3 timed steps (whole process timed)", "note": os.environ.get("NOTE", ""), "runs": rows}
json.dump(out, open("bench/alloc_cpu_minilm.json", "w"), indent=2)
for name, runs in rows.items():
    for t in runs:
        print(f"{name:48s} {t['samples_per_second']:6.2f} samples/s  user {t['user_s']:6.2f} s  sys {t['sys_s']:5.2f} s  minor faults {t['minor_faults']:>8d}  peak RSS {t['max_rss_kb']/1024:6.0f} MB")
print("wrote bench/alloc_cpu_minilm.json")
PY
