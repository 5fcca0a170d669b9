#!/usr/bin/env bash
# The main job tessera can run today on the shipped defaults: check the configs, plan the real layouts
# (8B dense on 8 and 64 GPUs, 30B MoE with ep8 on 16), show a refused layout, build and verify the rank
# grid of the tiny MoE model over 8 real MPI ranks, pack the embedded data and train on it (one process and
# 8 ranks, pp2 × dp4 and tp2 × pp2 × dp2), train the tiny dense and MoE models in one process, data-parallel,
# pipeline-parallel and expert-parallel, and stop and resume a run exactly.
set -euo pipefail
build=${1:-build}
tessera="$build/src/tessera"
cd "$(dirname "$0")/.."
# Open MPI refuses root unless told; a demo on a fresh root shell (CI-like machines) should just run.
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

step() { printf '\n=== %s\n' "$*"; }
# Runs resume from their checkpoints: start every demo run afresh.
rm -rf runs/demo runs/demo-*

step "tessera version"
"$tessera" version

step "configs"
for c in configs/*.yaml; do "$tessera" config -c "$c"; done

step "plan: qwen3-8b on one 8-GPU node (tp4 x pp2)"
"$tessera" plan -c configs/qwen3-8b.yaml --world-size 8
step "plan: qwen3-8b on 64 GPUs (tp4 x pp2 x dp8), ZeRO-1"
"$tessera" plan -c configs/qwen3-8b.yaml --world-size 64 | sed -n '/memory per rank/,$p'
step "plan: qwen3-30b-a3b on 16 GPUs (ep8 x pp2)"
"$tessera" plan -c configs/qwen3-30b-a3b.yaml --world-size 16
step "plan refuses what cannot run: qwen3-8b unsharded on one 80 GiB GPU"
"$tessera" plan -c configs/qwen3-8b.yaml --world-size 1 --set parallel.tp=1 --set parallel.pp=1 \
  --set parallel.sequence_parallel=false || true

step "grid: tiny-moe over 8 MPI ranks (pp2 x dp4, experts ep4), communicators verified"
run_dir=runs/demo-grid
rm -rf "$run_dir"  # logs append across restarts of one run; the demo starts a fresh one
mpirun --oversubscribe -np 8 "$tessera" grid -c configs/tiny-moe.yaml --set parallel.pp=2 --set parallel.ep=4 \
  --set "logging.run_dir=$run_dir"
echo "rank 5 wrote:"
cat "$run_dir/logs/rank-00005.log"

# The shared Qwen3 tokenizer when present, else the bundled copy CMake extracted (same bytes).
tokenizer=../shared/data/qwen3-tokenizer
[ -f "$tokenizer/tokenizer.json" ] || tokenizer="$build/data/qwen3-tokenizer"
if [ -f "$tokenizer/tokenizer.json" ]; then
  step "pack: embedded conversations + volunteer matching (Qwen3 tokenizer, ChatML, assistant labels) into HDF5"
  mkdir -p runs/demo
  "$tessera" pack --input data/embedded/conversations.jsonl,data/embedded/matching.jsonl --tokenizer "$tokenizer" \
    --seq-length 2048 --output runs/demo/embedded-text.h5
  "$tessera" inspect runs/demo/embedded-text.h5
  step "pack: embedded multimodal samples (certificate photos, drill videos → Qwen2-VL patches)"
  "$tessera" pack --input data/embedded/multimodal.jsonl --tokenizer "$tokenizer" --seq-length 4096 \
    --output runs/demo/embedded-vision.h5
  "$tessera" inspect runs/demo/embedded-vision.h5 --row 0 --tokenizer "$tokenizer" > runs/demo/vision-row0.txt
  head -c 1800 runs/demo/vision-row0.txt; echo " …"
  step "train: SFT of a tiny Qwen3-vocabulary model on the packed embedded data (loader → decoder → AdamW)"
  "$tessera" train -c configs/demo-sft.yaml --set "data.tokenizer=$tokenizer"
  step "train: the same SFT on 8 MPI ranks, pipeline 2 × data 4 (1F1B, ZeRO-1), with the step breakdown"
  OMP_NUM_THREADS=1 mpirun --oversubscribe -np 8 "$tessera" train -c configs/demo-sft.yaml \
    --set "data.tokenizer=$tokenizer" --set parallel.pp=2 --set train.global_batch_size=8 --set train.steps=4 \
    --set logging.interval=1 --set logging.run_dir=runs/demo-sft-pp2-dp4
  step "train: the same SFT on 8 MPI ranks, tensor 2 × pipeline 2 × data 2 (vocabulary-parallel loss; equal to 1 rank up to rounding)"
  OMP_NUM_THREADS=1 mpirun --oversubscribe -np 8 "$tessera" train -c configs/demo-sft.yaml \
    --set "data.tokenizer=$tokenizer" --set parallel.tp=2 --set parallel.pp=2 --set train.global_batch_size=8 \
    --set train.steps=4 --set logging.interval=1 --set logging.run_dir=runs/demo-sft-tp2-pp2-dp2
else
  step "pack/train on the embedded data: SKIPPED — the Qwen3 tokenizer is not at $tokenizer"
fi

step "train: tiny-dense, one process, CPU fp32, synthetic packed data (loss falls)"
"$tessera" train -c configs/tiny-dense.yaml --set logging.run_dir=runs/demo-train-dense
step "train: the same tiny-dense run data-parallel on 2 MPI ranks with ZeRO-1 (same losses, bit for bit)"
mpirun --oversubscribe -np 2 "$tessera" train -c configs/tiny-dense.yaml --set parallel.zero_stage=1 \
  --set logging.run_dir=runs/demo-train-dense-dp2
step "train: the same tiny-dense run pipeline-parallel on 2 MPI ranks, 1F1B (same losses, bit for bit)"
mpirun --oversubscribe -np 2 "$tessera" train -c configs/tiny-dense.yaml --set parallel.pp=2 \
  --set logging.run_dir=runs/demo-train-dense-pp2
step "preemption: the tiny-dense run stopped after step 30 (checkpoint, exit code 75), then restarted on 2 ranks"
rm -rf runs/demo-resume
rc=0
"$tessera" train -c configs/tiny-dense.yaml --set train.exit_interval=30 --set logging.run_dir=runs/demo-resume || rc=$?
[ "$rc" -eq 75 ] || { echo "expected exit code 75 from the stopped run, got $rc"; exit 1; }
mpirun --oversubscribe -np 2 "$tessera" train -c configs/tiny-dense.yaml --set logging.run_dir=runs/demo-resume
echo "(the step-60 loss above equals the uninterrupted run's: resumed exactly, on another layout)"
step "train: tiny-moe (8 experts, top-2, aux loss)"
"$tessera" train -c configs/tiny-moe.yaml --set logging.run_dir=runs/demo-train-moe
step "train: the same tiny-moe run on 8 MPI ranks, experts over ep4 (all-to-all token dispatch) × pipeline 2"
OMP_NUM_THREADS=1 mpirun --oversubscribe -np 8 "$tessera" train -c configs/tiny-moe.yaml --set parallel.ep=4 \
  --set parallel.pp=2 --set train.global_batch_size=8 --set train.micro_batch_size=2 \
  --set logging.run_dir=runs/demo-train-moe-ep4-pp2
