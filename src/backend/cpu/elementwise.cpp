#include <cmath>
#include <limits>

#include "tessera/backend/cpu_ops.hpp"

namespace tessera::cpu {

void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    h[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float sig = 1.0f / (1.0f + std::exp(-g));
    const float silu = g * sig;
    dup[i] = dh[i] * silu;
    dgate[i] = dh[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
  }
}

void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C, int64_t first_row,
                       int64_t rows) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t row = static_cast<int64_t>(ids[n]) - first_row;
    const bool mine = row >= 0 && (rows < 0 || row < rows);
    for (int64_t c = 0; c < C; ++c) out[n * C + c] = mine ? table[row * C + c] : 0.0f;
  }
}

void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C, int64_t first_row,
                        int64_t rows) {
  // Parallel over channels, tokens in order: a repeated token's rows add up in the same order every run.
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t row = static_cast<int64_t>(ids[n]) - first_row;
      if (row >= 0 && (rows < 0 || row < rows)) dtable[row * C + c] += dout[n * C + c];
    }
}

void softmax_rows(float* x, int64_t rows, int64_t V) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* p = x + r * V;
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t v = 0; v < V; ++v) max = std::max(max, p[v]);
    float sum = 0;
    for (int64_t v = 0; v < V; ++v) {
      p[v] = std::exp(p[v] - max);
      sum += p[v];
    }
    const float inv = 1.0f / sum;
    for (int64_t v = 0; v < V; ++v) p[v] *= inv;
  }
}

double cross_entropy_forward_backward(float* dlogits, double* losses, const float* logits, const int32_t* targets,
                                      int64_t N, int64_t V, float scale) {
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    losses[n] = 0.0;
    const float* z = logits + n * V;
    float* dz = dlogits != nullptr ? dlogits + n * V : nullptr;
    if (targets[n] < 0) {
      if (dz != nullptr)
        for (int64_t v = 0; v < V; ++v) dz[v] = 0.0f;
      continue;
    }
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t v = 0; v < V; ++v) max = std::max(max, z[v]);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(z[v] - max));
    const double log_sum = std::log(sum);
    losses[n] = log_sum - static_cast<double>(z[targets[n]] - max);
    if (dz != nullptr) {
      for (int64_t v = 0; v < V; ++v)
        dz[v] = static_cast<float>(std::exp(static_cast<double>(z[v] - max) - log_sum)) * scale;
      dz[targets[n]] -= scale;
    }
  }
  // Summed in token order, not by an OpenMP reduction whose order depends on the thread count.
  double total = 0;
  for (int64_t n = 0; n < N; ++n) total += losses[n];
  return total;
}

}  // namespace tessera::cpu
