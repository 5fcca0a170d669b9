#!/usr/bin/env bash
# Tokenizer encode throughput, tessera vs HF tokenizers, on the golden corpus in one run.
#   bench/tokenizer/run.sh [BUILD_DIR]     (default: build; needs libtessera_core.a built there)
# Needs `pip install tokenizers` and the Qwen3 tokenizer at ../shared/data/qwen3-tokenizer.
# The bench is compiled here rather than in CMake: g++ -O2 against the build's static core library.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${1:-$ROOT/build}"
TOKENIZER="${TOKENIZER:-$ROOT/../shared/data/qwen3-tokenizer}"
CORPUS="$ROOT/tests/golden/tokenizer/corpus.jsonl.gz"
REPEATS="${REPEATS:-5}"

[[ -f "$BUILD/src/libtessera_core.a" ]] || { echo "no $BUILD/src/libtessera_core.a: build target tessera_core first" >&2; exit 1; }
[[ -f "$TOKENIZER/tokenizer.json" ]] || { echo "no tokenizer at $TOKENIZER" >&2; exit 1; }

BIN="$BUILD/tokenizer_bench"
g++ -std=c++20 -O2 -DNDEBUG -I"$ROOT/include" "$ROOT/bench/tokenizer/tokenizer_bench.cpp" \
  "$BUILD/src/libtessera_core.a" $(pkg-config --libs libpcre2-8 libutf8proc zlib) -lfmt -pthread -o "$BIN"

echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(uname -m), $(nproc) hardware threads, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "# tokenizers $(python3 -c 'import tokenizers; print(tokenizers.__version__)'), corpus $CORPUS"
OURS="$("$BIN" "$TOKENIZER" "$CORPUS" "$REPEATS")"
HF_SINGLE="$(TOKENIZERS_PARALLELISM=false python3 "$ROOT/bench/tokenizer/hf_bench.py" "$TOKENIZER" "$CORPUS" --mode single --repeats "$REPEATS")"
HF_BATCH="$(TOKENIZERS_PARALLELISM=true python3 "$ROOT/bench/tokenizer/hf_bench.py" "$TOKENIZER" "$CORPUS" --mode batch --repeats "$REPEATS")"
echo "$OURS"
echo "$HF_SINGLE"
echo "$HF_BATCH"
python3 - "$OURS" "$HF_SINGLE" "$HF_BATCH" <<'PY'
import json, sys
ours = [json.loads(l) for l in sys.argv[1].splitlines() if '"threads"' in l]
hf_single, hf_batch = json.loads(sys.argv[2]), json.loads(sys.argv[3])
single, multi = ours[0], ours[-1]
assert single["tokens"] == hf_single["tokens"] == hf_batch["tokens"], "token counts differ: not the same ids"
print(f"single thread: tessera {single['tokens_per_s']:,.0f} tok/s, HF encode {hf_single['tokens_per_s']:,.0f} tok/s, "
      f"ratio {single['tokens_per_s'] / hf_single['tokens_per_s']:.2f}x")
print(f"all threads ({multi['threads']}): tessera {multi['tokens_per_s']:,.0f} tok/s, HF encode_batch "
      f"{hf_batch['tokens_per_s']:,.0f} tok/s, ratio {multi['tokens_per_s'] / hf_batch['tokens_per_s']:.2f}x")
# Per CPU-second: what the wall-clock figures become on cores that are not shared with other work.
for name, ours_run, hf_run in (("single", single, hf_single), ("all threads", multi, hf_batch)):
    a, b = ours_run["tokens"] / ours_run["cpu_seconds"], hf_run["tokens"] / hf_run["cpu_seconds"]
    print(f"per CPU-second, {name}: tessera {a:,.0f} tok, HF {b:,.0f} tok, ratio {a / b:.2f}x")
PY
