#pragma once
// Sums equal-length gradient vectors in one fixed binary-tree order, whoever computes the pieces: leaf i
// (a microbatch's gradient) always meets the same partners in the same order. A data-parallel rank that
// holds 2^k consecutive leaves adds its partial sum as one node of level k, so the layout of microbatches
// over ranks cannot change a single bit of the total — the basis of tessera's exact equivalence between a
// 1-rank run and any data-parallel layout (float addition is not associative; its order is fixed here).

#include <cstdint>
#include <span>
#include <vector>

namespace tessera::train {

class TreeSum {
 public:
  explicit TreeSum(size_t length);

  // Adds a vector that is the tree sum of 2^level consecutive leaves. Refused when a lower level still
  // holds a partial sum (the node would not sit where the tree puts it).
  void add(std::span<const float> values, int level = 0);
  // Writes the total to `out` and empties the accumulator. Remaining partial sums (a leaf count that is
  // not a power of two) combine earliest first.
  void finish(std::span<float> out);
  bool empty() const;

 private:
  size_t length_;
  std::vector<std::vector<float>> levels_;  // levels_[l] holds a partial sum of 2^l leaves when full_[l]
  std::vector<bool> full_;
  std::vector<float> carry_;
};

// Squared L2 norm as sums of fixed 4096-element blocks (each in double, in order): a buffer split into
// block-aligned shards gives the same per-block values on every rank. The GPU trainer's norm; the CPU
// trainers sum squares exactly instead (square_sum.hpp), which needs no alignment at all.
inline constexpr size_t kNormBlock = 4096;
std::vector<double> block_square_sums(std::span<const float> values);
double sum_in_order(std::span<const double> values);

}  // namespace tessera::train
