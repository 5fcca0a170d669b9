#include "tessera/train/optimizer.hpp"

#include "tessera/train/square_sum.hpp"

#include <cmath>
#include <numbers>

#include <algorithm>

#include "tessera/core/error.hpp"
#include "tessera/train/tree_sum.hpp"

namespace tessera::train {

double learning_rate(const OptimConfig& o, int64_t total_steps, int64_t step) {
  if (o.warmup_steps > 0 && step <= o.warmup_steps)
    return o.lr * static_cast<double>(step) / static_cast<double>(o.warmup_steps);
  if (o.decay == LrDecay::constant) return o.lr;
  const int64_t decay_steps = o.decay_steps > 0 ? o.decay_steps : std::max<int64_t>(total_steps - o.warmup_steps, 1);
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup_steps) / static_cast<double>(decay_steps));
  const double factor = o.decay == LrDecay::cosine ? 0.5 * (1.0 + std::cos(std::numbers::pi * progress)) : 1.0 - progress;
  return o.min_lr + (o.lr - o.min_lr) * factor;
}

double global_grad_norm(std::span<const float> grads) {
  SquareSum squares;
  squares.add(grads);
  return std::sqrt(squares.value());
}

float clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0f;
  const double coef = max_norm / (norm + 1e-6);
  return coef >= 1.0 ? 1.0f : static_cast<float>(coef);
}

float clip_grad_norm(std::span<float> grads, double norm, double max_norm) {
  const float scale = clip_coefficient(norm, max_norm);
  if (scale != 1.0f)
    for (float& g : grads) g *= scale;
  return scale;
}

AdamW::AdamW(const OptimConfig& config, const model::ParameterStore& store, size_t begin, size_t end)
    : config_(config), begin_(begin), end_(std::min(end, store.values().size())) {
  TESSERA_CHECK(begin_ <= end_, "optimizer range [{}, {}) is empty or reversed", begin, end);
  m_.assign(end_ - begin_, 0.0f);
  v_.assign(end_ - begin_, 0.0f);
  for (size_t i = 0; i < store.size(); ++i) decay_.push_back(store.spec(i).weight_decay ? 1 : 0);
}

void AdamW::step(model::ParameterStore& store, double lr) {
  step_range(store, std::span<const float>(store.grads()).subspan(begin_, end_ - begin_), lr);
}

void AdamW::step_range(model::ParameterStore& store, std::span<const float> grads, double lr) {
  TESSERA_CHECK(grads.size() == end_ - begin_, "optimizer owns {} values but got {} gradients", end_ - begin_,
                grads.size());
  ++steps_;
  const double b1 = config_.beta1, b2 = config_.beta2;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(steps_));
  const double bias2_sqrt = std::sqrt(1.0 - std::pow(b2, static_cast<double>(steps_)));
  const auto step_size = static_cast<float>(lr / bias1);
  const auto eps = static_cast<float>(config_.eps);
  const auto fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
  const auto bias2 = static_cast<float>(bias2_sqrt);
  for (size_t t = 0; t < store.size(); ++t) {
    // The part of tensor t inside the owned range.
    const size_t first = std::max(store.offset(t), begin_), last = std::min(store.offset(t) + store.numel(t), end_);
    if (first >= last) continue;
    const auto decay = decay_[t] ? static_cast<float>(1.0 - lr * config_.weight_decay) : 1.0f;
    float* p = store.values().data() + first;
    const float* g = grads.data() + (first - begin_);
    const size_t n = last - first;
    float* m = m_.data() + (first - begin_);
    float* v = v_.data() + (first - begin_);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) {
      p[i] *= decay;
      m[i] = fb1 * m[i] + (1.0f - fb1) * g[i];
      v[i] = fb2 * v[i] + (1.0f - fb2) * g[i] * g[i];
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bias2 + eps);
    }
  }
}

void AdamW::restore(int64_t steps, const std::function<void(std::span<float>, std::span<float>)>& fill) {
  TESSERA_CHECK(steps >= 0, "optimizer step count {} is negative", steps);
  fill(m_, v_);
  steps_ = steps;
}

}  // namespace tessera::train
