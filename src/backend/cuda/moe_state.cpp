// Device buffers of the MoE block (moe.hpp): one MoeState per layer, one MoeScratch shared by all layers.
#include <algorithm>

#include "cuda_check.hpp"
#include "moe_kernels.cuh"
#include "tessera/backend/cuda/moe.hpp"

namespace tessera::cuda {
namespace {

// cudaMalloc of n elements (at least one, so every pointer is distinct and non-null), checked.
template <class U>
void device_alloc(U*& ptr, int64_t n) {
  void* raw = nullptr;
  TESSERA_CUDA_CHECK(cudaMalloc(&raw, static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(U)));
  ptr = static_cast<U*>(raw);
}

// Frees and nulls; errors are ignored because this runs from destructors (a failed free leaves nothing to
// recover, and a sticky error from an earlier kernel is reported by that kernel's own check).
template <class U>
void device_free(U*& ptr) {
  if (ptr != nullptr) static_cast<void>(cudaFree(ptr));
  ptr = nullptr;
}

void check_dims(const MoeDims& d, int64_t max_tokens) {
  TESSERA_CHECK(d.H > 0 && d.E > 0 && d.Fm > 0 && d.K > 0 && d.K <= d.E,
                "MoE dims need H, E, Fm > 0 and 0 < K <= E (got H={}, E={}, K={}, Fm={})", d.H, d.E, d.K, d.Fm);
  TESSERA_CHECK(max_tokens >= 0, "MoE buffers for a negative token count ({})", max_tokens);
  TESSERA_CHECK(max_tokens * d.K <= INT32_MAX, "MoE assignments ({} tokens x top-{}) overflow int32 row indices",
                max_tokens, d.K);
}

}  // namespace

template <class T>
void MoeState<T>::allocate(const MoeDims& d, int64_t max_tok) {
  check_dims(d, max_tok);
  release();
  dims = d;
  max_tokens = max_tok;
  tokens = 0;
  const int64_t NE = max_tok * d.E, NK = max_tok * d.K;
  // router_logits carries the block's private tail (routing statistics, aux gradient): moe_kernels.cuh.
  device_alloc(router_logits, moe::router_logits_alloc_floats(max_tok, d.E));
  device_alloc(probs, NE);
  device_alloc(lse, max_tok);
  device_alloc(topk_weight, NK);
  device_alloc(topk_expert, NK);
  device_alloc(slot_assignment, NK);
  device_alloc(assign_token, NK);
  device_alloc(xe, NK * d.H);
  device_alloc(ye, NK * d.H);
  device_alloc(ge, NK * d.Fm);
  device_alloc(ue, NK * d.Fm);
  device_alloc(he, NK * d.Fm);
  host_topk_expert.assign(static_cast<size_t>(NK), 0);
  host_offsets.assign(static_cast<size_t>(d.E + 1), 0);
  host_assign_token.assign(static_cast<size_t>(NK), 0);
  host_slot_assignment.assign(static_cast<size_t>(NK), 0);
}

template <class T>
void MoeState<T>::release() {
  device_free(router_logits);
  device_free(probs);
  device_free(lse);
  device_free(topk_weight);
  device_free(topk_expert);
  device_free(slot_assignment);
  device_free(assign_token);
  device_free(xe);
  device_free(ge);
  device_free(ue);
  device_free(he);
  device_free(ye);
  host_topk_expert.clear();
  host_offsets.clear();
  host_assign_token.clear();
  host_slot_assignment.clear();
  max_tokens = 0;
  tokens = 0;
}

template <class T>
void MoeScratch<T>::allocate(const MoeDims& d, int64_t max_tokens) {
  check_dims(d, max_tokens);
  release();
  const int64_t NE = max_tokens * d.E, NK = max_tokens * d.K;
  device_alloc(d_logits, NE);
  device_alloc(d_topk_weight, NK);
  device_alloc(d_ye, NK * d.H);
  device_alloc(d_xe, NK * d.H);
  device_alloc(d_he, NK * d.Fm);
  device_alloc(d_ge, NK * d.Fm);
  device_alloc(d_ue, NK * d.Fm);
  device_alloc(d_logits_t, NE);
}

template <class T>
void MoeScratch<T>::release() {
  device_free(d_logits);
  device_free(d_topk_weight);
  device_free(d_ye);
  device_free(d_he);
  device_free(d_ge);
  device_free(d_ue);
  device_free(d_xe);
  device_free(d_logits_t);
}

template struct MoeState<float>;
template struct MoeState<__nv_bfloat16>;
template struct MoeScratch<float>;
template struct MoeScratch<__nv_bfloat16>;

}  // namespace tessera::cuda
