#!/usr/bin/env bash
# One CPU fp32 training step, tessera vs PyTorch eager (transformers' modeling code), same config, batch
# and thread count, in one run. usage: bench/train_step/run.sh [build-dir] [threads] [steps]
# Needs Python with torch, transformers and pyyaml (e.g. pip install -r tests/golden/requirements.txt pyyaml);
# PYTHON selects the interpreter.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
threads=${2:-$(nproc)}
steps=${3:-3}
python=${PYTHON:-python3}
export OMP_NUM_THREADS=$threads
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads $threads; $(date -u +%F)"
for cfg in bench/train_step/bench-dense.yaml bench/train_step/bench-moe.yaml; do
  ours=$("$build/bench/tessera_bench_train_step" "$cfg" "$steps")
  peer=$("$python" bench/train_step/torch_train_step.py "$cfg" "$steps")
  "$python" - "$cfg" "$ours" "$peer" <<'PY'
import json, sys
cfg, ours, peer = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{cfg}: tessera {ours['tokens_per_s']:.0f} tokens/s ({ours['seconds_per_step']:.3f} s/step), "
      f"PyTorch {peer['torch']} {peer['tokens_per_s']:.0f} tokens/s ({peer['seconds_per_step']:.3f} s/step), "
      f"ratio {ours['tokens_per_s'] / peer['tokens_per_s']:.2f}x")
PY
done
