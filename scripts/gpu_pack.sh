#!/usr/bin/env bash
# Packs what scripts/gpu_check.sh needs on a GPU machine that has no Rust, no network and no
# Vulkan loader, into gpu_bundle/ (ignored by git; at most 64 MiB in all):
#   trainer.xz      the release binary, stripped and xz-compressed
#   vulkan/         Debian's libvulkan1, unpacked (the loader; the NVIDIA driver brings the ICD)
#   minilm/         all-minilm-l6-v2 (config, tokenizer, pooling) with its weights rounded to f16
#                   (45 MB instead of 90; the loader reads f16), when they fit (they do not with
#                   the 19 MB SpamAssassin archive and the 12 MB binary: then config + tokenizer only)
#   cache/          the SpamAssassin archive from the project's cache, sha256 as fetched
#   COMMIT          the commit the binary was built from
# Then, there:   bash scripts/gpu_check.sh   (carry gpu_bundle)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
b=gpu_bundle
rm -rf "$b"; mkdir -p "$b/cache/downloads"
cargo build --release -q -p trainer
strip -o "$b/trainer" "$target/release/trainer"
xz -T2 -9 -f "$b/trainer"
git rev-parse --short HEAD > "$b/COMMIT"
( cd "$b" && apt-get download libvulkan1 >/dev/null 2>&1 || { apt-get update -qq && apt-get download libvulkan1; } )
dpkg -x "$b"/libvulkan1_*.deb "$b/vulkan" && rm "$b"/libvulkan1_*.deb
# Data and weights, fetched into the cache by a one-step run if they are not there yet.
cache=${PRUNEKIT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/prunekit}
if [ ! -d "$cache/downloads/spam-assassin" ] || [ ! -f "$cache/assets/all-minilm-l6-v2/model.safetensors" ]; then
  "$target/release/trainer" experiments/quickstart.toml --set device=cpu --set output_dir=/tmp/prunekit-pack-fetch >/dev/null
fi
cp -r "$cache/downloads/spam-assassin" "$b/cache/downloads/"
py=${PYTHON:-$HOME/.cache/prunekit/pyenv/bin/python}
mkdir -p "$b/minilm"
src=$cache/assets/all-minilm-l6-v2
for f in config.json tokenizer.json vocab.txt tokenizer_config.json special_tokens_map.json; do [ -f "$src/$f" ] && cp "$src/$f" "$b/minilm/"; done
[ -d "$src/1_Pooling" ] && cp -r "$src/1_Pooling" "$b/minilm/"
"$py" - "$src/model.safetensors" "$b/minilm/model.safetensors" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1])
save_file({k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in t.items()}, sys.argv[2])
PY
size=$(du -sm "$b" | cut -f1)
echo "gpu_bundle: ${size} MiB"
if [ "$size" -gt 63 ]; then
  echo "over 63 MiB: dropping the f16 weights (the 300-step run then uses random-initialised MiniLM shapes made there by transformers; its accuracy means nothing, its samples/s does)"
  rm -f "$b/minilm/model.safetensors"; du -sm "$b"
fi
