// Token embedding lookup and its deterministic backward: kernels and launchers only. The backward takes
// the host's EmbeddingBackwardPlan (positions grouped by id): one block per distinct id walks that id's
// tokens in order, so each dtable element receives its additions in token order without atomics — the
// same order (and so the same bits) as the CPU reference.
#include <algorithm>

#include "kernel_common.cuh"
#include "tessera/backend/cuda/ops.hpp"

namespace tessera::cuda {
namespace {

using namespace kernel;

template <class T>
__global__ void embedding_forward_kernel(float* out, const int32_t* ids, const T* table, long long N, long long C) {
  for (long long n = blockIdx.x; n < N; n += gridDim.x) {
    const T* row = table + static_cast<long long>(ids[n]) * C;
    float* o = out + n * C;
    for (long long c = threadIdx.x; c < C; c += blockDim.x) o[c] = to_f(row[c]);
  }
}

__global__ void embedding_backward_kernel(float* dtable, const float* dout, const int32_t* sorted_tokens,
                                          const int32_t* segment_starts, const int32_t* segment_ids,
                                          long long num_segments, long long C) {
  for (long long s = blockIdx.x; s < num_segments; s += gridDim.x) {
    float* row = dtable + static_cast<long long>(segment_ids[s]) * C;
    const int32_t first = segment_starts[s], last = segment_starts[s + 1];
    for (long long c = threadIdx.x; c < C; c += blockDim.x) {
      float acc = row[c];
      for (int32_t k = first; k < last; ++k) acc += dout[static_cast<long long>(sorted_tokens[k]) * C + c];
      row[c] = acc;
    }
  }
}

}  // namespace

template <class T>
cudaError_t embedding_forward(float* out, const int32_t* ids, const T* table, int64_t N, int64_t C,
                              cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaGetLastError();
  embedding_forward_kernel<T><<<static_cast<unsigned>(std::min<int64_t>(N, 1 << 20)), row_threads(C), 0, stream>>>(
      out, ids, table, N, C);
  return cudaGetLastError();
}

cudaError_t embedding_backward(float* dtable, const float* dout, const int32_t* sorted_tokens,
                               const int32_t* segment_starts, const int32_t* segment_ids, int64_t num_segments,
                               int64_t C, cudaStream_t stream) {
  if (num_segments <= 0 || C <= 0) return cudaGetLastError();
  embedding_backward_kernel<<<static_cast<unsigned>(std::min<int64_t>(num_segments, 1 << 20)), row_threads(C), 0,
                              stream>>>(dtable, dout, sorted_tokens, segment_starts, segment_ids, num_segments, C);
  return cudaGetLastError();
}

template cudaError_t embedding_forward<float>(float*, const int32_t*, const float*, int64_t, int64_t, cudaStream_t);
template cudaError_t embedding_forward<bf16>(float*, const int32_t*, const bf16*, int64_t, int64_t, cudaStream_t);

}  // namespace tessera::cuda
