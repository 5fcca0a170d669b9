#include "tessera/train/square_sum.hpp"

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include <omp.h>

namespace tessera::train {
namespace {

struct Partial {
  std::array<uint64_t, SquareSum::kDigits> digit{};
  int64_t nonfinite = 0;
};

// Adds the squares of values into `p` without carrying: each digit takes at most 2^32 − 1 per value, so
// up to 2^31 values fit in a uint64 digit before normalise() must run.
void accumulate(Partial& p, std::span<const float> values) {
  for (const float x : values) {
    const auto bits = std::bit_cast<uint32_t>(x);
    const uint32_t exponent = (bits >> 23) & 0xFF, mantissa = bits & 0x7FFFFF;
    if (exponent == 0xFF) {
      ++p.nonfinite;
      continue;
    }
    if (exponent == 0 && mantissa == 0) continue;
    // x = m · 2^(e − 150) with e = max(exponent, 1); x² = m² · 2^(2e − 300) = m² · 2^shift · 2^-298.
    const uint64_t m = exponent == 0 ? mantissa : (mantissa | 0x800000u);
    const uint32_t shift = exponent == 0 ? 0 : 2 * exponent - 2;
    const unsigned __int128 square = static_cast<unsigned __int128>(m * m) << (shift & 31);
    const size_t at = shift >> 5;
    p.digit[at] += static_cast<uint64_t>(square) & 0xFFFFFFFFu;
    p.digit[at + 1] += static_cast<uint64_t>(square >> 32) & 0xFFFFFFFFu;
    p.digit[at + 2] += static_cast<uint64_t>(square >> 64);
  }
}

}  // namespace

void SquareSum::normalise() {
  uint64_t carry = 0;
  for (uint64_t& d : digit_) {
    const uint64_t t = d + carry;
    d = t & 0xFFFFFFFFu;
    carry = t >> 32;
  }
}

void SquareSum::add(std::span<const float> values) {
  // Slices of at most 2^30 values per partial keep every digit below 2^62; threads each keep their own.
  constexpr size_t kSlice = size_t{1} << 30;
  for (size_t start = 0; start < values.size(); start += kSlice) {
    const std::span<const float> slice = values.subspan(start, std::min(kSlice, values.size() - start));
    const int threads = slice.size() < (1u << 16) ? 1 : omp_get_max_threads();
    std::vector<Partial> partials(static_cast<size_t>(threads));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int t = 0; t < threads; ++t) {
      const size_t begin = slice.size() * static_cast<size_t>(t) / static_cast<size_t>(threads);
      const size_t end = slice.size() * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
      accumulate(partials[static_cast<size_t>(t)], slice.subspan(begin, end - begin));
    }
    for (const Partial& p : partials) {
      SquareSum s;
      s.digit_ = p.digit;
      s.nonfinite_ = p.nonfinite;
      s.normalise();
      add(s);
    }
  }
}

void SquareSum::add(const SquareSum& other) {
  for (size_t i = 0; i < kDigits; ++i) digit_[i] += other.digit_[i];
  nonfinite_ += other.nonfinite_;
  normalise();
}

double SquareSum::value() const {
  if (nonfinite_ > 0) return std::numeric_limits<double>::quiet_NaN();
  double total = 0;
  for (size_t i = kDigits; i-- > 0;) total += std::ldexp(static_cast<double>(digit_[i]), 32 * static_cast<int>(i) - 298);
  return total;
}

SquareSum::Wire SquareSum::wire() const {
  Wire w{};
  for (size_t i = 0; i < kDigits; ++i) w[i] = static_cast<int64_t>(digit_[i]);
  w[kDigits] = nonfinite_;
  return w;
}

SquareSum SquareSum::from_wire(const Wire& w) {
  SquareSum s;
  for (size_t i = 0; i < kDigits; ++i) s.digit_[i] = static_cast<uint64_t>(w[i]);
  s.nonfinite_ = w[kDigits];
  s.normalise();
  return s;
}

}  // namespace tessera::train
