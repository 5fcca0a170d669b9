#pragma once
// GEMMs for the model through cuBLASLt, in the CPU backend's row-major conventions (cpu_ops.hpp): weights
// are [OC, C] as in Hugging Face, y = x W^T (+ b). T is float (true fp32: no TF32, the exact path) or bf16
// (bf16 operands, fp32 accumulation). Parameter gradients accumulate into fp32 buffers.
// One Blas per stream; it owns the cuBLASLt handle and its workspace.

#include <cstdint>
#include <memory>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace tessera::cuda {

class Blas {
 public:
  explicit Blas(cudaStream_t stream, int64_t workspace_bytes = 32ll << 20);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  cudaStream_t stream() const;

  // out[N,OC] = inp[N,C] · W[OC,C]^T (+ bias[OC]; may be null). TOut is T or float.
  template <class T, class TOut>
  void linear_forward(TOut* out, const T* inp, const T* weight, const T* bias, int64_t N, int64_t C, int64_t OC);

  // dinp[N,C] = (accumulate ? dinp : 0) + dout · W (dinp may be null); dweight[OC,C] += dout^T · inp (fp32;
  // may be null); dbias[OC] += Σ_n dout (fp32; may be null).
  template <class T>
  void linear_backward(T* dinp, bool accumulate, float* dweight, float* dbias, const T* dout, const T* inp,
                       const T* weight, int64_t N, int64_t C, int64_t OC);

  // Column-major-free general form for benchmarks: C[M,N] = A[M,K] · B[N,K]^T, row-major, bf16 in, bf16
  // out; returns nothing, checks everything.
  void gemm_nt(__nv_bfloat16* c, const __nv_bfloat16* a, const __nv_bfloat16* b, int64_t M, int64_t N, int64_t K);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::cuda
