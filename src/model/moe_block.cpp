// The Qwen3-MoE sparse block as transformers computes it: router softmax in fp32, top-k of the
// probabilities, optional renormalisation of the k weights, dropless SwiGLU experts, outputs summed per
// token in ascending expert order (transformers' index_add over experts).

#include <algorithm>
#include <cmath>
#include <numeric>

#include "decoder_layer.hpp"
#include "tessera/backend/cpu_ops.hpp"

namespace tessera::model::detail {

namespace {

// The SwiGLU experts [d.e0, d.e0 + d.El) over rows grouped by expert (offsets[le] … offsets[le + 1] are
// local expert le's): y = down(silu(gate x) · up x).
void experts_forward(const Dims& d, const LayerTensors& w, const int32_t* offsets, const float* x, float* g, float* u,
                     float* h, float* y) {
  const int64_t H = d.H, Fm = d.Fm;
  for (int64_t le = 0; le < d.El; ++le) {
    const int64_t e = d.e0 + le, first = offsets[le], rows = offsets[le + 1] - first;
    if (rows == 0) continue;
    cpu::linear_forward(g + first * Fm, x + first * H, w.expert_gate[e], nullptr, rows, H, Fm);
    cpu::linear_forward(u + first * Fm, x + first * H, w.expert_up[e], nullptr, rows, H, Fm);
    cpu::swiglu_forward(h + first * Fm, g + first * Fm, u + first * Fm, rows * Fm);
    cpu::linear_forward(y + first * H, h + first * Fm, w.expert_down[e], nullptr, rows, Fm, H);
  }
}

// d(x) of the same rows from d(y), accumulating the experts' weight gradients; dh, dg, du are scratch.
void experts_backward(const Dims& d, const LayerTensors& w, const LayerTensors& gr, const int32_t* offsets,
                      const float* x, const float* g, const float* u, const float* h, const float* dy, float* dx,
                      float* dh, float* dg, float* du) {
  const int64_t H = d.H, Fm = d.Fm;
  for (int64_t le = 0; le < d.El; ++le) {
    const int64_t e = d.e0 + le, first = offsets[le], rows = offsets[le + 1] - first;
    if (rows == 0) continue;
    std::fill_n(dh + first * Fm, rows * Fm, 0.0f);
    cpu::linear_backward(dh + first * Fm, gr.expert_down[e], nullptr, dy + first * H, h + first * Fm,
                         w.expert_down[e], rows, Fm, H);
    cpu::swiglu_backward(dg + first * Fm, du + first * Fm, dh + first * Fm, g + first * Fm, u + first * Fm, rows * Fm);
    std::fill_n(dx + first * H, rows * H, 0.0f);
    cpu::linear_backward(dx + first * H, gr.expert_gate[e], nullptr, dg + first * Fm, x + first * H,
                         w.expert_gate[e], rows, H, Fm);
    cpu::linear_backward(dx + first * H, gr.expert_up[e], nullptr, du + first * Fm, x + first * H, w.expert_up[e],
                         rows, H, Fm);
  }
}

// Expert parallelism, the routing plan: how many of this rank's rows (grouped by expert, so each owner's
// rows are contiguous) go to each rank, how many arrive from each (both as values: rows × H, as the
// exchanges count them), and the order that regroups the arrivals by local expert — experts in order, each
// expert's rows by source rank, then in the source's order.
void plan_dispatch(const Dims& d, LayerActivations& a) {
  ExpertParallel& ep = *d.ep;
  const int P = ep.size();
  const int64_t El = d.El, H = d.H;
  const std::vector<int32_t>& offsets = a.expert_offsets;
  std::vector<int64_t> per_expert(static_cast<size_t>(P * El)), counts(static_cast<size_t>(P), El);
  for (int p = 0; p < P; ++p)
    for (int64_t le = 0; le < El; ++le) per_expert[p * El + le] = offsets[p * El + le + 1] - offsets[p * El + le];
  a.ep_expert_rows.resize(per_expert.size());
  ep.all_to_all_v(per_expert, counts, a.ep_expert_rows, counts);
  a.ep_send_values.assign(static_cast<size_t>(P), 0);
  a.ep_recv_values.assign(static_cast<size_t>(P), 0);
  std::vector<int64_t> source_start(static_cast<size_t>(P) + 1, 0);  // first arrived row of each source
  for (int p = 0; p < P; ++p) {
    a.ep_send_values[p] = (offsets[(p + 1) * El] - offsets[p * El]) * H;
    int64_t rows = 0;
    for (int64_t le = 0; le < El; ++le) rows += a.ep_expert_rows[p * El + le];
    a.ep_recv_values[p] = rows * H;
    source_start[p + 1] = source_start[p] + rows;
  }

  // Expert-major order over the arrived (source-major) rows.
  a.ep_offsets.assign(static_cast<size_t>(El + 1), 0);
  a.ep_order.resize(static_cast<size_t>(source_start[P]));
  int64_t at = 0;
  for (int64_t le = 0; le < El; ++le) {
    a.ep_offsets[le] = static_cast<int32_t>(at);
    for (int p = 0; p < P; ++p) {
      int64_t row = source_start[p];
      for (int64_t j = 0; j < le; ++j) row += a.ep_expert_rows[p * El + j];
      for (int64_t r = 0; r < a.ep_expert_rows[p * El + le]; ++r) a.ep_order[at++] = static_cast<int32_t>(row + r);
    }
  }
  a.ep_offsets[El] = static_cast<int32_t>(at);
}

// Sends this rank's rows (H values each, in a.xe's order) to the experts' ranks; `out` receives the rows
// that arrive here, in expert-major order. `transfer` holds them as they arrive.
void send_rows(const Dims& d, const LayerActivations& a, const float* rows, std::vector<float>& out,
               std::vector<float>& transfer) {
  const int64_t H = d.H, received = static_cast<int64_t>(a.ep_order.size());
  int64_t sent = 0;
  for (const int64_t n : a.ep_send_values) sent += n;
  transfer.resize(static_cast<size_t>(received * H));
  d.ep->all_to_all_v({rows, static_cast<size_t>(sent)}, a.ep_send_values, transfer, a.ep_recv_values);
  out.resize(transfer.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < received; ++i) std::copy_n(transfer.data() + a.ep_order[i] * H, H, out.data() + i * H);
}

// The reverse trip: rows computed here (expert-major, `rows_here`) go back to their source ranks in the
// order they were sent, landing in `back` (this rank's own rows, in a.xe's order); `transfer` holds them
// in source order before they leave.
void return_rows(const Dims& d, const LayerActivations& a, const float* rows_here, float* back,
                 std::vector<float>& transfer) {
  const int64_t H = d.H, received = static_cast<int64_t>(a.ep_order.size());
  int64_t total = 0;
  for (const int64_t n : a.ep_send_values) total += n;
  transfer.resize(static_cast<size_t>(received * H));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < received; ++i) std::copy_n(rows_here + i * H, H, transfer.data() + a.ep_order[i] * H);
  d.ep->all_to_all_v(transfer, a.ep_recv_values, {back, static_cast<size_t>(total)}, a.ep_send_values);
}

}  // namespace

void moe_forward(const Dims& d, const LayerTensors& w, LayerActivations& a, LayerScratch& s, float* out, int64_t N) {
  const int64_t E = d.E, K = d.K, H = d.H, Fm = d.Fm;
  // A Dims built by hand must say which experts this rank holds (Dims::of does): none would be silently wrong.
  TESSERA_CHECK(d.El > 0 && d.e0 >= 0 && d.e0 + d.El <= E, "this rank's experts [{}, {}) are not a part of the {}",
                d.e0, d.e0 + d.El, E);
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

  if (d.ep == nullptr) {
    experts_forward(d, w, offsets.data(), a.xe.data(), a.ge.data(), a.ue.data(), a.he.data(), a.ye.data());
  } else {
    plan_dispatch(d, a);
    send_rows(d, a, a.xe.data(), a.xr, s.ep_rows);
    const auto rows = static_cast<int64_t>(a.ep_order.size());
    a.gr.resize(static_cast<size_t>(rows * Fm));
    a.ur.resize(a.gr.size());
    a.hr.resize(a.gr.size());
    a.yr.resize(static_cast<size_t>(rows * H));
    experts_forward(d, w, a.ep_offsets.data(), a.xr.data(), a.gr.data(), a.ur.data(), a.hr.data(), a.yr.data());
    return_rows(d, a, a.yr.data(), a.ye.data(), s.ep_rows);
  }

  // Each token's experts in ascending order (the rows of one expert never share a token, so they never
  // race on `out`).
  std::fill_n(out, N * H, 0.0f);
  for (int64_t e = 0; e < E; ++e) {
#pragma omp parallel for schedule(static)
    for (int64_t row = offsets[e]; row < offsets[e + 1]; ++row) {
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

  if (d.ep == nullptr) {
    experts_backward(d, w, g, a.expert_offsets.data(), a.xe.data(), a.ge.data(), a.ue.data(), a.he.data(),
                     s.d_ye.data(), s.d_xe.data(), s.d_he.data(), s.d_ge.data(), s.d_ue.data());
  } else {
    // The output gradients travel to the experts' ranks like the tokens did, and d(input) comes back.
    send_rows(d, a, s.d_ye.data(), s.d_yr, s.ep_rows);
    const size_t rows = a.ep_order.size();
    s.d_xr.resize(rows * static_cast<size_t>(H));
    s.ep_transfer.resize(3 * rows * static_cast<size_t>(Fm));
    float* dh = s.ep_transfer.data();
    experts_backward(d, w, g, a.ep_offsets.data(), a.xr.data(), a.gr.data(), a.ur.data(), a.hr.data(), s.d_yr.data(),
                     s.d_xr.data(), dh, dh + rows * Fm, dh + 2 * rows * Fm);
    return_rows(d, a, s.d_xr.data(), s.d_xe.data(), s.ep_rows);
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
