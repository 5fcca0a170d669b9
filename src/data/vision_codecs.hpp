#pragma once
// The two decoders behind decode_image_bytes (vision_decode.cpp picks one by the magic bytes). Each
// produces PIL's RGB for its format and throws tessera::Error naming `name` on anything it cannot read.

#include <cstdint>
#include <span>
#include <string>

#include "tessera/data/vision.hpp"

namespace tessera::data::detail {

Image decode_png(std::span<const uint8_t> bytes, const std::string& name, AlphaMode alpha);
Image decode_jpeg(std::span<const uint8_t> bytes, const std::string& name, AlphaMode alpha);

// PIL's `alpha_composite` of one RGBA pixel over opaque white (its 7-bit fixed-point blend), the step
// transformers >= 5 applies to images with transparency.
inline void composite_over_white(uint8_t* rgb, uint8_t alpha) {
  if (alpha == 0) {
    rgb[0] = rgb[1] = rgb[2] = 255;
    return;
  }
  // PIL's general formula with the destination fixed at (255, 255, 255, 255).
  constexpr uint32_t kPrecisionBits = 7;
  const uint32_t a = alpha;
  const uint32_t blend = 255u * (255u - a);
  const uint32_t outa255 = a * 255u + blend;
  const uint32_t coef1 = a * 255u * 255u * (1u << kPrecisionBits) / outa255;
  const uint32_t coef2 = 255u * (1u << kPrecisionBits) - coef1;
  for (int c = 0; c < 3; ++c) {
    const uint32_t tmp = rgb[c] * coef1 + 255u * coef2 + (0x80u << kPrecisionBits);
    rgb[c] = static_cast<uint8_t>((((tmp >> 8) + tmp) >> 8) >> kPrecisionBits);
  }
}

}  // namespace tessera::data::detail
