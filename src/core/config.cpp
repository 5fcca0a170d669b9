#include "tessera/core/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "config_enums.hpp"
#include "config_schema.hpp"
#include "tessera/core/error.hpp"
#include "tessera/core/file.hpp"

namespace tessera {
namespace {

using config_detail::Field;
using config_detail::Origin;

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string suggestion(std::string_view wrong, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = 4;  // further than this is noise, not a typo
  for (const auto& name : known) {
    const size_t d = edit_distance(wrong, name);
    if (d < best_distance) best_distance = d, best = name;
  }
  return best.empty() ? "" : fmt::format(" (did you mean '{}'?)", best);
}

std::string location(const std::string& source, const YAML::Mark& mark) {
  return fmt::format("{}:{}", source, mark.line + 1);
}

// Holds the bound schema and, for each field, where its value came from.
class Loader {
 public:
  Loader() : fields_(config_detail::bind_fields(config_)) {
    for (auto& field : fields_) by_path_[field.path()] = &field;
  }

  void apply_document(const YAML::Node& root, const std::string& source) {
    if (root.IsNull()) return;  // an empty file is all defaults
    if (!root.IsMap())
      TESSERA_FAIL("{}: the top level must be a mapping of sections ({}), got {}", location(source, root.Mark()),
                   fmt::join(config_detail::section_names(), ", "), root.IsSequence() ? "a list" : "a scalar");
    std::set<std::string> seen;
    for (const auto& section_entry : root) {
      const std::string section = section_entry.first.as<std::string>();
      const std::string where = location(source, section_entry.first.Mark());
      const auto& sections = config_detail::section_names();
      if (std::find(sections.begin(), sections.end(), section) == sections.end())
        TESSERA_FAIL("{}: unknown section '{}'{}; sections are {}", where, section, suggestion(section, sections),
                     fmt::join(sections, ", "));
      if (!seen.insert(section).second) TESSERA_FAIL("{}: section '{}' appears twice", where, section);
      const YAML::Node& body = section_entry.second;
      if (body.IsNull()) continue;
      if (!body.IsMap()) TESSERA_FAIL("{}: section '{}' must be a mapping of keys", where, section);
      for (const auto& entry : body) {
        const std::string key = entry.first.as<std::string>();
        const std::string path = section + "." + key;
        const std::string key_where = location(source, entry.first.Mark());
        if (!seen.insert(path).second) TESSERA_FAIL("{}: key '{}' appears twice", key_where, path);
        Field& field = find(path, key_where);
        field.set(entry.second, Origin{key_where});
        origins_[path] = key_where;
      }
    }
  }

  void apply_override(const std::string& assignment) {
    const std::string origin = fmt::format("--set {}", assignment);
    const size_t eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
      TESSERA_FAIL("{}: expected section.key=value", origin);
    const std::string path = assignment.substr(0, eq);
    Field& field = find(path, origin);
    YAML::Node value;
    try {
      value = YAML::Load(assignment.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      TESSERA_FAIL("{}: the value is not valid YAML: {}", origin, e.msg);
    }
    field.set(value, Origin{origin});
    origins_[path] = origin;
  }

  const Config& config() const { return config_; }

  // Where a key's value came from, for messages about relations between keys.
  std::string origin(const std::string& path) const {
    const auto it = origins_.find(path);
    return it == origins_.end() ? "default" : it->second;
  }

 private:
  Field& find(const std::string& path, const std::string& where) {
    const auto it = by_path_.find(path);
    if (it != by_path_.end()) return *it->second;
    std::vector<std::string> known;
    for (const auto& field : fields_) known.push_back(field.path());
    TESSERA_FAIL("{}: unknown key '{}'{}", where, path, suggestion(path, known));
  }

  Config config_;
  std::vector<Field> fields_;
  std::map<std::string, Field*> by_path_;
  std::map<std::string, std::string> origins_;
};

// Relations between fields that no single value can break. Each message names the key at fault and the
// place its value came from.
void validate(const Loader& loader) {
  const Config& c = loader.config();
  const ModelConfig& m = c.model;
  const ParallelConfig& p = c.parallel;
  auto fail_at = [&](const std::string& path, const std::string& why) {
    TESSERA_FAIL("{}: {}: {}", loader.origin(path), path, why);
  };

  if (m.num_attention_heads % m.num_kv_heads != 0)
    fail_at("model.num_kv_heads", fmt::format("{} does not divide num_attention_heads = {}", m.num_kv_heads,
                                              m.num_attention_heads));
  if (m.head_dim == 0 && m.hidden_size % m.num_attention_heads != 0)
    fail_at("model.num_attention_heads",
            fmt::format("{} does not divide hidden_size = {}; set model.head_dim explicitly",
                        m.num_attention_heads, m.hidden_size));
  if ((m.architecture == Architecture::qwen3_moe) != m.is_moe())
    fail_at("model.num_experts", fmt::format("architecture {} {} experts, but num_experts = {}",
                                             config_detail::enum_name(m.architecture),
                                             m.architecture == Architecture::qwen3_moe ? "needs" : "has no",
                                             m.num_experts));
  if (m.is_moe()) {
    if (m.num_experts_per_tok < 1 || m.num_experts_per_tok > m.num_experts)
      fail_at("model.num_experts_per_tok",
              fmt::format("{} must be between 1 and num_experts = {}", m.num_experts_per_tok, m.num_experts));
    if (m.moe_ffn_hidden_size < 1)
      fail_at("model.moe_ffn_hidden_size", "an MoE model needs a positive expert width");
  } else if (m.num_experts_per_tok != 0 || m.moe_ffn_hidden_size != 0) {
    fail_at(m.num_experts_per_tok != 0 ? "model.num_experts_per_tok" : "model.moe_ffn_hidden_size",
            "is set but the model is dense (num_experts = 0)");
  }

  // Layout checks that need no world size; the rest live in Topology and the plan.
  if (m.num_attention_heads % p.tp != 0)
    fail_at("parallel.tp", fmt::format("{} does not divide num_attention_heads = {}", p.tp, m.num_attention_heads));
  if (m.num_kv_heads % p.tp != 0 && p.tp % m.num_kv_heads != 0)
    fail_at("parallel.tp", fmt::format("{} and num_kv_heads = {} do not divide one another (kv heads are split "
                                       "over tp, or replicated when tp is a multiple of them)",
                                       p.tp, m.num_kv_heads));
  if (p.pp > m.num_layers)
    fail_at("parallel.pp", fmt::format("{} pipeline stages but only {} layers", p.pp, m.num_layers));
  if (!p.pipeline_layers.empty()) {
    if (static_cast<int>(p.pipeline_layers.size()) != p.pp)
      fail_at("parallel.pipeline_layers",
              fmt::format("lists {} stages but pp = {}", p.pipeline_layers.size(), p.pp));
    const int64_t total = std::accumulate(p.pipeline_layers.begin(), p.pipeline_layers.end(), int64_t{0});
    if (total != m.num_layers)
      fail_at("parallel.pipeline_layers", fmt::format("sums to {} layers but num_layers = {}", total, m.num_layers));
  }
  if (p.virtual_stages > 1) {
    if (p.pp == 1) fail_at("parallel.virtual_stages", fmt::format("{} needs pp > 1", p.virtual_stages));
    if (!p.pipeline_layers.empty())
      fail_at("parallel.virtual_stages", "interleaved stages split the layers evenly; leave pipeline_layers empty");
    if (static_cast<int64_t>(p.pp) * p.virtual_stages > m.num_layers)
      fail_at("parallel.virtual_stages", fmt::format("pp × virtual_stages = {} chunks but only {} layers",
                                                      p.pp * p.virtual_stages, m.num_layers));
  }
  if (p.ep > 1 && !m.is_moe()) fail_at("parallel.ep", fmt::format("{} needs an MoE model", p.ep));
  if (m.is_moe() && m.num_experts % p.ep != 0)
    fail_at("parallel.ep", fmt::format("{} does not divide num_experts = {}", p.ep, m.num_experts));
  if (p.sequence_parallel && p.tp == 1)
    fail_at("parallel.sequence_parallel", "needs tp > 1 (it shards activations over the TP group)");
  if (!c.data.weights.empty() && c.data.weights.size() != c.data.paths.size())
    fail_at("data.weights", fmt::format("has {} entries but data.paths has {}", c.data.weights.size(), c.data.paths.size()));
  if (c.optim.min_lr > c.optim.lr)
    fail_at("optim.min_lr", fmt::format("{} is above lr = {}", c.optim.min_lr, c.optim.lr));
  if (c.train.global_batch_size != 0 && c.train.global_batch_size % c.train.micro_batch_size != 0)
    fail_at("train.global_batch_size", fmt::format("{} is not a multiple of micro_batch_size = {}",
                                                   c.train.global_batch_size, c.train.micro_batch_size));
}

Config load(const std::string& text, const std::string& source, const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    TESSERA_FAIL("{}:{}:{}: YAML syntax error: {}", source, e.mark.line + 1, e.mark.column + 1, e.msg);
  }
  Loader loader;
  loader.apply_document(root, source);
  for (const auto& assignment : overrides) loader.apply_override(assignment);
  validate(loader);
  return loader.config();
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  return load(read_file(path), path, overrides);
}

Config parse_config(const std::string& yaml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides) {
  return load(yaml_text, source_name, overrides);
}

std::string to_yaml(const Config& config, bool with_docs) {
  Config copy = config;  // the schema binds mutable references; printing never writes through them
  const auto fields = config_detail::bind_fields(copy);
  std::string out;
  std::string section;
  for (const auto& field : fields) {
    if (field.section != section) {
      section = field.section;
      out += section + ":\n";
    }
    out += fmt::format("  {}: {}", field.key, field.get());
    if (with_docs) out += fmt::format("  # {}", field.doc);
    out += "\n";
  }
  return out;
}

std::string config_reference_markdown() {
  Config defaults;
  const auto fields = config_detail::bind_fields(defaults);
  std::string out;
  std::string section;
  for (const auto& field : fields) {
    if (field.section != section) {
      section = field.section;
      out += fmt::format("{}### `{}`\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n",
                         out.empty() ? "" : "\n", section);
    }
    out += fmt::format("| `{}` | {} | `{}` | {} | {} |\n", field.path(), field.type, field.get(), field.allowed,
                       field.doc);
  }
  return out;
}

std::string_view to_string(Architecture v) { return config_detail::enum_name(v); }
std::string_view to_string(Precision v) { return config_detail::enum_name(v); }
std::string_view to_string(Device v) { return config_detail::enum_name(v); }
std::string_view to_string(Recompute v) { return config_detail::enum_name(v); }

}  // namespace tessera
