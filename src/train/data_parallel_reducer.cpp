#include "tessera/train/data_parallel_reducer.hpp"

#include <algorithm>
#include <bit>
#include <cstring>

#include "tessera/core/error.hpp"

namespace tessera::train {
namespace {

size_t padded_length(size_t n, int dp) {
  const size_t unit = kNormBlock * static_cast<size_t>(dp);
  return (n + unit - 1) / unit * unit;
}

}  // namespace

DataParallelReducer::DataParallelReducer(dist::Communicator& dp, size_t length)
    : dp_(dp), length_(length), padded_(padded_length(length, dp.size())),
      chunk_(padded_ / static_cast<size_t>(dp.size())), rank_sum_(chunk_), send_(padded_, 0.0f), received_(padded_),
      shard_(chunk_), gathered_(padded_), counts_(static_cast<size_t>(dp.size()), static_cast<int64_t>(chunk_)) {}

std::span<const float> DataParallelReducer::exchange(std::span<const float> full) {
  TESSERA_CHECK(full.size() == length_, "data-parallel exchange of {} values given {}", length_, full.size());
  std::copy(full.begin(), full.end(), send_.begin());
  dp_.all_to_all_v(send_, counts_, received_, counts_)->wait();
  return received_;
}

std::span<float> DataParallelReducer::reduce_scatter(std::span<const float> partial, int level) {
  exchange(partial);
  for (int r = 0; r < dp_.size(); ++r)
    rank_sum_.add(std::span<const float>(received_).subspan(static_cast<size_t>(r) * chunk_, chunk_), level);
  rank_sum_.finish(shard_);
  return shard_;
}

std::span<const float> DataParallelReducer::all_gather(std::span<const float> chunk) {
  TESSERA_CHECK(chunk.size() == chunk_, "all-gather of chunks of {} given {}", chunk_, chunk.size());
  dp_.all_gather(chunk, gathered_)->wait();
  return gathered_;
}

// All ranks' doubles in rank order, exactly (sent as their bit patterns).
std::vector<double> all_gather_doubles(dist::Communicator& comm, std::span<const double> local) {
  std::vector<int64_t> bits(local.size()), all(local.size() * static_cast<size_t>(comm.size()));
  std::memcpy(bits.data(), local.data(), local.size() * sizeof(double));
  comm.all_gather(std::span<const int64_t>(bits), std::span<int64_t>(all))->wait();
  std::vector<double> out(all.size());
  std::memcpy(out.data(), all.data(), all.size() * sizeof(double));
  return out;
}

SquareSum sum_over(std::initializer_list<dist::Communicator*> groups, const SquareSum& mine) {
  SquareSum::Wire wire = mine.wire();
  for (dist::Communicator* g : groups)
    if (g != nullptr && g->size() > 1) g->all_reduce(std::span<int64_t>(wire), dist::ReduceOp::sum)->wait();
  return SquareSum::from_wire(wire);
}

int tree_level(int64_t k) {
  return std::has_single_bit(static_cast<uint64_t>(k)) ? std::countr_zero(static_cast<uint64_t>(k)) : 0;
}

}  // namespace tessera::train
