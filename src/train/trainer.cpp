#include "tessera/train/trainer.hpp"

#include <cmath>

#include "tessera/core/error.hpp"

namespace tessera::train {
namespace {

const Config& checked(const Config& c) {
  const ParallelConfig& p = c.parallel;
  TESSERA_CHECK(p.tp == 1 && p.cp == 1 && p.pp == 1 && p.ep == 1 && p.dp <= 1,
                "this build trains in one process only; the config asks for tp={} cp={} pp={} ep={} dp={} "
                "(parallel training is the next milestone: set them to 1, or use `tessera plan` / `tessera grid` "
                "for layouts)",
                p.tp, p.cp, p.pp, p.ep, p.dp);
  TESSERA_CHECK(c.train.precision == Precision::fp32,
                "train.precision: bf16 needs train.device: cuda; the CPU reference trains in fp32");
  return c;
}

}  // namespace

void add_expert_load(std::vector<int64_t>& step, const std::vector<int64_t>& microbatch) {
  if (microbatch.empty()) return;
  step.resize(microbatch.size(), 0);
  for (size_t e = 0; e < microbatch.size(); ++e) step[e] += microbatch[e];
}

int64_t microbatches_per_step(const TrainConfig& t) {
  return t.global_batch_size == 0 ? 1 : t.global_batch_size / t.micro_batch_size;
}

Trainer::Trainer(const Config& config)
    : config_(checked(config)),
      store_(model::parameter_specs(config.model)),
      decoder_(config.model, store_, config.train.micro_batch_size * config.data.seq_length, config.data.seq_length,
               config.train.recompute),
      optimizer_(config.optim, store_), accumulator_(store_.grads().size()) {
  model::initialize_parameters(store_, config.model.init_std, config.train.seed);
}

StepStats Trainer::step(const std::vector<model::Batch>& microbatches) {
  TESSERA_CHECK(!microbatches.empty(), "a training step needs at least one microbatch");
  StepStats stats;
  stats.step = optimizer_.steps_taken() + 1;
  for (const auto& mb : microbatches) {
    stats.targets += mb.num_targets();
    stats.tokens += mb.tokens();
  }
  TESSERA_CHECK(stats.targets > 0, "step {}: no token of its {} microbatch(es) carries a loss label (check the data's "
                "labels, or pack it so that no sample loses all its labelled tokens)", stats.step, microbatches.size());
  // The loss is the mean over every target of the step, however the step is split into microbatches.
  const float ce_scale = 1.0f / static_cast<float>(stats.targets);
  const auto aux_scale =
      static_cast<float>(config_.model.router_aux_loss_coef / static_cast<double>(microbatches.size()));
  const auto z_scale = static_cast<float>(config_.model.router_z_loss_coef / static_cast<double>(microbatches.size()));
  // Each microbatch's gradient is summed in the fixed tree order (tree_sum.hpp), so that any
  // data-parallel split of the same microbatches reproduces this step bit for bit.
  for (const auto& mb : microbatches) {
    store_.zero_grads();
    const model::ForwardLoss l = decoder_.forward(mb);
    stats.ce_loss += l.ce_sum;
    stats.aux_loss += l.aux;
    stats.z_loss += l.z;
    add_expert_load(stats.expert_load, l.expert_load);
    decoder_.backward(ce_scale, aux_scale, z_scale);
    accumulator_.add(store_.grads());
  }
  accumulator_.finish(store_.grads());
  stats.ce_loss /= static_cast<double>(stats.targets);
  stats.aux_loss /= static_cast<double>(microbatches.size());
  stats.z_loss /= static_cast<double>(microbatches.size());
  stats.loss = stats.ce_loss + config_.model.router_aux_loss_coef * stats.aux_loss +
               config_.model.router_z_loss_coef * stats.z_loss;
  stats.grad_norm = global_grad_norm(store_.grads());
  TESSERA_CHECK(std::isfinite(stats.grad_norm), "step {}: the gradient norm is not finite (loss {})", stats.step,
                stats.loss);
  clip_grad_norm(store_.grads(), stats.grad_norm, config_.optim.clip_grad);
  stats.lr = learning_rate(config_.optim, config_.train.steps, stats.step);
  optimizer_.step(store_, stats.lr);
  return stats;
}

}  // namespace tessera::train
