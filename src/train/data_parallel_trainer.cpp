#include "tessera/train/data_parallel_trainer.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>

#include "tessera/core/error.hpp"
#include "tessera/train/square_sum.hpp"

namespace tessera::train {
namespace {

const Config& checked(const Config& c, const dist::Communicator& dp) {
  const ParallelConfig& p = c.parallel;
  TESSERA_CHECK(p.tp == 1 && p.cp == 1 && p.pp == 1 && p.ep == 1,
                "data-parallel training is what is built so far; the config asks for tp={} cp={} pp={} ep={}", p.tp,
                p.cp, p.pp, p.ep);
  TESSERA_CHECK(p.zero_stage <= 2, "parallel.zero_stage {}: ZeRO-3 is not built; use 0, 1 or 2", p.zero_stage);
  TESSERA_CHECK(c.train.precision == Precision::fp32, "train.precision: the CPU backend trains in fp32");
  const int64_t micro = microbatches_per_step(c.train);
  TESSERA_CHECK(micro % dp.size() == 0,
                "train.global_batch_size / micro_batch_size = {} microbatches per step cannot be split over dp = {}",
                micro, dp.size());
  return c;
}

}  // namespace

DataParallelTrainer::DataParallelTrainer(const Config& config, dist::Communicator& dp)
    : config_(checked(config, dp)),
      dp_(dp),
      store_(model::parameter_specs(config.model)),
      decoder_(config.model, store_, config.train.micro_batch_size * config.data.seq_length, config.data.seq_length,
               config.train.recompute),
      reducer_(dp, store_.values().size()),
      optimizer_(config.optim, store_,
                 config.parallel.zero_stage == 0 ? 0 : std::min(reducer_.chunk_begin(), store_.values().size()),
                 config.parallel.zero_stage == 0 ? SIZE_MAX : reducer_.chunk_begin() + reducer_.chunk_size()),
      // Only one of the two accumulators is used: whole-model partial sums (ZeRO-0/1) or chunk sums (ZeRO-2).
      local_sum_(config.parallel.zero_stage == 2 ? 0 : store_.values().size()),
      partial_(config.parallel.zero_stage == 2 ? 0 : store_.values().size()),
      shard_sum_(config.parallel.zero_stage == 2 ? reducer_.chunk_size() : 0),
      shard_(reducer_.chunk_size()) {
  model::initialize_parameters(store_, config.model.init_std, config.train.seed);
}

StepStats DataParallelTrainer::step(const std::vector<model::Batch>& local) {
  const int dp = dp_.size();
  const auto k = static_cast<int64_t>(local.size());
  TESSERA_CHECK(k > 0, "a data-parallel step needs at least one microbatch per rank");
  StepStats stats;
  stats.step = optimizer_.steps_taken() + 1;
  std::array<int64_t, 2> counts = {0, 0};
  for (const auto& mb : local) {
    counts[0] += mb.num_targets();
    counts[1] += mb.tokens();
  }
  dp_.all_reduce(std::span<int64_t>(counts), dist::ReduceOp::sum)->wait();
  stats.targets = counts[0];
  stats.tokens = counts[1];
  TESSERA_CHECK(stats.targets > 0, "step {}: no token of the step's microbatches carries a loss label", stats.step);
  const double total_micro = static_cast<double>(k) * dp;
  const float ce_scale = 1.0f / static_cast<float>(stats.targets);
  const auto aux_scale = static_cast<float>(config_.model.router_aux_loss_coef / total_micro);
  const auto z_scale = static_cast<float>(config_.model.router_z_loss_coef / total_micro);

  const bool zero2 = config_.parallel.zero_stage == 2;
  std::vector<double> losses;  // ce, aux, z per microbatch
  for (const auto& mb : local) {
    store_.zero_grads();
    const model::ForwardLoss l = decoder_.forward(mb);
    losses.insert(losses.end(), {l.ce_sum, l.aux, l.z});
    add_expert_load(stats.expert_load, l.expert_load);
    decoder_.backward(ce_scale, aux_scale, z_scale);
    if (!zero2) {
      local_sum_.add(store_.grads());
      continue;
    }
    // Leaves i·dp … i·dp + dp − 1 of this chunk arrive together, in rank order = global leaf order.
    const std::span<const float> received = reducer_.exchange(store_.grads());
    for (int r = 0; r < dp; ++r) shard_sum_.add(received.subspan(static_cast<size_t>(r) * reducer_.chunk_size(), reducer_.chunk_size()));
  }
  // Every microbatch's losses, added in global microbatch order as the 1-rank trainer adds them (rank r's
  // j-th microbatch is global j·dp + r under ZeRO-2, r·k + j otherwise).
  const std::vector<double> all_losses = all_gather_doubles(dp_, losses);
  if (!stats.expert_load.empty()) dp_.all_reduce(std::span<int64_t>(stats.expert_load), dist::ReduceOp::sum)->wait();
  for (int64_t g = 0; g < k * dp; ++g) {
    const int64_t r = zero2 ? g % dp : g / k, j = zero2 ? g / dp : g % k;
    const size_t at = static_cast<size_t>((r * k + j) * 3);
    stats.ce_loss += all_losses[at];
    stats.aux_loss += all_losses[at + 1];
    stats.z_loss += all_losses[at + 2];
  }
  stats.ce_loss /= static_cast<double>(stats.targets);
  stats.aux_loss /= total_micro;
  stats.z_loss /= total_micro;
  stats.loss = stats.ce_loss + config_.model.router_aux_loss_coef * stats.aux_loss +
               config_.model.router_z_loss_coef * stats.z_loss;

  if (zero2) {
    shard_sum_.finish(shard_);
  } else {
    // This rank's partial sum is one level-log2(k) node of the global tree (data_parallel_reducer.hpp).
    local_sum_.finish(partial_);
    const std::span<const float> reduced = reducer_.reduce_scatter(partial_, tree_level(k));
    std::copy(reduced.begin(), reduced.end(), shard_.begin());
  }

  // Global norm: every rank's exact Σ g² over its chunk, added exactly over dp.
  SquareSum mine;
  mine.add(shard_);
  stats.grad_norm = std::sqrt(sum_over({&dp_}, mine).value());
  TESSERA_CHECK(std::isfinite(stats.grad_norm), "step {}: the gradient norm is not finite (loss {})", stats.step,
                stats.loss);
  clip_grad_norm(shard_, stats.grad_norm, config_.optim.clip_grad);
  stats.lr = learning_rate(config_.optim, config_.train.steps, stats.step);

  const size_t n = store_.values().size();
  if (config_.parallel.zero_stage == 0) {
    // Every rank gets the whole reduced gradient and runs the whole (replicated) update.
    const std::span<const float> whole = reducer_.all_gather(shard_);
    std::copy_n(whole.begin(), n, store_.grads().begin());
    optimizer_.step(store_, stats.lr);
  } else {
    // Each rank updates its chunk; the updated chunks are gathered into every rank's weights.
    const size_t begin = optimizer_.begin();
    optimizer_.step_range(store_, std::span<const float>(shard_).first(optimizer_.end() - begin), stats.lr);
    std::fill(shard_.begin(), shard_.end(), 0.0f);
    std::copy(store_.values().begin() + static_cast<std::ptrdiff_t>(begin),
              store_.values().begin() + static_cast<std::ptrdiff_t>(optimizer_.end()), shard_.begin());
    const std::span<const float> whole = reducer_.all_gather(shard_);
    std::copy_n(whole.begin(), n, store_.values().begin());
  }
  return stats;
}

CheckpointView DataParallelTrainer::checkpoint_view() {
  const bool first = dp_.rank() == 0;
  return {&store_, 0, &optimizer_, first, first || config_.parallel.zero_stage >= 1, fmt::format("dp{:03}", dp_.rank())};
}

bool DataParallelTrainer::takes_microbatch(const Config& config, int rank, int ranks, int64_t index, int64_t count) {
  if (config.parallel.zero_stage == 2) return index % ranks == rank;
  const int64_t per_rank = count / ranks;
  return index >= per_rank * rank && index < per_rank * (rank + 1);
}

}  // namespace tessera::train
