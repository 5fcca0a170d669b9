#pragma once
// The single-process training step: microbatches forward and backward with gradient accumulation, loss
// normalised over the whole step's targets, global-norm clipping, AdamW, the LR schedule. Parallel layouts
// (TP/PP/DP/EP) wrap this loop in later issues; one process is the reference they must reproduce.

#include <cstdint>
#include <memory>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/model/batch.hpp"
#include "tessera/model/decoder.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/train/checkpoint_view.hpp"
#include "tessera/train/optimizer.hpp"
#include "tessera/train/tree_sum.hpp"

namespace tessera::train {

struct StepStats {
  int64_t step = 0;
  double loss = 0;      // mean CE over the step's targets + aux_coef · aux + z_coef · z (means over microbatches)
  double ce_loss = 0;
  double aux_loss = 0;  // mean over microbatches (unscaled)
  double z_loss = 0;    // router z-loss, mean over microbatches (unscaled)
  double grad_norm = 0; // before clipping
  double lr = 0;
  int64_t tokens = 0;
  int64_t targets = 0;
  // MoE: (token, expert) assignments per expert over every layer and microbatch of the step (all ranks).
  std::vector<int64_t> expert_load;
};

// Adds one microbatch's per-expert counts into a step's.
void add_expert_load(std::vector<int64_t>& step, const std::vector<int64_t>& microbatch);

class Trainer {
 public:
  // Refuses, with the reason, what the single-process CPU trainer cannot do (parallel sizes > 1, bf16, ...).
  explicit Trainer(const Config& config);

  // One optimizer step over the given microbatches.
  StepStats step(const std::vector<model::Batch>& microbatches);

  model::ParameterStore& parameters() { return store_; }
  const Config& config() const { return config_; }
  int64_t steps_taken() const { return optimizer_.steps_taken(); }
  CheckpointView checkpoint_view() { return {&store_, 0, &optimizer_, true, true, "r0"}; }

 private:
  Config config_;
  model::ParameterStore store_;
  model::Decoder decoder_;
  AdamW optimizer_;
  TreeSum accumulator_;
};

// Microbatches per step for one data-parallel rank: global_batch_size / micro_batch_size (dp = 1 here).
int64_t microbatches_per_step(const TrainConfig& train);

}  // namespace tessera::train
