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
  TensorParallel* tp;            // null or size 1: this rank holds whole tensors
  int64_t vocab_begin, vocab;    // this rank's rows of the embedding and LM head
  detail::VocabParallelScratch vocab_scratch;
  int first, end;          // this stage's layers [first, end)
  bool has_embedding, has_head;
  std::vector<LayerTensors> weights, grads;  // indexed by l - first
  float *embedding = nullptr, *d_embedding = nullptr, *final_norm = nullptr, *d_final_norm = nullptr,
        *head = nullptr, *d_head = nullptr;

  // layer_inputs[l - first] is layer l's input; layer_inputs[end - first] the stage's output.
  std::vector<std::vector<float>> layer_inputs;
  std::vector<LayerActivations> acts;  // one per layer, or one shared when every layer is recomputed
  LayerScratch scratch;
  std::vector<float> final_ln, final_rstd, logits, d_x;
  std::vector<double> token_losses;
  // MoE load balancing over all layers and tokens of the forward (transformers concatenates layers):
  // per-layer routing, combined in layer order so that a pipeline split adds the same numbers the same way.
  std::vector<LayerRouting> routing;  // layers 0 .. end - 1
  std::vector<double> aux_grad;
  const Batch* batch = nullptr;
  bool have_forward = false;

  Impl(const ModelConfig& c, ParameterStore& s, int64_t max_tok, int64_t max_len, Recompute r, StageLayers stage,
       TensorParallel* t, ExpertParallel* ep, bool sequence_parallel)
      : config(c), dims(Dims::of(c, t, ep, sequence_parallel)), store(s), max_tokens(max_tok), max_sample_length(max_len), recompute(r),
        tp(t != nullptr && t->size() > 1 ? t : nullptr),
        vocab_begin(tp ? c.vocab_size / tp->size() * tp->rank() : 0),
        vocab(tp ? c.vocab_size / tp->size() : c.vocab_size), first(stage.first_layer), end(stage.end_layer < 0 ? c.num_layers : stage.end_layer),
        has_embedding(stage.embedding), has_head(stage.head) {
    TESSERA_CHECK(store.has_grads(), "the decoder needs a parameter store with gradients");
    TESSERA_CHECK(0 <= first && first <= end && end <= c.num_layers, "stage layers [{}, {}) outside the model's {}",
                  first, end, c.num_layers);
    for (int l = first; l < end; ++l) {
      weights.push_back(LayerTensors::bind(store, dims, l, false));
      grads.push_back(LayerTensors::bind(store, dims, l, true));
    }
    auto bind = [&](Role role, bool grad) {
      const auto i = store.find(role);
      TESSERA_CHECK(i.has_value(), "the stage's parameters have no {} tensor",
                    role == Role::final_norm ? "final norm" : role == Role::lm_head ? "LM head" : "embedding");
      return grad ? store.grad(*i).data() : store.value(*i).data();
    };
    if (has_embedding) embedding = bind(Role::embedding, false), d_embedding = bind(Role::embedding, true);
    if (has_head) {
      final_norm = bind(Role::final_norm, false);
      d_final_norm = bind(Role::final_norm, true);
      TESSERA_CHECK(!c.tie_embeddings || has_embedding,
                    "a tied LM head needs the embedding on the same stage (pipeline stages with tied embeddings "
                    "are not supported yet)");
      head = c.tie_embeddings ? embedding : bind(Role::lm_head, false);
      d_head = c.tie_embeddings ? d_embedding : bind(Role::lm_head, true);
    }

    const int64_t max_probs = dims.Hq * max_tokens * max_sample_length;
    const auto N = static_cast<size_t>(max_tokens), H = static_cast<size_t>(dims.H);
    layer_inputs.assign(static_cast<size_t>(end - first) + 1, std::vector<float>(N * H));
    acts.resize(recompute == Recompute::full ? 1 : static_cast<size_t>(end - first));
    for (auto& a : acts) a.allocate(dims, max_tokens, max_probs, recompute == Recompute::none || recompute == Recompute::full);
    scratch.allocate(dims, max_tokens, recompute == Recompute::none ? 0 : max_probs);
    if (has_head) {
      final_ln.resize(static_cast<size_t>(dims.padded_rows(max_tok)) * H);
      final_rstd.resize(N);
      logits.resize(N * static_cast<size_t>(vocab));
      token_losses.resize(N);
    }
    d_x.resize(N * H);
    aux_grad.resize(static_cast<size_t>(dims.E));
  }

  LayerActivations& acts_of(int layer) {
    return acts[recompute == Recompute::full ? 0 : static_cast<size_t>(layer - first)];
  }
  std::vector<float>& input_of(int layer) { return layer_inputs[static_cast<size_t>(layer - first)]; }

  void layer_forward(int l, bool record_routing) {
    const int64_t N = batch->tokens();
    LayerActivations& a = acts_of(l);
    detail::attention_forward(dims, weights[l - first], a, input_of(l).data(), *batch, scratch.rope_cos.data(),
                              scratch.rope_sin.data(), scratch.probs.data(), scratch.rows.data());
    detail::mlp_forward(dims, weights[l - first], a, scratch, input_of(l + 1).data(), N);
    if (dims.moe && record_routing) {
      LayerRouting& r = routing[static_cast<size_t>(l)];
      r.selections.assign(static_cast<size_t>(dims.E), 0.0);
      r.prob_sums.assign(static_cast<size_t>(dims.E), 0.0);
      r.z = 0;
      for (int64_t t = 0; t < N; ++t) {
        for (int64_t k = 0; k < dims.K; ++k) r.selections[a.topk_expert[t * dims.K + k]] += 1;
        for (int64_t e = 0; e < dims.E; ++e) r.prob_sums[e] += a.router_probs[t * dims.E + e];
        r.z += static_cast<double>(a.router_lse[t]) * a.router_lse[t] / static_cast<double>(N);
      }
    }
  }

  // Every layer's routing summed in layer order: the totals of the load-balancing loss.
  LayerRouting routing_totals() const {
    LayerRouting total;
    total.selections.assign(static_cast<size_t>(dims.E), 0.0);
    total.prob_sums.assign(static_cast<size_t>(dims.E), 0.0);
    for (const LayerRouting& r : routing) {
      for (int64_t e = 0; e < dims.E; ++e) total.selections[e] += r.selections[e], total.prob_sums[e] += r.prob_sums[e];
      total.z += r.z;
    }
    return total;
  }

  ForwardLoss forward(const Batch& b, const StageInput& in) {
    b.validate(config.vocab_size);
    TESSERA_CHECK(b.tokens() <= max_tokens, "batch of {} tokens exceeds the {} the decoder was sized for", b.tokens(),
                  max_tokens);
    TESSERA_CHECK(b.longest_sample() <= max_sample_length, "a sample of {} tokens exceeds the sized maximum {}",
                  b.longest_sample(), max_sample_length);
    batch = &b;
    const int64_t N = b.tokens(), H = dims.H, V = vocab;
    const int64_t Nl = dims.rows(N);
    cpu::rope_tables(scratch.rope_cos.data(), scratch.rope_sin.data(), b.position_ids.data(), N, dims.D,
                     dims.rope_theta);
    if (has_embedding) {
      // Vocabulary-parallel: each rank embeds the tokens in its rows; the sum has one non-zero term (and
      // under sequence parallelism each rank keeps its rows of it).
      float* partial = dims.sp ? scratch.rows.data() : input_of(first).data();
      cpu::embedding_forward(partial, b.input_ids.data(), embedding, N, H, vocab_begin, vocab);
      detail::reduce_rows(dims, partial, input_of(first).data(), N);
    } else {
      TESSERA_CHECK(static_cast<int64_t>(in.hidden.size()) == Nl * H, "stage input has {} values, expected {} × {}",
                    in.hidden.size(), Nl, H);
      std::copy(in.hidden.begin(), in.hidden.end(), input_of(first).begin());
    }
    if (dims.moe) {
      TESSERA_CHECK(static_cast<int>(in.routing.size()) == first, "stage input carries routing of {} layers, expected {}",
                    in.routing.size(), first);
      routing = in.routing;
      routing.resize(static_cast<size_t>(end));
    }
    for (int l = first; l < end; ++l) layer_forward(l, true);
    ForwardLoss loss;
    if (!has_head) {
      have_forward = true;
      return loss;
    }
    const float* x = input_of(end).data();
    cpu::rmsnorm_forward(final_ln.data() + dims.first_row(N) * H, final_rstd.data(), x, final_norm, Nl, H, dims.eps);
    detail::gather_rows(dims, final_ln.data(), N);
    cpu::linear_forward(logits.data(), final_ln.data(), head, nullptr, N, H, V);
    loss.targets = b.num_targets();
    loss.ce_sum = cross_entropy(nullptr, b, N, 0.0f);
    if (dims.moe) {
      const LayerRouting total = routing_totals();
      loss.aux = detail::load_balancing_loss(total.selections, total.prob_sums, config.num_layers, N);
      loss.z = total.z;
      loss.expert_load.assign(total.selections.begin(), total.selections.end());
    }
    have_forward = true;
    return loss;
  }

  void backward(float ce_scale, float aux_scale, float z_scale, const StageGradient& in) {
    TESSERA_CHECK(have_forward, "backward() needs a forward() first");
    have_forward = false;
    const Batch& b = *batch;
    const int64_t N = b.tokens(), H = dims.H, V = vocab, Nl = dims.rows(N);
    if (has_head) {
      // d(logits) overwrites the logits in place.
      cross_entropy(logits.data(), b, N, ce_scale);
      std::fill_n(scratch.d_ln.data(), N * H, 0.0f);
      cpu::linear_backward(scratch.d_ln.data(), d_head, nullptr, logits.data(), final_ln.data(), head, N, H, V);
      // Each rank's vocabulary rows give a partial d(input), summed (this rank's token rows under sp).
      float* d_ln = dims.sp ? scratch.local_rows.data() : scratch.d_ln.data();
      detail::reduce_rows(dims, scratch.d_ln.data(), d_ln, N);
      std::fill_n(d_x.data(), Nl * H, 0.0f);
      cpu::rmsnorm_backward(d_x.data(), d_final_norm, d_ln, input_of(end).data(), final_norm, final_rstd.data(), Nl, H);
      if (dims.moe)
        detail::load_balancing_grad(aux_grad, routing_totals().selections, config.num_layers, N, aux_scale);
    } else {
      TESSERA_CHECK(static_cast<int64_t>(in.d_hidden.size()) == Nl * H, "stage gradient has {} values, expected {} × {}",
                    in.d_hidden.size(), Nl, H);
      std::copy(in.d_hidden.begin(), in.d_hidden.end(), d_x.begin());
      if (dims.moe) {
        TESSERA_CHECK(in.aux_grad.size() == aux_grad.size(), "stage gradient carries {} load-balancing terms, expected {}",
                      in.aux_grad.size(), aux_grad.size());
        aux_grad = in.aux_grad;
      }
    }
    for (int l = end - 1; l >= first; --l) {
      if (recompute == Recompute::full) layer_forward(l, false);
      LayerActivations& a = acts_of(l);
      detail::mlp_backward(dims, weights[l - first], grads[l - first], a, scratch, d_x.data(), N, aux_grad,
                           2.0 * z_scale / static_cast<double>(N));
      detail::attention_backward(dims, weights[l - first], grads[l - first], a, scratch, d_x.data(),
                                 input_of(l).data(), b);
    }
    if (has_embedding) {
      const float* d_embedded = d_x.data();
      if (dims.sp) {
        // Every token's gradient reaches this rank's vocabulary rows.
        std::copy_n(d_x.data(), Nl * H, scratch.rows.data() + dims.first_row(N) * H);
        detail::gather_rows(dims, scratch.rows.data(), N);
        d_embedded = scratch.rows.data();
      }
      cpu::embedding_backward(d_embedding, d_embedded, b.input_ids.data(), N, H, vocab_begin, vocab);
    }
  }

  // The loss over this rank's logits (vocabulary-parallel under tp); dlogits may alias the logits.
  double cross_entropy(float* dlogits, const Batch& b, int64_t N, float scale) {
    if (tp)
      return detail::vocab_parallel_cross_entropy(*tp, dlogits, token_losses.data(), logits.data(), b.targets.data(),
                                                  N, vocab, vocab_begin, scale, vocab_scratch);
    return cpu::cross_entropy_forward_backward(dlogits, token_losses.data(), logits.data(), b.targets.data(), N, vocab,
                                               scale);
  }
};

Decoder::Decoder(const ModelConfig& config, ParameterStore& store, int64_t max_tokens, int64_t max_sample_length,
                 Recompute recompute, StageLayers stage, TensorParallel* tp, ExpertParallel* ep,
                 bool sequence_parallel)
    : impl_(std::make_unique<Impl>(config, store, max_tokens, max_sample_length, recompute, stage, tp, ep,
                                   sequence_parallel)) {}
Decoder::~Decoder() = default;
ForwardLoss Decoder::forward(const Batch& batch, const StageInput& in) { return impl_->forward(batch, in); }
std::span<const float> Decoder::hidden_out() const {
  TESSERA_CHECK(impl_->batch, "hidden_out() needs a forward() first");
  return {impl_->input_of(impl_->end).data(),
          static_cast<size_t>(impl_->dims.rows(impl_->batch->tokens()) * impl_->dims.H)};
}
const std::vector<LayerRouting>& Decoder::routing() const { return impl_->routing; }
std::span<const float> Decoder::d_hidden_in() const {
  TESSERA_CHECK(impl_->batch, "d_hidden_in() needs a backward() first");
  return {impl_->d_x.data(), static_cast<size_t>(impl_->dims.rows(impl_->batch->tokens()) * impl_->dims.H)};
}
const std::vector<double>& Decoder::aux_grad() const { return impl_->aux_grad; }
std::span<const float> Decoder::logits() const {
  if (!impl_->has_head || !impl_->batch) return {};
  return {impl_->logits.data(), static_cast<size_t>(impl_->batch->tokens() * impl_->vocab)};
}
void Decoder::backward(float ce_scale, float aux_scale, float z_scale, const StageGradient& in) {
  impl_->backward(ce_scale, aux_scale, z_scale, in);
}

}  // namespace tessera::model
