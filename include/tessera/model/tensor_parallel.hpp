#pragma once
// What the model needs from its tensor-parallel group, and nothing more: the reductions Megatron's
// column/row-parallel layers and vocabulary-parallel loss perform. The model calls these and never MPI or
// NCCL; the training layer implements them over its tp communicator (train/tensor_parallel_group.hpp).
// Every rank of the group calls the same reductions in the same order with equal lengths, and every rank
// ends with the same bits.

#include <cstdint>
#include <span>

namespace tessera::model {

// Sequence parallelism splits a microbatch's N token rows in order into chunks of ⌈N/size⌉ (packed rows are
// not padded, so N need not divide): rank `rank`'s first row and row count.
inline int64_t sequence_parallel_first_row(int64_t N, int rank, int size) {
  const int64_t chunk = (N + size - 1) / size;
  return chunk * rank < N ? chunk * rank : N;
}
inline int64_t sequence_parallel_rows(int64_t N, int rank, int size) {
  const int64_t chunk = (N + size - 1) / size, first = sequence_parallel_first_row(N, rank, size);
  return chunk < N - first ? chunk : N - first;
}

class TensorParallel {
 public:
  virtual ~TensorParallel() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place, element-wise over the group.
  virtual void sum(std::span<float> data) = 0;
  virtual void max(std::span<float> data) = 0;
  // Doubles are added in rank order, so the result does not depend on the collective's algorithm.
  virtual void sum(std::span<double> data) = 0;
  // Sequence parallelism. `data` is size() equal chunks, this rank's chunk (number rank()) filled: every
  // rank ends with all of them.
  virtual void all_gather(std::span<float> data) = 0;
  // `input` is size() equal chunks; `output` (one chunk) receives the sum over ranks of chunk rank().
  virtual void reduce_scatter(std::span<const float> input, std::span<float> output) = 0;
};

}  // namespace tessera::model
