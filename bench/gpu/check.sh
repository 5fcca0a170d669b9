#!/usr/bin/env bash
# The one-call GPU check, run THERE (the lent H200) from the repository root: bash bench/gpu/check.sh
# Needs the pack made HERE by bench/gpu/pack.sh (.gpu/pack.tar.xz or .gpu/bin + .gpu/lib, carried as ".gpu").
#
#  1. environment: nvidia-smi -L, LD_LIBRARY_PATH (.gpu/lib, the CUDA toolkit, Python's nvidia/* packages),
#     and every library ldd still cannot find, printed at once;
#  2. the CUDA tests (tessera_cuda_tests; gtest XML + log), rerun once past a crashed test if time allows;
#  3. tessera_gpu_bench --gemm-peak;
#  4. for each config: tessera_gpu_bench --config, then the PyTorch peer (bench/gpu/torch_step.py);
#  5. the table (bench/gpu/table.py).
# Every step runs whatever the previous ones did, under its own timeout, and every timeout is cut to fit
# the total budget. Writes under ${OUT:-/tmp/out} (6 files: check.log = this output + details, tests.xml,
# tests-rerun.xml, tests.log, bench.log, results.jsonl: one JSON line per run, error lines included).
#
# Environment overrides (defaults): CHECK_BUDGET_S (440: the whole script), TEST_TIMEOUT (180),
# GEMM_TIMEOUT (60), BENCH_TIMEOUT (90: each tessera or torch run), BENCH_STEPS (10), BENCH_WARMUP (3),
# SEQ (the configs' seq_length), CONFIGS ("bench/gpu/dense-1b.yaml bench/gpu/moe-small.yaml"),
# GTEST_FILTER (all), SKIP_TESTS / SKIP_TORCH / SKIP_TESSERA (0), PYTHON (python3), TORCH_ARGS (more
# arguments for torch_step.py, e.g. "--device cpu" for a dry run without a GPU).
set -u
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LOG=$OUT/check.log
RESULTS=$OUT/results.jsonl
BLOG=$OUT/bench.log
: >"$LOG"
: >"$RESULTS"
: >"$BLOG"
T0=$SECONDS
BUDGET=${CHECK_BUDGET_S:-440}
TEST_TIMEOUT=${TEST_TIMEOUT:-180}
GEMM_TIMEOUT=${GEMM_TIMEOUT:-60}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-90}
STEPS=${BENCH_STEPS:-10}
WARMUP=${BENCH_WARMUP:-3}
CONFIGS=${CONFIGS:-bench/gpu/dense-1b.yaml bench/gpu/moe-small.yaml}
PY=${PYTHON:-python3}
MIN_STEP=35  # seconds kept back for each step still to come
RESERVE=15   # and for the table at the end
export PYTHONUNBUFFERED=1
# The tests find the golden data and configs through it (the build was made in another checkout path).
export TESSERA_SOURCE_DIR=$PWD
read -r -a configs <<<"$CONFIGS"

say() { printf '%s\n' "$*" | tee -a "$LOG"; }
detail() { printf '%s\n' "$*" >>"$LOG"; }
elapsed() { echo $((SECONDS - T0)); }
# cap NOMINAL STEPS_AFTER: the timeout for this step, cut so the steps after it keep MIN_STEP each.
cap() {
  local c=$((BUDGET - (SECONDS - T0) - $2 * MIN_STEP - RESERVE))
  ((c > $1)) && c=$1
  echo "$c"
}
# record KIND CONFIG RC WALL STDOUT_FILE STDERR_FILE CAP: appends the run's JSON line to results.jsonl
# (its last line that parses, with config/rc/wall_s added), or an error line when there is none.
record() {
  "$PY" - "$@" >>"$RESULTS" <<'PY' || printf '{"kind":"%s","config":"%s","error":"record failed, rc %s"}\n' "$1" "$2" "$3" >>"$RESULTS"
import json, sys
kind, config, rc, wall, out, err, cap = sys.argv[1:8]
rc = int(rc)
line = None
for raw in open(out, errors="replace").read().splitlines():
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            line = obj
if line is None:
    tail = [l.strip()[:160] for l in open(err, errors="replace").read().splitlines() if l.strip()][-3:]
    why = f"timed out after {cap} s" if rc in (124, 137) else f"exit status {rc}, no JSON line"
    line = {"kind": kind, "error": why + ("; " + " | ".join(tail) if tail else "")[:600]}
elif rc in (124, 137) and "error" not in line:
    line["error"] = f"timed out after {cap} s"
line.setdefault("kind", kind)
line.update(config=config, rc=rc, wall_s=float(wall))
print(json.dumps(line))
PY
}
# run_step KIND CONFIG NOMINAL_TIMEOUT STEPS_AFTER CMD...: one benchmark run, recorded whatever happens.
run_step() {
  local kind=$1 config=$2 nominal=$3 after=$4 c t rc
  shift 4
  c=$(cap "$nominal" "$after")
  if ((c < 10)); then
    say "[$(elapsed)s] $kind $config: skipped, out of time budget"
    printf '{"kind":"%s","config":"%s","error":"skipped: out of time budget"}\n' "$kind" "$config" >>"$RESULTS"
    return
  fi
  say "[$(elapsed)s] $kind${config:+ $config}: $(printf '%s ' "$@" | sed -E 's/^env LD_LIBRARY_PATH=[^ ]+ //')(timeout ${c}s)"
  printf '\n===== [%ss] %s %s: %s\n' "$(elapsed)" "$kind" "$config" "$*" >>"$BLOG"
  t=$SECONDS
  timeout -k 10 "$c" "$@" >"$OUT/.stdout" 2>"$OUT/.stderr"
  rc=$?
  cat "$OUT/.stdout" "$OUT/.stderr" >>"$BLOG"
  record "$kind" "$config" "$rc" "$((SECONDS - t))" "$OUT/.stdout" "$OUT/.stderr" "$c"
  say "   rc $rc in $((SECONDS - t))s: $(tail -n 1 "$RESULTS" | cut -c1-400)"
  rm -f "$OUT/.stdout" "$OUT/.stderr"
}

say "== tessera GPU check $(date -u +%FT%TZ), budget ${BUDGET}s, steps $STEPS warmup $WARMUP, configs: ${configs[*]}"

# ---------------------------------------------------------------- the pack
GPU=.gpu
if [[ -f .gpu/pack.tar.xz ]]; then
  for dir in .gpu /tmp/tessera-gpu; do
    if "$PY" - "$dir" <<'PY' 2>>"$LOG"; then
import sys, tarfile
with tarfile.open(".gpu/pack.tar.xz") as t:
    try:
        t.extractall(sys.argv[1], filter="data")
    except TypeError:  # Python without extraction filters
        t.extractall(sys.argv[1])
PY
      GPU=$dir
      say "unpacked .gpu/pack.tar.xz into $GPU"
      break
    fi
    say "!! could not unpack .gpu/pack.tar.xz into $dir"
  done
fi
GPU=$(cd "$GPU" 2>/dev/null && pwd || echo "$PWD/.gpu")
BIN=$GPU/bin
[[ -d $BIN ]] || say "!! no $BIN: run bench/gpu/pack.sh BUILD_DIR here first, and carry .gpu"
[[ -f $GPU/MANIFEST ]] && { detail "--- MANIFEST"; cat "$GPU/MANIFEST" >>"$LOG"; say "$(head -2 "$GPU/MANIFEST")"; }

# ---------------------------------------------------------------- the environment
libdirs=("$GPU/lib")
cuda_home=""
if command -v nvcc >/dev/null 2>&1; then cuda_home=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")"); fi
for d in ${CUDA_HOME:-} $cuda_home /usr/local/cuda; do
  for sub in lib64 lib targets/x86_64-linux/lib; do
    [[ -d $d/$sub ]] && compgen -G "$d/$sub/libcudart.so*" >/dev/null && libdirs+=("$(readlink -f "$d/$sub")")
  done
done
while IFS= read -r d; do [[ -n $d ]] && libdirs+=("$d"); done < <("$PY" - 2>>"$LOG" <<'PY'
import glob, os
dirs = []
try:
    import nvidia  # namespace package of the nvidia-* wheels (cublas, cuda_runtime, nccl, cudnn, cu13, ...)
    roots = list(nvidia.__path__)
except Exception:
    import site
    roots = [os.path.join(p, "nvidia") for p in site.getsitepackages()]
for root in roots:
    for pat in ("*/lib", "*/lib64", "*/*/lib"):
        for d in sorted(glob.glob(os.path.join(root, pat))):
            if glob.glob(os.path.join(d, "lib*.so*")):
                dirs.append(os.path.realpath(d))
print("\n".join(dict.fromkeys(dirs)))
PY
)
# TLD is given to tessera's binaries (and ldd) alone: Python keeps the environment it came with, so the
# packed Debian libraries never shadow the ones its own modules were built against.
TLD=$(printf '%s\n' "${libdirs[@]}" | awk 'NF && !seen[$0]++' | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
say "nvidia-smi: $(nvidia-smi -L 2>&1 | head -4 | tr '\n' ' ')"
detail "$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>&1)"
say "host: $(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-?}"), $(ldd --version 2>&1 | head -1), $("$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>&1 | tail -1)"
say "LD_LIBRARY_PATH for tessera=$TLD"

# Libraries still missing: look for each under the usual roots, add its folder, say so.
tldd() { LD_LIBRARY_PATH=$TLD ldd "$@"; }
missing_libs() { for b in "$BIN"/*; do [[ -x $b ]] && tldd "$b" 2>&1; done | awk '/=> not found/ { print $1 }' | sort -u; }
for so in $(missing_libs); do
  hit=$(timeout 30 find /usr/local /opt /usr/lib /usr/lib64 /lib /root -name "$so" \( -type f -o -type l \) 2>/dev/null | head -1)
  if [[ -n $hit ]]; then
    TLD=$TLD:$(dirname "$hit")
    say "found $so in $(dirname "$hit"); added to tessera's LD_LIBRARY_PATH"
  fi
done
for b in "$BIN"/*; do
  [[ -x $b ]] || continue
  detail "--- ldd $b"
  tldd "$b" >>"$LOG" 2>&1
  bad=$(tldd "$b" 2>&1 | grep 'not found')
  if [[ -n $bad ]]; then say "!! $(basename "$b"): $bad"; else say "ldd $(basename "$b"): all libraries found"; fi
done
detail "--- resolved CUDA libraries"
detail "$(tldd "$BIN"/tessera_gpu_bench 2>&1 | grep -E 'cuda|cublas|nccl|gomp|openblas')"

# ---------------------------------------------------------------- the CUDA tests
steps_after_tests=$((1 + 2 * ${#configs[@]}))
TB=$BIN/tessera_cuda_tests
if [[ ${SKIP_TESTS:-0} == 1 ]]; then
  say "[$(elapsed)s] tests: skipped (SKIP_TESTS=1)"
elif [[ ! -x $TB ]]; then
  say "!! tests: $TB missing"
else
  c=$(cap "$TEST_TIMEOUT" "$steps_after_tests")
  ((c < 10)) && c=10
  say "[$(elapsed)s] tests: $(basename "$TB") (timeout ${c}s)"
  t=$SECONDS
  filter=()
  [[ -n ${GTEST_FILTER:-} ]] && filter=("--gtest_filter=$GTEST_FILTER")
  timeout -k 10 "$c" env LD_LIBRARY_PATH="$TLD" "$TB" "${filter[@]}" --gtest_output="xml:$OUT/tests.xml" >"$OUT/tests.log" 2>&1
  rc=$?
  say "   rc $rc in $((SECONDS - t))s; $(grep -cE '^\[ +OK \]' "$OUT/tests.log") ok, $(grep -cE '^\[ +FAILED +\] [^ ]+ \(' "$OUT/tests.log") failed, $(grep -cE '^\[ +SKIPPED +\] [^ ]+ \(' "$OUT/tests.log") skipped"
  grep -E '^\[ +FAILED +\] [^ ]+ \(' "$OUT/tests.log" | head -20 | tee -a "$LOG"
  if ((rc != 0 && rc != 1)) && [[ ! -s $OUT/tests.xml ]]; then
    # The binary died (a crash or the timeout): name the test it was in, then (crash only, time allowing)
    # run once more without it and without those already done.
    crashed=$(awk '/^\[ RUN +\]/ { cur = $NF } /^\[ +(OK|FAILED|SKIPPED) +\] [^ ]+ \(/ { if ($(NF-2) == cur) cur = "" }
      END { print cur }' "$OUT/tests.log")
    say "!! tests: the binary died (rc $rc) in ${crashed:-?}"
    printf '\n[  CRASHED ] %s (rc %s)\n' "${crashed:-?}" "$rc" >>"$OUT/tests.log"
    done_tests=$(grep -oE '^\[ +(OK|FAILED|SKIPPED) +\] [^ ]+ \(' "$OUT/tests.log" | awk '{ print $(NF-1) }' | sort -u | tr '\n' ':')
    c2=$(cap "$TEST_TIMEOUT" "$steps_after_tests")
    ((c2 > TEST_TIMEOUT - (SECONDS - t))) && c2=$((TEST_TIMEOUT - (SECONDS - t)))
    if ((rc != 124 && rc != 137 && c2 >= 20)) && [[ -n $crashed ]]; then
      neg="-${done_tests}${crashed}"
      [[ -n ${GTEST_FILTER:-} ]] && neg="${GTEST_FILTER%%-*}$neg"
      say "[$(elapsed)s] tests: rerun without those (timeout ${c2}s)"
      printf '\n===== rerun: --gtest_filter=%s\n' "$neg" >>"$OUT/tests.log"
      timeout -k 10 "$c2" env LD_LIBRARY_PATH="$TLD" "$TB" "--gtest_filter=$neg" --gtest_output="xml:$OUT/tests-rerun.xml" >>"$OUT/tests.log" 2>&1
      say "   rerun rc $?"
    fi
  fi
fi

# ---------------------------------------------------------------- tessera train on the GPU
# The CLI end to end (train.device: cuda, bf16, device chosen by local rank, GPU memory in the step log).
# It starts MPI as a singleton; the pack carries Open MPI's libraries but not its plugins, so a failure to
# start MPI here is reported as such, not as a training failure.
if [[ -x $BIN/tessera && ${SKIP_CLI:-0} != 1 ]]; then
  c=$(cap 45 $((1 + 2 * ${#configs[@]})))
  if ((c >= 10)); then
    say "[$(elapsed)s] cli: tessera train -c configs/tiny-dense.yaml on cuda, bf16 (timeout ${c}s)"
    timeout -k 5 "$c" env LD_LIBRARY_PATH="$TLD" OMPI_MCA_plm=isolated OMPI_MCA_btl=self "$BIN/tessera" train \
      -c configs/tiny-dense.yaml --set train.device=cuda --set train.precision=bf16 --set train.steps=30 \
      --set logging.interval=10 --set logging.run_dir="$OUT/cli-run" >"$OUT/cli.log" 2>&1
    rc=$?
    say "   rc $rc; $(grep -E 'step +(10|20|30)/' "$OUT/cli.log" | tail -3 | cut -c1-260 | tr '\n' ' ')"
    ((rc != 0)) && tail -5 "$OUT/cli.log" | tee -a "$LOG"
    cat "$OUT/cli.log" >>"$LOG"
    rm -rf "$OUT/cli.log" "$OUT/cli-run"
  fi
fi

# ---------------------------------------------------------------- the benchmarks
BB=$BIN/tessera_gpu_bench
n_after=$((2 * ${#configs[@]}))
if [[ -x $BB && ${SKIP_TESSERA:-0} != 1 ]]; then
  run_step gemm_peak "" "$GEMM_TIMEOUT" "$n_after" env LD_LIBRARY_PATH="$TLD" "$BB" --gemm-peak
else
  printf '{"kind":"gemm_peak","error":"not run (%s)"}\n' "$([[ -x $BB ]] && echo SKIP_TESSERA=1 || echo "no $BB")" >>"$RESULTS"
fi
read -r -a torch_args <<<"${TORCH_ARGS:-}"
[[ -n ${SEQ:-} ]] && torch_args+=(--seq "$SEQ")
for cfg in "${configs[@]}"; do
  n_after=$((n_after - 1))
  if [[ -x $BB && ${SKIP_TESSERA:-0} != 1 ]]; then
    run_step train_step "$cfg" "$BENCH_TIMEOUT" "$n_after" env LD_LIBRARY_PATH="$TLD" "$BB" --config "$cfg" --steps "$STEPS" --warmup "$WARMUP"
  else
    printf '{"kind":"train_step","config":"%s","error":"not run"}\n' "$cfg" >>"$RESULTS"
  fi
  n_after=$((n_after - 1))
  if [[ ${SKIP_TORCH:-0} != 1 ]]; then
    run_step torch_step "$cfg" "$BENCH_TIMEOUT" "$n_after" \
      "$PY" bench/gpu/torch_step.py --config "$cfg" --steps "$STEPS" --warmup "$WARMUP" "${torch_args[@]}"
  fi
done

# ---------------------------------------------------------------- the table
say "[$(elapsed)s] done; files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
say ""
"$PY" bench/gpu/table.py "$RESULTS" "$OUT/tests.xml" 2>&1 | tee -a "$LOG"
exit 0
