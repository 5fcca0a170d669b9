#pragma once
// Device-side helpers shared by the elementwise kernel files: fp32 arithmetic on float or bf16 storage,
// and launch sizes for grid-stride and row-per-block kernels.

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

}  // namespace tessera::cuda::kernel
