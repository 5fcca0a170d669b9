#!/usr/bin/env bash
# `tessera train` on 1, 2 and 4 ranks (data parallel with ZeRO-0 and ZeRO-1, pipeline parallel 1F1B) prints
# the same loss and gradient norm at every logged step, dense and MoE: the end-to-end form of the
# equivalence.
set -euo pipefail
tessera=$1
mpirun=$2
configs=$3
run_dir=$(mktemp -d)
trap 'rm -rf "$run_dir"' EXIT
export OMP_NUM_THREADS=1

# The "| loss … | grad norm …" part of every step line, in order.
losses() { grep -o '| loss [^|]*| lr [^|]*| grad norm [0-9.]*' "$1"; }

for model in tiny-dense tiny-moe; do
  args=(train -c "$configs/$model.yaml" --set train.global_batch_size=8 --set train.steps=6 --set logging.interval=1)
  "$tessera" "${args[@]}" --set "logging.run_dir=$run_dir/$model-1" > "$run_dir/$model-1.txt" 2>&1
  # ranks, ZeRO stage, pp
  for layout in "2 0 1" "4 0 1" "4 1 1" "2 1 2" "4 1 2"; do
    set -- $layout
    out="$run_dir/$model-$1-$2-$3.txt"
    "$mpirun" --oversubscribe -np "$1" "$tessera" "${args[@]}" --set "parallel.zero_stage=$2" \
      --set "parallel.pp=$3" --set "logging.run_dir=$run_dir/$model-$1-$2-$3" > "$out" 2>&1 || { cat "$out"; exit 1; }
    if ! diff <(losses "$run_dir/$model-1.txt") <(losses "$out"); then
      echo "$model: $1 ranks, ZeRO-$2, pp$3 differs from the 1-rank run"; exit 1
    fi
  done
  [ "$(losses "$run_dir/$model-1.txt" | wc -l)" -eq 6 ] || { echo "$model: expected 6 logged steps"; exit 1; }
done
echo "train command: 1-rank, data-parallel and pipeline-parallel runs agree"
