#!/usr/bin/env bash
# The MPI communicator against raw MPI calls of the same sizes, in one run (goal: <= 3% overhead).
#   bench/comm/run.sh [BUILD_DIR]     (default: build; needs libtessera_core.a built there)
# Env: NP (ranks, default 2), BENCH_SECONDS (per op and size, default 1), MAX_BYTES (default 16 MiB).
# Compiled here rather than in CMake: mpicxx -O2 against the build's static core library.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
NP="${NP:-2}"
SECONDS_PER_OP="${BENCH_SECONDS:-1}"
MAX_BYTES="${MAX_BYTES:-16777216}"

[[ -f "$BUILD/src/libtessera_core.a" ]] || { echo "no $BUILD/src/libtessera_core.a: build target tessera_core first" >&2; exit 1; }
BIN="$BUILD/comm_bench"
mpicxx -std=c++20 -O2 -DNDEBUG -I"$ROOT/include" "$ROOT/bench/comm/comm_bench.cpp" \
  "$BUILD/src/libtessera_core.a" -lspdlog -lfmt -pthread -o "$BIN"

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) hardware threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# $(mpirun --version | head -1), shared memory (btl self,vader)"
# Root is allowed here as in the test launcher (CI runs as root); oversubscription only when NP > cores.
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader \
  mpirun --oversubscribe -np "$NP" "$BIN" "$SECONDS_PER_OP" "$MAX_BYTES"
