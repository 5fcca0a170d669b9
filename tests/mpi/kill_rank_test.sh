#!/usr/bin/env bash
# A rank killed with SIGKILL mid-run ends the whole job promptly with the rank named, and the next start
# resumes from the last committed checkpoint (never a half-written one) and finishes with the
# uninterrupted run's final loss.
#   kill_rank_test.sh TESSERA MPIRUN CONFIGS
set -euo pipefail
tessera=$1
mpirun=$2
configs=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1
args=(train -c "$configs/tiny-dense.yaml" --set train.steps=1500 --set logging.interval=50 --set data.seq_length=64
      --set checkpoint.interval=100)
"$tessera" "${args[@]}" --set "logging.run_dir=$work/reference" > "$work/reference.txt" 2>&1
want=$(grep -o 'step  1500/1500 | loss [0-9.]*' "$work/reference.txt")

"$mpirun" --oversubscribe -np 2 "$tessera" "${args[@]}" --set "logging.run_dir=$work/job" > "$work/job1.txt" 2>&1 &
launcher=$!
for _ in $(seq 240); do
  grep -q 'checkpoint saved: .*step-00000200' "$work/job1.txt" 2>/dev/null && break
  sleep 0.25
done
grep -q 'checkpoint saved: .*step-00000200' "$work/job1.txt" || { cat "$work/job1.txt"; echo "no checkpoint yet"; exit 1; }
victim=$(pgrep -f "logging.run_dir=$work/job" | grep -v "^$launcher\$" | while read -r p; do
  [ "$(ps -o comm= -p "$p")" = tessera ] && echo "$p"; done | tail -1)
[ -n "$victim" ] || { echo "no rank process found"; exit 1; }
kill -9 "$victim"
start=$SECONDS
set +e
wait "$launcher"
rc=$?
set -e
took=$((SECONDS - start))
[ "$rc" -ne 0 ] || { echo "the job survived a killed rank"; exit 1; }
[ "$took" -le 30 ] || { echo "the job took ${took}s to end after a rank died"; exit 1; }
grep -Eiq "rank [0-9]+ .*(exited|killed)|signal 9|Killed" "$work/job1.txt" || { cat "$work/job1.txt"; echo "the dead rank is not named"; exit 1; }

"$mpirun" --oversubscribe -np 2 "$tessera" "${args[@]}" --set "logging.run_dir=$work/job" > "$work/job2.txt" 2>&1 || { cat "$work/job2.txt"; exit 1; }
grep -q "resumed from .*step-" "$work/job2.txt" || { cat "$work/job2.txt"; echo "the restart did not resume"; exit 1; }
got=$(grep -o 'step  1500/1500 | loss [0-9.]*' "$work/job2.txt")
[ "$got" = "$want" ] || { echo "final loss '$got' differs from the uninterrupted '$want'"; exit 1; }
echo "kill a rank: the job ended in ${took}s naming the rank; the restart resumed and matched ($got)"
