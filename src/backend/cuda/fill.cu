// Kernels and their launchers only: nvcc compiles this file, and host-side checking (which formats
// messages with fmt, whose compile-time format checks nvcc cannot evaluate) stays in the .cpp files.
#include <algorithm>

#include "fill.cuh"

namespace tessera::cuda {
namespace {

__global__ void fill_kernel(float* out, long long n, float value) {
  // Grid-stride loop: one launch shape serves any n.
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x)
    out[i] = value;
}

}  // namespace

cudaError_t launch_fill(float* device, long long n, float value, cudaStream_t stream) {
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<long long>((n + threads - 1) / threads, 4096));
  fill_kernel<<<blocks, threads, 0, stream>>>(device, n, value);
  return cudaGetLastError();
}

}  // namespace tessera::cuda
