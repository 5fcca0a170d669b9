// Megatron's vocabulary-parallel cross-entropy: each tensor-parallel rank holds a slice of every token's
// logits and the softmax is never gathered. The arithmetic is cpu::cross_entropy_forward_backward's (row
// max in float, Σ exp(z − max) in double, log): only the max and the two sums travel over the group.

#include <algorithm>
#include <cmath>
#include <limits>

#include "decoder_layer.hpp"

namespace tessera::model::detail {

double vocab_parallel_cross_entropy(TensorParallel& tp, float* dlogits, double* losses, const float* logits,
                                    const int32_t* targets, int64_t N, int64_t Vl, int64_t v0, float scale,
                                    VocabParallelScratch& s) {
  s.max.resize(static_cast<size_t>(N));
  s.sums.resize(static_cast<size_t>(2 * N));
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* z = logits + n * Vl;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t v = 0; v < Vl; ++v) m = std::max(m, z[v]);
    s.max[n] = m;
  }
  tp.max(s.max);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* z = logits + n * Vl;
    const float m = s.max[n];
    double sum = 0;
    for (int64_t v = 0; v < Vl; ++v) sum += std::exp(static_cast<double>(z[v] - m));
    const int64_t t = static_cast<int64_t>(targets[n]) - v0;
    s.sums[n] = sum;
    // The target's logit, from the rank that holds it (the others add zero).
    s.sums[N + n] = t >= 0 && t < Vl ? static_cast<double>(z[t] - m) : 0.0;
  }
  tp.sum(s.sums);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* z = logits + n * Vl;
    float* dz = dlogits != nullptr ? dlogits + n * Vl : nullptr;
    if (targets[n] < 0) {
      losses[n] = 0.0;
      if (dz != nullptr) std::fill_n(dz, Vl, 0.0f);
      continue;
    }
    const double log_sum = std::log(s.sums[n]);
    losses[n] = log_sum - s.sums[N + n];
    if (dz == nullptr) continue;
    const float m = s.max[n];
    for (int64_t v = 0; v < Vl; ++v) dz[v] = static_cast<float>(std::exp(static_cast<double>(z[v] - m) - log_sum)) * scale;
    const int64_t t = static_cast<int64_t>(targets[n]) - v0;
    if (t >= 0 && t < Vl) dz[t] -= scale;
  }
  double total = 0;
  for (int64_t n = 0; n < N; ++n) total += losses[n];
  return total;
}

}  // namespace tessera::model::detail
