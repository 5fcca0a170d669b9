#include "tessera/io/hf_model.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <fstream>
#include <set>
#include <sstream>

#include "tessera/core/error.hpp"
#include "tessera/core/file.hpp"
#include "tessera/io/atomic_file.hpp"
#include "tessera/io/hf_tensor_dir.hpp"
#include "tessera/io/safetensors.hpp"

namespace tessera::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct ArchInfo {
  Architecture arch;
  const char* class_name;
  const char* model_type;
};
constexpr ArchInfo kArchs[] = {{Architecture::qwen3, "Qwen3ForCausalLM", "qwen3"},
                               {Architecture::qwen3_moe, "Qwen3MoeForCausalLM", "qwen3_moe"},
                               {Architecture::qwen2, "Qwen2ForCausalLM", "qwen2"},
                               {Architecture::llama, "LlamaForCausalLM", "llama"}};

// Keys that carry no math tessera must reproduce (ids of special tokens, bookkeeping, inference-only
// switches, dropout that is 0 in training configs is checked separately).
const std::set<std::string, std::less<>> kHarmless = {
    "architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "bos_token_id", "eos_token_id",
    "pad_token_id", "use_cache", "initializer_range", "output_router_logits", "max_window_layers", "_name_or_path",
    "pretraining_tp", "layer_types", "attention_dropout", "sliding_window", "use_sliding_window", "rope_scaling",
    "rope_parameters", "rope_theta", "hidden_act", "attention_bias", "mlp_bias", "decoder_sparse_step",
    "mlp_only_layers", "num_experts", "num_local_experts", "router_jitter_noise", "qkv_bias"};

class Reader {
 public:
  Reader(const json& j, std::string source) : j_(j), source_(std::move(source)) {}

  const json* get(const char* key) const {
    const auto it = j_.find(key);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  template <class T>
  T required(const char* key) const {
    const json* v = get(key);
    TESSERA_CHECK(v != nullptr, "{}: missing \"{}\"", source_, key);
    return as<T>(*v, key);
  }
  template <class T>
  T optional(const char* key, T fallback) const {
    const json* v = get(key);
    return v == nullptr ? fallback : as<T>(*v, key);
  }
  [[noreturn]] void refuse(const std::string& key, const std::string& why) const {
    TESSERA_FAIL("{}: \"{}\" {} — tessera does not implement it, and ignoring it would change the model", source_, key,
                 why);
  }
  const std::string& source() const { return source_; }

 private:
  template <class T>
  T as(const json& v, const char* key) const {
    try {
      if constexpr (std::is_same_v<T, bool>) {
        TESSERA_CHECK(v.is_boolean(), "{}: \"{}\" must be true or false", source_, key);
      } else if constexpr (std::is_integral_v<T>) {
        TESSERA_CHECK(v.is_number_integer(), "{}: \"{}\" must be an integer", source_, key);
      } else if constexpr (std::is_floating_point_v<T>) {
        TESSERA_CHECK(v.is_number(), "{}: \"{}\" must be a number", source_, key);
      }
      return v.get<T>();
    } catch (const json::exception& e) {
      TESSERA_FAIL("{}: \"{}\": {}", source_, key, e.what());
    }
  }
  const json& j_;
  std::string source_;
};


}  // namespace

ModelConfig model_config_from_hf(const json& j, const std::string& source) {
  TESSERA_CHECK(j.is_object(), "{}: config.json must be a JSON object", source);
  const Reader r(j, source);
  ModelConfig m;

  const std::string model_type = r.required<std::string>("model_type");
  const ArchInfo* arch = nullptr;
  for (const auto& a : kArchs)
    if (model_type == a.model_type) arch = &a;
  if (arch == nullptr)
    TESSERA_FAIL("{}: model_type \"{}\" is not supported (qwen3, qwen3_moe, qwen2, llama)", source, model_type);
  if (const json* classes = r.get("architectures")) {
    TESSERA_CHECK(classes->is_array() && classes->size() == 1 && classes->at(0).is_string(),
                  "{}: \"architectures\" must list one class", source);
    TESSERA_CHECK(classes->at(0).get<std::string>() == arch->class_name,
                  "{}: architectures [\"{}\"] is not {} (the class of model_type \"{}\")", source,
                  classes->at(0).get<std::string>(), arch->class_name, model_type);
  }
  m.architecture = arch->arch;
  m.name = fs::path(source).parent_path().filename().string();
  if (m.name.empty()) m.name = model_type;

  m.vocab_size = r.required<int64_t>("vocab_size");
  m.hidden_size = r.required<int64_t>("hidden_size");
  m.num_layers = r.required<int>("num_hidden_layers");
  m.num_attention_heads = r.required<int>("num_attention_heads");
  m.num_kv_heads = r.optional<int>("num_key_value_heads", m.num_attention_heads);
  m.head_dim = r.optional<int>("head_dim", static_cast<int>(m.hidden_size / m.num_attention_heads));
  m.ffn_hidden_size = r.required<int64_t>("intermediate_size");
  m.max_position_embeddings = r.optional<int64_t>("max_position_embeddings", 4096);
  m.rms_norm_eps = r.required<double>("rms_norm_eps");
  m.tie_embeddings = r.optional<bool>("tie_word_embeddings", false);
  m.qk_norm = m.architecture == Architecture::qwen3 || m.architecture == Architecture::qwen3_moe;
  m.qkv_bias = m.architecture == Architecture::qwen2;

  // Rotary: transformers 4.x writes rope_theta + rope_scaling, 5.x writes rope_parameters.
  double theta = r.optional<double>("rope_theta", 0.0);
  if (const json* rp = r.get("rope_parameters")) {
    TESSERA_CHECK(rp->is_object(), "{}: \"rope_parameters\" must be an object", source);
    const Reader rope(*rp, source + " rope_parameters");
    const std::string type = rope.optional<std::string>("rope_type", "default");
    if (type != "default") r.refuse("rope_parameters.rope_type", "is \"" + type + "\"");
    for (const auto& [key, value] : rp->items())
      if (key != "rope_type" && key != "rope_theta") r.refuse("rope_parameters." + key, "is set");
    theta = rope.optional<double>("rope_theta", theta);
  }
  if (const json* rs = r.get("rope_scaling")) {
    const std::string type = rs->is_object() && rs->contains("rope_type") ? rs->at("rope_type").dump()
                             : rs->is_object() && rs->contains("type")    ? rs->at("type").dump()
                                                                          : rs->dump();
    if (type != "\"default\"") r.refuse("rope_scaling", "is " + type);
  }
  TESSERA_CHECK(theta > 0, "{}: no rope_theta (top level or in rope_parameters)", source);
  m.rope_theta = theta;

  // Fields whose non-default values change the math and are not implemented.
  if (r.optional<std::string>("hidden_act", "silu") != "silu") r.refuse("hidden_act", "is not silu");
  if (r.optional<bool>("use_sliding_window", false)) r.refuse("use_sliding_window", "is true");
  if (m.architecture == Architecture::llama && r.get("sliding_window") != nullptr)
    r.refuse("sliding_window", "is set");
  if (const json* types = r.get("layer_types"))
    for (const auto& t : *types)
      if (t != "full_attention") r.refuse("layer_types", "has a layer of type " + t.dump());
  if (r.optional<bool>("mlp_bias", false)) r.refuse("mlp_bias", "is true");
  // Qwen2's q/k/v bias is implemented; attention_bias elsewhere also puts a bias on o_proj.
  if (m.architecture != Architecture::qwen2 && r.optional<bool>("attention_bias", false))
    r.refuse("attention_bias", "is true (bias on q, k, v and o projections)");
  if (r.optional<double>("attention_dropout", 0.0) != 0.0) r.refuse("attention_dropout", "is not 0");

  if (m.architecture == Architecture::qwen3_moe) {
    const json* experts = r.get("num_experts") ? r.get("num_experts") : r.get("num_local_experts");
    TESSERA_CHECK(experts != nullptr && experts->is_number_integer(), "{}: missing \"num_experts\"", source);
    m.num_experts = experts->get<int>();
    m.num_experts_per_tok = r.required<int>("num_experts_per_tok");
    m.moe_ffn_hidden_size = r.required<int64_t>("moe_intermediate_size");
    m.norm_topk_prob = r.optional<bool>("norm_topk_prob", false);
    m.router_aux_loss_coef = r.optional<double>("router_aux_loss_coef", 0.001);
    if (r.optional<int>("decoder_sparse_step", 1) != 1) r.refuse("decoder_sparse_step", "is not 1 (some dense layers)");
    if (const json* dense = r.get("mlp_only_layers"); dense != nullptr && !dense->empty())
      r.refuse("mlp_only_layers", "lists dense layers");
    if (r.optional<double>("router_jitter_noise", 0.0) != 0.0) r.refuse("router_jitter_noise", "is not 0");
  }

  static const std::set<std::string, std::less<>> kRead = {
      "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
      "intermediate_size", "max_position_embeddings", "rms_norm_eps", "tie_word_embeddings", "num_experts_per_tok",
      "moe_intermediate_size", "norm_topk_prob", "router_aux_loss_coef"};
  for (const auto& [key, value] : j.items())
    if (!kRead.contains(key) && !kHarmless.contains(key) && !value.is_null())
      TESSERA_FAIL("{}: unknown field \"{}\" — tessera cannot tell whether it changes the model, so it refuses it",
                   source, key);
  return m;
}

ModelConfig read_hf_config(const std::string& dir) {
  const std::string path = fs::is_directory(dir) ? (fs::path(dir) / "config.json").string() : dir;
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {  // parse_error, and out_of_range for numbers too large
    TESSERA_FAIL("{}: not valid JSON: {}", path, e.what());
  }
  return model_config_from_hf(j, path);
}

json hf_config_from_model(const ModelConfig& m) {
  const ArchInfo* arch = nullptr;
  for (const auto& a : kArchs)
    if (a.arch == m.architecture) arch = &a;
  TESSERA_CHECK(arch != nullptr, "model {}: no Hugging Face architecture", m.name);
  json j = {{"architectures", {arch->class_name}},
            {"model_type", arch->model_type},
            {"vocab_size", m.vocab_size},
            {"hidden_size", m.hidden_size},
            {"num_hidden_layers", m.num_layers},
            {"num_attention_heads", m.num_attention_heads},
            {"num_key_value_heads", m.num_kv_heads},
            {"head_dim", m.resolved_head_dim()},
            {"intermediate_size", m.ffn_hidden_size},
            {"max_position_embeddings", m.max_position_embeddings},
            {"rms_norm_eps", m.rms_norm_eps},
            {"rope_theta", m.rope_theta},
            {"rope_scaling", nullptr},
            {"tie_word_embeddings", m.tie_embeddings},
            {"hidden_act", "silu"},
            {"attention_dropout", 0.0},
            {"torch_dtype", "float32"},
            {"use_cache", true}};
  // Qwen2's q/k/v bias is part of the architecture (hard-wired in transformers), not a config field.
  if (m.architecture == Architecture::qwen2 || m.architecture == Architecture::qwen3 ||
      m.architecture == Architecture::qwen3_moe)
    j["use_sliding_window"] = false;
  if (m.architecture == Architecture::qwen3 || m.architecture == Architecture::qwen3_moe ||
      m.architecture == Architecture::llama)
    j["attention_bias"] = false;
  if (m.architecture == Architecture::llama) j["mlp_bias"] = false;
  if (m.is_moe()) {
    j["num_experts"] = m.num_experts;
    j["num_experts_per_tok"] = m.num_experts_per_tok;
    j["moe_intermediate_size"] = m.moe_ffn_hidden_size;
    j["norm_topk_prob"] = m.norm_topk_prob;
    j["router_aux_loss_coef"] = m.router_aux_loss_coef;
    j["decoder_sparse_step"] = 1;
    j["mlp_only_layers"] = json::array();
  }
  return j;
}

void load_hf_weights(const std::string& dir, model::ParameterStore& store,
                     const std::vector<model::ParameterSpec>* model_specs) {
  const HfTensorDir files = HfTensorDir::open(dir);
  std::set<std::string, std::less<>> expected;
  if (model_specs)
    for (const model::ParameterSpec& spec : *model_specs) expected.insert(spec.hf_name);
  for (size_t i = 0; i < store.size(); ++i) {
    const model::ParameterSpec& spec = store.spec(i);
    expected.insert(spec.hf_name);
    TESSERA_CHECK(files.contains(spec.hf_name), "{}: tensor {} is missing (the config needs it)", dir, spec.hf_name);
    const TensorInfo& info = files.info(spec.hf_name);
    TESSERA_CHECK(info.shape == spec.shape, "{}: tensor {} has shape [{}], the config needs [{}]", dir, spec.hf_name,
                  fmt::join(info.shape, ", "), fmt::join(spec.shape, ", "));
    TESSERA_CHECK(info.dtype == DType::f32 || info.dtype == DType::bf16 || info.dtype == DType::f16,
                  "{}: tensor {} is stored as {}, not a floating-point weight type", dir, spec.hf_name,
                  dtype_name(info.dtype));
    files.read_f32_into(spec.hf_name, store.value(i));
    store.set_dtype(i, info.dtype);
  }
  for (const auto& name : files.names())
    TESSERA_CHECK(expected.contains(name), "{}: tensor {} is not part of the model the config describes", dir, name);
}

void export_hf_model(const std::string& dir, const ModelConfig& config, const model::ParameterStore& store,
                     std::optional<DType> dtype, uint64_t max_shard_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  TESSERA_CHECK(!ec, "export: cannot create {}: {}", dir, ec.message());
  std::vector<WriteTensor> tensors;
  tensors.reserve(store.size());
  std::map<DType, size_t> counts;
  for (size_t i = 0; i < store.size(); ++i) {
    const DType stored = dtype.value_or(store.spec(i).dtype);
    TESSERA_CHECK(stored == DType::f32 || stored == DType::bf16 || stored == DType::f16,
                  "export: {} would be stored as {}; weights can be F32, BF16 or F16", store.spec(i).hf_name,
                  dtype_name(stored));
    ++counts[stored];
    tensors.push_back(tensor_from_f32(store.spec(i).hf_name, store.spec(i).shape, store.value(i), stored));
  }
  write_hf_tensor_dir(dir, tensors, max_shard_bytes);
  json j = hf_config_from_model(config);
  // torch_dtype names the dtype most tensors are stored in (transformers loads each tensor as stored).
  const DType common = std::max_element(counts.begin(), counts.end(), [](auto& a, auto& b) {
                         return a.second < b.second;
                       })->first;
  j["torch_dtype"] = common == DType::f32 ? "float32" : common == DType::bf16 ? "bfloat16" : "float16";
  const std::string text = j.dump(2) + "\n";
  write_file_atomically((fs::path(dir) / "config.json").string(), [&](std::FILE* f) {
    TESSERA_CHECK(std::fwrite(text.data(), 1, text.size(), f) == text.size(), "export: writing config.json in {} failed",
                  dir);
  });
}

}  // namespace tessera::io
