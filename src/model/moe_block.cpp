// The Qwen3-MoE sparse block as transformers computes it: router softmax in fp32, top-k of the
// probabilities, optional renormalisation of the k weights, dropless SwiGLU experts, outputs summed per
// token in ascending expert order (transformers' index_add over experts).

#include <algorithm>
#include <cmath>
#include <numeric>

#include "decoder_layer.hpp"
#include "tessera/backend/cpu_ops.hpp"

namespace tessera::model::detail {

void moe_forward(const Dims& d, const LayerTensors& w, LayerActivations& a, float* out, int64_t N) {
  const int64_t E = d.E, K = d.K, H = d.H, Fm = d.Fm;
  float* probs = a.router_probs.data();
  cpu::linear_forward(probs, a.ln2.data(), w.router, nullptr, N, H, E);
  // logsumexp of each token's router logits, for the z-loss, before the softmax overwrites them.
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < N; ++t) {
    const float* z = probs + t * E;
    const float max = *std::max_element(z, z + E);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += std::exp(static_cast<double>(z[e] - max));
    a.router_lse[t] = max + static_cast<float>(std::log(sum));
  }
  cpu::softmax_rows(probs, N, E);

  // Top-k per token, largest first; equal probabilities keep the lower expert index first.
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < N; ++t) {
    const float* p = probs + t * E;
    int32_t* chosen = a.topk_expert.data() + t * K;
    float* weight = a.topk_weight.data() + t * K;
    for (int64_t k = 0; k < K; ++k) {
      int32_t best = -1;
      for (int32_t e = 0; e < E; ++e) {
        if (std::find(chosen, chosen + k, e) != chosen + k) continue;
        if (best < 0 || p[e] > p[best]) best = e;
      }
      chosen[k] = best;
      weight[k] = p[best];
    }
    if (d.norm_topk) {
      float sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += weight[k];
      for (int64_t k = 0; k < K; ++k) weight[k] /= sum;
    }
  }

  // Group the (token, slot) assignments by expert, tokens in order inside each expert (counting sort).
  std::vector<int32_t>& offsets = a.expert_offsets;
  std::fill(offsets.begin(), offsets.end(), 0);
  for (int64_t i = 0; i < N * K; ++i) ++offsets[a.topk_expert[i] + 1];
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  std::copy(offsets.begin(), offsets.end() - 1, a.expert_fill.begin());
  for (int64_t t = 0; t < N; ++t)
    for (int64_t k = 0; k < K; ++k) {
      const int32_t row = a.expert_fill[a.topk_expert[t * K + k]]++;
      a.assign_token[row] = static_cast<int32_t>(t);
      a.slot_assignment[t * K + k] = row;
    }
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < N * K; ++row)
    std::copy_n(a.ln2.data() + a.assign_token[row] * H, H, a.xe.data() + row * H);

  std::fill_n(out, N * H, 0.0f);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t first = offsets[e], rows = offsets[e + 1] - offsets[e];
    if (rows == 0) continue;
    cpu::linear_forward(a.ge.data() + first * Fm, a.xe.data() + first * H, w.expert_gate[e], nullptr, rows, H, Fm);
    cpu::linear_forward(a.ue.data() + first * Fm, a.xe.data() + first * H, w.expert_up[e], nullptr, rows, H, Fm);
    cpu::swiglu_forward(a.he.data() + first * Fm, a.ge.data() + first * Fm, a.ue.data() + first * Fm, rows * Fm);
    cpu::linear_forward(a.ye.data() + first * H, a.he.data() + first * Fm, w.expert_down[e], nullptr, rows, Fm, H);
    // A token appears at most once per expert, so rows of one expert never race on `out`.
#pragma omp parallel for schedule(static)
    for (int64_t row = first; row < first + rows; ++row) {
      const int64_t t = a.assign_token[row];
      int64_t slot = 0;
      while (a.slot_assignment[t * K + slot] != row) ++slot;
      const float weight = a.topk_weight[t * K + slot];
      for (int64_t h = 0; h < H; ++h) out[t * H + h] += weight * a.ye[row * H + h];
    }
  }
}

void moe_backward(const Dims& d, const LayerTensors& w, const LayerTensors& g, LayerActivations& a,
                  LayerScratch& s, const float* d_out, int64_t N, const std::vector<double>& aux_grad, double z_coef) {
  const int64_t E = d.E, K = d.K, H = d.H, Fm = d.Fm;
  // Each assignment's output gradient is its weight times the token's; each weight's gradient is the
  // token's output gradient dotted with that expert's output.
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < N; ++t)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t row = a.slot_assignment[t * K + k];
      const float weight = a.topk_weight[t * K + k];
      double dot = 0;
      for (int64_t h = 0; h < H; ++h) {
        s.d_ye[row * H + h] = weight * d_out[t * H + h];
        dot += static_cast<double>(d_out[t * H + h]) * a.ye[row * H + h];
      }
      s.d_topk[t * K + k] = static_cast<float>(dot);
    }
  // Under tensor parallelism each rank's expert outputs are partial, and so are these dot products.
  tp_sum(d, s.d_topk.data(), N * K);

  for (int64_t e = 0; e < E; ++e) {
    const int64_t first = a.expert_offsets[e], rows = a.expert_offsets[e + 1] - first;
    if (rows == 0) continue;
    std::fill_n(s.d_he.data() + first * Fm, rows * Fm, 0.0f);
    cpu::linear_backward(s.d_he.data() + first * Fm, g.expert_down[e], nullptr, s.d_ye.data() + first * H,
                         a.he.data() + first * Fm, w.expert_down[e], rows, Fm, H);
    cpu::swiglu_backward(s.d_ge.data() + first * Fm, s.d_ue.data() + first * Fm, s.d_he.data() + first * Fm,
                         a.ge.data() + first * Fm, a.ue.data() + first * Fm, rows * Fm);
    std::fill_n(s.d_xe.data() + first * H, rows * H, 0.0f);
    cpu::linear_backward(s.d_xe.data() + first * H, g.expert_gate[e], nullptr, s.d_ge.data() + first * Fm,
                         a.xe.data() + first * H, w.expert_gate[e], rows, H, Fm);
    cpu::linear_backward(s.d_xe.data() + first * H, g.expert_up[e], nullptr, s.d_ue.data() + first * Fm,
                         a.xe.data() + first * H, w.expert_up[e], rows, H, Fm);
  }
  // Back to tokens, summing each token's experts in ascending expert order.
  float* d_ln = s.d_ln.data();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t first = a.expert_offsets[e], last = a.expert_offsets[e + 1];
#pragma omp parallel for schedule(static)
    for (int64_t row = first; row < last; ++row) {
      const int64_t t = a.assign_token[row];
      for (int64_t h = 0; h < H; ++h) d_ln[t * H + h] += s.d_xe[row * H + h];
    }
  }

  // The experts' partial d(input) is summed over tensor-parallel ranks before the router's part, which
  // every rank computes whole, is added.
  tp_sum(d, d_ln, N * H);

  // Router: through the optional renormalisation and the softmax, plus the aux loss's gradient, which
  // reaches every expert's probability.
  float* d_logits = s.d_router.data();
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < N; ++t) {
    const float* p = a.router_probs.data() + t * E;
    const float* dw = s.d_topk.data() + t * K;
    const float* weight = a.topk_weight.data() + t * K;
    const int32_t* chosen = a.topk_expert.data() + t * K;
    float* dp = d_logits + t * E;  // d(probabilities) first, turned into d(logits) in place below
    for (int64_t e = 0; e < E; ++e) dp[e] = static_cast<float>(aux_grad[e]);
    if (d.norm_topk) {
      // w_k = p_k / S with S = Σ_j p_j over the chosen: dp_k = (dw_k − Σ_j dw_j w_j) / S.
      double sum_p = 0, dot = 0;
      for (int64_t k = 0; k < K; ++k) {
        sum_p += p[chosen[k]];
        dot += static_cast<double>(dw[k]) * weight[k];
      }
      for (int64_t k = 0; k < K; ++k) dp[chosen[k]] += static_cast<float>((dw[k] - dot) / sum_p);
    } else {
      for (int64_t k = 0; k < K; ++k) dp[chosen[k]] += dw[k];
    }
    double mean = 0;
    for (int64_t e = 0; e < E; ++e) mean += static_cast<double>(p[e]) * dp[e];
    // z-loss: d(lse_t²)/d(logit_e) = 2 · lse_t · p_e, folded into z_coef = 2 · z_scale / N.
    const double z = z_coef * a.router_lse[t];
    for (int64_t e = 0; e < E; ++e) dp[e] = static_cast<float>(p[e] * (dp[e] - mean) + z * p[e]);
  }
  cpu::linear_backward(d_ln, g.router, nullptr, d_logits, a.ln2.data(), w.router, N, H, E);
}

double load_balancing_loss(const std::vector<double>& expert_selections, const std::vector<double>& expert_prob_sums,
                           int64_t layers, int64_t tokens) {
  const double T = static_cast<double>(layers) * static_cast<double>(tokens);
  double aux = 0;
  for (size_t e = 0; e < expert_selections.size(); ++e) aux += (expert_selections[e] / T) * (expert_prob_sums[e] / T);
  return aux * static_cast<double>(expert_selections.size());
}

void load_balancing_grad(std::vector<double>& aux_grad, const std::vector<double>& expert_selections,
                         int64_t layers, int64_t tokens, double aux_scale) {
  const double T = static_cast<double>(layers) * static_cast<double>(tokens);
  const auto E = static_cast<double>(expert_selections.size());
  aux_grad.resize(expert_selections.size());
  for (size_t e = 0; e < expert_selections.size(); ++e) aux_grad[e] = aux_scale * E * expert_selections[e] / (T * T);
}

}  // namespace tessera::model::detail
