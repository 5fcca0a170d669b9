#pragma once
// Hugging Face model directories in and out: config.json <-> ModelConfig for the Qwen3, Qwen3-MoE, Qwen2 and
// Llama architectures, and the safetensors weights <-> a ParameterStore. Import is strict: a missing or
// extra tensor, a wrong shape, an unknown architecture, or a config field that changes the math and is not
// implemented (rope scaling, sliding window, o_proj bias, mixed dense/MoE layers, …) is an error naming the
// tensor or field. Nothing is silently ignored.

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "tessera/core/config.hpp"
#include "tessera/core/dtype.hpp"
#include "tessera/model/parameter_store.hpp"

namespace tessera::io {

// Reads <dir>/config.json (or a config.json path) into a ModelConfig; `name` becomes the model name.
ModelConfig read_hf_config(const std::string& dir);
ModelConfig model_config_from_hf(const nlohmann::json& config, const std::string& source);

// The config.json transformers writes for this model (classic key spelling, which transformers 4.x and
// 5.x both read).
nlohmann::json hf_config_from_model(const ModelConfig& config);

// Loads every tensor of store.specs() from the directory's safetensors (single or sharded), converting
// bf16/f16 to fp32 and recording each tensor's stored dtype in its spec; refuses missing, extra or
// mis-shaped tensors by name. A store holding part of the model (a pipeline stage) passes the whole
// model's specs as `model_specs`: tensors of the model outside the store are then skipped, not refused.
void load_hf_weights(const std::string& dir, model::ParameterStore& store,
                     const std::vector<model::ParameterSpec>* model_specs = nullptr);

// Writes config.json and the weights in shards of at most max_shard_bytes, with
// model.safetensors.index.json when sharded; the directory is created if needed. Each tensor is stored as
// `dtype` (F32, BF16 or F16) or, without one, as its spec's dtype.
void export_hf_model(const std::string& dir, const ModelConfig& config, const model::ParameterStore& store,
                     std::optional<DType> dtype = std::nullopt, uint64_t max_shard_bytes = 5'000'000'000ULL);

}  // namespace tessera::io
