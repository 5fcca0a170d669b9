#include "tessera/data/packer.hpp"

#include <bit>
#include <limits>

#include "tessera/core/error.hpp"

namespace tessera::data {

namespace {

// The set of remaining capacities (1..max) that at least one open row has, as a two-level bitset: one bit
// per capacity, and one summary bit per non-zero word, so "smallest capacity >= n" is a couple of
// count-trailing-zeros plus a scan of max/4096 summary words (one word for seq_length 4096).
class CapacitySet {
 public:
  explicit CapacitySet(int64_t max_capacity)
      : words_(static_cast<size_t>(max_capacity / 64 + 1), 0),
        summary_(words_.size() / 64 + 1, 0) {}

  void insert(int64_t capacity) {
    const auto c = static_cast<uint64_t>(capacity);
    words_[c >> 6] |= uint64_t{1} << (c & 63);
    summary_[c >> 12] |= uint64_t{1} << ((c >> 6) & 63);
  }

  void erase(int64_t capacity) {
    const auto c = static_cast<uint64_t>(capacity);
    words_[c >> 6] &= ~(uint64_t{1} << (c & 63));
    if (words_[c >> 6] == 0) summary_[c >> 12] &= ~(uint64_t{1} << ((c >> 6) & 63));
  }

  // Smallest capacity in the set that is >= `at_least`, or -1.
  int64_t find_at_least(int64_t at_least) const {
    const auto from = static_cast<uint64_t>(at_least);
    uint64_t word = from >> 6;
    if (word >= words_.size()) return -1;
    const uint64_t here = words_[word] & (~uint64_t{0} << (from & 63));
    if (here != 0) return static_cast<int64_t>((word << 6) + static_cast<uint64_t>(std::countr_zero(here)));
    ++word;  // the next non-empty word, found through the summary
    uint64_t s = word >> 6;
    if (s >= summary_.size()) return -1;
    uint64_t bits = summary_[s] & (~uint64_t{0} << (word & 63));
    while (bits == 0) {
      if (++s >= summary_.size()) return -1;
      bits = summary_[s];
    }
    const uint64_t w = (s << 6) + static_cast<uint64_t>(std::countr_zero(bits));
    return static_cast<int64_t>((w << 6) + static_cast<uint64_t>(std::countr_zero(words_[w])));
  }

 private:
  std::vector<uint64_t> words_;
  std::vector<uint64_t> summary_;
};

// Sample indices of the kept samples, longest first; equal lengths keep input order (a stable counting
// sort: lengths are bounded by seq_length, so this is O(n + seq_length) and needs no comparisons).
std::vector<int64_t> longest_first(std::span<const int64_t> kept, int64_t seq_length) {
  std::vector<int64_t> start(static_cast<size_t>(seq_length) + 2, 0);
  for (int64_t len : kept)
    if (len > 0) ++start[static_cast<size_t>(seq_length - len + 1)];  // bucket 1 = longest
  for (size_t b = 1; b < start.size(); ++b) start[b] += start[b - 1];
  std::vector<int64_t> order(static_cast<size_t>(start.back()));
  for (size_t i = 0; i < kept.size(); ++i)
    if (kept[i] > 0) order[static_cast<size_t>(start[static_cast<size_t>(seq_length - kept[i])]++)] = static_cast<int64_t>(i);
  return order;
}

void pack_best_fit_decreasing(PackPlan& plan) {
  const int64_t seq = plan.seq_length;
  const std::vector<int64_t> order = longest_first(plan.kept_lengths, seq);
  // Open rows by remaining capacity: head[c] is the last row to reach capacity c, next_in_bucket links
  // the others (an intrusive stack per capacity: O(1) push and pop, no allocation per bucket).
  std::vector<int64_t> head(static_cast<size_t>(seq) + 1, -1);
  std::vector<int64_t> next_in_bucket;
  CapacitySet capacities(seq);
  for (int64_t sample : order) {
    const int64_t len = plan.kept_lengths[static_cast<size_t>(sample)];
    const int64_t capacity = capacities.find_at_least(len);
    int64_t row = 0;
    int64_t left = 0;
    if (capacity < 0) {
      row = static_cast<int64_t>(plan.rows.size());
      plan.rows.emplace_back();
      next_in_bucket.push_back(-1);
      left = seq - len;
    } else {
      row = head[static_cast<size_t>(capacity)];
      head[static_cast<size_t>(capacity)] = next_in_bucket[static_cast<size_t>(row)];
      if (head[static_cast<size_t>(capacity)] < 0) capacities.erase(capacity);
      left = capacity - len;
    }
    plan.rows[static_cast<size_t>(row)].push_back(sample);
    if (left > 0) {
      next_in_bucket[static_cast<size_t>(row)] = head[static_cast<size_t>(left)];
      if (head[static_cast<size_t>(left)] < 0) capacities.insert(left);
      head[static_cast<size_t>(left)] = row;
    }
  }
}

void pack_greedy(PackPlan& plan) {
  int64_t left = 0;
  for (size_t i = 0; i < plan.kept_lengths.size(); ++i) {
    const int64_t len = plan.kept_lengths[i];
    if (len == 0) continue;
    if (plan.rows.empty() || len > left) {
      plan.rows.emplace_back();
      left = plan.seq_length;
    }
    plan.rows.back().push_back(static_cast<int64_t>(i));
    left -= len;
  }
}

PackPlan plan_with_kept(std::span<const int64_t> lengths, std::vector<int64_t> kept, int64_t seq_length,
                        PackPolicy policy, OverlongPolicy overlong) {
  PackPlan plan;
  plan.seq_length = seq_length;
  plan.policy = policy;
  plan.overlong = overlong;
  plan.kept_lengths = std::move(kept);
  PackReport& r = plan.report;
  r.samples = static_cast<int64_t>(lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) {
    const int64_t keep = plan.kept_lengths[i];
    if (lengths[i] == 0) {
      ++r.empty;
    } else if (keep == 0) {
      ++r.dropped;
    } else if (keep < lengths[i]) {
      ++r.truncated;
    }
    r.real_tokens += keep;
  }
  if (policy == PackPolicy::best_fit_decreasing) {
    pack_best_fit_decreasing(plan);
  } else {
    pack_greedy(plan);
  }
  r.rows = static_cast<int64_t>(plan.rows.size());
  r.slots = r.rows * seq_length;
  return plan;
}

void check_seq_length(int64_t seq_length) {
  // The cap keeps rows * seq_length and the per-capacity tables far from overflow and from absurd sizes.
  constexpr int64_t kMaxSeqLength = int64_t{1} << 30;
  TESSERA_CHECK(seq_length > 0 && seq_length <= kMaxSeqLength,
                "packing: seq_length must be in [1, {}], got {}", kMaxSeqLength, seq_length);
}

}  // namespace

std::string_view to_string(PackPolicy policy) {
  return policy == PackPolicy::best_fit_decreasing ? "best_fit_decreasing" : "greedy";
}

std::string_view to_string(OverlongPolicy policy) { return policy == OverlongPolicy::truncate ? "truncate" : "drop"; }

PackPolicy pack_policy_from_string(std::string_view text) {
  if (text == "best_fit_decreasing") return PackPolicy::best_fit_decreasing;
  if (text == "greedy") return PackPolicy::greedy;
  TESSERA_FAIL("unknown packing policy '{}' (expected best_fit_decreasing or greedy)", text);
}

OverlongPolicy overlong_policy_from_string(std::string_view text) {
  if (text == "truncate") return OverlongPolicy::truncate;
  if (text == "drop") return OverlongPolicy::drop;
  TESSERA_FAIL("unknown overlong policy '{}' (expected truncate or drop)", text);
}

void validate_sample(const Sample& s, int64_t index) {
  const int64_t len = s.length();
  TESSERA_CHECK(static_cast<int64_t>(s.labels.size()) == len, "sample {} (source index {}): {} labels for {} ids",
                index, s.source_index, s.labels.size(), len);
  for (size_t t = 0; t < s.ids.size(); ++t) {
    TESSERA_CHECK(s.ids[t] >= 0, "sample {} (source index {}): negative token id {} at position {}", index,
                  s.source_index, s.ids[t], t);
    TESSERA_CHECK(s.labels[t] <= 1, "sample {} (source index {}): label {} at position {} (labels are 0 or 1)",
                  index, s.source_index, s.labels[t], t);
  }
  int64_t previous_end = 0;
  for (size_t v = 0; v < s.vision.size(); ++v) {
    const VisionItem& item = s.vision[v];
    const auto where = [&] { return fmt::format("sample {} (source index {}) vision item {}", index, s.source_index, v); };
    TESSERA_CHECK(item.num_patches > 0 && item.patch_dim > 0, "{}: num_patches {} and patch_dim {} must be positive",
                  where(), item.num_patches, item.patch_dim);
    TESSERA_CHECK(item.grid_t > 0 && item.grid_h > 0 && item.grid_w > 0, "{}: grid ({}, {}, {}) must be positive",
                  where(), item.grid_t, item.grid_h, item.grid_w);
    int64_t grid = 0;
    const bool overflow = __builtin_mul_overflow(item.grid_t, item.grid_h, &grid) ||
                          __builtin_mul_overflow(grid, item.grid_w, &grid);
    TESSERA_CHECK(!overflow && grid == item.num_patches, "{}: grid ({}, {}, {}) does not hold num_patches {}", where(),
                  item.grid_t, item.grid_h, item.grid_w, item.num_patches);
    int64_t values = 0;
    TESSERA_CHECK(!__builtin_mul_overflow(item.num_patches, item.patch_dim, &values) &&
                      static_cast<int64_t>(item.patches_bf16.size()) == values,
                  "{}: {} patch values for {} patches of dimension {}", where(), item.patches_bf16.size(),
                  item.num_patches, item.patch_dim);
    TESSERA_CHECK(item.num_tokens > 0, "{}: num_tokens {} must be positive", where(), item.num_tokens);
    TESSERA_CHECK(item.token_offset >= previous_end && item.token_offset <= len - item.num_tokens,
                  "{}: placeholder tokens [{}, {}) are outside the sample's {} ids or overlap the previous item "
                  "(which ends at {})",
                  where(), item.token_offset, item.token_offset + item.num_tokens, len, previous_end);
    previous_end = item.token_offset + item.num_tokens;
  }
}

int64_t truncation_length(const Sample& sample, int64_t max_tokens) {
  int64_t cut = std::min(sample.length(), std::max<int64_t>(max_tokens, 0));
  // Items are in token order and disjoint, so at most one straddles the cut, and moving the cut to its
  // start leaves every earlier item whole.
  for (const VisionItem& item : sample.vision)
    if (item.token_offset < cut && item.token_offset + item.num_tokens > cut) cut = item.token_offset;
  return cut;
}

PackPlan plan_packing(std::span<const int64_t> lengths, int64_t seq_length, PackPolicy policy,
                      OverlongPolicy overlong) {
  check_seq_length(seq_length);
  std::vector<int64_t> kept(lengths.size());
  for (size_t i = 0; i < lengths.size(); ++i) {
    const int64_t len = lengths[i];
    TESSERA_CHECK(len >= 0, "packing: sample {} has negative length {}", i, len);
    kept[i] = len <= seq_length ? len : (overlong == OverlongPolicy::truncate ? seq_length : 0);
  }
  return plan_with_kept(lengths, std::move(kept), seq_length, policy, overlong);
}

PackPlan plan_packing(std::span<const Sample> samples, int64_t seq_length, PackPolicy policy,
                      OverlongPolicy overlong) {
  check_seq_length(seq_length);
  std::vector<int64_t> lengths(samples.size());
  std::vector<int64_t> kept(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    validate_sample(s, static_cast<int64_t>(i));
    lengths[i] = s.length();
    kept[i] = lengths[i] <= seq_length ? lengths[i]
                                       : (overlong == OverlongPolicy::truncate ? truncation_length(s, seq_length) : 0);
  }
  return plan_with_kept(lengths, std::move(kept), seq_length, policy, overlong);
}

}  // namespace tessera::data
