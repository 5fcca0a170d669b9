#!/usr/bin/env bash
# `tessera grid` under mpirun on 8 ranks: every rank writes its own log whose lines carry its grid
# coordinates, the communicators verify, and a layout that does not fit the job ends it with the reason.
set -euo pipefail
tessera=$1
mpirun=$2
configs=$3
run_dir=$(mktemp -d)
trap 'rm -rf "$run_dir"' EXIT

"$mpirun" --oversubscribe -np 8 "$tessera" grid -c "$configs/tiny-dense.yaml" --set parallel.tp=2 --set parallel.pp=2 --set "logging.run_dir=$run_dir" \
  > "$run_dir/console.txt" 2>&1 || { cat "$run_dir/console.txt"; exit 1; }
grep -q "grid ok: world 8 = tp 2 × cp 1 × pp 2 × dp 2" "$run_dir/console.txt"
for r in 0 1 2 3 4 5 6 7; do
  f="$run_dir/logs/rank-0000$r.log"
  [ -s "$f" ] || { echo "missing log of rank $r"; exit 1; }
  # Rank r of tp2·dp2·pp2 in order tp-cp-ep-dp-pp: tp = r % 2, dp = (r / 2) % 2, pp = r / 4.
  tag="[r$r tp$((r % 2)) pp$((r / 4)) dp$(((r / 2) % 2)) ep0]"
  grep -qF "$tag grid ok" "$f" || { echo "rank $r log lacks '$tag grid ok':"; cat "$f"; exit 1; }
done
# Only rank 0 writes to the console.
[ "$(grep -c 'grid ok' "$run_dir/console.txt")" -eq 1 ]

if "$mpirun" --oversubscribe -np 3 "$tessera" grid -c "$configs/tiny-dense.yaml" --set parallel.tp=2 --set parallel.pp=2 --set "logging.run_dir=$run_dir" \
  > "$run_dir/bad.txt" 2>&1; then
  echo "a 3-rank job accepted a tp2·pp2 layout"; exit 1
fi
grep -q "does not divide world size 3" "$run_dir/bad.txt" || { cat "$run_dir/bad.txt"; exit 1; }
echo "grid command ok"
