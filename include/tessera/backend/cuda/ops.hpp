#pragma once
// The CUDA backend's elementwise, normalisation, embedding, loss and optimizer kernels: host-callable
// launchers over device pointers, each queued on `stream` and returning the launch's cudaError_t (callers
// wrap them in TESSERA_CUDA_CHECK so a failure names the call site). The .cu files hold kernels only;
// nvcc cannot compile the project's fmt-based error code.
//
// Precision contract (the CPU fp32 backend is the reference, cpu_ops.hpp has the same semantics):
//  - T is the activation/weight compute type: float (the exact path, checked against the CPU to 1e-5) or
//    __nv_bfloat16 (bf16 storage, fp32 arithmetic inside every kernel).
//  - The residual stream (layer inputs/outputs) and its gradient are always fp32.
//  - Parameter gradients and optimizer state are always fp32 (master weights).
//  - Nothing here uses atomics on floating point: every reduction has a fixed order, so results are
//    identical run to run.

#include <cstdint>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace tessera::cuda {

using bf16 = __nv_bfloat16;

// ---- norm.cu -------------------------------------------------------------------------------------------
// out[rows,C] = inp / sqrt(mean(inp²) + eps) * weight; rstd[rows] = 1/sqrt(mean(inp²) + eps).
// Instantiated for (TIn, T) = (float, float), (float, bf16), (bf16, bf16).
template <class TIn, class T>
cudaError_t rmsnorm_forward(T* out, float* rstd, const TIn* inp, const T* weight, int64_t rows, int64_t C,
                            float eps, cudaStream_t stream);
// Fused residual add: sum[rows,C] = x + delta (fp32), then out = rmsnorm(sum) as above. delta may be null
// (then sum = x; sum may equal x only in that case).
template <class T>
cudaError_t add_rmsnorm_forward(float* sum, T* out, float* rstd, const float* x, const T* delta, const T* weight,
                                int64_t rows, int64_t C, float eps, cudaStream_t stream);
// dinp[rows,C] = (accumulate ? dinp : 0) + d(rmsnorm)/d(inp) · dout; dweight[C] += Σ_rows (fp32, fixed
// order: per-block partial sums into `scratch`, then one ordered pass). scratch holds
// rmsnorm_backward_scratch_floats(rows, C) floats.
template <class TIn, class T>
cudaError_t rmsnorm_backward(TIn* dinp, bool accumulate, float* dweight, const T* dout, const TIn* inp,
                             const T* weight, const float* rstd, int64_t rows, int64_t C, float* scratch,
                             cudaStream_t stream);
int64_t rmsnorm_backward_scratch_floats(int64_t rows, int64_t C);

// ---- rope.cu -------------------------------------------------------------------------------------------
// In place on x[N, heads, D], rotate-half pairs (i, i + D/2); cos/sin are [N, D/2] fp32 (cpu::rope_tables).
// backward applies the inverse rotation to the gradient in place.
template <class T>
cudaError_t rope_forward(T* x, const float* cos, const float* sin, int64_t N, int64_t heads, int64_t D,
                         cudaStream_t stream);
template <class T>
cudaError_t rope_backward(T* dx, const float* cos, const float* sin, int64_t N, int64_t heads, int64_t D,
                          cudaStream_t stream);

// ---- swiglu.cu -----------------------------------------------------------------------------------------
// h = silu(gate) · up over n elements; backward overwrites dgate and dup.
template <class T>
cudaError_t swiglu_forward(T* h, const T* gate, const T* up, int64_t n, cudaStream_t stream);
template <class T>
cudaError_t swiglu_backward(T* dgate, T* dup, const T* dh, const T* gate, const T* up, int64_t n,
                            cudaStream_t stream);

// ---- embedding.cu --------------------------------------------------------------------------------------
// out[N,C] (fp32 residual) = table[ids[n]].
template <class T>
cudaError_t embedding_forward(float* out, const int32_t* ids, const T* table, int64_t N, int64_t C,
                              cudaStream_t stream);
// Deterministic backward: the host groups token positions by id (EmbeddingBackwardPlan, stable, tokens in
// order inside each id); one block per distinct id adds that id's dout rows in token order into
// dtable[id] (fp32 +=). No atomics, so the result is the same on every run.
// sorted_tokens[N]: token positions grouped by id; segment_starts[num_segments+1]; segment_ids[num_segments].
struct EmbeddingBackwardPlan {
  std::vector<int32_t> sorted_tokens, segment_starts, segment_ids;
  // Groups the positions of ids[N] by id, ascending ids, positions ascending inside each (host code).
  static EmbeddingBackwardPlan of(const int32_t* ids, int64_t N);
};
cudaError_t embedding_backward(float* dtable, const float* dout, const int32_t* sorted_tokens,
                               const int32_t* segment_starts, const int32_t* segment_ids, int64_t num_segments,
                               int64_t C, cudaStream_t stream);

// ---- cross_entropy.cu ----------------------------------------------------------------------------------
// Vocab-parallel fused softmax cross-entropy that never stores the softmax. Each rank holds logits for
// vocabulary ids [vocab_start, vocab_start + V_local). Per row n:
//   row_max[n] = max logit; row_sum[n] = Σ exp(logit − row_max[n]);
//   target_logit[n] = the target's logit when this shard holds it, else 0 (targets < 0: ignored rows, 0).
// Under TP the caller all-reduces (max, then rescaled sums, then target logits) across the shards; on one
// rank the stats are final. Then:
//   losses[n] = log(row_sum) + row_max − target_logit (0 for ignored rows)        (cross_entropy_loss)
//   dlogits = scale · (softmax − onehot) (0 for ignored rows); dlogits may alias logits (cross_entropy_grad)
template <class T>
cudaError_t cross_entropy_stats(float* row_max, float* row_sum, float* target_logit, const T* logits,
                                const int32_t* targets, int64_t N, int64_t V_local, int64_t vocab_start,
                                cudaStream_t stream);
cudaError_t cross_entropy_loss(float* losses, const float* row_max, const float* row_sum,
                               const float* target_logit, const int32_t* targets, int64_t N, cudaStream_t stream);
template <class T>
cudaError_t cross_entropy_grad(T* dlogits, const T* logits, const float* row_max, const float* row_sum,
                               const int32_t* targets, int64_t N, int64_t V_local, int64_t vocab_start, float scale,
                               cudaStream_t stream);

// ---- adamw.cu ------------------------------------------------------------------------------------------
// torch.optim.AdamW on a contiguous range (the same arithmetic as train/optimizer.cpp, in fp32):
//   g = grad · grad_scale (the clip coefficient); p ← p − lr·wd·p; m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
//   p ← p − lr · (m / bias_correction1) / (sqrt(v / bias_correction2) + eps).
// `compute` (may be null) receives the updated p converted to T (the bf16 copy the model computes with).
struct AdamWArgs {
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0;
  float bias_correction1 = 1, bias_correction2 = 1, grad_scale = 1;
};
template <class T>
cudaError_t adamw_update(float* master, T* compute, const float* grad, float* m, float* v, int64_t n,
                         const AdamWArgs& args, cudaStream_t stream);
// partials[i] = Σ x[j]² (fp64) over block i = [i·block, min(n, (i+1)·block)), each block summed in a fixed
// order; the host adds the partials in order for a reproducible global norm.
cudaError_t sum_squares_blocks(double* partials, const float* x, int64_t n, int64_t block, cudaStream_t stream);

// ---- convert.cu ----------------------------------------------------------------------------------------
// out[i] = TOut(in[i]) (round to nearest even for bf16). Instantiated for all pairs of float and bf16.
template <class TOut, class TIn>
cudaError_t convert(TOut* out, const TIn* in, int64_t n, cudaStream_t stream);
// x[i] += TOut-converted delta[i]; x fp32 (residual adds that are not fused into a norm).
template <class T>
cudaError_t add_inplace(float* x, const T* delta, int64_t n, cudaStream_t stream);
// out[c] += Σ_rows in[r, c] in row order (bias gradients), fp32 accumulation.
template <class T>
cudaError_t column_sums_accumulate(float* out, const T* in, int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace tessera::cuda
