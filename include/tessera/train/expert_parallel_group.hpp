#pragma once
// The model's expert-parallel exchanges (model/expert_parallel.hpp) over the training layer's ep
// communicator.

#include "tessera/dist/communicator.hpp"
#include "tessera/model/expert_parallel.hpp"

namespace tessera::train {

class ExpertParallelGroup final : public model::ExpertParallel {
 public:
  explicit ExpertParallelGroup(dist::Communicator& ep) : ep_(ep) {}
  int rank() const override { return ep_.rank(); }
  int size() const override { return ep_.size(); }
  dist::Communicator& communicator() { return ep_; }
  void all_to_all_v(std::span<const float> input, std::span<const int64_t> send_counts, std::span<float> output,
                    std::span<const int64_t> recv_counts) override {
    ep_.all_to_all_v(input, send_counts, output, recv_counts)->wait();
  }
  void all_to_all_v(std::span<const int64_t> input, std::span<const int64_t> send_counts, std::span<int64_t> output,
                    std::span<const int64_t> recv_counts) override {
    ep_.all_to_all_v(input, send_counts, output, recv_counts)->wait();
  }

 private:
  dist::Communicator& ep_;
};

}  // namespace tessera::train
