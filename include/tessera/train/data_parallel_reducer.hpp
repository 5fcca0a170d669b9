#pragma once
// Gradient summation over a data-parallel group in TreeSum's fixed order (tree_sum.hpp): rank r's partial
// sum of its k = 2^level consecutive microbatches is one level-`level` node of the 1-rank tree, so every
// rank ends with the bits a single process would have computed. Chunk r of every rank's partial goes to
// rank r (all-to-all), which adds them in rank order; all_gather then gives every rank the whole total.
// The buffer is padded to dp chunks of whole 4096-element blocks (the GPU's norm blocks, tree_sum.hpp).

#include <initializer_list>
#include <span>
#include <vector>

#include "tessera/dist/communicator.hpp"
#include "tessera/train/square_sum.hpp"
#include "tessera/train/tree_sum.hpp"

namespace tessera::train {

class DataParallelReducer {
 public:
  DataParallelReducer(dist::Communicator& dp, size_t length);

  // This rank's chunk of the total of every rank's `partial` (length values, each a level-`level` node).
  std::span<float> reduce_scatter(std::span<const float> partial, int level);
  // ZeRO-2: sends chunk r of `full` to rank r and returns what arrived, every rank's version of this
  // rank's chunk, in rank order (size() chunks of chunk_size()).
  std::span<const float> exchange(std::span<const float> full);
  // The whole buffer assembled from every rank's `chunk` (chunk_size() values each); the first
  // length() values are the model's.
  std::span<const float> all_gather(std::span<const float> chunk);

  size_t length() const { return length_; }
  size_t chunk_size() const { return chunk_; }
  size_t chunk_begin() const { return chunk_ * static_cast<size_t>(dp_.rank()); }

 private:
  dist::Communicator& dp_;
  size_t length_, padded_, chunk_;
  TreeSum rank_sum_;
  std::vector<float> send_, received_, shard_, gathered_;
  std::vector<int64_t> counts_;
};

// The tree level of k consecutive microbatches: log2(k) when k is a power of two. Otherwise 0, and the sum
// is correct but equal to the 1-rank run only up to rounding.
int tree_level(int64_t k);

// The exact sum (square_sum.hpp) of every rank's `mine` over the groups in turn (null entries and groups
// of one skipped): for groups that together cover the ranks once each, the sum over all of them, identical
// on every rank.
SquareSum sum_over(std::initializer_list<dist::Communicator*> groups, const SquareSum& mine);

// Every rank's doubles in rank order, exactly (sent as their bit patterns): losses and norm pieces that
// must be added in a fixed order on every rank.
std::vector<double> all_gather_doubles(dist::Communicator& comm, std::span<const double> local);

}  // namespace tessera::train
