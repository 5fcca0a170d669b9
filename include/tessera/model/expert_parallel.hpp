#pragma once
// What an MoE layer needs from its expert-parallel group: the all-to-all that dispatches each token's
// routed copies to the rank holding the expert and brings the results back (Megatron's all-to-all token
// dispatcher). Rank r of `size()` holds experts [r·E/size, (r+1)·E/size). The model calls this, never MPI
// or NCCL; the training layer implements it over its ep communicator (train/expert_parallel_group.hpp).
// Every rank of the group runs the same layers in the same order, so the exchanges pair up.

#include <cstdint>
#include <span>

namespace tessera::model {

class ExpertParallel {
 public:
  virtual ~ExpertParallel() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // `input` holds send_counts[p] values for each peer p in rank order; `output` receives recv_counts[p]
  // from each peer p the same way.
  virtual void all_to_all_v(std::span<const float> input, std::span<const int64_t> send_counts, std::span<float> output,
                            std::span<const int64_t> recv_counts) = 0;
  virtual void all_to_all_v(std::span<const int64_t> input, std::span<const int64_t> send_counts,
                            std::span<int64_t> output, std::span<const int64_t> recv_counts) = 0;
};

}  // namespace tessera::model
