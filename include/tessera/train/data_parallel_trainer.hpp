#pragma once
// Data-parallel training over the dp group with ZeRO-0 (replicated optimizer state) or ZeRO-1 (optimizer
// state sharded over dp, updated shards all-gathered). Every rank holds the whole model and runs its own
// microbatches; gradients are combined in the fixed tree order of TreeSum, so a layout with a power-of-two
// number of microbatches per rank reproduces the 1-rank Trainer bit for bit (loss, norms, weights).
//
// ZeRO-2 also shards the gradient sum: ranks take the step's microbatches round-robin (rank r: r, r + dp,
// …), and after each microbatch's backward its gradient is exchanged at once, so that the owner of each
// chunk receives the consecutive leaves i·dp … i·dp + dp − 1 and adds them to a chunk-sized TreeSum in
// global leaf order: no rank accumulates a whole-model gradient across microbatches (one microbatch's
// gradient still exists whole while it is exchanged; it is not reduced bucket by bucket during the
// backward). Bit for bit the 1-rank run too, for any number of microbatches per rank.

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

  // One optimizer step over this rank's microbatches, those takes_microbatch() gives it, in order.
  StepStats step(const std::vector<model::Batch>& local);
  // Whether data-parallel rank `rank` of `ranks` trains microbatch `index` of a step of `count`:
  // consecutive equal blocks in rank order under ZeRO-0/1, round-robin under ZeRO-2.
  static bool takes_microbatch(const Config& config, int rank, int ranks, int64_t index, int64_t count);

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
  std::vector<float> partial_;
  TreeSum shard_sum_;  // ZeRO-2: this rank's chunk, summed over all leaves in global order
  std::vector<float> shard_;
};

}  // namespace tessera::train
