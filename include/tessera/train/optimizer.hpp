#pragma once
// AdamW with decoupled weight decay (torch.optim.AdamW semantics), global gradient-norm clipping
// (torch.nn.utils.clip_grad_norm_ semantics) and the learning-rate schedule. The optimizer state lives in
// flat buffers laid out like the ParameterStore, so ZeRO can later own a contiguous range of it.

#include <cstdint>
#include <cstddef>
#include <functional>
#include <span>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/model/parameter_store.hpp"

namespace tessera::train {

// Learning rate for optimizer step `step` (1 = the first update): linear warmup from 0 to lr over
// warmup_steps, then decay to min_lr over decay_steps (cosine, linear or none), then min_lr.
double learning_rate(const OptimConfig& optim, int64_t total_steps, int64_t step);

// sqrt(Σ g²) with Σ g² exact (square_sum.hpp), so any sharded computation of the same values gives the
// same bits.
double global_grad_norm(std::span<const float> grads);
// The factor torch.nn.utils.clip_grad_norm_ scales gradients by: max_norm / (norm + 1e-6) when that is below
// 1, else 1 (also when max_norm <= 0: no clipping).
float clip_coefficient(double norm, double max_norm);
// Scales grads by clip_coefficient(norm, max_norm); returns the scale applied.
float clip_grad_norm(std::span<float> grads, double norm, double max_norm);

class AdamW {
 public:
  // State for the flat parameter range [begin, end) of the store (ZeRO shards own a range; the default is
  // everything).
  AdamW(const OptimConfig& config, const model::ParameterStore& store, size_t begin = 0, size_t end = SIZE_MAX);

  // One update of every parameter with the store's gradients at learning rate `lr`.
  void step(model::ParameterStore& store, double lr);
  // One update of the owned range from `grads` (its gradients, [begin, end)).
  void step_range(model::ParameterStore& store, std::span<const float> grads, double lr);
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  int64_t steps_taken() const { return steps_; }
  std::span<const float> exp_avg() const { return m_; }
  std::span<const float> exp_avg_sq() const { return v_; }
  // Continues from saved state (a checkpoint): `fill` writes the moments of the owned range straight into
  // the optimizer's buffers; `steps` is the number of steps already taken.
  void restore(int64_t steps, const std::function<void(std::span<float> exp_avg, std::span<float> exp_avg_sq)>& fill);

 private:
  OptimConfig config_;
  std::vector<float> m_, v_;
  std::vector<uint8_t> decay_;  // per tensor: does weight decay apply
  size_t begin_ = 0, end_ = 0;
  int64_t steps_ = 0;
};

}  // namespace tessera::train
