#pragma once
// The decoder-only transformer of the Qwen3 / Qwen3-MoE / Qwen2 / Llama families on the CPU fp32
// backend: embedding, layers of (RMSNorm → GQA attention with rotary, optional QK-norm and q/k/v bias) and
// (RMSNorm → SwiGLU MLP or routed MoE), final norm, LM head (tied or not), cross-entropy. Explicit forward
// and backward; activation recompute per the config. It reads and writes only the ParameterStore it is
// given and never communicates: parallelism is applied from outside.

#include <cstdint>
#include <memory>
#include <span>

#include "tessera/core/config.hpp"
#include "tessera/model/batch.hpp"
#include "tessera/model/parameter_store.hpp"

namespace tessera::model {

struct ForwardLoss {
  double ce_sum = 0;    // Σ cross-entropy over the batch's targets
  int64_t targets = 0;  // how many tokens had a target
  double aux = 0;       // MoE load-balancing loss (unscaled, transformers' formula); 0 for dense models
  double z = 0;         // MoE router z-loss: Σ over layers of mean over tokens of logsumexp(router logits)²
};

class Decoder {
 public:
  // Buffers are sized for batches of up to `max_tokens` tokens whose samples are at most
  // `max_sample_length` long; a larger batch is refused.
  Decoder(const ModelConfig& config, ParameterStore& store, int64_t max_tokens, int64_t max_sample_length,
          Recompute recompute);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Runs the forward pass and keeps what the backward needs. `batch` must stay alive until backward().
  ForwardLoss forward(const Batch& batch);
  // Logits [tokens, vocab] of the last forward (valid until backward, which reuses the buffer).
  std::span<const float> logits() const;
  // Accumulates into the store's gradients d(ce_scale · ce_sum + aux_scale · aux + z_scale · z) of the
  // last forward.
  void backward(float ce_scale, float aux_scale, float z_scale = 0.0f);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::model
