#include <algorithm>
#include <cstring>

#include "decoder_layer.hpp"
#include "tessera/backend/cpu_ops.hpp"

namespace tessera::model::detail {

void attention_forward(const Dims& d, const LayerTensors& w, LayerActivations& a, const float* x_in,
                       const Batch& batch, const float* rope_cos, const float* rope_sin, float* probs_scratch,
                       float* rows_scratch) {
  const int64_t N = batch.tokens(), QW = d.Hq * d.D, KW = d.Hkv * d.D, Nl = d.rows(N);
  // The norm over this rank's rows (all of them without sequence parallelism), then every rank's.
  cpu::rmsnorm_forward(a.ln1.data() + d.first_row(N) * d.H, a.rstd1.data(), x_in, w.input_norm, Nl, d.H, d.eps);
  gather_rows(d, a.ln1.data(), N);
  cpu::linear_forward(a.q.data(), a.ln1.data(), w.q, w.q_bias, N, d.H, QW);
  cpu::linear_forward(a.k.data(), a.ln1.data(), w.k, w.k_bias, N, d.H, KW);
  cpu::linear_forward(a.v.data(), a.ln1.data(), w.v, w.v_bias, N, d.H, KW);
  if (d.qk_norm) {
    // Qwen3 normalises each head's query and key (over head_dim) before the rotary embedding.
    cpu::rmsnorm_forward(a.q_rot.data(), a.q_rstd.data(), a.q.data(), w.q_norm, N * d.Hq, d.D, d.eps);
    cpu::rmsnorm_forward(a.k_rot.data(), a.k_rstd.data(), a.k.data(), w.k_norm, N * d.Hkv, d.D, d.eps);
  } else {
    std::copy_n(a.q.data(), N * QW, a.q_rot.data());
    std::copy_n(a.k.data(), N * KW, a.k_rot.data());
  }
  cpu::rope_forward(a.q_rot.data(), rope_cos, rope_sin, N, d.Hq, d.D);
  cpu::rope_forward(a.k_rot.data(), rope_cos, rope_sin, N, d.Hkv, d.D);
  cpu::attention_forward(a.attn.data(), a.probs.empty() ? probs_scratch : a.probs.data(), a.q_rot.data(), a.k_rot.data(),
                         a.v.data(), batch.cu_seqlens.data(), batch.num_samples(), d.Hq, d.Hkv, d.D);
  // Row-parallel o_proj: each rank's heads give a partial output, summed (into this rank's rows under sp).
  float* partial = d.sp ? rows_scratch : a.x_mid.data();
  cpu::linear_forward(partial, a.attn.data(), w.o, nullptr, N, QW, d.H);
  reduce_rows(d, partial, a.x_mid.data(), N);
  for (int64_t i = 0; i < Nl * d.H; ++i) a.x_mid[i] += x_in[i];
}

void attention_backward(const Dims& d, const LayerTensors& w, const LayerTensors& g, LayerActivations& a,
                        LayerScratch& s, float* d_x, const float* x_in, const Batch& batch) {
  const int64_t N = batch.tokens(), QW = d.Hq * d.D, KW = d.Hkv * d.D, Nl = d.rows(N);
  const float* cos = s.rope_cos.data();
  const float* sin = s.rope_sin.data();
  // d_x holds d(x_mid) (this rank's rows under sp); the residual passes it straight to x_in, the attention
  // branch adds to it below. The row-parallel o_proj needs every row's.
  const float* d_mid = d_x;
  if (d.sp) {
    std::copy_n(d_x, Nl * d.H, s.rows.data() + d.first_row(N) * d.H);
    gather_rows(d, s.rows.data(), N);
    d_mid = s.rows.data();
  }
  std::fill_n(s.d_attn.data(), N * QW, 0.0f);
  cpu::linear_backward(s.d_attn.data(), g.o, nullptr, d_mid, a.attn.data(), w.o, N, QW, d.H);

  const float* probs = a.probs.data();
  if (a.probs.empty()) {
    // Selective recompute: the softmax was not kept; rebuild it (into scratch, discarding the output).
    cpu::attention_forward(s.d_q.data(), s.probs.data(), a.q_rot.data(), a.k_rot.data(), a.v.data(),
                           batch.cu_seqlens.data(), batch.num_samples(), d.Hq, d.Hkv, d.D);
    probs = s.probs.data();
  }
  cpu::attention_backward(s.d_q.data(), s.d_k.data(), s.d_v.data(), s.d_attn.data(), probs, a.q_rot.data(),
                          a.k_rot.data(), a.v.data(), batch.cu_seqlens.data(), batch.num_samples(), d.Hq, d.Hkv,
                          d.D);
  cpu::rope_backward(s.d_q.data(), cos, sin, N, d.Hq, d.D);
  cpu::rope_backward(s.d_k.data(), cos, sin, N, d.Hkv, d.D);
  if (d.qk_norm) {
    // The norm backward accumulates; d_attn (free now) receives d(q) and d_ln receives d(k) first.
    float* dq_pre = s.d_attn.data();
    std::fill_n(dq_pre, N * QW, 0.0f);
    cpu::rmsnorm_backward(dq_pre, g.q_norm, s.d_q.data(), a.q.data(), w.q_norm, a.q_rstd.data(), N * d.Hq, d.D);
    std::copy_n(dq_pre, N * QW, s.d_q.data());
    float* dk_pre = s.d_ln.data();
    std::fill_n(dk_pre, N * KW, 0.0f);
    cpu::rmsnorm_backward(dk_pre, g.k_norm, s.d_k.data(), a.k.data(), w.k_norm, a.k_rstd.data(), N * d.Hkv, d.D);
    std::copy_n(dk_pre, N * KW, s.d_k.data());
  }
  std::fill_n(s.d_ln.data(), N * d.H, 0.0f);
  cpu::linear_backward(s.d_ln.data(), g.q, g.q_bias, s.d_q.data(), a.ln1.data(), w.q, N, d.H, QW);
  cpu::linear_backward(s.d_ln.data(), g.k, g.k_bias, s.d_k.data(), a.ln1.data(), w.k, N, d.H, KW);
  cpu::linear_backward(s.d_ln.data(), g.v, g.v_bias, s.d_v.data(), a.ln1.data(), w.v, N, d.H, KW);
  // Column-parallel q/k/v: each rank's heads give a partial d(input), summed (this rank's rows under sp).
  float* d_ln = d.sp ? s.local_rows.data() : s.d_ln.data();
  reduce_rows(d, s.d_ln.data(), d_ln, N);
  cpu::rmsnorm_backward(d_x, g.input_norm, d_ln, x_in, w.input_norm, a.rstd1.data(), Nl, d.H);
}

}  // namespace tessera::model::detail
