#include "decoder_layer.hpp"

#include <algorithm>

#include "tessera/core/error.hpp"

namespace tessera::model::detail {

Dims Dims::of(const ModelConfig& m, TensorParallel* tp, ExpertParallel* ep, bool sequence_parallel) {
  const int n = tp == nullptr ? 1 : tp->size();
  if (n > 1) check_tensor_parallel(m, n);
  Dims d;
  d.tp = tp;
  d.sp = sequence_parallel && n > 1;
  d.El = m.num_experts;
  if (ep != nullptr && ep->size() > 1) {
    check_expert_parallel(m, ep->size());
    d.ep = ep;
    d.El = m.num_experts / ep->size();
    d.e0 = d.El * ep->rank();
  }
  d.H = m.hidden_size;
  d.Hq = m.num_attention_heads / n;
  d.Hkv = m.num_kv_heads >= n ? m.num_kv_heads / n : 1;
  d.D = m.resolved_head_dim();
  d.F = m.ffn_hidden_size / n;
  d.E = m.num_experts;
  d.K = m.num_experts_per_tok;
  d.Fm = m.moe_ffn_hidden_size / n;
  d.eps = static_cast<float>(m.rms_norm_eps);
  d.qk_norm = m.qk_norm;
  d.qkv_bias = m.qkv_bias;
  d.moe = m.is_moe();
  d.norm_topk = m.norm_topk_prob;
  d.rope_theta = m.rope_theta;
  return d;
}

LayerTensors LayerTensors::bind(ParameterStore& store, const Dims& d, int layer, bool grads) {
  auto get = [&](Role role, int expert = -1) -> float* {
    const auto i = store.find(role, layer, expert);
    TESSERA_CHECK(i.has_value(), "layer {} has no parameter of role {}", layer, static_cast<int>(role));
    return grads ? store.grad(*i).data() : store.value(*i).data();
  };
  auto maybe = [&](Role role, bool present) -> float* { return present ? get(role) : nullptr; };
  LayerTensors t;
  t.input_norm = get(Role::input_norm);
  t.q = get(Role::q_proj);
  t.k = get(Role::k_proj);
  t.v = get(Role::v_proj);
  t.o = get(Role::o_proj);
  t.q_bias = maybe(Role::q_bias, d.qkv_bias);
  t.k_bias = maybe(Role::k_bias, d.qkv_bias);
  t.v_bias = maybe(Role::v_bias, d.qkv_bias);
  t.q_norm = maybe(Role::q_norm, d.qk_norm);
  t.k_norm = maybe(Role::k_norm, d.qk_norm);
  t.post_norm = get(Role::post_attention_norm);
  if (d.moe) {
    t.router = get(Role::router);
    // Indexed by expert; an expert-parallel rank binds only its own (the others stay null).
    t.expert_gate.assign(static_cast<size_t>(d.E), nullptr);
    t.expert_up.assign(static_cast<size_t>(d.E), nullptr);
    t.expert_down.assign(static_cast<size_t>(d.E), nullptr);
    for (int64_t e = d.e0; e < d.e0 + d.El; ++e) {
      t.expert_gate[e] = get(Role::gate_proj, static_cast<int>(e));
      t.expert_up[e] = get(Role::up_proj, static_cast<int>(e));
      t.expert_down[e] = get(Role::down_proj, static_cast<int>(e));
    }
  } else {
    t.gate = get(Role::gate_proj);
    t.up = get(Role::up_proj);
    t.down = get(Role::down_proj);
  }
  return t;
}

void LayerActivations::allocate(const Dims& d, int64_t N, int64_t max_probs, bool keep_probs) {
  const auto n = static_cast<size_t>(N);
  const auto H = static_cast<size_t>(d.H), QW = static_cast<size_t>(d.Hq * d.D), KW = static_cast<size_t>(d.Hkv * d.D);
  const auto padded = static_cast<size_t>(d.padded_rows(N));  // gathered over tp under sequence parallelism
  ln1.resize(padded * H);
  rstd1.resize(n);
  q.resize(n * QW);
  k.resize(n * KW);
  v.resize(n * KW);
  q_rot.resize(n * QW);
  k_rot.resize(n * KW);
  if (d.qk_norm) {
    q_rstd.resize(n * static_cast<size_t>(d.Hq));
    k_rstd.resize(n * static_cast<size_t>(d.Hkv));
  }
  probs.resize(keep_probs ? static_cast<size_t>(max_probs) : 0);
  attn.resize(n * QW);
  x_mid.resize(n * H);
  ln2.resize(padded * H);
  rstd2.resize(n);
  if (d.moe) {
    const auto E = static_cast<size_t>(d.E), K = static_cast<size_t>(d.K), Fm = static_cast<size_t>(d.Fm);
    router_probs.resize(n * E);
    router_lse.resize(n);
    topk_weight.resize(n * K);
    topk_expert.resize(n * K);
    slot_assignment.resize(n * K);
    expert_offsets.resize(E + 1);
    expert_fill.resize(E);
    assign_token.resize(n * K);
    xe.resize(n * K * H);
    ge.resize(n * K * Fm);
    ue.resize(n * K * Fm);
    he.resize(n * K * Fm);
    ye.resize(n * K * H);
  } else {
    const auto F = static_cast<size_t>(d.F);
    gate.resize(n * F);
    up.resize(n * F);
    h.resize(n * F);
  }
}

void LayerScratch::allocate(const Dims& d, int64_t N, int64_t max_probs) {
  const auto n = static_cast<size_t>(N);
  const auto H = static_cast<size_t>(d.H), QW = static_cast<size_t>(d.Hq * d.D), KW = static_cast<size_t>(d.Hkv * d.D);
  // Also holds d(k) before the k-norm backward; reduce-scattered over tp under sequence parallelism.
  d_ln.resize(std::max(n * std::max(H, KW), static_cast<size_t>(d.padded_rows(N)) * H));
  d_q.resize(n * QW);
  d_k.resize(n * KW);
  d_v.resize(n * KW);
  d_attn.resize(n * QW);
  if (d.sp) {
    rows.resize(static_cast<size_t>(d.padded_rows(N)) * H);
    local_rows.resize(static_cast<size_t>(d.chunk_rows(N)) * H);
  }
  rope_cos.resize(n * static_cast<size_t>(d.D / 2));
  rope_sin.resize(n * static_cast<size_t>(d.D / 2));
  probs.resize(static_cast<size_t>(max_probs));
  if (d.moe) {
    const auto E = static_cast<size_t>(d.E), K = static_cast<size_t>(d.K), Fm = static_cast<size_t>(d.Fm);
    d_router.resize(n * E);
    d_topk.resize(n * K);
    d_xe.resize(n * K * H);
    d_ge.resize(n * K * Fm);
    d_ue.resize(n * K * Fm);
    d_he.resize(n * K * Fm);
    d_ye.resize(n * K * H);
  } else {
    const auto F = static_cast<size_t>(d.F);
    d_gate.resize(n * F);
    d_up.resize(n * F);
    d_h.resize(n * F);
  }
}

}  // namespace tessera::model::detail
