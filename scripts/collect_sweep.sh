#!/usr/bin/env bash
# Copies a finished sweep's tables, plots and per-run summary/metrics (no models) from runs/ into
# experiments/results/<dest>/ for committing.   scripts/collect_sweep.sh runs/sweep_x issue21/sweep_x
set -euo pipefail
cd "$(dirname "$0")/.."
src=$1; dest=experiments/results/$2
mkdir -p "$dest"
for f in table.md table.csv results.csv groups.md accuracy_vs_remaining.png kept_per_layer.png; do [ -f "$src/$f" ] && cp "$src/$f" "$dest/"; done
for d in "$src"/*/; do
  n=$(basename "$d")
  [ -f "$d/summary.json" ] && cp "$d/summary.json" "$dest/$n.summary.json"
  [ -f "$d/metrics.jsonl" ] && cp "$d/metrics.jsonl" "$dest/$n.metrics.jsonl"
done
echo "collected $(ls "$dest" | wc -l) files into $dest"
