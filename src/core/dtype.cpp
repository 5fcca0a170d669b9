#include "tessera/core/dtype.hpp"

#include <array>
#include <cmath>

namespace tessera {
namespace {

struct Named {
  DType type;
  std::string_view name;
};
constexpr std::array<Named, 6> kNames = {{{DType::f32, "F32"},
                                          {DType::bf16, "BF16"},
                                          {DType::f16, "F16"},
                                          {DType::i64, "I64"},
                                          {DType::i32, "I32"},
                                          {DType::u8, "U8"}}};

}  // namespace

std::string_view dtype_name(DType t) {
  for (const auto& n : kNames)
    if (n.type == t) return n.name;
  return "?";
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& n : kNames)
    if (n.name == name) return n.type;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1u, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  float value;
  if (exponent == 0)
    value = std::ldexp(static_cast<float>(mantissa), -24);  // zero and subnormals
  else if (exponent == 31)
    value = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    value = std::ldexp(static_cast<float>(mantissa | 0x400u), static_cast<int>(exponent) - 25);
  return sign ? -value : value;
}

uint16_t f32_to_f16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const float magnitude = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00u;
  if (magnitude >= 65520.0f) return sign | 0x7c00u;  // rounds to infinity
  if (magnitude < std::ldexp(1.0f, -24) * 0.5f) return sign;
  int exponent;
  std::frexp(magnitude, &exponent);  // magnitude = m * 2^exponent, m in [0.5, 1)
  if (exponent < -13) {
    // Subnormal: units of 2^-24, round half to even.
    const float units = magnitude * std::ldexp(1.0f, 24);
    return sign | static_cast<uint16_t>(std::nearbyint(units));
  }
  // Normal: 11 significant bits; nearbyint rounds half to even under the default rounding mode.
  const float scaled = std::ldexp(magnitude, 11 - exponent);  // in [1024, 2048)
  uint32_t significand = static_cast<uint32_t>(std::nearbyint(scaled));
  int biased = exponent + 14;
  if (significand == 2048) significand = 1024, ++biased;
  if (biased >= 31) return sign | 0x7c00u;
  return sign | static_cast<uint16_t>((biased << 10) | (significand & 0x3ffu));
}

}  // namespace tessera
