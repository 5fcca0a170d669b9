#pragma once
// Σ x² over float values, exactly: a float's square is m²·2^(2e) with m < 2^24, so every square is an
// integer multiple of 2^-298 below 2^256, and a fixed-point accumulator of 32-bit digits from 2^-298 up
// holds any sum of them without rounding. Exact addition is associative: however the values are split —
// over data-, pipeline-, tensor- or expert-parallel ranks, OpenMP threads, chunks — the total is the same
// number, and so is the gradient norm every rank computes from it. (The GPU keeps fixed-order double
// block sums: tree_sum.hpp.)

#include <array>
#include <cstdint>
#include <span>

namespace tessera::train {

class SquareSum {
 public:
  // Digits of 32 bits from 2^-298: the largest square (< 2^256) needs digit 17, and 2^40 of them fit in
  // digit 19.
  static constexpr size_t kDigits = 20;
  // Limbs as sent between ranks: the digits, then a count of non-finite values.
  using Wire = std::array<int64_t, kDigits + 1>;

  void add(std::span<const float> values);
  void add(const SquareSum& other);
  // The sum rounded to double (the same rounding for the same exact sum); NaN if any value was not finite.
  double value() const;

  // Exchange: every rank's wire() summed element-wise (an int64 all-reduce, exact) and given to
  // from_wire() is the sum over those ranks.
  Wire wire() const;
  static SquareSum from_wire(const Wire& wire);

 private:
  void normalise();

  std::array<uint64_t, kDigits> digit_{};  // each below 2^32 after normalise(); carries wait until then
  int64_t nonfinite_ = 0;
};

}  // namespace tessera::train
