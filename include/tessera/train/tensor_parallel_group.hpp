#pragma once
// The training layer's side of tensor parallelism: the model's reductions (model/tensor_parallel.hpp)
// over a tp communicator, and the per-step work on a store of shards that the model does not do — summing
// the gradients of tensors whose partial gradients sit on several ranks, the global gradient norm, and
// gathering whole tensors for comparison and export.

#include <span>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/dist/communicator.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/model/tensor_parallel.hpp"

namespace tessera::train {

class TensorParallelGroup final : public model::TensorParallel {
 public:
  explicit TensorParallelGroup(dist::Communicator& tp) : tp_(tp) {}
  int rank() const override { return tp_.rank(); }
  int size() const override { return tp_.size(); }
  void sum(std::span<float> data) override;
  void max(std::span<float> data) override;
  void sum(std::span<double> data) override;
  void all_gather(std::span<float> data) override;
  void reduce_scatter(std::span<const float> input, std::span<float> output) override;
  dist::Communicator& communicator() { return tp_; }

 private:
  dist::Communicator& tp_;
  std::vector<std::int64_t> bits_, gathered_;
};

// Sums over the group the gradients that each rank holds only part of: the QK-norm weights (each rank
// normalises its own heads with the shared weight), under sequence parallelism the other norm weights
// (each rank normalises its own tokens), and, when tp exceeds the kv heads, the k/v projections that
// tp / kv_heads ranks share. Every other gradient is already complete on its rank.
void reduce_partial_gradients(model::ParameterStore& store, const ModelConfig& model, TensorParallelGroup& tp,
                              bool sequence_parallel);

// Whether tp rank `tp_rank` counts `spec`'s values in the gradient norm, so that each value of the whole
// model is counted once in the group: tensors every tp rank holds whole by tp rank 0, kv tensors shared by
// several ranks by the first of them, shards by their holder.
bool counts_for_norm(const model::ParameterSpec& spec, const ModelConfig& model, int tp_rank, int tp_size);

// `values` (laid out like the store's values: its weights, gradients or optimizer moments), each tensor
// whole, in the store's tensor order: the 1-rank flat layout of the same tensors. Collective over the group.
std::vector<float> gather_whole(const model::ParameterStore& store, const ModelConfig& model, TensorParallelGroup& tp,
                                std::span<const float> values);

}  // namespace tessera::train
