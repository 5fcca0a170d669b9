#include <algorithm>

#include "decoder_layer.hpp"
#include "tessera/backend/cpu_ops.hpp"

namespace tessera::model::detail {

void mlp_forward(const Dims& d, const LayerTensors& w, LayerActivations& a, LayerScratch& s, float* x_out,
                 int64_t N) {
  const int64_t Nl = d.rows(N);
  // The norm over this rank's rows (all of them without sequence parallelism), then every rank's.
  cpu::rmsnorm_forward(a.ln2.data() + d.first_row(N) * d.H, a.rstd2.data(), a.x_mid.data(), w.post_norm, Nl, d.H,
                       d.eps);
  gather_rows(d, a.ln2.data(), N);
  // Row-parallel down projections (dense or experts) give partial outputs, summed (this rank's rows under sp).
  float* partial = d.sp ? s.rows.data() : x_out;
  if (d.moe) {
    moe_forward(d, w, a, s, partial, N);
  } else {
    cpu::linear_forward(a.gate.data(), a.ln2.data(), w.gate, nullptr, N, d.H, d.F);
    cpu::linear_forward(a.up.data(), a.ln2.data(), w.up, nullptr, N, d.H, d.F);
    cpu::swiglu_forward(a.h.data(), a.gate.data(), a.up.data(), N * d.F);
    cpu::linear_forward(partial, a.h.data(), w.down, nullptr, N, d.F, d.H);
  }
  reduce_rows(d, partial, x_out, N);
  for (int64_t i = 0; i < Nl * d.H; ++i) x_out[i] += a.x_mid[i];
}

void mlp_backward(const Dims& d, const LayerTensors& w, const LayerTensors& g, LayerActivations& a,
                  LayerScratch& s, float* d_x, int64_t N, const std::vector<double>& aux_grad, double z_coef) {
  // In: d_x = d(x_out). Out: d_x = d(x_mid) = d(x_out) + the MLP branch through the norm (this rank's rows
  // under sequence parallelism; the branch itself needs every row's).
  const int64_t Nl = d.rows(N);
  const float* d_out = d_x;
  if (d.sp) {
    std::copy_n(d_x, Nl * d.H, s.rows.data() + d.first_row(N) * d.H);
    gather_rows(d, s.rows.data(), N);
    d_out = s.rows.data();
  }
  std::fill_n(s.d_ln.data(), N * d.H, 0.0f);
  float* d_ln = s.d_ln.data();
  if (d.moe) {
    // The MoE block sums its partial d(input) over tp itself (before adding the router's whole part).
    moe_backward(d, w, g, a, s, d_out, N, aux_grad, z_coef);
    d_ln += d.first_row(N) * d.H;
  } else {
    std::fill_n(s.d_h.data(), N * d.F, 0.0f);
    cpu::linear_backward(s.d_h.data(), g.down, nullptr, d_out, a.h.data(), w.down, N, d.F, d.H);
    cpu::swiglu_backward(s.d_gate.data(), s.d_up.data(), s.d_h.data(), a.gate.data(), a.up.data(), N * d.F);
    cpu::linear_backward(s.d_ln.data(), g.gate, nullptr, s.d_gate.data(), a.ln2.data(), w.gate, N, d.H, d.F);
    cpu::linear_backward(s.d_ln.data(), g.up, nullptr, s.d_up.data(), a.ln2.data(), w.up, N, d.H, d.F);
    // Column-parallel gate/up: partial d(input), summed (this rank's rows under sp).
    if (d.sp) d_ln = s.local_rows.data();
    reduce_rows(d, s.d_ln.data(), d_ln, N);
  }
  cpu::rmsnorm_backward(d_x, g.post_norm, d_ln, a.x_mid.data(), w.post_norm, a.rstd2.data(), Nl, d.H);
}

}  // namespace tessera::model::detail
