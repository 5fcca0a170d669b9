#include "tessera/plan/plan.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "tessera/core/error.hpp"
#include "tessera/model/parameter_spec.hpp"
#include "tessera/plan/memory_model.hpp"

namespace tessera::plan {
namespace {

using model::ParameterSpec;
using model::Split;

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Elements of `spec` one rank holds under tensor parallelism of size `t`.
int64_t local_numel(const ParameterSpec& spec, const ModelConfig& m, int t) {
  const int64_t n = spec.numel();
  switch (spec.split) {
    case Split::replicated: return n;
    case Split::column:
    case Split::row: return n / t;
    case Split::kv_column: return n / m.num_kv_heads * std::max(m.num_kv_heads / t, 1);
    case Split::vocab: return ceil_div(spec.shape[0], t) * (n / spec.shape[0]);
  }
  TESSERA_FAIL("unknown split of {}", spec.hf_name);
}

void check_divisibility(const Config& c, const dist::Topology& topo) {
  const ModelConfig& m = c.model;
  TESSERA_CHECK(m.ffn_hidden_size % topo.tp() == 0 || m.is_moe(),
                "model.ffn_hidden_size = {} is not divisible by tp = {}", m.ffn_hidden_size, topo.tp());
  TESSERA_CHECK(!m.is_moe() || m.moe_ffn_hidden_size % topo.etp() == 0,
                "model.moe_ffn_hidden_size = {} is not divisible by etp = {}", m.moe_ffn_hidden_size, topo.etp());
  TESSERA_CHECK(c.data.seq_length % topo.cp() == 0, "data.seq_length = {} is not divisible by cp = {}",
                c.data.seq_length, topo.cp());
  if (c.parallel.sequence_parallel)
    TESSERA_CHECK((c.data.seq_length / topo.cp()) % topo.tp() == 0,
                  "sequence parallelism needs seq_length / cp = {} divisible by tp = {}",
                  c.data.seq_length / topo.cp(), topo.tp());
}

std::string gib(double bytes) { return fmt::format("{:.2f}", bytes / kGiB); }

// 8.191B, 83.3M, or the exact count below a million (tiny test models).
std::string count_text(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.3f}B", n / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.1f}M", n / 1e6);
  return std::to_string(n);
}

}  // namespace

std::vector<int> layers_per_virtual_stage(const ModelConfig& model, const ParallelConfig& parallel) {
  if (!parallel.pipeline_layers.empty()) return parallel.pipeline_layers;
  const int chunks = parallel.pp * parallel.virtual_stages;
  std::vector<int> layers(chunks, model.num_layers / chunks);
  for (int s = 0; s < model.num_layers % chunks; ++s) ++layers[s];
  return layers;
}

std::vector<int> layers_per_stage(const ModelConfig& model, const ParallelConfig& parallel) {
  const std::vector<int> chunks = layers_per_virtual_stage(model, parallel);
  std::vector<int> layers(parallel.pp, 0);
  for (size_t c = 0; c < chunks.size(); ++c) layers[c % static_cast<size_t>(parallel.pp)] += chunks[c];
  return layers;
}

Plan make_plan(const Config& config, const PlanOptions& options) {
  const ParallelConfig& p = config.parallel;
  const ModelConfig& m = config.model;
  PlanOptions opts = options;
  if (opts.world_size == 0) opts.world_size = p.tp * p.cp * p.pp * std::max(p.dp, 1);
  TESSERA_CHECK(opts.gpus_per_node >= 1, "--gpus-per-node must be ≥ 1, got {}", opts.gpus_per_node);
  TESSERA_CHECK(opts.gpu_memory_bytes > 0, "--gpu-memory must be positive");

  Plan plan{config, dist::Topology::build(opts.world_size, dist::parallel_sizes(p)), opts, 0, 0, 0, 0, 0, {}};
  const dist::Topology& topo = plan.topology;
  check_divisibility(config, topo);

  const int64_t rows_per_pass = config.train.micro_batch_size * topo.dp();
  plan.global_batch_rows = config.train.global_batch_size == 0 ? rows_per_pass : config.train.global_batch_size;
  TESSERA_CHECK(plan.global_batch_rows % rows_per_pass == 0,
                "train.global_batch_size = {} is not a multiple of micro_batch_size × dp = {} × {}",
                plan.global_batch_rows, config.train.micro_batch_size, topo.dp());
  plan.microbatches = plan.global_batch_rows / rows_per_pass;

  const auto specs = model::parameter_specs(m);
  plan.total_params = model::total_parameters(m);
  plan.active_params = model::active_parameters(m);

  plan.flops_per_token = model_flops_per_token(m, config.data.seq_length);

  const std::vector<int> stage_layers = layers_per_stage(m, p);
  const StateBytes bytes = state_bytes(config.train.precision);
  const StateBytes dense_state = sharded_state_bytes(bytes, p.zero_stage, topo.dp() * topo.cp());
  const StateBytes expert_state = sharded_state_bytes(bytes, p.zero_stage, topo.edp());
  const int experts_per_rank = m.is_moe() ? m.num_experts / topo.ep() : 0;

  ActivationShape act;
  act.seq = config.data.seq_length / topo.cp();
  act.micro = config.train.micro_batch_size;
  act.hidden = m.hidden_size;
  act.heads = m.num_attention_heads;
  act.tp = topo.tp();
  act.sequence_parallel = p.sequence_parallel;
  // On the GPU, flash attention never stores the softmax: without recompute the memory is selective's.
  act.recompute = config.train.device == Device::cuda && config.train.recompute == Recompute::none
                      ? Recompute::selective
                      : config.train.recompute;
  act.bytes_per_value = config.train.precision == Precision::bf16 ? 2 : 4;
  const double per_layer_activation = activation_bytes_per_layer(act);

  int first_layer = 0;
  for (int s = 0; s < topo.pp(); ++s) {
    StageBudget st;
    st.stage = s;
    st.first_layer = first_layer;
    st.num_layers = stage_layers[s];
    const int end_layer = first_layer + st.num_layers;
    const bool first = s == 0, last = s == topo.pp() - 1;
    for (const auto& spec : specs) {
      bool here = false;
      switch (spec.placement) {
        case model::Placement::embedding:
          // A tied head on a later stage keeps its own copy of the embedding matrix.
          here = first || (last && m.tie_embeddings);
          break;
        case model::Placement::layer: here = spec.layer >= first_layer && spec.layer < end_layer; break;
        case model::Placement::final_norm:
        case model::Placement::head: here = last; break;
      }
      if (!here) continue;
      if (spec.is_expert()) {
        if (spec.expert < experts_per_rank) st.expert_params += local_numel(spec, m, topo.etp());
      } else {
        st.dense_params += local_numel(spec, m, topo.tp());
      }
    }
    st.in_flight_microbatches = static_cast<int>(std::min<int64_t>(topo.pp() - s, plan.microbatches));
    const double dense = static_cast<double>(st.dense_params), expert = static_cast<double>(st.expert_params);
    st.weight_bytes = (dense + expert) * bytes.param;
    st.grad_bytes = dense * dense_state.grad + expert * expert_state.grad;
    st.optimizer_bytes = dense * dense_state.optimizer + expert * expert_state.optimizer;
    st.activation_bytes = per_layer_activation * st.num_layers * st.in_flight_microbatches;
    // fp32 logits of the last stage's microbatch, vocab-parallel (Korthikanti's 4sbv/t output term).
    if (last)
      st.activation_bytes += 4.0 * static_cast<double>(act.seq * act.micro) *
                             static_cast<double>(ceil_div(m.vocab_size, topo.tp()));
    plan.stages.push_back(st);
    first_layer = end_layer;
  }

  for (const auto& st : plan.stages)
    TESSERA_CHECK(st.total_bytes() <= opts.gpu_memory_bytes,
                  "pipeline stage {} needs {} GiB per rank (weights {}, grads {}, optimizer {}, activations {}) "
                  "but the GPU has {} GiB; raise tp/pp, parallel.zero_stage or train.recompute, or lower "
                  "micro_batch_size",
                  st.stage, gib(st.total_bytes()), gib(st.weight_bytes), gib(st.grad_bytes),
                  gib(st.optimizer_bytes), gib(st.activation_bytes), gib(opts.gpu_memory_bytes));
  return plan;
}

namespace {

int node_of(const Plan& plan, int rank) { return rank / plan.options.gpus_per_node; }

// "intra-node" when every group of the kind sits on one node, else how many groups cross nodes.
std::string placement_of(const Plan& plan, dist::Group kind) {
  int crossing = 0;
  const auto& groups = plan.topology.groups(kind);
  for (const auto& g : groups) {
    const int node = node_of(plan, g.front());
    if (std::any_of(g.begin(), g.end(), [&](int r) { return node_of(plan, r) != node; })) ++crossing;
  }
  return crossing == 0 ? "intra-node" : fmt::format("{}/{} groups cross nodes", crossing, groups.size());
}

std::string ranks_text(const std::vector<int>& ranks) { return fmt::format("[{}]", fmt::join(ranks, ",")); }

}  // namespace

std::string format_plan(const Plan& plan) {
  const Config& c = plan.config;
  const dist::Topology& t = plan.topology;
  const int nodes = static_cast<int>(ceil_div(t.world_size(), plan.options.gpus_per_node));
  std::string out;
  out += fmt::format("model {} ({}): {} parameters", c.model.name, to_string(c.model.architecture),
                     count_text(plan.total_params));
  if (c.model.is_moe()) out += fmt::format(", {} active per token", count_text(plan.active_params));
  out += fmt::format("\nworld {} = tp {} × cp {} × pp {} × dp {}", t.world_size(), t.tp(), t.cp(), t.pp(), t.dp());
  if (c.model.is_moe())
    out += fmt::format("; expert layers: etp {} × ep {} × edp {} × pp {}", t.etp(), t.ep(), t.edp(), t.pp());
  out += fmt::format("\norder {}; {} node(s) of {} GPUs:", t.order(), nodes, plan.options.gpus_per_node);
  for (int n = 0; n < nodes; ++n) {
    if (n == 4 && nodes > 5) {
      out += fmt::format(" …");
      n = nodes - 1;
    }
    const int first = n * plan.options.gpus_per_node;
    out += fmt::format(" node{} ranks {}-{}", n, first, std::min(first + plan.options.gpus_per_node, t.world_size()) - 1);
  }
  out += "\n";

  out += "\ngroups (ranks; first groups shown):\n";
  for (const auto kind : dist::all_groups()) {
    const bool expert_kind = kind == dist::Group::etp || kind == dist::Group::ep || kind == dist::Group::edp ||
                             kind == dist::Group::etp_ep || kind == dist::Group::etp_ep_pp;
    if (expert_kind && !c.model.is_moe()) continue;
    const auto& groups = t.groups(kind);
    std::string shown;
    const size_t limit = std::min<size_t>(groups.size(), 4);
    for (size_t i = 0; i < limit; ++i) shown += (i ? " " : "") + ranks_text(groups[i]);
    if (groups.size() > limit) shown += fmt::format(" … ({} groups)", groups.size());
    out += fmt::format("  {:<10} size {:<3} {:<24} {}\n", dist::group_name(kind), groups.front().size(),
                       placement_of(plan, kind), shown);
  }

  out += fmt::format("\nbatch: {} rows of {} tokens per step = micro {} × dp {} × {} microbatch(es)\n",
                     plan.global_batch_rows, c.data.seq_length, c.train.micro_batch_size, t.dp(), plan.microbatches);
  out += fmt::format("training FLOPs per token (6N + 12·L·H·Q·T): {:.4g}\n", plan.flops_per_token);
  // One unit for the whole table: MiB for the tiny test models, GiB otherwise.
  double largest = 0;
  for (const auto& s : plan.stages) largest = std::max(largest, s.total_bytes());
  const bool mib = largest < kGiB;
  const auto mem = [mib](double bytes) { return fmt::format("{:.2f}", bytes / (mib ? kGiB / 1024 : kGiB)); };
  out += fmt::format("\nmemory per rank ({}, ZeRO-{}, recompute {}{}), {}:\n", to_string(c.train.precision),
                     c.parallel.zero_stage, to_string(c.train.recompute),
                     c.parallel.sequence_parallel ? ", sequence parallel" : "", mib ? "MiB" : "GiB");
  out += fmt::format("  {:<6} {:<8} {:>14} {:>14} {:>8} {:>8} {:>10} {:>12} {:>8}\n", "stage", "layers", "params",
                     "expert params", "weights", "grads", "optimizer", "activations", "total");
  for (const auto& s : plan.stages)
    out += fmt::format("  {:<6} {:<8} {:>14} {:>14} {:>8} {:>8} {:>10} {:>12} {:>8}\n", s.stage,
                       fmt::format("{}-{}", s.first_layer, s.first_layer + s.num_layers - 1), s.dense_params,
                       s.expert_params, mem(s.weight_bytes), mem(s.grad_bytes), mem(s.optimizer_bytes),
                       mem(s.activation_bytes), mem(s.total_bytes()));
  out += fmt::format("  GPU memory {} GiB\n", gib(plan.options.gpu_memory_bytes));
  return out;
}

nlohmann::json plan_to_json(const Plan& plan) {
  const dist::Topology& t = plan.topology;
  nlohmann::json j;
  j["model"] = {{"name", plan.config.model.name},
                {"total_params", plan.total_params},
                {"active_params", plan.active_params}};
  j["world_size"] = t.world_size();
  j["gpus_per_node"] = plan.options.gpus_per_node;
  j["gpu_memory_bytes"] = plan.options.gpu_memory_bytes;
  j["sizes"] = {{"tp", t.tp()}, {"cp", t.cp()}, {"pp", t.pp()}, {"dp", t.dp()},
                {"ep", t.ep()}, {"etp", t.etp()}, {"edp", t.edp()}};
  j["order"] = t.order();
  for (const auto kind : dist::all_groups()) j["groups"][std::string(dist::group_name(kind))] = t.groups(kind);
  std::vector<int> nodes;
  for (int r = 0; r < t.world_size(); ++r) nodes.push_back(node_of(plan, r));
  j["node_of_rank"] = nodes;
  j["global_batch_rows"] = plan.global_batch_rows;
  j["microbatches"] = plan.microbatches;
  j["flops_per_token"] = plan.flops_per_token;
  for (const auto& s : plan.stages)
    j["stages"].push_back({{"stage", s.stage},
                           {"first_layer", s.first_layer},
                           {"num_layers", s.num_layers},
                           {"dense_params", s.dense_params},
                           {"expert_params", s.expert_params},
                           {"in_flight_microbatches", s.in_flight_microbatches},
                           {"weight_bytes", s.weight_bytes},
                           {"grad_bytes", s.grad_bytes},
                           {"optimizer_bytes", s.optimizer_bytes},
                           {"activation_bytes", s.activation_bytes},
                           {"total_bytes", s.total_bytes()}});
  return j;
}

double parse_memory_size(const std::string& text) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    TESSERA_FAIL("memory size '{}': expected a number with an optional unit (e.g. 80GiB)", text);
  }
  std::string unit = text.substr(pos);
  unit.erase(std::remove_if(unit.begin(), unit.end(), [](unsigned char ch) { return std::isspace(ch); }), unit.end());
  static const std::map<std::string, double> units = {
      {"", 1},          {"B", 1},           {"KB", 1e3},          {"MB", 1e6},         {"GB", 1e9},
      {"TB", 1e12},     {"KiB", 1024.0},    {"MiB", 1048576.0},   {"GiB", kGiB},       {"TiB", kGiB * 1024}};
  const auto it = units.find(unit);
  TESSERA_CHECK(it != units.end(), "memory size '{}': unknown unit '{}' (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
                text, unit);
  TESSERA_CHECK(std::isfinite(value) && value > 0, "memory size '{}' must be positive", text);
  return value * it->second;
}

}  // namespace tessera::plan
