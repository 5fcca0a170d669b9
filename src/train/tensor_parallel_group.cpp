#include "tessera/train/tensor_parallel_group.hpp"

#include <cstring>

#include "tessera/core/error.hpp"

namespace tessera::train {

void TensorParallelGroup::sum(std::span<float> data) { tp_.all_reduce(data, dist::ReduceOp::sum)->wait(); }
void TensorParallelGroup::max(std::span<float> data) { tp_.all_reduce(data, dist::ReduceOp::max)->wait(); }

void TensorParallelGroup::all_gather(std::span<float> data) {
  const size_t chunk = data.size() / static_cast<size_t>(tp_.size());
  tp_.all_gather(data.subspan(chunk * static_cast<size_t>(tp_.rank()), chunk), data)->wait();
}

void TensorParallelGroup::reduce_scatter(std::span<const float> input, std::span<float> output) {
  tp_.reduce_scatter(input, output, dist::ReduceOp::sum)->wait();
}

void TensorParallelGroup::sum(std::span<double> data) {
  // Gathered as bit patterns and added in rank order: the same bits on every rank, whatever MPI's algorithm.
  const size_t n = data.size();
  bits_.resize(n);
  gathered_.resize(n * static_cast<size_t>(tp_.size()));
  std::memcpy(bits_.data(), data.data(), n * sizeof(double));
  tp_.all_gather(std::span<const std::int64_t>(bits_), std::span<std::int64_t>(gathered_))->wait();
  for (size_t i = 0; i < n; ++i) {
    double total = 0;
    for (int r = 0; r < tp_.size(); ++r) {
      double v;
      std::memcpy(&v, &gathered_[static_cast<size_t>(r) * n + i], sizeof(double));
      total += v;
    }
    data[i] = total;
  }
}

namespace {

bool is_qk_norm(const model::ParameterSpec& s) {
  return s.role == model::Role::q_norm || s.role == model::Role::k_norm;
}
// k/v tensors that several ranks hold the same part of (tp > kv heads).
bool is_shared_kv(const model::ParameterSpec& s, const ModelConfig& m, int tp) {
  return s.split == model::Split::kv_column && tp > m.num_kv_heads;
}

}  // namespace

void reduce_partial_gradients(model::ParameterStore& store, const ModelConfig& m, TensorParallelGroup& tp,
                              bool sequence_parallel) {
  if (tp.size() == 1) return;
  std::vector<float> whole;
  for (size_t i = 0; i < store.size(); ++i) {
    const model::ParameterSpec& spec = store.spec(i);
    const bool token_norm = spec.role == model::Role::input_norm || spec.role == model::Role::post_attention_norm ||
                            spec.role == model::Role::final_norm;
    if (is_qk_norm(spec) || (sequence_parallel && token_norm)) {
      tp.sum(store.grad(i));
    } else if (is_shared_kv(spec, m, tp.size())) {
      // Each rank places its part in a whole-tensor buffer; the sum adds the ranks that share a kv head.
      const std::vector<int64_t> shape = spec.full_shape();
      whole.assign(static_cast<size_t>(shape[0] * (shape.size() > 1 ? shape[1] : 1)), 0.0f);
      model::place_shard(whole, store.grad(i), spec);
      tp.sum(whole);
      model::copy_shard(store.grad(i), whole, spec);
    }
  }
}

bool counts_for_norm(const model::ParameterSpec& spec, const ModelConfig& m, int tp_rank, int tp_size) {
  if (tp_size == 1) return true;
  if (!spec.is_sharded()) return tp_rank == 0;
  return !is_shared_kv(spec, m, tp_size) || tp_rank % (tp_size / m.num_kv_heads) == 0;
}

std::vector<float> gather_whole(const model::ParameterStore& store, const ModelConfig& m, TensorParallelGroup& tp,
                                std::span<const float> values) {
  TESSERA_CHECK(values.size() == store.values().size(), "{} values to gather for a store of {}", values.size(),
                store.values().size());
  std::vector<float> out, gathered;
  for (size_t i = 0; i < store.size(); ++i) {
    const model::ParameterSpec& spec = store.spec(i);
    const std::span<const float> local = values.subspan(store.offset(i), store.numel(i));
    if (!spec.is_sharded()) {
      out.insert(out.end(), local.begin(), local.end());
      continue;
    }
    // Every rank's part has the same length (tp divides what it splits); place each where its shard says.
    gathered.resize(local.size() * static_cast<size_t>(tp.size()));
    tp.communicator().all_gather(local, gathered)->wait();
    model::ParameterSpec whole_spec = spec;
    whole_spec.shape = spec.full_shape();
    whole_spec.shard = {};
    const size_t at = out.size();
    out.resize(at + static_cast<size_t>(whole_spec.numel()));
    for (int r = 0; r < tp.size(); ++r) {
      model::ParameterSpec part = spec;
      part.shard = model::tensor_parallel_shard(whole_spec, m, r, tp.size());
      model::place_shard(std::span<float>(out).subspan(at, static_cast<size_t>(whole_spec.numel())),
                         std::span<const float>(gathered).subspan(static_cast<size_t>(r) * local.size(), local.size()),
                         part);
    }
  }
  return out;
}

}  // namespace tessera::train
