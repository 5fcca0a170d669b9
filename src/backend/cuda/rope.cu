// Rotary position embedding (rotate-half convention) in place, forward and inverse: kernels and launchers
// only. One thread per rotated pair (x_i, x_{i+D/2}); fp32 arithmetic, stored back as T.
#include <algorithm>
#include <type_traits>

#include "kernel_common.cuh"
#include "tessera/backend/cuda/ops.hpp"

namespace tessera::cuda {
namespace {

using namespace kernel;

// sign +1: forward rotation by the angle; −1: its transpose (the backward).
template <class T>
__global__ void rope_kernel(T* x, const float* cos, const float* sin, long long N, long long heads, long long D,
                            float sign) {
  const long long half = D / 2, per_token = heads * half, pairs = N * per_token;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < pairs;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long n = idx / per_token, rem = idx - n * per_token;
    const long long h = rem / half, i = rem - h * half;
    T* v = x + (n * heads + h) * D;
    const float c = cos[n * half + i], s = sign * sin[n * half + i];
    const float a = to_f(v[i]), b = to_f(v[i + half]);
    v[i] = from_f<T>(a * c - b * s);
    v[i + half] = from_f<T>(b * c + a * s);
  }
}

template <class T>
cudaError_t launch(T* x, const float* cos, const float* sin, int64_t N, int64_t heads, int64_t D, float sign,
                   cudaStream_t stream) {
  const int64_t pairs = N * heads * (D / 2);
  if (pairs <= 0) return cudaGetLastError();
  const int threads = 256;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>((pairs + threads - 1) / threads, 1 << 16));
  rope_kernel<T><<<blocks, threads, 0, stream>>>(x, cos, sin, N, heads, D, sign);
  return cudaGetLastError();
}

}  // namespace

template <class T>
cudaError_t rope_forward(T* x, const float* cos, const float* sin, int64_t N, int64_t heads, int64_t D,
                         cudaStream_t stream) {
  return launch(x, cos, sin, N, heads, D, 1.0f, stream);
}

template <class T>
cudaError_t rope_backward(T* dx, const float* cos, const float* sin, int64_t N, int64_t heads, int64_t D,
                          cudaStream_t stream) {
  return launch(dx, cos, sin, N, heads, D, -1.0f, stream);
}

template cudaError_t rope_forward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t rope_forward<bf16>(bf16*, const float*, const float*, int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t rope_backward<float>(float*, const float*, const float*, int64_t, int64_t, int64_t, cudaStream_t);
template cudaError_t rope_backward<bf16>(bf16*, const float*, const float*, int64_t, int64_t, int64_t, cudaStream_t);

}  // namespace tessera::cuda
