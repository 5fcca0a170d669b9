// AdamW on a contiguous range of fp32 master weights, and the blockwise sums of squares behind the global
// gradient norm: kernels and launchers only. The update is written with explicitly rounded operations
// (no fused multiply-add) in the order of train/optimizer.cpp, so it computes what the CPU optimizer does.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernel_common.cuh"
#include "tessera/backend/cuda/ops.hpp"

namespace tessera::cuda {
namespace {

using namespace kernel;

// Per-launch constants, derived on the host as optimizer.cpp derives them (in double, then to float).
struct Coefficients {
  float decay, beta1, beta2, one_minus_beta1, one_minus_beta2, step_size, bias2_sqrt, eps, grad_scale;
};

template <class T>
__global__ void adamw_kernel(float* master, T* compute, const float* grad, float* m, float* v, long long n,
                             Coefficients k) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    const float g = __fmul_rn(grad[i], k.grad_scale);
    float p = __fmul_rn(master[i], k.decay);
    const float mi = __fadd_rn(__fmul_rn(k.beta1, m[i]), __fmul_rn(k.one_minus_beta1, g));
    const float vi = __fadd_rn(__fmul_rn(k.beta2, v[i]), __fmul_rn(__fmul_rn(k.one_minus_beta2, g), g));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), k.bias2_sqrt), k.eps);
    p = __fsub_rn(p, __fdiv_rn(__fmul_rn(k.step_size, mi), denom));
    m[i] = mi;
    v[i] = vi;
    master[i] = p;
    if (compute != nullptr) compute[i] = from_f<T>(p);
  }
}

// partials[b] = Σ x² (fp64) over [b·block, min(n, (b+1)·block)): each thread sums a fixed stride of the
// block, then a fixed-shape tree combines the threads.
constexpr int kSquareThreads = 256;
__global__ void sum_squares_kernel(double* partials, const float* x, long long n, long long block, long long blocks) {
  __shared__ double shared[kSquareThreads];
  for (long long b = blockIdx.x; b < blocks; b += gridDim.x) {
    const long long first = b * block, last = first + block < n ? first + block : n;
    double acc = 0.0;
    for (long long i = first + threadIdx.x; i < last; i += kSquareThreads) {
      const double xi = x[i];
      acc += xi * xi;
    }
    __syncthreads();  // the previous block's readers of shared are done
    shared[threadIdx.x] = acc;
    __syncthreads();
    for (int width = kSquareThreads / 2; width > 0; width >>= 1) {
      if (static_cast<int>(threadIdx.x) < width) shared[threadIdx.x] = shared[threadIdx.x] + shared[threadIdx.x + width];
      __syncthreads();
    }
    if (threadIdx.x == 0) partials[b] = shared[0];
  }
}

}  // namespace

template <class T>
cudaError_t adamw_update(float* master, T* compute, const float* grad, float* m, float* v, int64_t n,
                         const AdamWArgs& args, cudaStream_t stream) {
  if (n <= 0) return cudaGetLastError();
  Coefficients k{};
  k.decay = static_cast<float>(1.0 - static_cast<double>(args.lr) * static_cast<double>(args.weight_decay));
  k.beta1 = args.beta1;
  k.beta2 = args.beta2;
  k.one_minus_beta1 = 1.0f - args.beta1;
  k.one_minus_beta2 = 1.0f - args.beta2;
  k.step_size = static_cast<float>(static_cast<double>(args.lr) / static_cast<double>(args.bias_correction1));
  k.bias2_sqrt = static_cast<float>(std::sqrt(static_cast<double>(args.bias_correction2)));
  k.eps = args.eps;
  k.grad_scale = args.grad_scale;
  const int threads = 256;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>((n + threads - 1) / threads, 1 << 16));
  adamw_kernel<T><<<blocks, threads, 0, stream>>>(master, compute, grad, m, v, n, k);
  return cudaGetLastError();
}

cudaError_t sum_squares_blocks(double* partials, const float* x, int64_t n, int64_t block, cudaStream_t stream) {
  if (n <= 0 || block <= 0) return cudaGetLastError();
  const int64_t blocks = (n + block - 1) / block;
  sum_squares_kernel<<<static_cast<unsigned>(std::min<int64_t>(blocks, 1 << 20)), kSquareThreads, 0, stream>>>(
      partials, x, n, block, blocks);
  return cudaGetLastError();
}

template cudaError_t adamw_update<float>(float*, float*, const float*, float*, float*, int64_t, const AdamWArgs&,
                                         cudaStream_t);
template cudaError_t adamw_update<bf16>(float*, bf16*, const float*, float*, float*, int64_t, const AdamWArgs&,
                                        cudaStream_t);

}  // namespace tessera::cuda
