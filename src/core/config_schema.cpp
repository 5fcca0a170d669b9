#include "config_schema.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "config_enums.hpp"
#include "tessera/core/error.hpp"

namespace tessera::config_detail {
namespace {

std::string describe_node(const YAML::Node& node) {
  if (node.IsMap()) return "a mapping";
  if (node.IsSequence()) return "a list";
  if (node.IsNull()) return "nothing (null)";
  if (node.Tag() == "!") return fmt::format("the quoted string \"{}\"", node.Scalar());
  return fmt::format("'{}'", node.Scalar());
}

// A plain (unquoted) scalar, or an error saying what was found instead.
const std::string& plain_scalar(const YAML::Node& node, const Origin& origin, const std::string& path,
                                std::string_view expected) {
  if (!node.IsScalar() || node.Tag() == "!")
    TESSERA_FAIL("{}: {}: expected {}, got {}", origin.text, path, expected, describe_node(node));
  return node.Scalar();
}

int64_t parse_integer(const YAML::Node& node, const Origin& origin, const std::string& path) {
  const std::string& text = plain_scalar(node, origin, path, "an integer");
  int64_t value = 0;
  const char* first = text.data() + (text.starts_with('+') ? 1 : 0);
  const auto [end, ec] = std::from_chars(first, text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range)
    TESSERA_FAIL("{}: {}: integer '{}' is out of range", origin.text, path, text);
  if (ec != std::errc() || end != text.data() + text.size())
    TESSERA_FAIL("{}: {}: expected an integer, got '{}'", origin.text, path, text);
  return value;
}

double parse_real(const YAML::Node& node, const Origin& origin, const std::string& path) {
  const std::string& text = plain_scalar(node, origin, path, "a number");
  // YAML spells infinities and NaN .inf/.nan; strtod would not take them, so name them here.
  if (text.find("inf") != std::string::npos || text.find("nan") != std::string::npos ||
      text.find("Inf") != std::string::npos || text.find("NaN") != std::string::npos)
    TESSERA_FAIL("{}: {}: {} is not a finite number", origin.text, path, text);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size())
    TESSERA_FAIL("{}: {}: expected a number, got '{}'", origin.text, path, text);
  if (!std::isfinite(value)) TESSERA_FAIL("{}: {}: {} is not a finite number", origin.text, path, text);
  return value;
}

bool parse_bool(const YAML::Node& node, const Origin& origin, const std::string& path) {
  const std::string& text = plain_scalar(node, origin, path, "true or false");
  if (text == "true" || text == "True") return true;
  if (text == "false" || text == "False") return false;
  TESSERA_FAIL("{}: {}: expected true or false, got '{}'", origin.text, path, text);
}

// Shortest text that reads back as the same double, so resolved configs round-trip exactly.
std::string format_real(double value) {
  std::array<char, 64> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  std::string text(buffer.data(), end);
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

struct RealRange {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false;
  bool hi_open = false;

  bool contains(double v) const {
    return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  }
  std::string text() const {
    const bool has_lo = std::isfinite(lo), has_hi = std::isfinite(hi);
    if (has_lo && has_hi)
      return fmt::format("{} {} x {} {}", format_real(lo), lo_open ? "<" : "≤", hi_open ? "<" : "≤",
                         format_real(hi));
    if (has_lo) return fmt::format("{} {}", lo_open ? ">" : "≥", format_real(lo));
    if (has_hi) return fmt::format("{} {}", hi_open ? "<" : "≤", format_real(hi));
    return "";
  }
};

RealRange at_least(double lo) { return {lo, std::numeric_limits<double>::infinity(), false, false}; }
RealRange above(double lo) { return {lo, std::numeric_limits<double>::infinity(), true, false}; }
RealRange between(double lo, double hi, bool hi_open = false) { return {lo, hi, false, hi_open}; }

std::string integer_range_text(int64_t lo, int64_t hi) {
  if (hi == std::numeric_limits<int64_t>::max()) return fmt::format("≥ {}", lo);
  return fmt::format("{} ≤ x ≤ {}", lo, hi);
}

// Adds the fields of one section, each bound to a member of `config`.
class SectionBinder {
 public:
  SectionBinder(std::vector<Field>& fields, std::string section) : fields_(fields), section_(std::move(section)) {}

  // `hi` defaults to what the member's type holds; the documented range then shows only the lower bound.
  template <class Int>
  void integer(const char* key, Int& ref, int64_t lo, const char* doc,
               int64_t hi = std::numeric_limits<int64_t>::max()) {
    const int64_t type_max = static_cast<int64_t>(
        std::min<uint64_t>(std::numeric_limits<Int>::max(), std::numeric_limits<int64_t>::max()));
    const std::string allowed = integer_range_text(lo, hi);
    hi = std::min(hi, type_max);
    add(key, "int", allowed, doc, [&ref] { return std::to_string(ref); },
        [&ref, lo, hi, allowed](const YAML::Node& node, const Origin& origin, const std::string& path) {
          const int64_t value = parse_integer(node, origin, path);
          if (value < lo || value > hi)
            TESSERA_FAIL("{}: {}: {} is out of range ({}{})", origin.text, path, value, allowed,
                         value > hi ? fmt::format(", at most {}", hi) : "");
          ref = static_cast<Int>(value);
        });
  }

  void real(const char* key, double& ref, RealRange range, const char* doc) {
    add(key, "float", range.text(), doc, [&ref] { return format_real(ref); },
        [&ref, range](const YAML::Node& node, const Origin& origin, const std::string& path) {
          const double value = parse_real(node, origin, path);
          if (!range.contains(value))
            TESSERA_FAIL("{}: {}: {} is out of range ({})", origin.text, path, node.Scalar(), range.text());
          ref = value;
        });
  }

  void boolean(const char* key, bool& ref, const char* doc) {
    add(key, "bool", "", doc, [&ref] { return std::string(ref ? "true" : "false"); },
        [&ref](const YAML::Node& node, const Origin& origin, const std::string& path) {
          ref = parse_bool(node, origin, path);
        });
  }

  void text(const char* key, std::string& ref, const char* doc) {
    add(key, "string", "", doc, [&ref] { return YAML::Dump(YAML::Node(ref)); },
        [&ref](const YAML::Node& node, const Origin& origin, const std::string& path) {
          if (!node.IsScalar() && !node.IsNull())
            TESSERA_FAIL("{}: {}: expected a string, got {}", origin.text, path, describe_node(node));
          ref = node.IsNull() ? std::string() : node.Scalar();
        });
  }

  template <class Enum>
  void choice(const char* key, Enum& ref, const char* doc) {
    const auto names = enum_names<Enum>();
    std::string allowed;
    for (const auto name : names) allowed += (allowed.empty() ? "" : " | ") + std::string(name);
    add(key, "enum", allowed, doc, [&ref] { return std::string(enum_name(ref)); },
        [&ref, names, allowed](const YAML::Node& node, const Origin& origin, const std::string& path) {
          const std::string& text = plain_scalar(node, origin, path, "one of " + allowed);
          for (size_t i = 0; i < names.size(); ++i)
            if (names[i] == text) {
              ref = static_cast<Enum>(i);
              return;
            }
          TESSERA_FAIL("{}: {}: '{}' is not one of {}", origin.text, path, text, allowed);
        });
  }

  void text_list(const char* key, std::vector<std::string>& ref, const char* doc) {
    add(key, "list of string", "", doc,
        [&ref] {
          std::string out = "[";
          for (size_t i = 0; i < ref.size(); ++i) {
            std::string item = YAML::Dump(YAML::Node(ref[i]));
            out += (i ? ", " : "") + item;
          }
          return out + "]";
        },
        [&ref](const YAML::Node& node, const Origin& origin, const std::string& path) {
          if (!node.IsSequence())
            TESSERA_FAIL("{}: {}: expected a list of strings, got {}", origin.text, path, describe_node(node));
          std::vector<std::string> values;
          for (size_t i = 0; i < node.size(); ++i) {
            if (!node[i].IsScalar() || node[i].Scalar().empty())
              TESSERA_FAIL("{}: {}[{}]: expected a non-empty string, got {}", origin.text, path, i, describe_node(node[i]));
            values.push_back(node[i].Scalar());
          }
          ref = std::move(values);
        });
  }

  void positive_real_list(const char* key, std::vector<double>& ref, const char* doc) {
    add(key, "list of float", "each > 0", doc,
        [&ref] {
          std::string out = "[";
          for (size_t i = 0; i < ref.size(); ++i) out += (i ? ", " : "") + format_real(ref[i]);
          return out + "]";
        },
        [&ref](const YAML::Node& node, const Origin& origin, const std::string& path) {
          if (!node.IsSequence())
            TESSERA_FAIL("{}: {}: expected a list of numbers, got {}", origin.text, path, describe_node(node));
          std::vector<double> values;
          for (size_t i = 0; i < node.size(); ++i) {
            const std::string item_path = fmt::format("{}[{}]", path, i);
            const double v = parse_real(node[i], origin, item_path);
            if (!(v > 0)) TESSERA_FAIL("{}: {}: {} is out of range (> 0)", origin.text, item_path, v);
            values.push_back(v);
          }
          ref = std::move(values);
        });
  }

  void positive_int_list(const char* key, std::vector<int>& ref, const char* doc) {
    add(key, "list of int", "each ≥ 1", doc,
        [&ref] {
          std::string out = "[";
          for (size_t i = 0; i < ref.size(); ++i) out += (i ? ", " : "") + std::to_string(ref[i]);
          return out + "]";
        },
        [&ref](const YAML::Node& node, const Origin& origin, const std::string& path) {
          if (!node.IsSequence())
            TESSERA_FAIL("{}: {}: expected a list of integers, got {}", origin.text, path, describe_node(node));
          std::vector<int> values;
          for (size_t i = 0; i < node.size(); ++i) {
            const std::string item_path = fmt::format("{}[{}]", path, i);
            const int64_t v = parse_integer(node[i], origin, item_path);
            if (v < 1 || v > std::numeric_limits<int>::max())
              TESSERA_FAIL("{}: {}: {} is out of range (≥ 1)", origin.text, item_path, v);
            values.push_back(static_cast<int>(v));
          }
          ref = std::move(values);
        });
  }

 private:
  using Setter = std::function<void(const YAML::Node&, const Origin&, const std::string&)>;

  void add(const char* key, std::string type, std::string allowed, const char* doc,
           std::function<std::string()> get, Setter set) {
    Field field;
    field.section = section_;
    field.key = key;
    field.type = std::move(type);
    field.allowed = std::move(allowed);
    field.doc = doc;
    field.get = std::move(get);
    const std::string path = field.path();
    field.set = [set = std::move(set), path](const YAML::Node& node, const Origin& origin) {
      set(node, origin, path);
    };
    fields_.push_back(std::move(field));
  }

  std::vector<Field>& fields_;
  std::string section_;
};

constexpr int64_t kMaxRanks = 1 << 20;

}  // namespace

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> names = {"model", "parallel", "data", "optim", "train", "checkpoint",
                                                 "logging"};
  return names;
}

std::vector<Field> bind_fields(Config& c) {
  std::vector<Field> f;
  {
    SectionBinder s(f, "model");
    auto& m = c.model;
    s.text("name", m.name, "Free-form model name, shown in logs and `tessera plan`.");
    s.choice("architecture", m.architecture,
             "Hugging Face architecture family; decides the config.json written on export.");
    s.integer("vocab_size", m.vocab_size, 1, "Vocabulary size: rows of the embedding and the LM head.");
    s.integer("hidden_size", m.hidden_size, 1, "Width of the residual stream.");
    s.integer("num_layers", m.num_layers, 1, "Number of decoder layers.");
    s.integer("num_attention_heads", m.num_attention_heads, 1, "Query heads per layer.");
    s.integer("num_kv_heads", m.num_kv_heads, 1,
              "Key/value heads per layer (grouped-query attention); must divide num_attention_heads.");
    s.integer("head_dim", m.head_dim, 0, "Width of one attention head; 0 means hidden_size / num_attention_heads.");
    s.integer("ffn_hidden_size", m.ffn_hidden_size, 1, "Intermediate width of the dense SwiGLU MLP.");
    s.integer("max_position_embeddings", m.max_position_embeddings, 1,
              "Longest sequence the rotary embedding is configured for (exported to config.json).");
    s.real("rope_theta", m.rope_theta, above(0), "Rotary embedding base frequency.");
    s.real("rms_norm_eps", m.rms_norm_eps, above(0), "Epsilon inside every RMSNorm.");
    s.boolean("qk_norm", m.qk_norm, "RMSNorm on each query and key head before rotary (Qwen3).");
    s.boolean("qkv_bias", m.qkv_bias, "Bias on the q, k and v projections (Qwen2 / Qwen2.5).");
    s.boolean("tie_embeddings", m.tie_embeddings, "LM head shares the embedding matrix.");
    s.integer("num_experts", m.num_experts, 0, "Routed experts per MoE layer; 0 makes a dense model.");
    s.integer("num_experts_per_tok", m.num_experts_per_tok, 0, "Experts each token is routed to (top-k).");
    s.integer("moe_ffn_hidden_size", m.moe_ffn_hidden_size, 0, "Intermediate width of one expert's SwiGLU MLP.");
    s.boolean("norm_topk_prob", m.norm_topk_prob, "Renormalise the top-k router probabilities to sum to one.");
    s.real("router_aux_loss_coef", m.router_aux_loss_coef, at_least(0),
           "Weight of the Switch-style load-balancing loss.");
    s.real("router_z_loss_coef", m.router_z_loss_coef, at_least(0), "Weight of the router z-loss; 0 disables it.");
    s.real("init_std", m.init_std, above(0), "Standard deviation of the normal initialisation of weights.");
    s.text("init_from", m.init_from,
           "A Hugging Face model directory (config.json + safetensors) whose weights a new run starts from "
           "instead of the random initialisation; ignored when the run resumes from a checkpoint.");
  }
  {
    SectionBinder s(f, "parallel");
    auto& p = c.parallel;
    s.integer("tp", p.tp, 1, "Tensor-parallel size (heads and MLP columns split).", kMaxRanks);
    s.integer("cp", p.cp, 1, "Context-parallel size (sequence split across ranks).", kMaxRanks);
    s.integer("pp", p.pp, 1, "Pipeline-parallel stages.", kMaxRanks);
    s.integer("dp", p.dp, 0, "Data-parallel size; 0 derives it as world / (tp * cp * pp).", kMaxRanks);
    s.integer("ep", p.ep, 1, "Expert-parallel size (experts split across ranks; MoE only).", kMaxRanks);
    s.integer("etp", p.etp, 0, "Tensor-parallel size inside expert layers; 0 means the same as tp.", kMaxRanks);
    s.text("order", p.order, "Rank order of the grid, fastest-varying first (Megatron-Core convention).");
    s.boolean("sequence_parallel", p.sequence_parallel,
              "Shard norms and dropout activations along the sequence over the TP group.");
    s.positive_int_list("pipeline_layers", p.pipeline_layers,
                        "Decoder layers per pipeline stage; empty splits them evenly.");
    s.integer("virtual_stages", p.virtual_stages, 1,
              "Model chunks per pipeline stage: > 1 runs Megatron's interleaved 1F1B, stage s holding chunks s, "
              "s + pp, … of the layers split evenly into pp × virtual_stages.",
              1024);
    s.integer("zero_stage", p.zero_stage, 0, "ZeRO stage: 0 replicated, 1 shards optimizer state, 2 also gradients.", 2);
  }
  {
    SectionBinder s(f, "data");
    s.text_list("paths", c.data.paths, "Packed HDF5 files (tessera pack); empty means synthetic tokens.");
    s.positive_real_list("weights", c.data.weights,
                         "Blend weight per file (same length as paths); empty weights files by their rows.");
    s.text("tokenizer", c.data.tokenizer,
           "tokenizer.json (or its directory) the files must have been packed with; empty skips the check.");
    s.integer("seq_length", c.data.seq_length, 1, "Tokens per packed row.");
  }
  {
    SectionBinder s(f, "optim");
    auto& o = c.optim;
    s.real("lr", o.lr, at_least(0), "Peak learning rate, reached after warmup.");
    s.real("min_lr", o.min_lr, at_least(0), "Floor the schedule decays to.");
    s.real("weight_decay", o.weight_decay, at_least(0), "AdamW decoupled weight decay (not applied to norms and biases).");
    s.real("beta1", o.beta1, between(0, 1, true), "AdamW first-moment decay.");
    s.real("beta2", o.beta2, between(0, 1, true), "AdamW second-moment decay.");
    s.real("eps", o.eps, above(0), "AdamW denominator epsilon.");
    s.real("clip_grad", o.clip_grad, at_least(0), "Global gradient-norm clip; 0 disables clipping.");
    s.integer("warmup_steps", o.warmup_steps, 0, "Steps of linear warmup from 0 to lr.");
    s.choice("decay", o.decay, "Shape of the decay from lr to min_lr after warmup.");
    s.integer("decay_steps", o.decay_steps, 0, "Length of the decay; 0 means train.steps - warmup_steps.");
  }
  {
    SectionBinder s(f, "train");
    auto& t = c.train;
    s.integer("steps", t.steps, 1, "Optimizer steps to run.");
    s.integer("micro_batch_size", t.micro_batch_size, 1, "Packed rows per microbatch on one data-parallel rank.");
    s.integer("global_batch_size", t.global_batch_size, 0,
              "Packed rows per optimizer step over all ranks; 0 means micro_batch_size * dp.");
    s.integer("seed", t.seed, 0, "Seed of every random stream (initialisation, data order).");
    s.choice("precision", t.precision, "Compute precision; fp32 is the exact CPU reference.");
    s.choice("device", t.device,
             "Where the model computes: cpu (the fp32 reference) or cuda (one GPU per rank, chosen by local rank).");
    s.choice("recompute", t.recompute,
             "Activation recompute: none, selective (attention core) or full (whole layer).");
    s.real("peak_tflops", t.peak_tflops, above(0), "Peak dense TFLOP/s of one device, the denominator of MFU.");
    s.real("max_duration", t.max_duration, at_least(0),
           "Wall-clock seconds this run may take; before the next step would exceed it (by the slowest step so "
           "far) the run saves a checkpoint and exits with code 75, as on preemption. 0: no limit.");
    s.integer("exit_interval", t.exit_interval, 0,
              "Save a checkpoint and exit with code 75 after a step divisible by this (Megatron's "
              "--exit-interval); 0: never.");
  }
  {
    SectionBinder s(f, "checkpoint");
    s.text("dir", c.checkpoint.dir,
           "Directory holding step checkpoints and the `latest` pointer; empty means <logging.run_dir>/checkpoints. "
           "`tessera train` resumes from the newest valid checkpoint there.");
    s.integer("interval", c.checkpoint.interval, 0, "Save every N steps; 0 saves only at the end and on preemption.");
    s.integer("keep_last", c.checkpoint.keep_last, 1, "Committed checkpoints kept; older ones are deleted.");
    s.boolean("async", c.checkpoint.async,
              "Interval saves snapshot the state in memory and write it from a background thread while training "
              "continues; committed once every rank's files are written. Final and preemption saves are "
              "synchronous.");
  }
  {
    SectionBinder s(f, "logging");
    s.text("run_dir", c.logging.run_dir, "Directory for per-rank log files and metrics.");
    s.choice("level", c.logging.level, "Lowest level written to console and files.");
    s.integer("interval", c.logging.interval, 1, "Log metrics every N steps.");
  }
  return f;
}

}  // namespace tessera::config_detail
