#pragma once
// The Qwen3-MoE sparse block on the GPU, the same function as model/moe_block.cpp: router softmax in fp32,
// top-k of the probabilities (largest first, ties to the lower expert index), optional renormalisation of
// the k weights, dropless SwiGLU experts as one GEMM per non-empty expert over the rows routed to it
// (grouped by a stable counting sort, tokens in order), outputs summed per token in ascending expert order.
// Deterministic: no floating-point atomics anywhere.
//
// The routing plan (which rows go to which expert) is built on the host from the top-k choices, because
// the per-expert GEMM sizes are needed there anyway; that is one device→host copy of N·K ints per layer.

#include <cstdint>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "tessera/backend/cuda/blas.hpp"

namespace tessera::cuda {

struct MoeDims {
  int64_t H = 0, E = 0, K = 0, Fm = 0;  // hidden, experts, top-k, expert ffn
  bool normalize_topk = true;
};

template <class T>
struct MoeWeights {
  const T* router = nullptr;                  // [E, H]
  std::vector<const T*> gate, up, down;       // per expert: [Fm,H], [Fm,H], [H,Fm]
};
struct MoeGrads {
  float* router = nullptr;                    // fp32, accumulated (+=)
  std::vector<float*> gate, up, down;
};

// Device buffers for one layer's forward state (kept for its backward) plus host mirrors of the plan.
// Sized once for max_tokens; allocate() / the destructor own the memory.
template <class T>
struct MoeState {
  MoeDims dims;
  int64_t max_tokens = 0, tokens = 0;
  float *router_logits = nullptr, *probs = nullptr, *lse = nullptr, *topk_weight = nullptr;  // [N,E],[N,E],[N],[N,K]
  int32_t *topk_expert = nullptr, *slot_assignment = nullptr, *assign_token = nullptr;       // [N,K],[N,K],[N·K]
  T *xe = nullptr, *ge = nullptr, *ue = nullptr, *he = nullptr, *ye = nullptr;              // per-assignment rows
  std::vector<int32_t> host_topk_expert, host_offsets, host_assign_token, host_slot_assignment;

  MoeState() = default;
  MoeState(const MoeState&) = delete;  // owns device memory
  MoeState& operator=(const MoeState&) = delete;
  void allocate(const MoeDims& d, int64_t max_tokens);
  void release();
  ~MoeState() { release(); }
};

// Gradient scratch shared by all layers' backward.
template <class T>
struct MoeScratch {
  float *d_logits = nullptr, *d_topk_weight = nullptr;
  T *d_ye = nullptr, *d_he = nullptr, *d_ge = nullptr, *d_ue = nullptr, *d_xe = nullptr, *d_logits_t = nullptr;
  MoeScratch() = default;
  MoeScratch(const MoeScratch&) = delete;  // owns device memory
  MoeScratch& operator=(const MoeScratch&) = delete;
  void allocate(const MoeDims& d, int64_t max_tokens);
  void release();
  ~MoeScratch() { release(); }
};

// out[N,H] = MoE(ln[N,H]). Fills `state` (routing, per-assignment activations). Also adds this layer's
// routing statistics for the load-balancing loss into the host arrays: expert_selections[e] += number of
// (token, slot) picks of e; expert_prob_sums[e] += Σ_t probs[t,e]; and returns Σ_t lse[t]² / N (z-loss).
template <class T>
double moe_forward(Blas& blas, const MoeWeights<T>& w, MoeState<T>& state, T* out, const T* ln, int64_t N,
                   std::vector<double>& expert_selections, std::vector<double>& expert_prob_sums);

// d_ln[N,H] is OVERWRITTEN with d(out)/d(ln) · d_out plus the router path. aux_grad[E] is
// d(aux_scale · aux)/d(probs[t,e]) (the same for every token); z_coef is d(z_scale · z)/d(lse_t) / lse_t.
// Parameter gradients accumulate into `g`.
template <class T>
void moe_backward(Blas& blas, const MoeWeights<T>& w, const MoeGrads& g, MoeState<T>& state, MoeScratch<T>& scratch,
                  T* d_ln, const T* d_out, const T* ln, const std::vector<double>& aux_grad, double z_coef);

}  // namespace tessera::cuda
