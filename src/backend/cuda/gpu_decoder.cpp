// The GPU decoder: model/decoder.cpp's forward and backward, op for op, over the CUDA kernels. Residual
// adds are fused into the following RMSNorm (x_mid = x_in + attn_out, then its norm; the next layer's input
// = x_mid + mlp_out, then its norm), so the fp32 residual stream is read and written once per half-layer.

#include <algorithm>
#include <type_traits>

#include "../../model/decoder_layer.hpp"
#include "cuda_check.hpp"
#include "device_buffer.hpp"
#include "tessera/backend/cpu_ops.hpp"
#include "tessera/backend/cuda/attention.hpp"
#include "tessera/backend/cuda/blas.hpp"
#include "tessera/backend/cuda/gpu_model.hpp"
#include "tessera/backend/cuda/moe.hpp"
#include "tessera/backend/cuda/ops.hpp"

namespace tessera::cuda {

using model::detail::Dims;
using model::detail::LayerTensors;
using model::Role;

namespace {

// One layer's tensors on the device: P is const T (weights) or float (fp32 gradients).
template <class P>
struct LayerPtrs {
  P *input_norm = nullptr, *q = nullptr, *q_bias = nullptr, *k = nullptr, *k_bias = nullptr, *v = nullptr,
    *v_bias = nullptr, *o = nullptr, *q_norm = nullptr, *k_norm = nullptr, *post_norm = nullptr;
  P *gate = nullptr, *up = nullptr, *down = nullptr, *router = nullptr;
  std::vector<P*> expert_gate, expert_up, expert_down;

  // Translates the host store's pointers to the same offsets in a device buffer.
  static LayerPtrs from(const LayerTensors& host, const float* host_base, P* device_base) {
    auto at = [&](const float* p) -> P* { return p ? device_base + (p - host_base) : nullptr; };
    auto all = [&](const std::vector<float*>& v) {
      std::vector<P*> out;
      for (const float* p : v) out.push_back(at(p));
      return out;
    };
    LayerPtrs r;
    r.input_norm = at(host.input_norm);
    r.q = at(host.q), r.q_bias = at(host.q_bias), r.k = at(host.k), r.k_bias = at(host.k_bias);
    r.v = at(host.v), r.v_bias = at(host.v_bias), r.o = at(host.o), r.q_norm = at(host.q_norm);
    r.k_norm = at(host.k_norm), r.post_norm = at(host.post_norm), r.gate = at(host.gate), r.up = at(host.up);
    r.down = at(host.down), r.router = at(host.router);
    r.expert_gate = all(host.expert_gate), r.expert_up = all(host.expert_up), r.expert_down = all(host.expert_down);
    return r;
  }
};

// What one layer's forward keeps for its backward.
template <class T>
struct LayerState {
  DeviceBuffer<float> x_mid, rstd1, rstd2, q_rstd, k_rstd, lse;
  DeviceBuffer<T> ln1, q, k, v, q_rot, k_rot, attn, ln2, gate, up, h;
  MoeState<T> moe;
};

template <class T>
void upload(DeviceBuffer<T>& buffer, const std::vector<T>& host, cudaStream_t stream) {
  if (buffer.size() < static_cast<int64_t>(host.size())) buffer.resize(static_cast<int64_t>(host.size()));
  if (!host.empty())
    TESSERA_CUDA_CHECK(
        cudaMemcpyAsync(buffer.get(), host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, stream));
}

}  // namespace

template <class T>
struct GpuDecoder<T>::Impl {
  ModelConfig config;
  Dims d;
  const model::ParameterStore& store;
  DeviceParameters<T>& params;
  int64_t max_tokens, max_sample_length;
  cudaStream_t stream;
  Blas blas;

  std::vector<LayerPtrs<const T>> w;
  std::vector<LayerPtrs<float>> g;
  const T *embedding = nullptr, *final_norm = nullptr, *head = nullptr;
  float *d_embedding = nullptr, *d_final_norm = nullptr, *d_head = nullptr;

  std::vector<DeviceBuffer<float>> x;  // x[l]: layer l's input; x[L]: the last layer's output
  std::vector<std::unique_ptr<LayerState<T>>> layers;  // not movable: MoeState owns raw device memory
  DeviceBuffer<T> final_ln, logits, branch, d_xt, d_ln, d_attn, d_q, d_k, d_v, d_q_pre, d_k_pre, d_gate, d_up, d_h;
  DeviceBuffer<float> final_rstd, d_x, row_max, row_sum, target_logit, losses, norm_scratch, attn_workspace;
  DeviceBuffer<float> rope_cos, rope_sin;
  MoeScratch<T> moe_scratch;

  // The current batch, on the device.
  DeviceBuffer<int32_t> ids, targets, cu_seqlens, sorted_tokens, segment_starts, segment_ids;
  std::vector<float> host_cos, host_sin, host_losses;
  EmbeddingBackwardPlan plan;
  int64_t N = 0, samples = 0, longest = 0, num_targets = 0;
  std::vector<double> expert_selections, expert_prob_sums, aux_grad;
  bool have_forward = false;
  PhaseTimer* timer = nullptr;

  void mark(const char* phase) {
    if (timer) timer->mark(phase);
  }

  Impl(const ModelConfig& c, const model::ParameterStore& s, DeviceParameters<T>& p, int64_t max_tok,
       int64_t max_len, Recompute recompute, cudaStream_t st)
      : config(c), d(Dims::of(c)), store(s), params(p), max_tokens(max_tok), max_sample_length(max_len), stream(st),
        blas(st) {
    TESSERA_CHECK(recompute != Recompute::full,
                  "recompute: full is not built for the GPU backend yet (use selective: flash attention already "
                  "keeps no softmax)");
    TESSERA_CHECK(static_cast<int64_t>(s.values().size()) == p.size(), "device parameters do not match the store");
    // bind() only reads addresses; the host store is never written through these pointers.
    auto& host = const_cast<model::ParameterStore&>(s);
    const float* base = s.values().data();
    for (int l = 0; l < c.num_layers; ++l) {
      const LayerTensors t = LayerTensors::bind(host, d, l, false);
      w.push_back(LayerPtrs<const T>::from(t, base, p.compute()));
      g.push_back(LayerPtrs<float>::from(t, base, p.grads()));
    }
    auto offset_of = [&](Role role) {
      const auto i = s.find(role);
      TESSERA_CHECK(i.has_value(), "model has no {} tensor", static_cast<int>(role));
      return static_cast<int64_t>(s.offset(*i));
    };
    embedding = p.compute() + offset_of(Role::embedding);
    d_embedding = p.grads() + offset_of(Role::embedding);
    final_norm = p.compute() + offset_of(Role::final_norm);
    d_final_norm = p.grads() + offset_of(Role::final_norm);
    head = c.tie_embeddings ? embedding : p.compute() + offset_of(Role::lm_head);
    d_head = c.tie_embeddings ? d_embedding : p.grads() + offset_of(Role::lm_head);

    const int64_t Nm = max_tokens, H = d.H, QW = d.Hq * d.D, KW = d.Hkv * d.D, V = c.vocab_size;
    x.resize(static_cast<size_t>(c.num_layers) + 1);
    for (auto& b : x) b.resize(Nm * H);
    for (int l = 0; l < c.num_layers; ++l) {
      auto& L = *layers.emplace_back(std::make_unique<LayerState<T>>());
      L.x_mid.resize(Nm * H), L.rstd1.resize(Nm), L.rstd2.resize(Nm), L.lse.resize(Nm * d.Hq);
      L.ln1.resize(Nm * H), L.q.resize(Nm * QW), L.k.resize(Nm * KW), L.v.resize(Nm * KW);
      L.q_rot.resize(Nm * QW), L.k_rot.resize(Nm * KW), L.attn.resize(Nm * QW), L.ln2.resize(Nm * H);
      if (d.qk_norm) L.q_rstd.resize(Nm * d.Hq), L.k_rstd.resize(Nm * d.Hkv);
      if (d.moe) {
        L.moe.allocate(moe_dims(), Nm);
      } else {
        L.gate.resize(Nm * d.F), L.up.resize(Nm * d.F), L.h.resize(Nm * d.F);
      }
    }
    final_ln.resize(Nm * H), final_rstd.resize(Nm), logits.resize(Nm * V), branch.resize(Nm * H);
    d_x.resize(Nm * H), d_xt.resize(Nm * H), d_ln.resize(Nm * H), d_attn.resize(Nm * QW);
    d_q.resize(Nm * QW), d_k.resize(Nm * KW), d_v.resize(Nm * KW);
    if (d.qk_norm) d_q_pre.resize(Nm * QW), d_k_pre.resize(Nm * KW);
    if (d.moe) {
      moe_scratch.allocate(moe_dims(), Nm);
    } else {
      d_gate.resize(Nm * d.F), d_up.resize(Nm * d.F), d_h.resize(Nm * d.F);
    }
    row_max.resize(Nm), row_sum.resize(Nm), target_logit.resize(Nm), losses.resize(Nm);
    norm_scratch.resize(std::max(rmsnorm_backward_scratch_floats(Nm, H),
                                 rmsnorm_backward_scratch_floats(Nm * d.Hq, d.D)));
    attn_workspace.resize(attention_backward_workspace_floats(Nm, d.Hq, d.D));
    rope_cos.resize(Nm * d.D / 2), rope_sin.resize(Nm * d.D / 2);
    expert_selections.assign(static_cast<size_t>(d.E), 0.0);
    expert_prob_sums.assign(static_cast<size_t>(d.E), 0.0);
    aux_grad.assign(static_cast<size_t>(d.E), 0.0);
  }

  MoeDims moe_dims() const { return MoeDims{d.H, d.E, d.K, d.Fm, d.norm_topk}; }

  MoeWeights<T> moe_weights(int l) const {
    MoeWeights<T> mw;
    mw.router = w[l].router;
    mw.gate = w[l].expert_gate, mw.up = w[l].expert_up, mw.down = w[l].expert_down;
    return mw;
  }
  MoeGrads moe_grads(int l) const {
    MoeGrads mg;
    mg.router = g[l].router;
    mg.gate = g[l].expert_gate, mg.up = g[l].expert_up, mg.down = g[l].expert_down;
    return mg;
  }

  void upload_batch(const model::Batch& b) {
    b.validate(config.vocab_size);
    TESSERA_CHECK(b.tokens() <= max_tokens, "batch of {} tokens exceeds the {} the GPU decoder was sized for",
                  b.tokens(), max_tokens);
    TESSERA_CHECK(b.longest_sample() <= max_sample_length, "a sample of {} tokens exceeds the sized maximum {}",
                  b.longest_sample(), max_sample_length);
    N = b.tokens(), samples = b.num_samples(), longest = b.longest_sample(), num_targets = b.num_targets();
    host_cos.resize(static_cast<size_t>(N * d.D / 2)), host_sin.resize(host_cos.size());
    cpu::rope_tables(host_cos.data(), host_sin.data(), b.position_ids.data(), N, d.D, d.rope_theta);
    plan = EmbeddingBackwardPlan::of(b.input_ids.data(), N);
    upload(ids, b.input_ids, stream), upload(targets, b.targets, stream), upload(cu_seqlens, b.cu_seqlens, stream);
    upload(rope_cos, host_cos, stream), upload(rope_sin, host_sin, stream);
    upload(sorted_tokens, plan.sorted_tokens, stream), upload(segment_starts, plan.segment_starts, stream);
    upload(segment_ids, plan.segment_ids, stream);
  }

  void attention_forward_half(int l) {
    LayerState<T>& L = *layers[l];
    const auto& W = w[l];
    const int64_t H = d.H, QW = d.Hq * d.D, KW = d.Hkv * d.D;
    blas.linear_forward<T, T>(L.q.get(), L.ln1.get(), W.q, W.q_bias, N, H, QW);
    blas.linear_forward<T, T>(L.k.get(), L.ln1.get(), W.k, W.k_bias, N, H, KW);
    blas.linear_forward<T, T>(L.v.get(), L.ln1.get(), W.v, W.v_bias, N, H, KW);
    if (d.qk_norm) {
      TESSERA_CUDA_CHECK((rmsnorm_forward<T, T>(L.q_rot.get(), L.q_rstd.get(), L.q.get(), W.q_norm, N * d.Hq, d.D,
                                                d.eps, stream)));
      TESSERA_CUDA_CHECK((rmsnorm_forward<T, T>(L.k_rot.get(), L.k_rstd.get(), L.k.get(), W.k_norm, N * d.Hkv, d.D,
                                                d.eps, stream)));
    } else {
      TESSERA_CUDA_CHECK(cudaMemcpyAsync(L.q_rot.get(), L.q.get(), static_cast<size_t>(N * QW) * sizeof(T),
                                         cudaMemcpyDeviceToDevice, stream));
      TESSERA_CUDA_CHECK(cudaMemcpyAsync(L.k_rot.get(), L.k.get(), static_cast<size_t>(N * KW) * sizeof(T),
                                         cudaMemcpyDeviceToDevice, stream));
    }
    TESSERA_CUDA_CHECK(rope_forward<T>(L.q_rot.get(), rope_cos.get(), rope_sin.get(), N, d.Hq, d.D, stream));
    TESSERA_CUDA_CHECK(rope_forward<T>(L.k_rot.get(), rope_cos.get(), rope_sin.get(), N, d.Hkv, d.D, stream));
    TESSERA_CUDA_CHECK(attention_forward<T>(L.attn.get(), L.lse.get(), L.q_rot.get(), L.k_rot.get(), L.v.get(),
                                            cu_seqlens.get(), samples, N, longest, d.Hq, d.Hkv, d.D, stream));
    blas.linear_forward<T, T>(branch.get(), L.attn.get(), W.o, nullptr, N, QW, H);
    TESSERA_CUDA_CHECK(add_rmsnorm_forward<T>(L.x_mid.get(), L.ln2.get(), L.rstd2.get(), x[l].get(), branch.get(),
                                              W.post_norm, N, H, d.eps, stream));
  }

  // Returns this layer's z-loss term.
  double mlp_forward_half(int l) {
    LayerState<T>& L = *layers[l];
    const auto& W = w[l];
    double z = 0;
    if (d.moe) {
      z = moe_forward<T>(blas, moe_weights(l), L.moe, branch.get(), L.ln2.get(), N, expert_selections,
                         expert_prob_sums);
    } else {
      blas.linear_forward<T, T>(L.gate.get(), L.ln2.get(), W.gate, nullptr, N, d.H, d.F);
      blas.linear_forward<T, T>(L.up.get(), L.ln2.get(), W.up, nullptr, N, d.H, d.F);
      TESSERA_CUDA_CHECK(swiglu_forward<T>(L.h.get(), L.gate.get(), L.up.get(), N * d.F, stream));
      blas.linear_forward<T, T>(branch.get(), L.h.get(), W.down, nullptr, N, d.F, d.H);
    }
    // The residual add, fused into the next norm: the next layer's input norm, or the final norm.
    const bool last = l + 1 == config.num_layers;
    T* out = last ? final_ln.get() : layers[l + 1]->ln1.get();
    float* rstd = last ? final_rstd.get() : layers[l + 1]->rstd1.get();
    const T* weight = last ? final_norm : w[l + 1].input_norm;
    TESSERA_CUDA_CHECK(add_rmsnorm_forward<T>(x[l + 1].get(), out, rstd, L.x_mid.get(), branch.get(), weight, N, d.H,
                                              d.eps, stream));
    return z;
  }

  model::ForwardLoss forward(const model::Batch& b) {
    upload_batch(b);
    const int64_t H = d.H, V = config.vocab_size;
    std::fill(expert_selections.begin(), expert_selections.end(), 0.0);
    std::fill(expert_prob_sums.begin(), expert_prob_sums.end(), 0.0);
    mark("embedding fwd");
    TESSERA_CUDA_CHECK(embedding_forward<T>(x[0].get(), ids.get(), embedding, N, H, stream));
    TESSERA_CUDA_CHECK((rmsnorm_forward<float, T>(layers[0]->ln1.get(), layers[0]->rstd1.get(), x[0].get(),
                                                  w[0].input_norm, N, H, d.eps, stream)));
    double z = 0;
    for (int l = 0; l < config.num_layers; ++l) {
      mark("attention fwd");
      attention_forward_half(l);
      mark(d.moe ? "moe fwd" : "mlp fwd");
      z += mlp_forward_half(l);
    }
    mark("head+loss fwd");
    blas.linear_forward<T, T>(logits.get(), final_ln.get(), head, nullptr, N, H, V);
    TESSERA_CUDA_CHECK(cross_entropy_stats<T>(row_max.get(), row_sum.get(), target_logit.get(), logits.get(),
                                              targets.get(), N, V, 0, stream));
    TESSERA_CUDA_CHECK(cross_entropy_loss(losses.get(), row_max.get(), row_sum.get(), target_logit.get(),
                                          targets.get(), N, stream));
    host_losses.resize(static_cast<size_t>(N));
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(host_losses.data(), losses.get(), host_losses.size() * sizeof(float),
                                       cudaMemcpyDeviceToHost, stream));
    TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream));

    model::ForwardLoss loss;
    loss.targets = num_targets;
    for (float l : host_losses) loss.ce_sum += l;  // token order, as the CPU sums
    if (d.moe) {
      loss.aux = model::detail::load_balancing_loss(expert_selections, expert_prob_sums, config.num_layers, N);
      loss.z = z;
      loss.expert_load.assign(expert_selections.begin(), expert_selections.end());
    }
    have_forward = true;
    return loss;
  }

  void mlp_backward_half(int l, double z_coef) {
    LayerState<T>& L = *layers[l];
    const auto& W = w[l];
    const auto& G = g[l];
    TESSERA_CUDA_CHECK((convert<T, float>(d_xt.get(), d_x.get(), N * d.H, stream)));
    if (d.moe) {
      moe_backward<T>(blas, moe_weights(l), moe_grads(l), L.moe, moe_scratch, d_ln.get(), d_xt.get(), L.ln2.get(),
                      aux_grad, z_coef);
    } else {
      blas.linear_backward<T>(d_h.get(), false, G.down, nullptr, d_xt.get(), L.h.get(), W.down, N, d.F, d.H);
      TESSERA_CUDA_CHECK(
          swiglu_backward<T>(d_gate.get(), d_up.get(), d_h.get(), L.gate.get(), L.up.get(), N * d.F, stream));
      blas.linear_backward<T>(d_ln.get(), false, G.gate, nullptr, d_gate.get(), L.ln2.get(), W.gate, N, d.H, d.F);
      blas.linear_backward<T>(d_ln.get(), true, G.up, nullptr, d_up.get(), L.ln2.get(), W.up, N, d.H, d.F);
    }
    TESSERA_CUDA_CHECK((rmsnorm_backward<float, T>(d_x.get(), true, G.post_norm, d_ln.get(), L.x_mid.get(),
                                                   W.post_norm, L.rstd2.get(), N, d.H, norm_scratch.get(), stream)));
  }

  void attention_backward_half(int l) {
    LayerState<T>& L = *layers[l];
    const auto& W = w[l];
    const auto& G = g[l];
    const int64_t H = d.H, QW = d.Hq * d.D, KW = d.Hkv * d.D;
    TESSERA_CUDA_CHECK((convert<T, float>(d_xt.get(), d_x.get(), N * H, stream)));
    blas.linear_backward<T>(d_attn.get(), false, G.o, nullptr, d_xt.get(), L.attn.get(), W.o, N, QW, H);
    TESSERA_CUDA_CHECK(attention_backward<T>(d_q.get(), d_k.get(), d_v.get(), d_attn.get(), L.attn.get(), L.lse.get(),
                                             L.q_rot.get(), L.k_rot.get(), L.v.get(), cu_seqlens.get(), samples, N,
                                             longest, d.Hq, d.Hkv, d.D, attn_workspace.get(), stream));
    TESSERA_CUDA_CHECK(rope_backward<T>(d_q.get(), rope_cos.get(), rope_sin.get(), N, d.Hq, d.D, stream));
    TESSERA_CUDA_CHECK(rope_backward<T>(d_k.get(), rope_cos.get(), rope_sin.get(), N, d.Hkv, d.D, stream));
    const T* dq = d_q.get();
    const T* dk = d_k.get();
    if (d.qk_norm) {
      TESSERA_CUDA_CHECK((rmsnorm_backward<T, T>(d_q_pre.get(), false, G.q_norm, d_q.get(), L.q.get(), W.q_norm,
                                                 L.q_rstd.get(), N * d.Hq, d.D, norm_scratch.get(), stream)));
      TESSERA_CUDA_CHECK((rmsnorm_backward<T, T>(d_k_pre.get(), false, G.k_norm, d_k.get(), L.k.get(), W.k_norm,
                                                 L.k_rstd.get(), N * d.Hkv, d.D, norm_scratch.get(), stream)));
      dq = d_q_pre.get(), dk = d_k_pre.get();
    }
    blas.linear_backward<T>(d_ln.get(), false, G.q, G.q_bias, dq, L.ln1.get(), W.q, N, H, QW);
    blas.linear_backward<T>(d_ln.get(), true, G.k, G.k_bias, dk, L.ln1.get(), W.k, N, H, KW);
    blas.linear_backward<T>(d_ln.get(), true, G.v, G.v_bias, d_v.get(), L.ln1.get(), W.v, N, H, KW);
    TESSERA_CUDA_CHECK((rmsnorm_backward<float, T>(d_x.get(), true, G.input_norm, d_ln.get(), x[l].get(),
                                                   W.input_norm, L.rstd1.get(), N, H, norm_scratch.get(), stream)));
  }

  void backward(float ce_scale, float aux_scale, float z_scale) {
    TESSERA_CHECK(have_forward, "backward() needs a forward() first");
    have_forward = false;
    const int64_t H = d.H, V = config.vocab_size;
    mark("head+loss bwd");
    TESSERA_CUDA_CHECK(cross_entropy_grad<T>(logits.get(), logits.get(), row_max.get(), row_sum.get(), targets.get(),
                                             N, V, 0, ce_scale, stream));
    blas.linear_backward<T>(d_ln.get(), false, d_head, nullptr, logits.get(), final_ln.get(), head, N, H, V);
    TESSERA_CUDA_CHECK((rmsnorm_backward<float, T>(d_x.get(), false, d_final_norm, d_ln.get(),
                                                   x[config.num_layers].get(), final_norm, final_rstd.get(), N, H,
                                                   norm_scratch.get(), stream)));
    if (d.moe) model::detail::load_balancing_grad(aux_grad, expert_selections, config.num_layers, N, aux_scale);
    const double z_coef = 2.0 * z_scale / static_cast<double>(N);
    for (int l = config.num_layers - 1; l >= 0; --l) {
      mark(d.moe ? "moe bwd" : "mlp bwd");
      mlp_backward_half(l, z_coef);
      mark("attention bwd");
      attention_backward_half(l);
    }
    mark("embedding bwd");
    TESSERA_CUDA_CHECK(embedding_backward(d_embedding, d_x.get(), sorted_tokens.get(), segment_starts.get(),
                                          segment_ids.get(), static_cast<int64_t>(plan.segment_ids.size()), H,
                                          stream));
  }

  std::vector<float> download_logits() const {
    const auto n = static_cast<size_t>(N * config.vocab_size);
    std::vector<T> host(n);
    TESSERA_CUDA_CHECK(cudaMemcpyAsync(host.data(), logits.get(), n * sizeof(T), cudaMemcpyDeviceToHost, stream));
    TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream));
    if constexpr (std::is_same_v<T, float>) {
      return host;
    } else {
      std::vector<float> out(n);
      for (size_t i = 0; i < n; ++i) out[i] = __bfloat162float(host[i]);
      return out;
    }
  }
};

template <class T>
GpuDecoder<T>::GpuDecoder(const ModelConfig& config, const model::ParameterStore& store, DeviceParameters<T>& params,
                          int64_t max_tokens, int64_t max_sample_length, Recompute recompute, cudaStream_t stream)
    : impl_(std::make_unique<Impl>(config, store, params, max_tokens, max_sample_length, recompute, stream)) {}
template <class T>
GpuDecoder<T>::~GpuDecoder() = default;
template <class T>
model::ForwardLoss GpuDecoder<T>::forward(const model::Batch& batch) {
  return impl_->forward(batch);
}
template <class T>
void GpuDecoder<T>::backward(float ce_scale, float aux_scale, float z_scale) {
  impl_->backward(ce_scale, aux_scale, z_scale);
}
template <class T>
std::vector<float> GpuDecoder<T>::logits() const {
  return impl_->download_logits();
}
template <class T>
void GpuDecoder<T>::set_timer(PhaseTimer* timer) {
  impl_->timer = timer;
}
template <class T>
cudaStream_t GpuDecoder<T>::stream() const {
  return impl_->stream;
}

template class GpuDecoder<float>;
template class GpuDecoder<bf16>;

}  // namespace tessera::cuda
