#pragma once
// Data-parallel training over the dp group with ZeRO-0 (replicated optimizer state) or ZeRO-1 (optimizer
// state sharded over dp, updated shards all-gathered). Every rank holds the whole model and runs its own
// microbatches; gradients are combined in the fixed tree order of TreeSum, so a layout with a power-of-two
// number of microbatches per rank reproduces the 1-rank Trainer bit for bit (loss, norms, weights).
//
// ZeRO-2 (gradient sharding) is refused: it needs gradients reduced bucket by bucket during the backward
// and the full buffer released, which this trainer does not do; accepting the setting would only pretend.

#include <memory>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/dist/communicator.hpp"
#include "tessera/model/batch.hpp"
#include "tessera/model/decoder.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/train/checkpoint_view.hpp"
#include "tessera/train/data_parallel_reducer.hpp"
#include "tessera/train/optimizer.hpp"
#include "tessera/train/trainer.hpp"
#include "tessera/train/tree_sum.hpp"

namespace tessera::train {

class DataParallelTrainer {
 public:
  // `dp` is this rank's data-parallel communicator; every rank of it must construct the trainer with the
  // same config (the same seed gives every rank the same initial weights).
  DataParallelTrainer(const Config& config, dist::Communicator& dp);

  // One optimizer step. `local` are this rank's microbatches: ranks take consecutive equal blocks of the
  // step's microbatches in rank order (rank r: microbatches r·k … r·k + k − 1).
  StepStats step(const std::vector<model::Batch>& local);

  model::ParameterStore& parameters() { return store_; }
  // dp rank 0 writes the weights; ZeRO-1 ranks each write their optimizer shard, ZeRO-0 only dp rank 0.
  CheckpointView checkpoint_view();

 private:
  Config config_;
  dist::Communicator& dp_;
  model::ParameterStore store_;
  model::Decoder decoder_;
  DataParallelReducer reducer_;
  AdamW optimizer_;  // the whole buffer (ZeRO-0) or this rank's chunk (ZeRO-1)
  TreeSum local_sum_;
  std::vector<float> partial_, shard_;
};

}  // namespace tessera::train
