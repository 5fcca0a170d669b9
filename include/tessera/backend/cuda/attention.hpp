#pragma once
// Causal grouped-query attention over packed samples on the GPU, flash-attention style: scores are formed
// tile by tile in on-chip memory with an online softmax and never written out as seq×seq. Same semantics
// as cpu::attention_forward: token i of sample s attends to tokens j ≤ i of sample s only; scale 1/sqrt(D);
// q[N,Hq,D], k/v[N,Hkv,D], out[N,Hq,D]; query head h reads kv head h / (Hq/Hkv).
//
// cu_seqlens is a DEVICE array of num_samples+1 offsets (N = cu_seqlens[num_samples], also passed as N);
// max_seqlen bounds every sample's length (it sizes the grid). D ∈ {16, 32, 64, 128}; other head sizes
// are refused with cudaErrorInvalidValue. T is float (scalar fp32 path, exact to rounding) or bf16 (tensor
// cores with fp32 accumulation). The backward is deterministic: no floating-point atomics.

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace tessera::cuda {

// lse[N, Hq]: the natural-log logsumexp of each query row's scaled scores (kept for the backward).
template <class T>
cudaError_t attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* cu_seqlens,
                              int64_t num_samples, int64_t N, int64_t max_seqlen, int64_t Hq, int64_t Hkv, int64_t D,
                              cudaStream_t stream);

// dq/dk/dv are overwritten. `out` and `lse` are the forward's. workspace holds
// attention_backward_workspace_floats(N, Hq, D) floats.
template <class T>
cudaError_t attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse, const T* q,
                               const T* k, const T* v, const int32_t* cu_seqlens, int64_t num_samples, int64_t N,
                               int64_t max_seqlen, int64_t Hq, int64_t Hkv, int64_t D, float* workspace,
                               cudaStream_t stream);
int64_t attention_backward_workspace_floats(int64_t N, int64_t Hq, int64_t D);

}  // namespace tessera::cuda
