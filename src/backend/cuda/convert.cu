// Type conversion, the unfused residual add and column sums (bias gradients): kernels and launchers only.
#include <algorithm>
#include <type_traits>

#include "kernel_common.cuh"
#include "tessera/backend/cuda/ops.hpp"

namespace tessera::cuda {
namespace {

using namespace kernel;

template <class TOut, class TIn>
__global__ void convert_kernel(TOut* out, const TIn* in, long long n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    if constexpr (std::is_same_v<TOut, TIn>) out[i] = in[i]; else out[i] = from_f<TOut>(to_f(in[i]));
  }
}

template <class T>
__global__ void add_inplace_kernel(float* x, const T* delta, long long n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x)
    x[i] += to_f(delta[i]);
}

// Block (32 columns × kRowLanes): lane y sums its contiguous share of the rows in row order, then lane 0
// adds the kRowLanes partial sums in lane order. The order depends only on rows, so results are identical
// run to run, without atomics.
constexpr int kRowLanes = 8;
template <class T>
__global__ void column_sums_kernel(float* out, const T* in, long long rows, long long cols) {
  __shared__ float partial[kRowLanes][32];
  const long long share = (rows + kRowLanes - 1) / kRowLanes;
  const long long r0 = threadIdx.y * share, r1 = r0 + share < rows ? r0 + share : rows;
  for (long long tile = blockIdx.x; tile * 32 < cols; tile += gridDim.x) {
    const long long c = tile * 32 + threadIdx.x;
    float acc = 0.0f;
    if (c < cols) {
#pragma unroll 8  // independent loads in flight; the additions stay in row order
      for (long long r = r0; r < r1; ++r) acc += to_f(in[r * cols + c]);
    }
    __syncthreads();  // the previous tile's reader of partial is done
    partial[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && c < cols) {
      float total = partial[0][threadIdx.x];
      for (int y = 1; y < kRowLanes; ++y) total += partial[y][threadIdx.x];
      out[c] += total;
    }
  }
}

}  // namespace

template <class TOut, class TIn>
cudaError_t convert(TOut* out, const TIn* in, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaGetLastError();
  convert_kernel<TOut, TIn><<<grid_for(n, 256), 256, 0, stream>>>(out, in, n);
  return cudaGetLastError();
}

template <class T>
cudaError_t add_inplace(float* x, const T* delta, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaGetLastError();
  add_inplace_kernel<T><<<grid_for(n, 256), 256, 0, stream>>>(x, delta, n);
  return cudaGetLastError();
}

template <class T>
cudaError_t column_sums_accumulate(float* out, const T* in, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return cudaGetLastError();
  const auto tiles = static_cast<unsigned>(std::min<int64_t>((cols + 31) / 32, 1 << 20));
  column_sums_kernel<T><<<tiles, dim3(32, kRowLanes), 0, stream>>>(out, in, rows, cols);
  return cudaGetLastError();
}

template cudaError_t convert<float, float>(float*, const float*, int64_t, cudaStream_t);
template cudaError_t convert<float, bf16>(float*, const bf16*, int64_t, cudaStream_t);
template cudaError_t convert<bf16, float>(bf16*, const float*, int64_t, cudaStream_t);
template cudaError_t convert<bf16, bf16>(bf16*, const bf16*, int64_t, cudaStream_t);
template cudaError_t add_inplace<float>(float*, const float*, int64_t, cudaStream_t);
template cudaError_t add_inplace<bf16>(float*, const bf16*, int64_t, cudaStream_t);
template cudaError_t column_sums_accumulate<float>(float*, const float*, int64_t, int64_t, cudaStream_t);
template cudaError_t column_sums_accumulate<bf16>(float*, const bf16*, int64_t, int64_t, cudaStream_t);

}  // namespace tessera::cuda
