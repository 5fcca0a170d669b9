// Linear layers on OpenBLAS. Every GEMM is cut into fixed column tiles that OpenMP threads share, each tile
// a single-threaded sgemm (OpenBLAS runs single-threaded inside a parallel region). Results therefore do
// not depend on the thread count: OpenBLAS's own threading picks kernels by size and thread count, and
// 1 and 2 threads gave different last bits — which AdamW then amplifies into different runs.

#include <cblas.h>

#include <algorithm>

#include "tessera/backend/cpu_ops.hpp"

namespace tessera::cpu {
namespace {

constexpr int64_t kTile = 128;  // output columns per task; fixed so the decomposition never varies

int to_int(int64_t v) { return static_cast<int>(v); }

// C[M, N] = alpha · op(A) · op(B) + beta · C, row-major, split over N into kTile-column tiles. `b_col`
// gives the address of column j of op(B) (which depends on the transpose), `c` is at column 0.
void gemm_tiled(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a,
                int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const int64_t tiles = (N + kTile - 1) / kTile;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t j0 = t * kTile, n = std::min(kTile, N - j0);
    // Column j of op(B): B is [K, N] (no transpose) → b + j; B^T with B [N, K] → b + j·ldb.
    const float* bj = tb == CblasNoTrans ? b + j0 : b + j0 * ldb;
    cblas_sgemm(CblasRowMajor, ta, tb, to_int(M), to_int(n), to_int(K), alpha, a, to_int(lda), bj, to_int(ldb), beta,
                c + j0, to_int(ldc));
  }
}

}  // namespace

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC) {
  gemm_tiled(CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
  if (bias == nullptr) return;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < OC; ++o) out[n * OC + o] += bias[o];
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp != nullptr) gemm_tiled(CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  // dweight[OC, C] += dout^T[OC, N] · inp[N, C]
  gemm_tiled(CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
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
