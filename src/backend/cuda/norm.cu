// RMSNorm forward (plain and fused with the residual add) and backward: kernels and launchers only.
// One block per row (block-stride over rows), fp32 arithmetic, block reductions in a fixed order. The
// weight gradient is reduced over rows without atomics: per-chunk partial sums into scratch, then one
// ordered pass per channel, so every run gives the same bits.
#include <algorithm>
#include <type_traits>

#include "kernel_common.cuh"
#include "tessera/backend/cuda/ops.hpp"

namespace tessera::cuda {
namespace {

using namespace kernel;

// Threads per row: a multiple of 32 covering C up to 256 (small rows such as per-head norms waste no
// warps); depends only on C, so the reduction order is fixed for a given shape.

// The chunking of rows for the weight-gradient partials, a function of `rows` only: at least 32 rows a
// chunk, at most 256 chunks. max_chunks (what the scratch holds) never decreases as rows grow, so a caller
// may size one scratch for the largest row count; the chunks used never exceed it.
int64_t max_chunks(int64_t rows) { return rows <= 0 ? 0 : std::min<int64_t>((rows + 31) / 32, 256); }
int64_t rows_per_chunk(int64_t rows) { return (rows + max_chunks(rows) - 1) / max_chunks(rows); }
int64_t num_chunks(int64_t rows) { return (rows + rows_per_chunk(rows) - 1) / rows_per_chunk(rows); }

template <class TIn, class T>
__global__ void rmsnorm_forward_kernel(T* out, float* rstd, const TIn* inp, const T* weight, long long rows,
                                       long long C, float eps) {
  __shared__ float shared[32];
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const TIn* x = inp + r * C;
    T* y = out + r * C;
    float sum = 0.0f;
    for (long long c = threadIdx.x; c < C; c += blockDim.x) {
      const float v = to_f(x[c]);
      sum += v * v;
    }
    sum = block_reduce<false>(sum, shared);
    const float s = 1.0f / sqrtf(sum / static_cast<float>(C) + eps);
    if (threadIdx.x == 0) rstd[r] = s;
    for (long long c = threadIdx.x; c < C; c += blockDim.x) y[c] = from_f<T>(to_f(weight[c]) * (to_f(x[c]) * s));
  }
}

template <class T>
__global__ void add_rmsnorm_forward_kernel(float* sum_out, T* out, float* rstd, const float* x, const T* delta,
                                           const T* weight, long long rows, long long C, float eps) {
  __shared__ float shared[32];
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * C;
    float* sr = sum_out + r * C;
    const T* dr = delta != nullptr ? delta + r * C : nullptr;
    T* y = out + r * C;
    float sq = 0.0f;
    for (long long c = threadIdx.x; c < C; c += blockDim.x) {
      const float v = dr != nullptr ? xr[c] + to_f(dr[c]) : xr[c];
      sr[c] = v;
      sq += v * v;
    }
    sq = block_reduce<false>(sq, shared);  // its barriers also order the writes of sr above before the reads below
    const float s = 1.0f / sqrtf(sq / static_cast<float>(C) + eps);
    if (threadIdx.x == 0) rstd[r] = s;
    for (long long c = threadIdx.x; c < C; c += blockDim.x) y[c] = from_f<T>(to_f(weight[c]) * (sr[c] * s));
  }
}

// dx = s·(w⊙dy) − s³/C · x · Σ(w⊙dy⊙x), one block per row.
template <class TIn, class T>
__global__ void rmsnorm_backward_dinp_kernel(TIn* dinp, bool accumulate, const T* dout, const TIn* inp,
                                             const T* weight, const float* rstd, long long rows, long long C) {
  __shared__ float shared[32];
  for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
    const TIn* x = inp + r * C;
    const T* dy = dout + r * C;
    TIn* dx = dinp + r * C;
    const float s = rstd[r];
    float dot = 0.0f;
    for (long long c = threadIdx.x; c < C; c += blockDim.x) dot += to_f(weight[c]) * to_f(dy[c]) * to_f(x[c]);
    dot = block_reduce<false>(dot, shared);
    const float k = dot * s * s * s / static_cast<float>(C);
    for (long long c = threadIdx.x; c < C; c += blockDim.x) {
      const float g = s * to_f(weight[c]) * to_f(dy[c]) - k * to_f(x[c]);
      dx[c] = from_f<TIn>(accumulate ? to_f(dx[c]) + g : g);
    }
  }
}

// partials[chunk, c] = Σ over the chunk's rows, in row order, of dy·x·s. Grid: (column tiles, chunks).
template <class TIn, class T>
__global__ void rmsnorm_dweight_partials_kernel(float* partials, const T* dout, const TIn* inp, const float* rstd,
                                                long long rows, long long C, long long chunk_rows,
                                                long long chunks) {
  for (long long chunk = blockIdx.y; chunk < chunks; chunk += gridDim.y)
    for (long long c = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; c < C;
         c += static_cast<long long>(gridDim.x) * blockDim.x) {
      const long long r0 = chunk * chunk_rows, r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
      float acc = 0.0f;
#pragma unroll 8  // independent loads in flight; the additions stay in row order
      for (long long r = r0; r < r1; ++r) acc += to_f(dout[r * C + c]) * to_f(inp[r * C + c]) * rstd[r];
      partials[chunk * C + c] = acc;
    }
}

// dweight[c] += Σ_chunks partials[chunk, c], chunks in order.
__global__ void rmsnorm_dweight_finish_kernel(float* dweight, const float* partials, long long C, long long chunks) {
  for (long long c = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; c < C;
       c += static_cast<long long>(gridDim.x) * blockDim.x) {
    float acc = 0.0f;
#pragma unroll 8
    for (long long k = 0; k < chunks; ++k) acc += partials[k * C + c];
    dweight[c] += acc;
  }
}

}  // namespace

int64_t rmsnorm_backward_scratch_floats(int64_t rows, int64_t C) { return max_chunks(rows) * std::max<int64_t>(C, 0); }

template <class TIn, class T>
cudaError_t rmsnorm_forward(T* out, float* rstd, const TIn* inp, const T* weight, int64_t rows, int64_t C,
                            float eps, cudaStream_t stream) {
  if (rows <= 0 || C <= 0) return cudaGetLastError();
  rmsnorm_forward_kernel<TIn, T><<<row_blocks(rows), row_threads(C), 0, stream>>>(out, rstd, inp, weight, rows, C, eps);
  return cudaGetLastError();
}

template <class T>
cudaError_t add_rmsnorm_forward(float* sum, T* out, float* rstd, const float* x, const T* delta, const T* weight,
                                int64_t rows, int64_t C, float eps, cudaStream_t stream) {
  if (rows <= 0 || C <= 0) return cudaGetLastError();
  add_rmsnorm_forward_kernel<T><<<row_blocks(rows), row_threads(C), 0, stream>>>(sum, out, rstd, x, delta, weight,
                                                                                 rows, C, eps);
  return cudaGetLastError();
}

template <class TIn, class T>
cudaError_t rmsnorm_backward(TIn* dinp, bool accumulate, float* dweight, const T* dout, const TIn* inp,
                             const T* weight, const float* rstd, int64_t rows, int64_t C, float* scratch,
                             cudaStream_t stream) {
  if (rows <= 0 || C <= 0) return cudaGetLastError();
  rmsnorm_backward_dinp_kernel<TIn, T><<<row_blocks(rows), row_threads(C), 0, stream>>>(dinp, accumulate, dout, inp,
                                                                                      weight, rstd, rows, C);
  const int64_t chunk_rows = rows_per_chunk(rows), chunks = num_chunks(rows);
  const int threads = 256;
  const dim3 grid(static_cast<unsigned>(std::min<int64_t>((C + threads - 1) / threads, 1 << 20)),
                  static_cast<unsigned>(std::min<int64_t>(chunks, 65535)));
  rmsnorm_dweight_partials_kernel<TIn, T><<<grid, threads, 0, stream>>>(scratch, dout, inp, rstd, rows, C,
                                                                        chunk_rows, chunks);
  rmsnorm_dweight_finish_kernel<<<static_cast<unsigned>(std::min<int64_t>((C + threads - 1) / threads, 1 << 20)),
                                  threads, 0, stream>>>(dweight, scratch, C, chunks);
  return cudaGetLastError();
}

template cudaError_t rmsnorm_forward<float, float>(float*, float*, const float*, const float*, int64_t, int64_t,
                                                   float, cudaStream_t);
template cudaError_t rmsnorm_forward<float, bf16>(bf16*, float*, const float*, const bf16*, int64_t, int64_t, float,
                                                  cudaStream_t);
template cudaError_t rmsnorm_forward<bf16, bf16>(bf16*, float*, const bf16*, const bf16*, int64_t, int64_t, float,
                                                 cudaStream_t);
template cudaError_t add_rmsnorm_forward<float>(float*, float*, float*, const float*, const float*, const float*,
                                                int64_t, int64_t, float, cudaStream_t);
template cudaError_t add_rmsnorm_forward<bf16>(float*, bf16*, float*, const float*, const bf16*, const bf16*, int64_t,
                                               int64_t, float, cudaStream_t);
template cudaError_t rmsnorm_backward<float, float>(float*, bool, float*, const float*, const float*, const float*,
                                                    const float*, int64_t, int64_t, float*, cudaStream_t);
template cudaError_t rmsnorm_backward<float, bf16>(float*, bool, float*, const bf16*, const float*, const bf16*,
                                                   const float*, int64_t, int64_t, float*, cudaStream_t);
template cudaError_t rmsnorm_backward<bf16, bf16>(bf16*, bool, float*, const bf16*, const bf16*, const bf16*,
                                                  const float*, int64_t, int64_t, float*, cudaStream_t);

}  // namespace tessera::cuda
