// Packing: fill on a realistic length mix, agreement with a naive best-fit-decreasing, determinism,
// whole samples only, overlong and empty samples counted, vision-safe truncation, refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "tessera/core/error.hpp"
#include "tessera/data/packer.hpp"

namespace tessera::data {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Log-normal lengths clipped to [lo, hi], median exp(mu): chat/SFT corpora look like this (many short
// turns, a long tail). Box-Muller on our own generator, so the numbers are the same on every platform.
std::vector<int64_t> lognormal_lengths(size_t n, double mu, double sigma, int64_t lo, int64_t hi, uint64_t seed) {
  std::vector<int64_t> out(n);
  uint64_t state = seed;
  for (size_t i = 0; i < n; ++i) {
    const double u1 = (static_cast<double>(splitmix64(state) >> 11) + 0.5) / 9007199254740992.0;
    const double u2 = static_cast<double>(splitmix64(state) >> 11) / 9007199254740992.0;
    const double normal = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    out[i] = std::clamp<int64_t>(static_cast<int64_t>(std::exp(mu + sigma * normal)), lo, hi);
  }
  return out;
}

// Every kept sample is in exactly one row, whole, and no row is over seq_length.
void expect_valid_plan(const PackPlan& plan, std::span<const int64_t> lengths) {
  std::vector<int> seen(lengths.size(), 0);
  int64_t tokens = 0;
  for (const auto& row : plan.rows) {
    ASSERT_FALSE(row.empty());
    int64_t used = 0;
    for (int64_t s : row) {
      ASSERT_GE(s, 0);
      ASSERT_LT(static_cast<size_t>(s), lengths.size());
      ++seen[static_cast<size_t>(s)];
      used += plan.kept_lengths[static_cast<size_t>(s)];
    }
    EXPECT_LE(used, plan.seq_length);
    tokens += used;
  }
  for (size_t i = 0; i < lengths.size(); ++i) {
    const int64_t kept = plan.kept_lengths[i];
    EXPECT_EQ(seen[i], kept > 0 ? 1 : 0) << "sample " << i;
    if (lengths[i] <= plan.seq_length) {
      EXPECT_EQ(kept, lengths[i]) << "sample " << i << " fits whole";
    }
  }
  EXPECT_EQ(tokens, plan.report.real_tokens);
  EXPECT_EQ(plan.report.rows, static_cast<int64_t>(plan.rows.size()));
  EXPECT_EQ(plan.report.slots, plan.report.rows * plan.seq_length);
}

// Best-fit decreasing the obvious O(n * rows) way, with the documented tie rule: among rows of equal
// remaining capacity, the one that reached it most recently.
std::vector<std::vector<int64_t>> naive_bfd(std::span<const int64_t> lengths, int64_t seq) {
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return lengths[a] > lengths[b]; });
  std::vector<std::vector<int64_t>> rows;
  std::vector<int64_t> left, since;
  int64_t clock = 0;
  for (int64_t s : order) {
    const int64_t len = lengths[static_cast<size_t>(s)];
    if (len == 0) continue;
    int64_t best = -1;
    for (size_t r = 0; r < rows.size(); ++r) {
      if (left[r] < len || left[r] == 0) continue;
      if (best < 0 || left[r] < left[best] || (left[r] == left[best] && since[r] > since[best])) best = static_cast<int64_t>(r);
    }
    if (best < 0) {
      rows.emplace_back();
      left.push_back(seq);
      since.push_back(0);
      best = static_cast<int64_t>(rows.size()) - 1;
    }
    rows[best].push_back(s);
    left[best] -= len;
    since[best] = ++clock;
  }
  return rows;
}

TEST(Packer, BestFitDecreasingFillsALogNormalMixAbove995Percent) {
  const auto lengths = lognormal_lengths(200'000, std::log(600.0), 1.0, 20, 4096, 7);
  const PackPlan bfd = plan_packing(lengths, 4096, PackPolicy::best_fit_decreasing, OverlongPolicy::truncate);
  const PackPlan greedy = plan_packing(lengths, 4096, PackPolicy::greedy, OverlongPolicy::truncate);
  expect_valid_plan(bfd, lengths);
  expect_valid_plan(greedy, lengths);
  EXPECT_GE(bfd.report.fill(), 0.995);
  EXPECT_GE(bfd.report.fill(), greedy.report.fill());
  EXPECT_EQ(bfd.report.real_tokens, greedy.report.real_tokens);
  EXPECT_EQ(bfd.report.truncated, 0);
  std::printf("fill: best_fit_decreasing %.5f (%lld rows), greedy %.5f (%lld rows)\n", bfd.report.fill(),
              static_cast<long long>(bfd.report.rows), greedy.report.fill(), static_cast<long long>(greedy.report.rows));
}

TEST(Packer, BestFitDecreasingMatchesTheNaiveAlgorithm) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    const int64_t seq = seed % 3 == 0 ? 64 : (seed % 3 == 1 ? 200 : 4096);
    auto lengths = lognormal_lengths(300 + 37 * seed, std::log(static_cast<double>(seq) / 5), 1.2, 1, seq, seed);
    const PackPlan plan = plan_packing(lengths, seq, PackPolicy::best_fit_decreasing, OverlongPolicy::drop);
    EXPECT_EQ(plan.rows, naive_bfd(lengths, seq)) << "seed " << seed;
  }
}

TEST(Packer, SameLengthsGiveTheSamePlan) {
  const auto lengths = lognormal_lengths(20'000, std::log(300.0), 1.3, 1, 9000, 11);
  for (PackPolicy policy : {PackPolicy::best_fit_decreasing, PackPolicy::greedy}) {
    const PackPlan a = plan_packing(lengths, 2048, policy, OverlongPolicy::truncate);
    const PackPlan b = plan_packing(lengths, 2048, policy, OverlongPolicy::truncate);
    EXPECT_EQ(a.rows, b.rows);
    EXPECT_EQ(a.kept_lengths, b.kept_lengths);
  }
}

TEST(Packer, EqualLengthsKeepInputOrder) {
  const std::vector<int64_t> lengths = {3, 5, 3, 5, 3};
  const PackPlan plan = plan_packing(lengths, 8, PackPolicy::best_fit_decreasing, OverlongPolicy::truncate);
  // Longest first, ties in input order: 1 (5), 3 (5), 0 (3), 2 (3), 4 (3); each 3 fills a row of 5.
  const std::vector<std::vector<int64_t>> expected = {{1, 2}, {3, 0}, {4}};
  EXPECT_EQ(plan.rows, expected);
}

TEST(Packer, GreedyIsNextFitInInputOrder) {
  const std::vector<int64_t> lengths = {5, 2, 4, 3, 1, 6};
  const PackPlan plan = plan_packing(lengths, 8, PackPolicy::greedy, OverlongPolicy::truncate);
  const std::vector<std::vector<int64_t>> expected = {{0, 1}, {2, 3, 4}, {5}};
  EXPECT_EQ(plan.rows, expected);
  EXPECT_EQ(plan.report.fill(), 21.0 / 24.0);
}

TEST(Packer, OverlongSamplesAreTruncatedOrDroppedAndCounted) {
  const std::vector<int64_t> lengths = {10, 100, 16, 17, 0, 3};
  const PackPlan cut = plan_packing(lengths, 16, PackPolicy::best_fit_decreasing, OverlongPolicy::truncate);
  expect_valid_plan(cut, lengths);
  EXPECT_EQ(cut.kept_lengths, (std::vector<int64_t>{10, 16, 16, 16, 0, 3}));
  EXPECT_EQ(cut.report.truncated, 2);
  EXPECT_EQ(cut.report.dropped, 0);
  EXPECT_EQ(cut.report.empty, 1);
  EXPECT_EQ(cut.report.samples, 6);
  const PackPlan drop = plan_packing(lengths, 16, PackPolicy::greedy, OverlongPolicy::drop);
  expect_valid_plan(drop, lengths);
  EXPECT_EQ(drop.kept_lengths, (std::vector<int64_t>{10, 0, 16, 0, 0, 3}));
  EXPECT_EQ(drop.report.truncated, 0);
  EXPECT_EQ(drop.report.dropped, 2);
  EXPECT_EQ(drop.report.real_tokens, 29);
}

Sample text_sample(int64_t length, uint64_t source) {
  Sample s;
  s.ids.assign(static_cast<size_t>(length), 7);
  s.labels.assign(static_cast<size_t>(length), 1);
  s.source_index = source;
  return s;
}

VisionItem image(int64_t token_offset, int64_t num_tokens) {
  VisionItem v;
  v.grid_t = 1;
  v.grid_h = 2;
  v.grid_w = 2 * num_tokens;
  v.num_patches = 4 * num_tokens;
  v.patch_dim = 3;
  v.patches_bf16.assign(static_cast<size_t>(v.num_patches * v.patch_dim), 0x3f80);
  v.token_offset = token_offset;
  v.num_tokens = num_tokens;
  return v;
}

TEST(Packer, TruncationNeverCutsAVisionItem) {
  std::vector<Sample> samples;
  samples.push_back(text_sample(30, 0));
  samples[0].vision = {image(2, 4), image(10, 8)};  // tokens [2, 6) and [10, 18)
  samples.push_back(text_sample(30, 1));
  samples[1].vision = {image(0, 20)};  // [0, 20): nothing is left before it
  samples.push_back(text_sample(30, 2));
  samples[2].vision = {image(20, 5)};  // wholly after a cut at 16: leaves with its tokens
  EXPECT_EQ(truncation_length(samples[0], 16), 10);
  EXPECT_EQ(truncation_length(samples[0], 18), 18);
  EXPECT_EQ(truncation_length(samples[1], 16), 0);
  EXPECT_EQ(truncation_length(samples[2], 16), 16);
  const PackPlan plan = plan_packing(samples, 16, PackPolicy::best_fit_decreasing, OverlongPolicy::truncate);
  EXPECT_EQ(plan.kept_lengths, (std::vector<int64_t>{10, 0, 16}));
  EXPECT_EQ(plan.report.truncated, 2);
  EXPECT_EQ(plan.report.dropped, 1);
}

TEST(Packer, RefusesBadInputWithAReason) {
  const std::vector<int64_t> lengths = {4, -1};
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { plan_packing(lengths, 8, PackPolicy::greedy, OverlongPolicy::drop); }).find("sample 1 has negative length"),
            std::string::npos);
  EXPECT_NE(message([&] { plan_packing(std::span<const int64_t>(lengths).first(1), 0, PackPolicy::greedy, OverlongPolicy::drop); })
                .find("seq_length"),
            std::string::npos);
  std::vector<Sample> samples = {text_sample(5, 41)};
  samples[0].labels.pop_back();
  EXPECT_NE(message([&] { plan_packing(samples, 8, PackPolicy::greedy, OverlongPolicy::drop); }).find("sample 0 (source index 41): 4 labels for 5 ids"),
            std::string::npos);
  samples = {text_sample(5, 41)};
  samples[0].vision = {image(3, 4)};
  EXPECT_NE(message([&] { plan_packing(samples, 8, PackPolicy::greedy, OverlongPolicy::drop); }).find("outside the sample"),
            std::string::npos);
  EXPECT_NE(message([] { pack_policy_from_string("first_fit"); }).find("best_fit_decreasing or greedy"), std::string::npos);
}

TEST(Packer, PolicyNamesRoundTrip) {
  for (PackPolicy p : {PackPolicy::best_fit_decreasing, PackPolicy::greedy}) EXPECT_EQ(pack_policy_from_string(to_string(p)), p);
  for (OverlongPolicy p : {OverlongPolicy::truncate, OverlongPolicy::drop})
    EXPECT_EQ(overlong_policy_from_string(to_string(p)), p);
}

}  // namespace
}  // namespace tessera::data
