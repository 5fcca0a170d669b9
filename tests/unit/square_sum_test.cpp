#include "tessera/train/square_sum.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace tessera::train {
namespace {

double sum_of(std::span<const float> values) {
  SquareSum s;
  s.add(values);
  return s.value();
}

// Squares of small integers are exact in any arithmetic: the sum must be exact too.
TEST(SquareSum, AddsSmallIntegersExactly) {
  std::vector<float> v;
  double want = 0;
  for (int i = -1000; i <= 1000; ++i) v.push_back(static_cast<float>(i)), want += static_cast<double>(i) * i;
  EXPECT_EQ(sum_of(v), want);
}

// The point of it: any split and any order give the same bits (a double sum does not).
TEST(SquareSum, IsIndependentOfOrderAndSplit) {
  std::mt19937 rng(7);
  std::lognormal_distribution<float> magnitude(0.0f, 8.0f);
  std::vector<float> v(200000);
  for (float& x : v) x = magnitude(rng) * (rng() % 2 ? 1.0f : -1.0f) * 1e-6f;
  const double whole = sum_of(v);
  std::vector<float> shuffled = v;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  EXPECT_EQ(sum_of(shuffled), whole);
  SquareSum a, b, c;
  a.add(std::span<const float>(v).first(12345));
  b.add(std::span<const float>(v).subspan(12345, 100000));
  c.add(std::span<const float>(v).subspan(112345));
  // Combined directly, and as ranks combine them: digits summed element-wise.
  SquareSum direct = a;
  direct.add(c), direct.add(b);
  EXPECT_EQ(direct.value(), whole);
  SquareSum::Wire wire = a.wire();
  for (const SquareSum* s : {&b, &c})
    for (size_t i = 0; i < wire.size(); ++i) wire[i] += s->wire()[i];
  EXPECT_EQ(SquareSum::from_wire(wire).value(), whole);
  long double reference = 0;
  for (const float x : v) reference += static_cast<long double>(x) * x;
  EXPECT_NEAR(whole, static_cast<double>(reference), 1e-15 * whole);
}

// The extremes of float: the largest finite value, the smallest subnormal, zero.
TEST(SquareSum, CoversTheWholeFloatRange) {
  const float big = std::numeric_limits<float>::max(), tiny = std::numeric_limits<float>::denorm_min();
  EXPECT_EQ(sum_of(std::vector<float>{big, -big}), 2.0 * static_cast<double>(big) * big);
  EXPECT_EQ(sum_of(std::vector<float>{tiny}), std::ldexp(1.0, -298));
  EXPECT_EQ(sum_of(std::vector<float>{0.0f, -0.0f}), 0.0);
  // A tiny value next to a huge one is kept exactly, not rounded away: the digits differ.
  SquareSum with, without;
  with.add(std::vector<float>{1e30f, tiny});
  without.add(std::vector<float>{1e30f});
  EXPECT_NE(with.wire(), without.wire());
}

TEST(SquareSum, NonFiniteGivesNaN) {
  EXPECT_TRUE(std::isnan(sum_of(std::vector<float>{1.0f, std::numeric_limits<float>::infinity()})));
  EXPECT_TRUE(std::isnan(sum_of(std::vector<float>{std::numeric_limits<float>::quiet_NaN()})));
}

}  // namespace
}  // namespace tessera::train
