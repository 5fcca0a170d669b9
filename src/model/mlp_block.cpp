#include <algorithm>

#include "decoder_layer.hpp"
#include "tessera/backend/cpu_ops.hpp"

namespace tessera::model::detail {

void mlp_forward(const Dims& d, const LayerTensors& w, LayerActivations& a, float* x_out, int64_t N) {
  cpu::rmsnorm_forward(a.ln2.data(), a.rstd2.data(), a.x_mid.data(), w.post_norm, N, d.H, d.eps);
  if (d.moe) {
    moe_forward(d, w, a, x_out, N);
  } else {
    cpu::linear_forward(a.gate.data(), a.ln2.data(), w.gate, nullptr, N, d.H, d.F);
    cpu::linear_forward(a.up.data(), a.ln2.data(), w.up, nullptr, N, d.H, d.F);
    cpu::swiglu_forward(a.h.data(), a.gate.data(), a.up.data(), N * d.F);
    cpu::linear_forward(x_out, a.h.data(), w.down, nullptr, N, d.F, d.H);
  }
  tp_sum(d, x_out, N * d.H);  // row-parallel down projections: partial outputs
  for (int64_t i = 0; i < N * d.H; ++i) x_out[i] += a.x_mid[i];
}

void mlp_backward(const Dims& d, const LayerTensors& w, const LayerTensors& g, LayerActivations& a,
                  LayerScratch& s, float* d_x, int64_t N, const std::vector<double>& aux_grad, double z_coef) {
  // In: d_x = d(x_out). Out: d_x = d(x_mid) = d(x_out) + the MLP branch through the norm.
  std::fill_n(s.d_ln.data(), N * d.H, 0.0f);
  if (d.moe) {
    moe_backward(d, w, g, a, s, d_x, N, aux_grad, z_coef);
  } else {
    std::fill_n(s.d_h.data(), N * d.F, 0.0f);
    cpu::linear_backward(s.d_h.data(), g.down, nullptr, d_x, a.h.data(), w.down, N, d.F, d.H);
    cpu::swiglu_backward(s.d_gate.data(), s.d_up.data(), s.d_h.data(), a.gate.data(), a.up.data(), N * d.F);
    cpu::linear_backward(s.d_ln.data(), g.gate, nullptr, s.d_gate.data(), a.ln2.data(), w.gate, N, d.H, d.F);
    cpu::linear_backward(s.d_ln.data(), g.up, nullptr, s.d_up.data(), a.ln2.data(), w.up, N, d.H, d.F);
    tp_sum(d, s.d_ln.data(), N * d.H);  // column-parallel gate/up: partial d(input)
  }
  cpu::rmsnorm_backward(d_x, g.post_norm, s.d_ln.data(), a.x_mid.data(), w.post_norm, a.rstd2.data(), N, d.H);
}

}  // namespace tessera::model::detail
