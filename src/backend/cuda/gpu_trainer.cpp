#include "tessera/backend/cuda/gpu_trainer.hpp"

#include <cmath>
#include <variant>

#include "cuda_check.hpp"
#include "tessera/backend/cuda/gpu_model.hpp"
#include "tessera/backend/cuda/ops.hpp"
#include "tessera/train/optimizer.hpp"

namespace tessera::cuda {
namespace {

// The GPU parts for one compute type.
template <class T>
struct Engine {
  DeviceParameters<T> params;
  GpuDecoder<T> decoder;
  GpuAdamW<T> optimizer;
  Engine(const Config& c, const model::ParameterStore& store, cudaStream_t stream)
      : params(store),
        decoder(c.model, store, params, c.train.micro_batch_size * c.data.seq_length, c.data.seq_length,
                c.train.recompute, stream),
        optimizer(c.optim, store, params, stream) {
    params.upload_values(store, stream);
  }
};

const Config& checked(const Config& c) {
  const ParallelConfig& p = c.parallel;
  TESSERA_CHECK(p.tp == 1 && p.cp == 1 && p.pp == 1 && p.ep == 1 && p.dp <= 1,
                "the GPU trainer runs on one GPU; the config asks for tp={} cp={} pp={} ep={} dp={} (multi-GPU "
                "training comes with the NCCL parallel layer)",
                p.tp, p.cp, p.pp, p.ep, p.dp);
  return c;
}

}  // namespace

struct GpuTrainer::Impl {
  Config config;
  cudaStream_t stream;
  model::ParameterStore store;  // host copy: specs and offsets; values only when downloaded
  std::variant<std::unique_ptr<Engine<float>>, std::unique_ptr<Engine<bf16>>> engine;
  PhaseTimer* timer = nullptr;

  Impl(const Config& c, cudaStream_t s) : config(checked(c)), stream(s), store(model::parameter_specs(c.model), false) {
    model::initialize_parameters(store, c.model.init_std, c.train.seed);
    if (c.train.precision == Precision::fp32)
      engine = std::make_unique<Engine<float>>(c, store, s);
    else
      engine = std::make_unique<Engine<bf16>>(c, store, s);
  }

  template <class T>
  train::StepStats run(Engine<T>& e, const std::vector<model::Batch>& microbatches) {
    TESSERA_CHECK(!microbatches.empty(), "a training step needs at least one microbatch");
    train::StepStats stats;
    stats.step = e.optimizer.steps_taken() + 1;
    for (const auto& mb : microbatches) stats.targets += mb.num_targets(), stats.tokens += mb.tokens();
    TESSERA_CHECK(stats.targets > 0, "step {}: no token of its {} microbatch(es) carries a loss label", stats.step,
                  microbatches.size());
    // The same scaling as train::Trainer::step: the loss is the mean over every target of the step.
    const float ce_scale = 1.0f / static_cast<float>(stats.targets);
    const auto mbs = static_cast<double>(microbatches.size());
    const auto aux_scale = static_cast<float>(config.model.router_aux_loss_coef / mbs);
    const auto z_scale = static_cast<float>(config.model.router_z_loss_coef / mbs);
    e.params.zero_grads(stream);
    for (const auto& mb : microbatches) {
      const model::ForwardLoss l = e.decoder.forward(mb);
      stats.ce_loss += l.ce_sum, stats.aux_loss += l.aux, stats.z_loss += l.z;
      train::add_expert_load(stats.expert_load, l.expert_load);
      e.decoder.backward(ce_scale, aux_scale, z_scale);
    }
    stats.ce_loss /= static_cast<double>(stats.targets);
    stats.aux_loss /= mbs, stats.z_loss /= mbs;
    stats.loss = stats.ce_loss + config.model.router_aux_loss_coef * stats.aux_loss +
                 config.model.router_z_loss_coef * stats.z_loss;
    if (timer) timer->mark("grad norm");
    stats.grad_norm = e.optimizer.grad_norm();
    TESSERA_CHECK(std::isfinite(stats.grad_norm), "step {}: the gradient norm is not finite (loss {})", stats.step,
                  stats.loss);
    stats.lr = train::learning_rate(config.optim, config.train.steps, stats.step);
    if (timer) timer->mark("optimizer");
    e.optimizer.step(stats.lr, train::clip_coefficient(stats.grad_norm, config.optim.clip_grad));
    if (timer) timer->end();
    return stats;
  }
};

GpuTrainer::GpuTrainer(const Config& config, cudaStream_t stream) : impl_(std::make_unique<Impl>(config, stream)) {}
GpuTrainer::~GpuTrainer() = default;

train::StepStats GpuTrainer::step(const std::vector<model::Batch>& microbatches) {
  return std::visit([&](auto& e) { return impl_->run(*e, microbatches); }, impl_->engine);
}

model::ParameterStore& GpuTrainer::download_parameters() {
  std::visit([&](auto& e) { e->params.download_values(impl_->store, impl_->stream); }, impl_->engine);
  return impl_->store;
}

void GpuTrainer::set_timer(PhaseTimer* timer) {
  impl_->timer = timer;
  std::visit([&](auto& e) { e->decoder.set_timer(timer); }, impl_->engine);
}

int64_t GpuTrainer::steps_taken() const {
  return std::visit([](auto& e) { return e->optimizer.steps_taken(); }, impl_->engine);
}

}  // namespace tessera::cuda
