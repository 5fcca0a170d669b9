#!/usr/bin/env bash
# Data pipeline benchmark (bench/data/data_bench.cpp): packing BFD vs greedy on 1M log-normal lengths, and
# loader rows/s vs the same bytes read raw (H5Dread, pread). Compiled here against the build's core library.
# usage: bench/data/run.sh [build-dir] [work-dir] [loader-rows]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
work=${2:-${TMPDIR:-/tmp}}
rows=${3:-4000}
lib="$build/src/libtessera_core.a"
[ -f "$lib" ] || { echo "no $lib: build tessera_core first (cmake --build $build --target tessera_core)" >&2; exit 1; }
bin="$build/bench/data_bench"
mkdir -p "$build/bench"
g++ -O2 -std=c++20 -Wall -Wextra -I include bench/data/data_bench.cpp "$lib" \
  $(pkg-config --cflags --libs hdf5-serial fmt) -pthread -o "$bin"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)"
"$bin" "$work" "$rows"
