#pragma once
// Pipeline-parallel training over the pp group with the 1F1B schedule (parallel/pipeline_schedule.hpp):
// stage s holds layers layers_per_stage(...)[s] (the embedding on the first stage, the final norm, LM head
// and loss on the last) and runs the schedule's actions, sending activations forward and their gradients
// back over point-to-point messages. Up to min(pp − s, microbatches) microbatches are in flight on stage s,
// each in its own set of activation buffers.
//
// Exactness: a stage computes its layers exactly as the 1-rank decoder does, accumulates each
// microbatch's gradient in the same TreeSum order, and the global gradient norm is an exact sum of
// squares (square_sum.hpp) that each rank adds over the values it owns; clipping and AdamW are elementwise. So every stage's weights equal the
// 1-rank Trainer's, bit for bit, and so do the losses (MoE routing statistics travel with the activations
// and are combined in layer order).
//
// With data parallelism (pp × dp), each dp replica runs the pipeline over its block of the step's
// microbatches; each stage's gradient is then summed over its dp group in the same tree order
// (data_parallel_reducer.hpp), the per-microbatch losses are gathered and added in microbatch order, and
// ZeRO-1 shards the stage's optimizer state over dp (each rank reduces only its chunk of the gradient; the
// updated chunks are all-gathered). Still bit for bit.
//
// The same trainer runs tensor and expert parallelism (and sequence parallelism) inside each stage, with
// pp = 1 meaning one stage: docs/parallelism.md. Those layouts equal the 1-rank run up to rounding.

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/dist/communicator.hpp"
#include "tessera/model/batch.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/train/checkpoint_view.hpp"
#include "tessera/train/trainer.hpp"

namespace tessera::train {

class PipelineTrainer {
 public:
  // `pp` is this rank's pipeline communicator (its rank is the stage); `dp` its data-parallel communicator
  // and `tp` its tensor-parallel one (null: size 1). Every rank constructs the trainer with the same config.
  PipelineTrainer(const Config& config, dist::Communicator& pp, dist::Communicator* dp = nullptr,
                  dist::Communicator* tp = nullptr, dist::Communicator* ep = nullptr,
                  dist::Communicator* edp = nullptr);
  ~PipelineTrainer();

  // One optimizer step over this dp replica's microbatches: dp rank r takes the step's microbatches
  // r·k … r·k + k − 1, and every stage of the replica is given all k (the first reads the token ids, the
  // last the targets, every stage the sample boundaries and positions). Every rank returns the same
  // statistics.
  StepStats step(const std::vector<model::Batch>& microbatches);

  // This stage's tensors, and where they start in the whole model's flat parameter layout.
  model::ParameterStore& parameters();
  size_t global_offset() const;
  // This rank's tensors by Hugging Face name, each whole (tensor-parallel shards gathered: collective over
  // tp), or the last step's gradients (after clipping). Under expert parallelism, only this rank's experts.
  std::vector<std::pair<std::string, std::vector<float>>> whole_tensors(bool grads = false);
  // Each stage's dp rank 0 writes the stage's weights; optimizer state as in DataParallelTrainer. Under
  // tensor or expert parallelism the view is of the whole stage, gathered now from every rank's shards,
  // experts and ZeRO chunks (collective over tp, dp and ep: call it at every save, on every rank), and the
  // stage's tp 0 / dp 0 rank writes it. After loading weights (and optimizer state) into that view, call
  // checkpoint_loaded() to give each rank its part.
  CheckpointView checkpoint_view();
  void checkpoint_loaded(bool optimizer_state);
  // Frees the whole-stage copy a tensor/expert-parallel view holds (the view must not be used after).
  void release_checkpoint_view();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::train
