// The MoE block on the GPU (moe.hpp), the same function as model/moe_block.cpp step by step: router GEMM,
// softmax/top-k kernel, the routing plan built on the host by the CPU's counting sort, one GEMM chain per
// non-empty expert, and the combine in ascending expert order. The backward mirrors moe_backward: output
// gradients per assignment, expert GEMMs, the per-token sum back to d_ln (expert path first), then the
// router path accumulated on top, as the CPU adds it after the experts.
#include <algorithm>
#include <numeric>
#include <type_traits>

#include "cuda_check.hpp"
#include "moe_kernels.cuh"
#include "tessera/backend/cuda/moe.hpp"
#include "tessera/backend/cuda/ops.hpp"

namespace tessera::cuda {
namespace {

template <class T>
void check_weights(const MoeDims& d, const MoeWeights<T>& w) {
  const auto E = static_cast<size_t>(d.E);
  TESSERA_CHECK(w.router != nullptr, "MoE router weight is null");
  TESSERA_CHECK(w.gate.size() == E && w.up.size() == E && w.down.size() == E,
                "MoE weights list {}/{}/{} gate/up/down experts for E={}", w.gate.size(), w.up.size(), w.down.size(),
                d.E);
}

}  // namespace

template <class T>
double moe_forward(Blas& blas, const MoeWeights<T>& w, MoeState<T>& s, T* out, const T* ln, int64_t N,
                   std::vector<double>& expert_selections, std::vector<double>& expert_prob_sums) {
  const MoeDims& d = s.dims;
  const int64_t E = d.E, K = d.K, H = d.H, Fm = d.Fm;
  TESSERA_CHECK(s.probs != nullptr, "MoE forward on an unallocated MoeState");
  TESSERA_CHECK(N >= 0 && N <= s.max_tokens, "MoE forward on {} tokens; the state was sized for {}", N,
                s.max_tokens);
  TESSERA_CHECK(expert_selections.size() == static_cast<size_t>(E) && expert_prob_sums.size() == static_cast<size_t>(E),
                "MoE statistics arrays hold {} and {} experts, not {}", expert_selections.size(),
                expert_prob_sums.size(), E);
  check_weights(d, w);
  s.tokens = N;
  std::fill(s.host_offsets.begin(), s.host_offsets.end(), 0);
  if (N == 0) return 0.0;
  const cudaStream_t stream = blas.stream();

  // Router: fp32 logits, then softmax, logsumexp and top-k per token; the statistics reduced on the device.
  blas.linear_forward<T, float>(s.router_logits, ln, w.router, nullptr, N, H, E);
  TESSERA_CUDA_CHECK(moe::router_forward(s.probs, s.lse, s.topk_expert, s.topk_weight, s.router_logits, N, E, K,
                                         d.normalize_topk, stream));
  double* device_stats = moe::stats_tail(s.router_logits, s.max_tokens, E);
  TESSERA_CUDA_CHECK(moe::routing_stats(device_stats, s.probs, s.lse, N, E, stream));
  std::vector<double> stats(static_cast<size_t>(E + 1));
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(s.host_topk_expert.data(), s.topk_expert,
                                     static_cast<size_t>(N * K) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(stats.data(), device_stats, stats.size() * sizeof(double),
                                     cudaMemcpyDeviceToHost, stream));
  TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream));

  // Group the (token, slot) assignments by expert, tokens in order inside each expert (counting sort),
  // exactly as the CPU does.
  std::vector<int32_t>& offsets = s.host_offsets;
  const int32_t* topk = s.host_topk_expert.data();
  for (int64_t i = 0; i < N * K; ++i) {
    TESSERA_CHECK(topk[i] >= 0 && topk[i] < E, "MoE router chose expert {} of {} (token {}): non-finite logits?",
                  topk[i], E, i / K);
    ++offsets[static_cast<size_t>(topk[i]) + 1];
  }
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  std::vector<int32_t> fill(offsets.begin(), offsets.end() - 1);
  for (int64_t t = 0; t < N; ++t)
    for (int64_t k = 0; k < K; ++k) {
      const int32_t row = fill[static_cast<size_t>(topk[t * K + k])]++;
      s.host_assign_token[static_cast<size_t>(row)] = static_cast<int32_t>(t);
      s.host_slot_assignment[static_cast<size_t>(t * K + k)] = row;
    }
  const size_t plan_bytes = static_cast<size_t>(N * K) * sizeof(int32_t);
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(s.assign_token, s.host_assign_token.data(), plan_bytes, cudaMemcpyHostToDevice,
                                     stream));
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(s.slot_assignment, s.host_slot_assignment.data(), plan_bytes,
                                     cudaMemcpyHostToDevice, stream));

  // Load-balancing statistics (decoder.cpp's per-layer sums) and the z-loss term.
  for (int64_t e = 0; e < E; ++e) {
    expert_selections[static_cast<size_t>(e)] += static_cast<double>(offsets[e + 1] - offsets[e]);
    expert_prob_sums[static_cast<size_t>(e)] += stats[static_cast<size_t>(e)];
  }
  const double z = stats[static_cast<size_t>(E)];

  // Experts: one GEMM chain over each expert's contiguous rows.
  TESSERA_CUDA_CHECK(moe::gather_rows(s.xe, ln, s.assign_token, N * K, H, stream));
  for (int64_t e = 0; e < E; ++e) {
    const int64_t first = offsets[e], rows = offsets[e + 1] - offsets[e];
    if (rows == 0) continue;
    const auto ei = static_cast<size_t>(e);
    blas.linear_forward<T, T>(s.ge + first * Fm, s.xe + first * H, w.gate[ei], nullptr, rows, H, Fm);
    blas.linear_forward<T, T>(s.ue + first * Fm, s.xe + first * H, w.up[ei], nullptr, rows, H, Fm);
    TESSERA_CUDA_CHECK(swiglu_forward<T>(s.he + first * Fm, s.ge + first * Fm, s.ue + first * Fm, rows * Fm, stream));
    blas.linear_forward<T, T>(s.ye + first * H, s.he + first * Fm, w.down[ei], nullptr, rows, Fm, H);
  }
  TESSERA_CUDA_CHECK(moe::combine(out, s.ye, s.topk_weight, s.slot_assignment, N, K, H, stream));
  return z;
}

template <class T>
void moe_backward(Blas& blas, const MoeWeights<T>& w, const MoeGrads& g, MoeState<T>& s, MoeScratch<T>& scratch,
                  T* d_ln, const T* d_out, const T* ln, const std::vector<double>& aux_grad, double z_coef) {
  const MoeDims& d = s.dims;
  const int64_t E = d.E, K = d.K, H = d.H, Fm = d.Fm, N = s.tokens;
  TESSERA_CHECK(s.probs != nullptr && scratch.d_logits != nullptr, "MoE backward on unallocated buffers");
  TESSERA_CHECK(aux_grad.size() == static_cast<size_t>(E), "MoE aux_grad holds {} experts, not {}", aux_grad.size(),
                E);
  check_weights(d, w);
  TESSERA_CHECK(g.router != nullptr && g.gate.size() == static_cast<size_t>(E) &&
                    g.up.size() == static_cast<size_t>(E) && g.down.size() == static_cast<size_t>(E),
                "MoE gradients list {}/{}/{} gate/up/down experts for E={} (router {})", g.gate.size(), g.up.size(),
                g.down.size(), E, g.router != nullptr ? "set" : "null");
  if (N == 0) return;
  const cudaStream_t stream = blas.stream();
  const std::vector<int32_t>& offsets = s.host_offsets;

  // Each assignment's output gradient, and each top-k weight's gradient.
  TESSERA_CUDA_CHECK(moe::output_backward(scratch.d_ye, scratch.d_topk_weight, d_out, s.ye, s.topk_weight,
                                          s.slot_assignment, N, K, H, stream));
  for (int64_t e = 0; e < E; ++e) {
    const int64_t first = offsets[e], rows = offsets[e + 1] - first;
    if (rows == 0) continue;
    const auto ei = static_cast<size_t>(e);
    blas.linear_backward<T>(scratch.d_he + first * Fm, false, g.down[ei], nullptr, scratch.d_ye + first * H,
                            s.he + first * Fm, w.down[ei], rows, Fm, H);
    TESSERA_CUDA_CHECK(swiglu_backward<T>(scratch.d_ge + first * Fm, scratch.d_ue + first * Fm,
                                          scratch.d_he + first * Fm, s.ge + first * Fm, s.ue + first * Fm, rows * Fm,
                                          stream));
    blas.linear_backward<T>(scratch.d_xe + first * H, false, g.gate[ei], nullptr, scratch.d_ge + first * Fm,
                            s.xe + first * H, w.gate[ei], rows, H, Fm);
    blas.linear_backward<T>(scratch.d_xe + first * H, true, g.up[ei], nullptr, scratch.d_ue + first * Fm,
                            s.xe + first * H, w.up[ei], rows, H, Fm);
  }
  // Expert path into d_ln (overwriting), each token's experts summed in ascending order.
  TESSERA_CUDA_CHECK(moe::scatter_back(d_ln, scratch.d_xe, s.slot_assignment, N, K, H, stream));

  // Router: d(logits) through the top-k weights, the softmax, the aux and z losses; then its GEMM
  // backward, whose input gradient accumulates on top of the expert path (the CPU's order).
  std::vector<float> aux(static_cast<size_t>(E));
  for (size_t e = 0; e < aux.size(); ++e) aux[e] = static_cast<float>(aux_grad[e]);
  float* aux_device = moe::aux_grad_tail(s.router_logits, s.max_tokens, E);
  if (E > moe::kMaxAuxByValue)  // pageable source: the call returns once staged, so `aux` may go
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(aux_device, aux.data(), aux.size() * sizeof(float), cudaMemcpyHostToDevice,
                                       stream));
  TESSERA_CUDA_CHECK(moe::router_backward(scratch.d_logits, s.probs, s.lse, s.topk_weight, s.topk_expert,
                                          scratch.d_topk_weight, aux.data(), aux_device, z_coef, N, E, K,
                                          d.normalize_topk, stream));
  const T* d_logits = nullptr;
  if constexpr (std::is_same_v<T, float>) {
    d_logits = scratch.d_logits;
  } else {
    TESSERA_CUDA_CHECK((convert<T, float>(scratch.d_logits_t, scratch.d_logits, N * E, stream)));
    d_logits = scratch.d_logits_t;
  }
  blas.linear_backward<T>(d_ln, true, g.router, nullptr, d_logits, ln, w.router, N, H, E);
}

template double moe_forward<float>(Blas&, const MoeWeights<float>&, MoeState<float>&, float*, const float*, int64_t,
                                   std::vector<double>&, std::vector<double>&);
template double moe_forward<__nv_bfloat16>(Blas&, const MoeWeights<__nv_bfloat16>&, MoeState<__nv_bfloat16>&,
                                           __nv_bfloat16*, const __nv_bfloat16*, int64_t, std::vector<double>&,
                                           std::vector<double>&);
template void moe_backward<float>(Blas&, const MoeWeights<float>&, const MoeGrads&, MoeState<float>&,
                                  MoeScratch<float>&, float*, const float*, const float*, const std::vector<double>&,
                                  double);
template void moe_backward<__nv_bfloat16>(Blas&, const MoeWeights<__nv_bfloat16>&, const MoeGrads&,
                                          MoeState<__nv_bfloat16>&, MoeScratch<__nv_bfloat16>&, __nv_bfloat16*,
                                          const __nv_bfloat16*, const __nv_bfloat16*, const std::vector<double>&,
                                          double);

}  // namespace tessera::cuda
