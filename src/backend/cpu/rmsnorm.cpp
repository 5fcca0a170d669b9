#include <cmath>

#include "tessera/backend/cpu_ops.hpp"

namespace tessera::cpu {

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t rows, int64_t C,
                     float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = inp + r * C;
    float* y = out + r * C;
    float sum = 0;  // fp32 like torch's x.pow(2).mean(-1) on fp32 input
    for (int64_t c = 0; c < C; ++c) sum += x[c] * x[c];
    const float s = 1.0f / std::sqrt(sum / static_cast<float>(C) + eps);
    rstd[r] = s;
    for (int64_t c = 0; c < C; ++c) y[c] = weight[c] * (x[c] * s);
  }
}

void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t rows, int64_t C) {
  // dx = s·(w⊙dy) − s³/C · x · Σ(w⊙dy⊙x);  dw = Σ_rows dy ⊙ x·s
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = inp + r * C;
    const float* dy = dout + r * C;
    float* dx = dinp + r * C;
    const float s = rstd[r];
    double dot = 0;
    for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(weight[c]) * dy[c] * x[c];
    const float k = static_cast<float>(dot) * s * s * s / static_cast<float>(C);
    for (int64_t c = 0; c < C; ++c) dx[c] += s * weight[c] * dy[c] - k * x[c];
  }
  // Parameter gradient reduced over rows in order per channel, so results do not depend on threads.
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0;
    for (int64_t r = 0; r < rows; ++r) sum += static_cast<double>(dout[r * C + c]) * inp[r * C + c] * rstd[r];
    dweight[c] += static_cast<float>(sum);
  }
}

}  // namespace tessera::cpu
