#pragma once
// Device-side helpers shared by the elementwise kernel files: fp32 arithmetic on float or bf16 storage,
// launch sizes for grid-stride and row-per-block kernels, and the fixed-order block reduction.

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

namespace tessera::cuda::kernel {

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T>
__device__ __forceinline__ T from_f(float x) {
  if constexpr (std::is_same_v<T, float>) return x; else return __float2bfloat16_rn(x);
}

// Grid-stride kernels: enough blocks for n elements, capped (the kernels loop over the rest).
inline unsigned grid_for(int64_t n, int threads) {
  return static_cast<unsigned>(std::min<int64_t>((n + threads - 1) / threads, 1 << 16));
}
// Row kernels: one block per row, capped (the kernels loop over rows); a warp multiple up to 256 threads.
inline int row_threads(int64_t C) {
  return static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, (C + 31) / 32 * 32)));
}
inline unsigned row_blocks(int64_t rows) { return static_cast<unsigned>(std::min<int64_t>(rows, 1 << 20)); }

// Block-wide reduction (sum when kMax is false, else max); every thread gets the result. The order depends
// only on blockDim.x (a multiple of 32, at most 1024). `shared` holds 32 floats; the leading barrier lets
// calls reuse it.
template <bool kMax>
__device__ float block_reduce(float v, float* shared) {
  for (int off = 16; off > 0; off >>= 1) {
    const float o = __shfl_down_sync(0xffffffffu, v, off);
    v = kMax ? fmaxf(v, o) : v + o;
  }
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int warps = static_cast<int>(blockDim.x) >> 5;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? shared[lane] : (kMax ? -INFINITY : 0.0f);
    for (int off = 16; off > 0; off >>= 1) {
      const float o = __shfl_down_sync(0xffffffffu, v, off);
      v = kMax ? fmaxf(v, o) : v + o;
    }
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  return shared[0];
}

}  // namespace tessera::cuda::kernel
