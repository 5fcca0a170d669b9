#include "tessera/model/decoder.hpp"

#include <algorithm>

#include "decoder_layer.hpp"
#include "tessera/backend/cpu_ops.hpp"
#include "tessera/core/error.hpp"

namespace tessera::model {

using detail::Dims;
using detail::LayerActivations;
using detail::LayerScratch;
using detail::LayerTensors;

struct Decoder::Impl {
  ModelConfig config;
  Dims dims;
  ParameterStore& store;
  int64_t max_tokens, max_sample_length;
  Recompute recompute;
  std::vector<LayerTensors> weights, grads;
  float *embedding, *d_embedding, *final_norm, *d_final_norm, *head, *d_head;

  // layer_inputs[l] is layer l's input; layer_inputs[L] the last layer's output.
  std::vector<std::vector<float>> layer_inputs;
  std::vector<LayerActivations> acts;  // one per layer, or one shared when every layer is recomputed
  LayerScratch scratch;
  std::vector<float> final_ln, final_rstd, logits, d_x;
  std::vector<double> token_losses;
  // MoE load balancing over all layers and tokens of the forward (transformers concatenates layers).
  std::vector<double> expert_selections, expert_prob_sums;
  std::vector<double> aux_grad;
  double z_sum = 0;
  const Batch* batch = nullptr;
  bool have_forward = false;

  Impl(const ModelConfig& c, ParameterStore& s, int64_t max_tok, int64_t max_len, Recompute r)
      : config(c), dims(Dims::of(c)), store(s), max_tokens(max_tok), max_sample_length(max_len), recompute(r) {
    TESSERA_CHECK(store.has_grads(), "the decoder needs a parameter store with gradients");
    for (int l = 0; l < c.num_layers; ++l) {
      weights.push_back(LayerTensors::bind(store, dims, l, false));
      grads.push_back(LayerTensors::bind(store, dims, l, true));
    }
    auto bind = [&](Role role, bool grad) {
      const auto i = store.find(role);
      TESSERA_CHECK(i.has_value(), "model has no {} tensor", role == Role::final_norm ? "final norm" : "embedding");
      return grad ? store.grad(*i).data() : store.value(*i).data();
    };
    embedding = bind(Role::embedding, false);
    d_embedding = bind(Role::embedding, true);
    final_norm = bind(Role::final_norm, false);
    d_final_norm = bind(Role::final_norm, true);
    if (c.tie_embeddings) {
      head = embedding;
      d_head = d_embedding;
    } else {
      head = bind(Role::lm_head, false);
      d_head = bind(Role::lm_head, true);
    }

    const int64_t max_probs = dims.Hq * max_tokens * max_sample_length;
    const auto N = static_cast<size_t>(max_tokens), H = static_cast<size_t>(dims.H);
    layer_inputs.assign(static_cast<size_t>(c.num_layers) + 1, std::vector<float>(N * H));
    acts.resize(recompute == Recompute::full ? 1 : static_cast<size_t>(c.num_layers));
    for (auto& a : acts) a.allocate(dims, max_tokens, max_probs, recompute == Recompute::none || recompute == Recompute::full);
    scratch.allocate(dims, max_tokens, recompute == Recompute::none ? 0 : max_probs);
    final_ln.resize(N * H);
    final_rstd.resize(N);
    logits.resize(N * static_cast<size_t>(c.vocab_size));
    d_x.resize(N * H);
    token_losses.resize(N);
    expert_selections.resize(static_cast<size_t>(dims.E));
    expert_prob_sums.resize(static_cast<size_t>(dims.E));
    aux_grad.resize(static_cast<size_t>(dims.E));
  }

  LayerActivations& acts_of(int layer) { return acts[recompute == Recompute::full ? 0 : static_cast<size_t>(layer)]; }

  void layer_forward(int l, bool record_routing) {
    const int64_t N = batch->tokens();
    LayerActivations& a = acts_of(l);
    detail::attention_forward(dims, weights[l], a, layer_inputs[l].data(), *batch, scratch.rope_cos.data(),
                              scratch.rope_sin.data(), scratch.probs.data());
    detail::mlp_forward(dims, weights[l], a, layer_inputs[l + 1].data(), N);
    if (dims.moe && record_routing)
      for (int64_t t = 0; t < N; ++t) {
        for (int64_t k = 0; k < dims.K; ++k) expert_selections[a.topk_expert[t * dims.K + k]] += 1;
        for (int64_t e = 0; e < dims.E; ++e) expert_prob_sums[e] += a.router_probs[t * dims.E + e];
        z_sum += static_cast<double>(a.router_lse[t]) * a.router_lse[t] / static_cast<double>(N);
      }
  }

  ForwardLoss forward(const Batch& b) {
    b.validate(config.vocab_size);
    TESSERA_CHECK(b.tokens() <= max_tokens, "batch of {} tokens exceeds the {} the decoder was sized for", b.tokens(),
                  max_tokens);
    TESSERA_CHECK(b.longest_sample() <= max_sample_length, "a sample of {} tokens exceeds the sized maximum {}",
                  b.longest_sample(), max_sample_length);
    batch = &b;
    const int64_t N = b.tokens(), H = dims.H, V = config.vocab_size;
    cpu::rope_tables(scratch.rope_cos.data(), scratch.rope_sin.data(), b.position_ids.data(), N, dims.D,
                     dims.rope_theta);
    cpu::embedding_forward(layer_inputs[0].data(), b.input_ids.data(), embedding, N, H);
    std::fill(expert_selections.begin(), expert_selections.end(), 0.0);
    std::fill(expert_prob_sums.begin(), expert_prob_sums.end(), 0.0);
    z_sum = 0;
    for (int l = 0; l < config.num_layers; ++l) layer_forward(l, true);
    const float* x = layer_inputs.back().data();
    cpu::rmsnorm_forward(final_ln.data(), final_rstd.data(), x, final_norm, N, H, dims.eps);
    cpu::linear_forward(logits.data(), final_ln.data(), head, nullptr, N, H, V);

    ForwardLoss loss;
    loss.targets = b.num_targets();
    loss.ce_sum = cpu::cross_entropy_forward_backward(nullptr, token_losses.data(), logits.data(), b.targets.data(),
                                                      N, V, 0.0f);
    if (dims.moe) {
      loss.aux = detail::load_balancing_loss(expert_selections, expert_prob_sums, config.num_layers, N);
      loss.z = z_sum;
    }
    have_forward = true;
    return loss;
  }

  void backward(float ce_scale, float aux_scale, float z_scale) {
    TESSERA_CHECK(have_forward, "backward() needs a forward() first");
    have_forward = false;
    const Batch& b = *batch;
    const int64_t N = b.tokens(), H = dims.H, V = config.vocab_size;
    // d(logits) overwrites the logits in place.
    cpu::cross_entropy_forward_backward(logits.data(), token_losses.data(), logits.data(), b.targets.data(), N, V,
                                        ce_scale);
    std::fill_n(scratch.d_ln.data(), N * H, 0.0f);
    cpu::linear_backward(scratch.d_ln.data(), d_head, nullptr, logits.data(), final_ln.data(), head, N, H, V);
    std::fill_n(d_x.data(), N * H, 0.0f);
    cpu::rmsnorm_backward(d_x.data(), d_final_norm, scratch.d_ln.data(), layer_inputs.back().data(), final_norm,
                          final_rstd.data(), N, H);

    if (dims.moe) detail::load_balancing_grad(aux_grad, expert_selections, config.num_layers, N, aux_scale);
    for (int l = config.num_layers - 1; l >= 0; --l) {
      if (recompute == Recompute::full) layer_forward(l, false);
      LayerActivations& a = acts_of(l);
      detail::mlp_backward(dims, weights[l], grads[l], a, scratch, d_x.data(), N, aux_grad,
                           2.0 * z_scale / static_cast<double>(N));
      detail::attention_backward(dims, weights[l], grads[l], a, scratch, d_x.data(), layer_inputs[l].data(), b);
    }
    cpu::embedding_backward(d_embedding, d_x.data(), b.input_ids.data(), N, H);
  }
};

Decoder::Decoder(const ModelConfig& config, ParameterStore& store, int64_t max_tokens, int64_t max_sample_length,
                 Recompute recompute)
    : impl_(std::make_unique<Impl>(config, store, max_tokens, max_sample_length, recompute)) {}
Decoder::~Decoder() = default;
ForwardLoss Decoder::forward(const Batch& batch) { return impl_->forward(batch); }
std::span<const float> Decoder::logits() const {
  return {impl_->logits.data(), static_cast<size_t>(impl_->batch ? impl_->batch->tokens() * impl_->config.vocab_size : 0)};
}
void Decoder::backward(float ce_scale, float aux_scale, float z_scale) { impl_->backward(ce_scale, aux_scale, z_scale); }

}  // namespace tessera::model
