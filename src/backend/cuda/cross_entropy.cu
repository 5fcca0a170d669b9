// Vocab-parallel fused softmax cross-entropy: per-row statistics, the loss from (all-reduced) statistics,
// and the gradient written (possibly in place over the logits) without storing the softmax. Kernels and
// launchers only. One block per row with fixed-order block reductions: the same bits on every run.
#include <algorithm>
#include <type_traits>

#include "kernel_common.cuh"
#include "tessera/backend/cuda/ops.hpp"

namespace tessera::cuda {
namespace {

using namespace kernel;

constexpr int kThreads = 512;  // a multiple of 32; rows are long (the vocabulary)

template <class T>
__global__ void stats_kernel(float* row_max, float* row_sum, float* target_logit, const T* logits,
                             const int32_t* targets, long long N, long long V, long long vocab_start) {
  __shared__ float shared[32];
  for (long long n = blockIdx.x; n < N; n += gridDim.x) {
    const T* z = logits + n * V;
    float m = -INFINITY;
    for (long long v = threadIdx.x; v < V; v += blockDim.x) m = fmaxf(m, to_f(z[v]));
    m = block_reduce<true>(m, shared);
    float s = 0.0f;
    for (long long v = threadIdx.x; v < V; v += blockDim.x) s += expf(to_f(z[v]) - m);
    s = block_reduce<false>(s, shared);
    if (threadIdx.x == 0) {
      const long long t = targets[n];
      row_max[n] = m;
      row_sum[n] = s;
      target_logit[n] = t >= 0 && t >= vocab_start && t < vocab_start + V ? to_f(z[t - vocab_start]) : 0.0f;
    }
  }
}

__global__ void loss_kernel(float* losses, const float* row_max, const float* row_sum, const float* target_logit,
                            const int32_t* targets, long long N) {
  for (long long n = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; n < N;
       n += static_cast<long long>(gridDim.x) * blockDim.x)
    losses[n] = targets[n] < 0 ? 0.0f : logf(row_sum[n]) + row_max[n] - target_logit[n];
}

// No __restrict__: dlogits may alias logits. Each element is read, then written, by the same thread.
template <class T>
__global__ void grad_kernel(T* dlogits, const T* logits, const float* row_max, const float* row_sum,
                            const int32_t* targets, long long N, long long V, long long vocab_start, float scale) {
  for (long long n = blockIdx.x; n < N; n += gridDim.x) {
    const T* z = logits + n * V;
    T* dz = dlogits + n * V;
    const long long t = targets[n];
    if (t < 0) {
      for (long long v = threadIdx.x; v < V; v += blockDim.x) dz[v] = from_f<T>(0.0f);
      continue;
    }
    const long long local = t - vocab_start;  // outside [0, V) when another shard holds the target
    const float m = row_max[n], log_sum = logf(row_sum[n]);
    for (long long v = threadIdx.x; v < V; v += blockDim.x) {
      float d = expf(to_f(z[v]) - m - log_sum) * scale;
      if (v == local) d -= scale;
      dz[v] = from_f<T>(d);
    }
  }
}

}  // namespace

template <class T>
cudaError_t cross_entropy_stats(float* row_max, float* row_sum, float* target_logit, const T* logits,
                                const int32_t* targets, int64_t N, int64_t V_local, int64_t vocab_start,
                                cudaStream_t stream) {
  if (N <= 0) return cudaGetLastError();
  stats_kernel<T><<<row_blocks(N), kThreads, 0, stream>>>(row_max, row_sum, target_logit, logits, targets, N, V_local,
                                                         vocab_start);
  return cudaGetLastError();
}

cudaError_t cross_entropy_loss(float* losses, const float* row_max, const float* row_sum,
                               const float* target_logit, const int32_t* targets, int64_t N, cudaStream_t stream) {
  if (N <= 0) return cudaGetLastError();
  const int threads = 256;
  loss_kernel<<<static_cast<unsigned>(std::min<int64_t>((N + threads - 1) / threads, 1 << 16)), threads, 0, stream>>>(
      losses, row_max, row_sum, target_logit, targets, N);
  return cudaGetLastError();
}

template <class T>
cudaError_t cross_entropy_grad(T* dlogits, const T* logits, const float* row_max, const float* row_sum,
                               const int32_t* targets, int64_t N, int64_t V_local, int64_t vocab_start, float scale,
                               cudaStream_t stream) {
  if (N <= 0) return cudaGetLastError();
  grad_kernel<T><<<row_blocks(N), kThreads, 0, stream>>>(dlogits, logits, row_max, row_sum, targets, N, V_local,
                                                        vocab_start, scale);
  return cudaGetLastError();
}

template cudaError_t cross_entropy_stats<float>(float*, float*, float*, const float*, const int32_t*, int64_t,
                                                int64_t, int64_t, cudaStream_t);
template cudaError_t cross_entropy_stats<bf16>(float*, float*, float*, const bf16*, const int32_t*, int64_t, int64_t,
                                               int64_t, cudaStream_t);
template cudaError_t cross_entropy_grad<float>(float*, const float*, const float*, const float*, const int32_t*,
                                               int64_t, int64_t, int64_t, float, cudaStream_t);
template cudaError_t cross_entropy_grad<bf16>(bf16*, const bf16*, const float*, const float*, const int32_t*, int64_t,
                                              int64_t, int64_t, float, cudaStream_t);

}  // namespace tessera::cuda
