// SwiGLU h = silu(gate)·up and its backward, elementwise: kernels and launchers only. fp32 arithmetic.
#include <algorithm>
#include <type_traits>

#include "kernel_common.cuh"
#include "tessera/backend/cuda/ops.hpp"

namespace tessera::cuda {
namespace {

using namespace kernel;

template <class T>
__global__ void swiglu_forward_kernel(T* h, const T* gate, const T* up, long long n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const float g = to_f(gate[i]);
    h[i] = from_f<T>(g / (1.0f + expf(-g)) * to_f(up[i]));
  }
}

template <class T>
__global__ void swiglu_backward_kernel(T* dgate, T* dup, const T* dh, const T* gate, const T* up, long long n) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const float g = to_f(gate[i]), u = to_f(up[i]), d = to_f(dh[i]);
    const float sig = 1.0f / (1.0f + expf(-g));
    const float silu = g * sig;
    dup[i] = from_f<T>(d * silu);
    dgate[i] = from_f<T>(d * u * sig * (1.0f + g * (1.0f - sig)));
  }
}

}  // namespace

template <class T>
cudaError_t swiglu_forward(T* h, const T* gate, const T* up, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaGetLastError();
  swiglu_forward_kernel<T><<<grid_for(n, 256), 256, 0, stream>>>(h, gate, up, n);
  return cudaGetLastError();
}

template <class T>
cudaError_t swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n,
                            cudaStream_t stream) {
  if (n <= 0) return cudaGetLastError();
  swiglu_backward_kernel<T><<<grid_for(n, 256), 256, 0, stream>>>(dgate, dup, dh, gate, up, n);
  return cudaGetLastError();
}

template cudaError_t swiglu_forward<float>(float*, const float*, const float*, int64_t, cudaStream_t);
template cudaError_t swiglu_forward<bf16>(bf16*, const bf16*, const bf16*, int64_t, cudaStream_t);
template cudaError_t swiglu_backward<float>(float*, float*, const float*, const float*, const float*, int64_t,
                                            cudaStream_t);
template cudaError_t swiglu_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, int64_t,
                                           cudaStream_t);

}  // namespace tessera::cuda
