#pragma once
// The published estimates `tessera plan` budgets with. Each function is one formula with its source, so a
// test can reproduce the paper's own example figures.

#include <cstdint>

#include "tessera/core/config.hpp"

namespace tessera::plan {

// Bytes one parameter costs in each kind of training state before any sharding.
struct StateBytes {
  double param = 0;      // the weights the forward pass reads
  double grad = 0;       // gradient accumulation buffer
  double optimizer = 0;  // fp32 master copy (when params are 16-bit) + Adam's two moments
};

// tessera keeps bf16 weights, fp32 gradients and fp32 master + moments (Megatron's distributed optimizer
// mix); in fp32 the weights are their own master copy.
StateBytes state_bytes(Precision precision);

// The mixed-precision Adam accounting of the ZeRO paper (Rajbhandari et al. 2020): fp16 params and grads,
// K = 12 bytes of optimizer state.
StateBytes zero_paper_state_bytes();

// Bytes per parameter under ZeRO `stage` with the state sharded over `shards` data-parallel ranks:
// stage 0 P+G+O, stage 1 P+G+O/d, stage 2 P+(G+O)/d. With the ZeRO paper's bytes this is 16Ψ,
// 4Ψ+12Ψ/d and 2Ψ+14Ψ/d; with tessera's bf16 bytes stage 1 is Megatron's 6 + 12/d.
StateBytes sharded_state_bytes(const StateBytes& bytes, int zero_stage, int shards);
double bytes_per_parameter(const StateBytes& bytes, int zero_stage, int shards);

// Activation memory of one transformer layer for one microbatch (Korthikanti et al. 2022, Table 2),
// written for 16-bit activations and scaled by bytes_per_value / 2.
struct ActivationShape {
  int64_t seq = 0;     // s: tokens per row on this rank (seq_length / cp)
  int64_t micro = 0;   // b: rows per microbatch
  int64_t hidden = 0;  // h
  int64_t heads = 0;   // a
  int64_t tp = 1;      // t
  bool sequence_parallel = false;
  Recompute recompute = Recompute::none;
  double bytes_per_value = 2;
};
double activation_bytes_per_layer(const ActivationShape& shape);

// Training FLOPs per token (PaLM, Chowdhery et al. 2022, appendix B): 6N for the matmuls of forward and
// backward plus 12·L·H·Q·T for attention scores, where N counts the parameters a token multiplies with.
double training_flops_per_token(int64_t matmul_params, int64_t layers, int64_t heads, int64_t head_dim,
                                int64_t seq_length);

// 6N + 12·L·H·Q·T for a model at seq_length T, with N the parameters a token multiplies with: every
// active weight but the embedding lookup, plus the LM head (which, when tied, is the embedding matrix
// used as a matmul).
double model_flops_per_token(const ModelConfig& model, int64_t seq_length);

}  // namespace tessera::plan
