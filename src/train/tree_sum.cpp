#include "tessera/train/tree_sum.hpp"

#include <algorithm>

#include "tessera/core/error.hpp"

namespace tessera::train {

TreeSum::TreeSum(size_t length) : length_(length), carry_(length) {}

void TreeSum::add(std::span<const float> values, int level) {
  TESSERA_CHECK(values.size() == length_, "tree sum of length {} given {} values", length_, values.size());
  TESSERA_CHECK(level >= 0, "tree sum level {} is negative", level);
  for (int l = 0; l < level && l < static_cast<int>(full_.size()); ++l)
    TESSERA_CHECK(!full_[static_cast<size_t>(l)], "tree sum: a level-{} node cannot follow an open level-{} sum",
                  level, l);
  std::copy(values.begin(), values.end(), carry_.begin());
  for (auto l = static_cast<size_t>(level);; ++l) {
    if (levels_.size() <= l) {
      levels_.resize(l + 1);
      full_.resize(l + 1, false);
    }
    if (!full_[l]) {
      levels_[l].resize(length_);
      std::swap(levels_[l], carry_);
      carry_.resize(length_);
      full_[l] = true;
      return;
    }
    // The earlier partial sum is the left operand: order, not just grouping, is fixed.
    const float* left = levels_[l].data();
    float* right = carry_.data();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < length_; ++i) right[i] = left[i] + right[i];
    full_[l] = false;
  }
}

void TreeSum::finish(std::span<float> out) {
  TESSERA_CHECK(out.size() == length_, "tree sum of length {} written to {} values", length_, out.size());
  bool first = true;
  for (size_t l = levels_.size(); l-- > 0;) {
    if (!full_[l]) continue;
    const float* part = levels_[l].data();
    if (first) {
      std::copy(part, part + length_, out.begin());
      first = false;
    } else {
      for (size_t i = 0; i < length_; ++i) out[i] = out[i] + part[i];
    }
    full_[l] = false;
  }
  if (first) std::fill(out.begin(), out.end(), 0.0f);
}

bool TreeSum::empty() const { return std::none_of(full_.begin(), full_.end(), [](bool f) { return f; }); }

std::vector<double> block_square_sums(std::span<const float> values) {
  std::vector<double> sums((values.size() + kNormBlock - 1) / kNormBlock, 0.0);
#pragma omp parallel for schedule(static)
  for (size_t b = 0; b < sums.size(); ++b) {
    double s = 0;
    const size_t end = std::min(values.size(), (b + 1) * kNormBlock);
    for (size_t i = b * kNormBlock; i < end; ++i) s += static_cast<double>(values[i]) * values[i];
    sums[b] = s;
  }
  return sums;
}

double sum_in_order(std::span<const double> values) {
  double s = 0;
  for (const double v : values) s += v;
  return s;
}

}  // namespace tessera::train
