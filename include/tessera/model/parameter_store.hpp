#pragma once
// The parameter registry: every tensor of a model instance in one contiguous fp32 value buffer and one
// contiguous fp32 gradient buffer (so the optimizer, gradient reduction and checkpoints work on flat
// ranges), each tensor described by its ParameterSpec. A store is per model instance, never global: a
// frozen reference copy of the model (GRPO) is simply a second store.

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tessera/model/parameter_spec.hpp"

namespace tessera::model {

class ParameterStore {
 public:
  explicit ParameterStore(std::vector<ParameterSpec> specs, bool with_grads = true);

  size_t size() const { return specs_.size(); }
  const ParameterSpec& spec(size_t i) const { return specs_.at(i); }
  const std::vector<ParameterSpec>& specs() const { return specs_; }
  // Records the storage dtype a checkpoint gave tensor i (the spec's only field that import may change).
  void set_dtype(size_t i, DType dtype) { specs_.at(i).dtype = dtype; }
  std::optional<size_t> find(std::string_view hf_name) const;
  // The tensor with this role (layer and expert as in the spec; -1 where not applicable), or nullopt.
  std::optional<size_t> find(Role role, int layer = -1, int expert = -1) const;

  std::span<float> value(size_t i) { return {values_.data() + offsets_[i], numel(i)}; }
  std::span<const float> value(size_t i) const { return {values_.data() + offsets_[i], numel(i)}; }
  std::span<float> grad(size_t i) { return {grads_.data() + offsets_[i], grads_.empty() ? 0 : numel(i)}; }
  size_t offset(size_t i) const { return offsets_[i]; }
  size_t numel(size_t i) const { return offsets_[i + 1] - offsets_[i]; }

  std::span<float> values() { return values_; }
  std::span<const float> values() const { return values_; }
  std::span<float> grads() { return grads_; }
  std::span<const float> grads() const { return grads_; }
  bool has_grads() const { return !grads_.empty(); }
  void zero_grads();

 private:
  static uint64_t role_key(Role role, int layer, int expert);

  std::vector<ParameterSpec> specs_;
  std::vector<size_t> offsets_;  // size()+1 entries
  std::vector<float> values_;
  std::vector<float> grads_;
  std::unordered_map<std::string_view, size_t> by_name_;
  std::unordered_map<uint64_t, size_t> by_role_;
};

// Normal(0, init_std) weights from `seed`, ones for norm weights, zeros for biases — the initialisation
// of transformers' Qwen/Llama _init_weights. Deterministic for a given seed and spec list. A store holding
// a contiguous part of the model's tensor list (a pipeline stage) passes the index of its first tensor in
// the whole list, and gets exactly the values the whole model's store has there.
// A tensor-parallel shard gets its part of the whole tensor's values.
void initialize_parameters(ParameterStore& store, double init_std, uint64_t seed, size_t first_index = 0);

// Between a whole tensor (row-major, spec.full_shape()) and the part of it `spec` describes.
void copy_shard(std::span<float> shard, std::span<const float> full, const ParameterSpec& spec);
void place_shard(std::span<float> full, std::span<const float> shard, const ParameterSpec& spec);

}  // namespace tessera::model
