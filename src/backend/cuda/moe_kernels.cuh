#pragma once
// Private to the MoE block (moe_block.cpp, moe_state.cpp): the kernels' launchers and the layout of the
// small scratch regions the block keeps behind its buffers. nvcc compiles moe_kernels.cu against this
// header, so it holds plain declarations only (no fmt, no tessera error headers).
//
// Every kernel reproduces the CPU reference (model/moe_block.cpp) operation for operation: the same
// accumulation types (fp32 or fp64 where the CPU uses double), the same summation orders where the CPU's
// order is sequential and the result is fp32, and explicit _rn intrinsics where a fused multiply-add would
// change the rounding. No floating-point atomics: every result has one writer and a fixed order.

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

namespace tessera::cuda::moe {

// ---- the block's private scratch, kept at the tail of MoeState::router_logits --------------------------
// router_logits holds [max_tokens, E] floats, padded to an even count, then (E + 1) doubles of routing
// statistics (Σ_t probs[t,e] per expert, then Σ_t lse_t² / N) written by routing_stats, then E floats of
// the aux-loss gradient uploaded by the backward when E > kMaxAuxByValue. The logits themselves are dead once the forward's
// softmax has run, but the tail never overlaps them.
inline int64_t logits_floats_padded(int64_t max_tokens, int64_t E) { return (max_tokens * E + 1) / 2 * 2; }
inline int64_t router_logits_alloc_floats(int64_t max_tokens, int64_t E) {
  return logits_floats_padded(max_tokens, E) + 2 * (E + 1) + E;
}
inline double* stats_tail(float* router_logits, int64_t max_tokens, int64_t E) {
  return reinterpret_cast<double*>(router_logits + logits_floats_padded(max_tokens, E));
}
inline float* aux_grad_tail(float* router_logits, int64_t max_tokens, int64_t E) {
  return router_logits + logits_floats_padded(max_tokens, E) + 2 * (E + 1);
}

// ---- forward ---------------------------------------------------------------------------------------------
// Per token t: lse[t] = logsumexp(logits[t,:]) (fp64 sum, as the CPU); probs = softmax (fp32, sequential
// sum); top-k of probs, largest first, equal values to the lower expert index; the k weights, renormalised
// to sum 1 when `normalize`.
cudaError_t router_forward(float* probs, float* lse, int32_t* topk_expert, float* topk_weight, const float* logits,
                           int64_t N, int64_t E, int64_t K, bool normalize, cudaStream_t stream);

// stats[e] = Σ_t probs[t,e] (fp64, e < E); stats[E] = Σ_t lse_t² / N (fp64). Fixed-order reductions.
cudaError_t routing_stats(double* stats, const float* probs, const float* lse, int64_t N, int64_t E,
                          cudaStream_t stream);

// xe[row, :] = ln[assign_token[row], :] for rows in [0, rows).
template <class T>
cudaError_t gather_rows(T* xe, const T* ln, const int32_t* assign_token, int64_t rows, int64_t H,
                        cudaStream_t stream);

// out[t, :] = Σ over the token's k slots in ascending expert order of topk_weight[t,k] · ye[slot_assignment[t,k], :]
// (fp32 accumulation from 0, one rounding to T at the end).
template <class T>
cudaError_t combine(T* out, const T* ye, const float* topk_weight, const int32_t* slot_assignment, int64_t N,
                    int64_t K, int64_t H, cudaStream_t stream);

// ---- backward --------------------------------------------------------------------------------------------
// d_ye[slot(t,k), :] = topk_weight[t,k] · d_out[t, :]; d_topk_weight[t,k] = Σ_h d_out[t,h] · ye[slot(t,k),h]
// (fp64, fixed-order tree).
template <class T>
cudaError_t output_backward(T* d_ye, float* d_topk_weight, const T* d_out, const T* ye, const float* topk_weight,
                            const int32_t* slot_assignment, int64_t N, int64_t K, int64_t H, cudaStream_t stream);

// d_ln[t, :] = Σ over the token's slots in ascending expert order of d_xe[slot, :] (overwrites; fp32 sum).
template <class T>
cudaError_t scatter_back(T* d_ln, const T* d_xe, const int32_t* slot_assignment, int64_t N, int64_t K, int64_t H,
                         cudaStream_t stream);

// d_logits[t, :]: the gradient of the router logits through the (renormalised) top-k weights and the softmax,
// plus aux_grad[e] (fp32, [E]) on every probability, plus z_coef · lse_t · probs[t, :].
// aux_grad_host is read at launch: for E <= kMaxAuxByValue the values travel as a kernel parameter and
// aux_grad_device is not read; above that the caller must have uploaded them to aux_grad_device.
inline constexpr int64_t kMaxAuxByValue = 512;  // 2 KiB of kernel parameters
cudaError_t router_backward(float* d_logits, const float* probs, const float* lse, const float* topk_weight,
                            const int32_t* topk_expert, const float* d_topk_weight, const float* aux_grad_host,
                            const float* aux_grad_device, double z_coef, int64_t N, int64_t E, int64_t K,
                            bool normalize, cudaStream_t stream);

}  // namespace tessera::cuda::moe
