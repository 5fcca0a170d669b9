#include <cblas.h>

#include "tessera/backend/cpu_ops.hpp"

namespace tessera::cpu {

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(N), static_cast<int>(OC),
              static_cast<int>(C), 1.0f, inp, static_cast<int>(C), weight, static_cast<int>(C), 0.0f, out,
              static_cast<int>(OC));
  if (bias == nullptr) return;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) out[n * OC + o] += bias[o];
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp != nullptr)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(N), static_cast<int>(C),
                static_cast<int>(OC), 1.0f, dout, static_cast<int>(OC), weight, static_cast<int>(C), 1.0f, dinp,
                static_cast<int>(C));
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(OC), static_cast<int>(C), static_cast<int>(N),
              1.0f, dout, static_cast<int>(OC), inp, static_cast<int>(C), 1.0f, dweight, static_cast<int>(C));
  if (dbias == nullptr) return;
  // Sum over tokens in a fixed order per output feature: deterministic whatever the thread count.
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < OC; ++o) {
    double sum = 0;
    for (int64_t n = 0; n < N; ++n) sum += dout[n * OC + o];
    dbias[o] += static_cast<float>(sum);
  }
}

}  // namespace tessera::cpu
