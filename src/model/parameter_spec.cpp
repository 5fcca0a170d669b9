#include "tessera/model/parameter_spec.hpp"

#include <fmt/format.h>

#include <functional>
#include <numeric>

#include "tessera/core/error.hpp"

namespace tessera::model {

int64_t ParameterSpec::numel() const {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

std::vector<int64_t> ParameterSpec::full_shape() const {
  std::vector<int64_t> full = shape;
  if (is_sharded()) full[static_cast<size_t>(shard.dim)] = shard.extent;
  return full;
}

namespace {

// Appends the tensors of one SwiGLU MLP (dense or one expert) under `prefix`.
void add_swiglu(std::vector<ParameterSpec>& out, const std::string& prefix, int64_t hidden, int64_t ffn, int layer,
                int expert) {
  out.push_back({prefix + ".gate_proj.weight", {ffn, hidden}, Split::column, Placement::layer, layer, expert, true,
                 Role::gate_proj});
  out.push_back({prefix + ".up_proj.weight", {ffn, hidden}, Split::column, Placement::layer, layer, expert, true,
                 Role::up_proj});
  out.push_back({prefix + ".down_proj.weight", {hidden, ffn}, Split::row, Placement::layer, layer, expert, true,
                 Role::down_proj});
}

}  // namespace

std::vector<ParameterSpec> parameter_specs(const ModelConfig& m) {
  const int64_t h = m.hidden_size, hd = m.resolved_head_dim();
  const int64_t q_width = m.num_attention_heads * hd, kv_width = m.num_kv_heads * hd;
  std::vector<ParameterSpec> out;
  out.push_back({"model.embed_tokens.weight", {m.vocab_size, h}, Split::vocab, Placement::embedding, -1, -1, true,
                 Role::embedding});
  for (int i = 0; i < m.num_layers; ++i) {
    const std::string layer = fmt::format("model.layers.{}", i);
    const std::string attn = layer + ".self_attn";
    auto add = [&](std::string name, std::vector<int64_t> shape, Split split, bool decay, Role role) {
      out.push_back({std::move(name), std::move(shape), split, Placement::layer, i, -1, decay, role});
    };
    add(layer + ".input_layernorm.weight", {h}, Split::replicated, false, Role::input_norm);
    add(attn + ".q_proj.weight", {q_width, h}, Split::column, true, Role::q_proj);
    if (m.qkv_bias) add(attn + ".q_proj.bias", {q_width}, Split::column, false, Role::q_bias);
    add(attn + ".k_proj.weight", {kv_width, h}, Split::kv_column, true, Role::k_proj);
    if (m.qkv_bias) add(attn + ".k_proj.bias", {kv_width}, Split::kv_column, false, Role::k_bias);
    add(attn + ".v_proj.weight", {kv_width, h}, Split::kv_column, true, Role::v_proj);
    if (m.qkv_bias) add(attn + ".v_proj.bias", {kv_width}, Split::kv_column, false, Role::v_bias);
    add(attn + ".o_proj.weight", {h, q_width}, Split::row, true, Role::o_proj);
    if (m.qk_norm) {
      add(attn + ".q_norm.weight", {hd}, Split::replicated, false, Role::q_norm);
      add(attn + ".k_norm.weight", {hd}, Split::replicated, false, Role::k_norm);
    }
    add(layer + ".post_attention_layernorm.weight", {h}, Split::replicated, false, Role::post_attention_norm);
    if (m.is_moe()) {
      // The router is small and every rank needs all logits to pick the top-k, so it stays whole.
      add(layer + ".mlp.gate.weight", {m.num_experts, h}, Split::replicated, true, Role::router);
      for (int e = 0; e < m.num_experts; ++e)
        add_swiglu(out, fmt::format("{}.mlp.experts.{}", layer, e), h, m.moe_ffn_hidden_size, i, e);
    } else {
      add_swiglu(out, layer + ".mlp", h, m.ffn_hidden_size, i, -1);
    }
  }
  out.push_back({"model.norm.weight", {h}, Split::replicated, Placement::final_norm, -1, -1, false, Role::final_norm});
  if (!m.tie_embeddings)
    out.push_back({"lm_head.weight", {m.vocab_size, h}, Split::vocab, Placement::head, -1, -1, true, Role::lm_head});
  for (size_t i = 0; i < out.size(); ++i) out[i].index = static_cast<int64_t>(i);
  return out;
}

int64_t total_parameters(const ModelConfig& m) {
  int64_t total = 0;
  for (const auto& spec : parameter_specs(m)) total += spec.numel();
  return total;
}

int64_t active_parameters(const ModelConfig& m) {
  int64_t active = 0;
  for (const auto& spec : parameter_specs(m))
    if (!spec.is_expert() || spec.expert < m.num_experts_per_tok) active += spec.numel();
  return active;
}

void check_tensor_parallel(const ModelConfig& m, int tp) {
  TESSERA_CHECK(tp >= 1, "parallel.tp = {} must be at least 1", tp);
  if (tp == 1) return;
  TESSERA_CHECK(m.num_attention_heads % tp == 0, "parallel.tp = {} does not divide the {} attention heads", tp,
                m.num_attention_heads);
  TESSERA_CHECK(m.num_kv_heads % tp == 0 || tp % m.num_kv_heads == 0,
                "parallel.tp = {} neither divides the {} kv heads nor is a multiple of them", tp, m.num_kv_heads);
  TESSERA_CHECK(m.vocab_size % tp == 0,
                "parallel.tp = {} does not divide the vocabulary of {} (vocabulary-parallel embedding and loss split "
                "it evenly; pad the vocabulary to a multiple of tp)",
                tp, m.vocab_size);
  if (m.is_moe())
    TESSERA_CHECK(m.moe_ffn_hidden_size % tp == 0, "parallel.tp = {} does not divide moe_ffn_hidden_size {}", tp,
                  m.moe_ffn_hidden_size);
  else
    TESSERA_CHECK(m.ffn_hidden_size % tp == 0, "parallel.tp = {} does not divide ffn_hidden_size {}", tp,
                  m.ffn_hidden_size);
}

Shard tensor_parallel_shard(const ParameterSpec& spec, const ModelConfig& m, int rank, int tp) {
  TESSERA_CHECK(!spec.is_sharded(), "{} is already a shard", spec.hf_name);
  if (tp == 1 || spec.split == Split::replicated) return {};
  const bool row = spec.split == Split::row;
  const int dim = row ? 1 : 0;
  const int64_t extent = spec.shape[static_cast<size_t>(dim)];
  if (spec.split == Split::kv_column && tp > m.num_kv_heads) {
    // tp / kv_heads consecutive ranks share kv head rank / (tp / kv_heads): the one their query heads use.
    const int64_t head_dim = m.resolved_head_dim();
    const int64_t head = rank / (tp / m.num_kv_heads);
    return {dim, head * head_dim, head_dim, extent};
  }
  const int64_t count = extent / tp;
  return {dim, rank * count, count, extent};
}

std::vector<ParameterSpec> shard_specs(std::vector<ParameterSpec> specs, const ModelConfig& m, int rank, int tp) {
  check_tensor_parallel(m, tp);
  TESSERA_CHECK(0 <= rank && rank < tp, "tensor-parallel rank {} outside 0..{}", rank, tp - 1);
  for (ParameterSpec& spec : specs) {
    const Shard shard = tensor_parallel_shard(spec, m, rank, tp);
    if (shard.dim < 0) continue;
    spec.shape[static_cast<size_t>(shard.dim)] = shard.count;
    spec.shard = shard;
  }
  return specs;
}

void check_expert_parallel(const ModelConfig& m, int ep) {
  TESSERA_CHECK(ep >= 1, "parallel.ep = {} must be at least 1", ep);
  if (ep == 1) return;
  TESSERA_CHECK(m.is_moe(), "parallel.ep = {}: {} has no experts to split", ep, m.name);
  TESSERA_CHECK(m.num_experts % ep == 0, "parallel.ep = {} does not divide the {} experts", ep, m.num_experts);
}

std::vector<ParameterSpec> expert_parallel_specs(const std::vector<ParameterSpec>& specs, const ModelConfig& m,
                                                 int rank, int ep) {
  check_expert_parallel(m, ep);
  if (ep == 1) return specs;
  const int per_rank = m.num_experts / ep, first = rank * per_rank;
  std::vector<ParameterSpec> out;
  for (const ParameterSpec& s : specs)
    if (!s.is_expert()) out.push_back(s);
  for (const ParameterSpec& s : specs)
    if (s.is_expert() && s.expert >= first && s.expert < first + per_rank) out.push_back(s);
  return out;
}

}  // namespace tessera::model
