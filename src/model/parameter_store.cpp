#include "tessera/model/parameter_store.hpp"

#include <algorithm>
#include <random>

#include "tessera/core/error.hpp"

namespace tessera::model {

ParameterStore::ParameterStore(std::vector<ParameterSpec> specs, bool with_grads) : specs_(std::move(specs)) {
  offsets_.reserve(specs_.size() + 1);
  offsets_.push_back(0);
  for (const auto& s : specs_) offsets_.push_back(offsets_.back() + static_cast<size_t>(s.numel()));
  values_.assign(offsets_.back(), 0.0f);
  if (with_grads) grads_.assign(offsets_.back(), 0.0f);
  for (size_t i = 0; i < specs_.size(); ++i) {
    TESSERA_CHECK(by_name_.emplace(specs_[i].hf_name, i).second, "parameter {} is listed twice", specs_[i].hf_name);
    by_role_.emplace(role_key(specs_[i].role, specs_[i].layer, specs_[i].expert), i);
  }
}

uint64_t ParameterStore::role_key(Role role, int layer, int expert) {
  return (static_cast<uint64_t>(role) << 48) | (static_cast<uint64_t>(layer + 1) << 24) |
         static_cast<uint64_t>(expert + 1);
}

std::optional<size_t> ParameterStore::find(std::string_view hf_name) const {
  const auto it = by_name_.find(hf_name);
  return it == by_name_.end() ? std::nullopt : std::optional<size_t>(it->second);
}

std::optional<size_t> ParameterStore::find(Role role, int layer, int expert) const {
  const auto it = by_role_.find(role_key(role, layer, expert));
  return it == by_role_.end() ? std::nullopt : std::optional<size_t>(it->second);
}

void ParameterStore::zero_grads() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

void initialize_parameters(ParameterStore& store, double init_std, uint64_t seed, size_t first_index) {
  // One stream per tensor, seeded from (seed, index): a tensor's values do not depend on how many values
  // the tensors before it drew, so adding a tensor type later does not reshuffle the others.
  for (size_t i = 0; i < store.size(); ++i) {
    const ParameterSpec& spec = store.spec(i);
    auto values = store.value(i);
    const bool is_norm = spec.role == Role::input_norm || spec.role == Role::post_attention_norm ||
                         spec.role == Role::q_norm || spec.role == Role::k_norm || spec.role == Role::final_norm;
    const bool is_bias = spec.role == Role::q_bias || spec.role == Role::k_bias || spec.role == Role::v_bias;
    if (is_norm || is_bias) {
      std::fill(values.begin(), values.end(), is_norm ? 1.0f : 0.0f);
      continue;
    }
    const size_t index = spec.index >= 0 ? static_cast<size_t>(spec.index) : first_index + i;
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(index)};
    std::mt19937_64 rng(seq);
    std::normal_distribution<double> normal(0.0, init_std);
    if (!spec.is_sharded()) {
      for (float& v : values) v = static_cast<float>(normal(rng));
      continue;
    }
    // A tensor-parallel shard draws the whole tensor's stream and keeps its part, so every layout starts
    // from the 1-rank weights.
    const std::vector<int64_t> full = spec.full_shape();
    const int64_t rows = full[0], cols = full.size() > 1 ? full[1] : 1;
    const Shard& sh = spec.shard;
    size_t at = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const auto v = static_cast<float>(normal(rng));
        const int64_t index = sh.dim == 0 ? r : c;
        if (index >= sh.begin && index < sh.begin + sh.count) values[at++] = v;
      }
  }
}

namespace {

// Calls run(full_at, shard_at, count) for each contiguous run of `spec`'s part of its whole tensor
// (row-major): one run for a row split or a whole tensor, one per row for a column split.
template <class Run>
void for_each_shard_run(const ParameterSpec& spec, size_t full_size, size_t shard_size, Run&& run) {
  const std::vector<int64_t> shape = spec.full_shape();
  const int64_t rows = shape[0], cols = shape.size() > 1 ? shape[1] : 1;
  TESSERA_CHECK(static_cast<int64_t>(full_size) == rows * cols && shard_size == static_cast<size_t>(spec.numel()),
                "{}: {} values for a tensor of {}, {} for its shard of {}", spec.hf_name, full_size, rows * cols,
                shard_size, spec.numel());
  const Shard& sh = spec.shard;
  if (!spec.is_sharded()) return run(0, 0, rows * cols);
  if (sh.dim == 0) return run(sh.begin * cols, 0, sh.count * cols);
  for (int64_t r = 0; r < rows; ++r) run(r * cols + sh.begin, r * sh.count, sh.count);
}

}  // namespace

void copy_shard(std::span<float> shard, std::span<const float> full, const ParameterSpec& spec) {
  for_each_shard_run(spec, full.size(), shard.size(), [&](int64_t full_at, int64_t shard_at, int64_t n) {
    std::copy_n(full.begin() + full_at, n, shard.begin() + shard_at);
  });
}

void place_shard(std::span<float> full, std::span<const float> shard, const ParameterSpec& spec) {
  for_each_shard_run(spec, full.size(), shard.size(), [&](int64_t full_at, int64_t shard_at, int64_t n) {
    std::copy_n(shard.begin() + shard_at, n, full.begin() + full_at);
  });
}

}  // namespace tessera::model
