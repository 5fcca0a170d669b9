#pragma once
// The decoder-only transformer of the Qwen3 / Qwen3-MoE / Qwen2 / Llama families on the CPU fp32
// backend: embedding, layers of (RMSNorm → GQA attention with rotary, optional QK-norm and q/k/v bias) and
// (RMSNorm → SwiGLU MLP or routed MoE), final norm, LM head (tied or not), cross-entropy. Explicit forward
// and backward; activation recompute per the config. It reads and writes only the ParameterStore it is
// given and never communicates: parallelism is applied from outside.

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/model/batch.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/model/expert_parallel.hpp"
#include "tessera/model/tensor_parallel.hpp"

namespace tessera::model {

struct ForwardLoss {
  double ce_sum = 0;    // Σ cross-entropy over the batch's targets
  int64_t targets = 0;  // how many tokens had a target
  double aux = 0;       // MoE load-balancing loss (unscaled, transformers' formula); 0 for dense models
  double z = 0;         // MoE router z-loss: Σ over layers of mean over tokens of logsumexp(router logits)²
  std::vector<int64_t> expert_load;  // MoE: tokens routed to each expert, summed over every layer
};

// The part of the network one pipeline stage runs: layers [first_layer, end_layer), plus the embedding on the
// first stage and the final norm, LM head and loss on the last. The default is the whole model.
struct StageLayers {
  int first_layer = 0;
  int end_layer = -1;  // -1: the last layer
  bool embedding = true;
  bool head = true;
};

// One layer's MoE routing over a forward's tokens: how often each expert was picked, the sum of each
// expert's router probability (both summed over tokens in order), and Σ_t lse_t² / N (the z-loss term).
// The load-balancing loss combines every layer's, so pipeline stages pass them on.
struct LayerRouting {
  std::vector<double> selections, prob_sums;
  double z = 0;
};

// What a non-first stage receives with its input: the previous stage's output and the routing of every
// layer before it. What a non-last stage receives for its backward: the gradient of its output and the
// load-balancing gradient (computed by the last stage, which sees every layer's routing).
struct StageInput {
  std::span<const float> hidden;      // [tokens, hidden]
  std::vector<LayerRouting> routing;  // layers 0 .. first_layer - 1
};
struct StageGradient {
  std::span<const float> d_hidden;  // [tokens, hidden]
  std::vector<double> aux_grad;     // [experts]
};

class Decoder {
 public:
  // Buffers are sized for batches of up to `max_tokens` tokens whose samples are at most
  // `max_sample_length` long; a larger batch is refused. `store` holds (at least) the stage's tensors.
  // Under tensor parallelism (`tp` of size > 1) the store holds this rank's shards (shard_specs) and the
  // decoder runs Megatron's column/row-parallel layers and vocabulary-parallel embedding and loss, calling
  // `tp` for the reductions; every rank of the group sees the same batch and gets the same loss. Under
  // expert parallelism (`ep` of size > 1) the store holds only this rank's experts (expert_parallel_specs)
  // and each MoE layer sends its routed tokens to the experts' ranks and back over `ep`; every rank of
  // that group runs its own batch, in step with the others. With `sequence_parallel` (tp > 1) each tp rank
  // keeps only its 1/tp of the tokens' rows between the parallel regions (Megatron's sequence parallelism:
  // all-gather before the column-parallel layers, reduce-scatter after the row-parallel ones); stage
  // inputs, outputs and their gradients are then this rank's rows.
  Decoder(const ModelConfig& config, ParameterStore& store, int64_t max_tokens, int64_t max_sample_length,
          Recompute recompute, StageLayers stage = {}, TensorParallel* tp = nullptr, ExpertParallel* ep = nullptr,
          bool sequence_parallel = false);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Runs the forward pass and keeps what the backward needs. `batch` must stay alive until backward().
  // A non-first stage takes its input from `in`; only the last stage returns a loss.
  ForwardLoss forward(const Batch& batch, const StageInput& in = {});
  // A non-last stage's output [tokens, hidden] (valid until the next forward).
  std::span<const float> hidden_out() const;
  // Routing of every layer up to this stage's last (earlier stages' from `in`, then this stage's).
  const std::vector<LayerRouting>& routing() const;
  // Logits [tokens, vocab] (this rank's vocabulary slice under tp) of the last forward (valid until backward, which reuses the buffer).
  std::span<const float> logits() const;
  // Accumulates into the store's gradients d(ce_scale · ce_sum + aux_scale · aux + z_scale · z) of the
  // last forward. A non-last stage takes the gradient of its output (and the load-balancing gradient)
  // from `in`.
  void backward(float ce_scale, float aux_scale, float z_scale = 0.0f, const StageGradient& in = {});
  // A non-first stage's input gradient [tokens, hidden] and the load-balancing gradient it used, for the
  // previous stage (valid until the next backward).
  std::span<const float> d_hidden_in() const;
  const std::vector<double>& aux_grad() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::model
