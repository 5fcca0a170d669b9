#include <cmath>

#include "tessera/backend/cpu_ops.hpp"

namespace tessera::cpu {

void rope_tables(float* cos, float* sin, const int64_t* position_ids, int64_t N, int64_t head_dim, double theta) {
  const int64_t half = head_dim / 2;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float pos = static_cast<float>(position_ids[n]);
    for (int64_t i = 0; i < half; ++i) {
      // fp32 throughout, as transformers' default rope: inv_freq = 1 / base^(2i/D), angle = inv_freq · pos.
      const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
      const float inv_freq = 1.0f / std::pow(static_cast<float>(theta), exponent);
      const float angle = inv_freq * pos;
      cos[n * half + i] = std::cos(angle);
      sin[n * half + i] = std::sin(angle);
    }
  }
}

namespace {

// Rotates pairs (x_i, x_{i+D/2}) by ±angle: sign +1 forward, −1 for the backward (the transpose).
void rotate(float* x, const float* cos, const float* sin, int64_t N, int64_t heads, int64_t head_dim, float sign) {
  const int64_t half = head_dim / 2;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (n * heads + h) * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float c = cos[n * half + i], s = sign * sin[n * half + i];
        const float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
}

}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, int64_t N, int64_t heads, int64_t head_dim) {
  rotate(x, cos, sin, N, heads, head_dim, 1.0f);
}

void rope_backward(float* dx, const float* cos, const float* sin, int64_t N, int64_t heads, int64_t head_dim) {
  rotate(dx, cos, sin, N, heads, head_dim, -1.0f);
}

}  // namespace tessera::cpu
