#!/usr/bin/env bash
# Runs communicator_hang (see communicator_hang_main.cpp) and checks the job ended promptly, with the
# watchdog's exit code, and that stderr names the stuck rank, operation and group.
#   communicator_hang_test.sh <mpirun> <communicator_hang binary>
set -uo pipefail
mpirun=$1
program=$2
log=$(mktemp)
trap 'rm -f "$log"' EXIT

start=$(date +%s)
# SIGKILL on timeout: its status 137 cannot pass for the watchdog's 124.
timeout -s KILL 60 "$mpirun" --oversubscribe -np 4 "$program" > "$log" 2>&1
status=$?
elapsed=$(( $(date +%s) - start ))
cat "$log"

fail() { echo "FAIL: $*"; exit 1; }
[ "$status" -eq 124 ] || fail "exit status $status, expected the watchdog's 124"
grep -q "tessera: rank 3: collective all_reduce on group dp (ranks 1,3) stuck for [0-9.]* s" "$log" ||
  fail "no watchdog line naming rank 3, all_reduce and group dp (ranks 1,3)"
grep -q "the watchdog did not end the job" "$log" && fail "a rank outlived the watchdog"
# Timeout 2 s, checked every 0.25 s; the rest is mpirun start-up and tear-down on a busy machine.
[ "$elapsed" -le 20 ] || fail "the job took ${elapsed} s to end"
echo "watchdog ended the job in ${elapsed} s with status $status"
