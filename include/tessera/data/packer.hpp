#pragma once
// Packing: which samples share a row of seq_length tokens. A pure function of the sample lengths, so the
// same input always gives the same plan (and a plan can be recomputed, compared and tested without data).
//
// best_fit_decreasing: samples sorted by length, longest first (stable: equal lengths keep input order),
// each put into the fullest open row it still fits, else into a new row. Remaining capacities are integers
// in [1, seq_length], so "fullest row that fits" is "smallest capacity >= length": a bucket of rows per
// capacity plus a two-level bitset of non-empty buckets answers it in a few word scans, and a counting
// sort orders the lengths; the whole plan is O(n + rows + seq_length). Ties between rows of equal
// remaining capacity go to the row that most recently reached that capacity.
// greedy: next-fit in input order (the baseline: a row is closed as soon as a sample does not fit).
//
// Samples are never split. A sample longer than seq_length is truncated to fit a row (OverlongPolicy::
// truncate) or left out (drop); both are counted. Empty samples are left out and counted.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "tessera/data/sample.hpp"

namespace tessera::data {

enum class PackPolicy { best_fit_decreasing, greedy };
enum class OverlongPolicy { truncate, drop };

std::string_view to_string(PackPolicy policy);
std::string_view to_string(OverlongPolicy policy);
PackPolicy pack_policy_from_string(std::string_view text);          // throws naming the accepted values
OverlongPolicy overlong_policy_from_string(std::string_view text);  // throws naming the accepted values

struct PackReport {
  int64_t samples = 0;      // input samples
  int64_t rows = 0;
  int64_t real_tokens = 0;  // tokens placed (after truncation)
  int64_t slots = 0;        // rows * seq_length
  int64_t truncated = 0;    // overlong samples cut to fit (OverlongPolicy::truncate)
  int64_t dropped = 0;      // overlong samples left out (drop, or nothing left after a vision-safe cut)
  int64_t empty = 0;        // zero-length samples left out
  double fill() const { return slots == 0 ? 0.0 : static_cast<double>(real_tokens) / static_cast<double>(slots); }
};

struct PackPlan {
  std::vector<std::vector<int64_t>> rows;  // sample indices per row, in placement order
  std::vector<int64_t> kept_lengths;       // per input sample: tokens it keeps (0 = left out)
  int64_t seq_length = 0;
  PackPolicy policy = PackPolicy::best_fit_decreasing;
  OverlongPolicy overlong = OverlongPolicy::truncate;
  PackReport report;
};

// Lengths only: an overlong sample truncated keeps exactly seq_length tokens.
PackPlan plan_packing(std::span<const int64_t> lengths, int64_t seq_length, PackPolicy policy,
                      OverlongPolicy overlong);

// From samples (each validated): an overlong sample truncated keeps truncation_length(sample, seq_length)
// tokens, so no image or video is cut in half; if that leaves nothing, it is dropped.
PackPlan plan_packing(std::span<const Sample> samples, int64_t seq_length, PackPolicy policy,
                      OverlongPolicy overlong);

}  // namespace tessera::data
