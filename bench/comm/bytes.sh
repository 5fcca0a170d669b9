#!/usr/bin/env bash
# Bytes each rank sends per training step, per group, against the theoretical minimum: `tessera train`
# logs every step's communication from the collective trace (compute time, each group's time, bytes sent,
# and for data parallelism the ratio to the all-reduce minimum 2(n−1)/n·S of the gradient buffer S).
#   bench/comm/bytes.sh [BUILD_DIR]      (default: build)
# Prints the last logged step of each layout on the tiny dense model (8 microbatches per step).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
TESSERA="$BUILD/src/tessera"
[[ -x $TESSERA ]] || { echo "no $TESSERA: build it first" >&2; exit 1; }
RUN=$(mktemp -d)
trap 'rm -rf "$RUN"' EXIT
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) hardware threads; tiny-dense, 8 microbatches × 128 tokens"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMP_NUM_THREADS=1
# ranks pp zero
for layout in "2 1 0" "2 1 1" "2 1 2" "4 1 0" "4 1 1" "4 1 2" "4 2 0" "4 2 1" "2 2 1"; do
  set -- $layout
  mpirun --oversubscribe -np "$1" "$TESSERA" train -c "$ROOT/configs/tiny-dense.yaml" --set train.steps=4 \
    --set train.global_batch_size=8 --set parallel.pp="$2" --set parallel.zero_stage="$3" \
    --set logging.interval=4 --set logging.run_dir="$RUN/$1-$2-$3" >"$RUN/out" 2>&1 || { cat "$RUN/out"; exit 1; }
  printf '%d ranks, pp%d, ZeRO-%d:%s\n' "$1" "$2" "$3" "$(grep -E 'step +[0-9]+/[0-9]+ [|]' "$RUN/out" | tail -1 | sed 's/.*TFLOP\/s//')"
done
# Tensor, sequence and expert parallelism (ZeRO-1): the tp and ep groups' bytes.
while IFS='|' read -r ranks model label args; do
  # shellcheck disable=SC2086
  mpirun --oversubscribe -np "$ranks" "$TESSERA" train -c "$ROOT/configs/$model.yaml" --set train.steps=4 \
    --set train.global_batch_size=8 --set logging.interval=4 --set logging.run_dir="$RUN/$label" $args \
    </dev/null >"$RUN/out" 2>&1 || { cat "$RUN/out"; exit 1; }
  printf '%d ranks, %s, %s:%s\n' "$ranks" "$model" "$label" "$(grep -E 'step +[0-9]+/[0-9]+ [|]' "$RUN/out" | tail -1 | sed 's/.*TFLOP\/s//')"
done <<'LAYOUTS'
2|tiny-dense|tp2|--set parallel.tp=2
2|tiny-dense|tp2 sp|--set parallel.tp=2 --set parallel.sequence_parallel=true
4|tiny-dense|tp2 dp2|--set parallel.tp=2
2|tiny-moe|ep2|--set parallel.ep=2
LAYOUTS
