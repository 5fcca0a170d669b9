#!/usr/bin/env bash
# `tessera train` on 1, 2 and 4 ranks (data parallel with ZeRO-0 and ZeRO-1, pipeline parallel 1F1B) prints
# the same loss and gradient norm at every logged step, dense and MoE: the end-to-end form of the
# equivalence; and a run stopped by train.exit_interval and resumed on another layout continues exactly,
# as do tensor- and expert-parallel runs resumed on their own layout.
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
  for layout in "2 0 1" "4 0 1" "4 1 1" "4 2 1" "2 1 2" "4 1 2"; do
    set -- $layout
    out="$run_dir/$model-$1-$2-$3.txt"
    "$mpirun" --oversubscribe -np "$1" "$tessera" "${args[@]}" --set "parallel.zero_stage=$2" \
      --set "parallel.pp=$3" --set "logging.run_dir=$run_dir/$model-$1-$2-$3" > "$out" 2>&1 || { cat "$out"; exit 1; }
    if ! diff <(losses "$run_dir/$model-1.txt") <(losses "$out"); then
      echo "$model: $1 ranks, ZeRO-$2, pp$3 differs from the 1-rank run"; exit 1
    fi
  done
  [ "$(losses "$run_dir/$model-1.txt" | wc -l)" -eq 6 ] || { echo "$model: expected 6 logged steps"; exit 1; }

  # Stop and resume on another layout: pp2 stops after step 3 (checkpoint, exit code 75), a restart on 4
  # ranks (dp4, ZeRO-1) resumes from it; together they log exactly the uninterrupted 1-rank run's lines.
  resume_dir="$run_dir/$model-resume"
  set +e
  "$mpirun" --oversubscribe -np 2 "$tessera" "${args[@]}" --set parallel.pp=2 --set train.exit_interval=3 \
    --set "logging.run_dir=$resume_dir" > "$run_dir/$model-cut1.txt" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 75 ] || { cat "$run_dir/$model-cut1.txt"; echo "$model: expected exit code 75, got $rc"; exit 1; }
  "$mpirun" --oversubscribe -np 4 "$tessera" "${args[@]}" --set parallel.zero_stage=1 \
    --set "logging.run_dir=$resume_dir" > "$run_dir/$model-cut2.txt" 2>&1 || { cat "$run_dir/$model-cut2.txt"; exit 1; }
  grep -q "resumed from .*step-00000003 (step 3)" "$run_dir/$model-cut2.txt" || { cat "$run_dir/$model-cut2.txt"; exit 1; }
  if ! diff <(losses "$run_dir/$model-1.txt") <(cat "$run_dir/$model-cut1.txt" "$run_dir/$model-cut2.txt" | losses /dev/stdin); then
    echo "$model: the stopped-and-resumed run differs from the uninterrupted one"; exit 1
  fi

  # The same under tensor parallelism (dense: tp2 · pp2) and expert parallelism (MoE: ep2 · tp2), stopped
  # and resumed on the same layout (these equal the 1-rank run only up to rounding, so the uninterrupted
  # run of the layout is the reference): the checkpoint gathers shards and experts and scatters them back.
  if [ "$model" = tiny-dense ]; then layout=(--set parallel.tp=2 --set parallel.pp=2); else layout=(--set parallel.tp=2 --set parallel.ep=2); fi
  "$mpirun" --oversubscribe -np 4 "$tessera" "${args[@]}" "${layout[@]}" --set "logging.run_dir=$run_dir/$model-mp" \
    > "$run_dir/$model-mp.txt" 2>&1 || { cat "$run_dir/$model-mp.txt"; exit 1; }
  set +e
  "$mpirun" --oversubscribe -np 4 "$tessera" "${args[@]}" "${layout[@]}" --set train.exit_interval=3 \
    --set "logging.run_dir=$run_dir/$model-mp-resume" > "$run_dir/$model-mp-cut1.txt" 2>&1
  rc=$?
  set -e
  [ "$rc" -eq 75 ] || { cat "$run_dir/$model-mp-cut1.txt"; echo "$model: expected exit code 75, got $rc"; exit 1; }
  "$mpirun" --oversubscribe -np 4 "$tessera" "${args[@]}" "${layout[@]}" --set "logging.run_dir=$run_dir/$model-mp-resume" \
    > "$run_dir/$model-mp-cut2.txt" 2>&1 || { cat "$run_dir/$model-mp-cut2.txt"; exit 1; }
  grep -q "resumed from .*step-00000003 (step 3)" "$run_dir/$model-mp-cut2.txt" || { cat "$run_dir/$model-mp-cut2.txt"; exit 1; }
  if ! diff <(losses "$run_dir/$model-mp.txt") <(cat "$run_dir/$model-mp-cut1.txt" "$run_dir/$model-mp-cut2.txt" | losses /dev/stdin); then
    echo "$model: the stopped-and-resumed ${layout[*]} run differs from the uninterrupted one"; exit 1
  fi
done
echo "train command: 1-rank, data-parallel, pipeline-parallel and stopped-and-resumed runs agree (also tp/ep resumes)"
