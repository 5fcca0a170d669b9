// transformers' smart_resize and PIL's BICUBIC resize, reproduced operation for operation so that the
// sizes and the resized bytes are identical to the Python pipeline's (tests/golden/vision holds PIL's bytes).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tessera/core/error.hpp"
#include "tessera/data/vision.hpp"

namespace tessera::data {
namespace {

// Python's round(): to nearest, ties to even.
double round_half_even(double q) {
  const double floor = std::floor(q);
  const double fraction = q - floor;  // exact
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return std::fmod(floor, 2.0) == 0.0 ? floor : floor + 1;
}

// PIL's bicubic kernel (Resample.c), a = -0.5. Written with PIL's expression shapes so the compiler
// evaluates it as it evaluates PIL's C (no reassociation is allowed in either without -ffast-math).
double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// Fixed point of PIL's 8-bit resampler: 32 bits minus 8 for the value minus 2 for overshoot.
constexpr int kPrecisionBits = 32 - 8 - 2;

// One axis of PIL's resampling: for each output position, the first input index, the tap count and the
// taps in fixed point (precompute_coeffs + normalize_coeffs_8bpc).
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;  // [out_size][ksize]
};

Taps precompute_taps(int in_size, int out_size) {
  // PIL passes the box as floats: (float)in_size - 0.0f is exact for every size we accept.
  const double scale = static_cast<double>(static_cast<float>(in_size)) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 2.0 * filterscale;  // BICUBIC's support is 2
  Taps taps;
  taps.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.first.resize(static_cast<size_t>(out_size));
  taps.count.resize(static_cast<size_t>(out_size));
  taps.weights.assign(static_cast<size_t>(out_size) * static_cast<size_t>(taps.ksize), 0);
  std::vector<double> k(static_cast<size_t>(taps.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    // C's (int) truncates toward zero; PIL relies on that before clamping.
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic((x + xmin - center + 0.5) * ss);
      k[static_cast<size_t>(x)] = w;
      ww += w;
    }
    int32_t* out = taps.weights.data() + static_cast<size_t>(xx) * static_cast<size_t>(taps.ksize);
    for (int x = 0; x < xmax; ++x) {
      double w = k[static_cast<size_t>(x)];
      if (ww != 0.0) w /= ww;
      out[x] = w < 0 ? static_cast<int32_t>(-0.5 + w * (1 << kPrecisionBits))
                     : static_cast<int32_t>(0.5 + w * (1 << kPrecisionBits));
    }
    taps.first[static_cast<size_t>(xx)] = xmin;
    taps.count[static_cast<size_t>(xx)] = xmax;
  }
  return taps;
}

uint8_t clip8(int32_t sum) {
  const int32_t v = sum >> kPrecisionBits;  // arithmetic shift (C++20), as PIL's lookup table indexes it
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Rows [row_begin, row_begin + rows) of `in` (width in_w) resampled horizontally to out_w.
std::vector<uint8_t> resample_horizontal(const uint8_t* in, int in_w, int row_begin, int rows, int out_w) {
  const Taps taps = precompute_taps(in_w, out_w);
  std::vector<uint8_t> out(static_cast<size_t>(rows) * static_cast<size_t>(out_w) * 3);
  for (int y = 0; y < rows; ++y) {
    const uint8_t* src = in + static_cast<size_t>(row_begin + y) * static_cast<size_t>(in_w) * 3;
    uint8_t* dst = out.data() + static_cast<size_t>(y) * static_cast<size_t>(out_w) * 3;
    for (int xx = 0; xx < out_w; ++xx) {
      const int32_t* k = taps.weights.data() + static_cast<size_t>(xx) * static_cast<size_t>(taps.ksize);
      const uint8_t* s = src + static_cast<size_t>(taps.first[static_cast<size_t>(xx)]) * 3;
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int x = 0; x < taps.count[static_cast<size_t>(xx)]; ++x) {
        s0 += s[3 * x + 0] * k[x];
        s1 += s[3 * x + 1] * k[x];
        s2 += s[3 * x + 2] * k[x];
      }
      dst[3 * xx + 0] = clip8(s0);
      dst[3 * xx + 1] = clip8(s1);
      dst[3 * xx + 2] = clip8(s2);
    }
  }
  return out;
}

// Vertical pass over `rows` (width `width`, first row = input row `rows_offset`) to taps.first.size() rows.
std::vector<uint8_t> resample_vertical(const uint8_t* rows, int width, int rows_offset, const Taps& taps, int out_h) {
  const size_t stride = static_cast<size_t>(width) * 3;
  std::vector<uint8_t> out(stride * static_cast<size_t>(out_h));
  std::vector<int32_t> sums(stride);  // integer sums: the order of the taps cannot change them
  for (int yy = 0; yy < out_h; ++yy) {
    const int32_t* k = taps.weights.data() + static_cast<size_t>(yy) * static_cast<size_t>(taps.ksize);
    const uint8_t* src = rows + static_cast<size_t>(taps.first[static_cast<size_t>(yy)] - rows_offset) * stride;
    std::fill(sums.begin(), sums.end(), 1 << (kPrecisionBits - 1));
    for (int y = 0; y < taps.count[static_cast<size_t>(yy)]; ++y) {
      const uint8_t* row = src + static_cast<size_t>(y) * stride;
      for (size_t i = 0; i < stride; ++i) sums[i] += row[i] * k[y];
    }
    uint8_t* dst = out.data() + static_cast<size_t>(yy) * stride;
    for (size_t i = 0; i < stride; ++i) dst[i] = clip8(sums[i]);
  }
  return out;
}

}  // namespace

std::pair<int64_t, int64_t> smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels,
                                         int64_t max_pixels) {
  TESSERA_CHECK(height > 0 && width > 0, "smart_resize: image size {} x {} (height x width) must be positive", height,
                width);
  TESSERA_CHECK(factor > 0 && max_pixels > 0 && min_pixels >= 0,
                "smart_resize: factor ({}), max_pixels ({}) must be positive and min_pixels ({}) non-negative", factor,
                max_pixels, min_pixels);
  // Python evaluates these with exact integers and correctly rounded division; doubles agree while the
  // operands stay below 2^53, which every decodable image does.
  constexpr int64_t kExact = int64_t{1} << 53;
  // The bounds also keep h_bar * w_bar below 2^63.
  TESSERA_CHECK(height < (int64_t{1} << 31) && width < (int64_t{1} << 31) && height * width < kExact &&
                    factor <= (int64_t{1} << 20) && max_pixels < kExact && min_pixels < kExact,
                "smart_resize: size {} x {} with factor {} is out of the supported range", height, width, factor);
  const auto h = static_cast<double>(height), w = static_cast<double>(width), f = static_cast<double>(factor);
  const double ratio = static_cast<double>(std::max(height, width)) / static_cast<double>(std::min(height, width));
  TESSERA_CHECK(!(ratio > 200),
                "absolute aspect ratio must be smaller than 200, got {} (image {} x {}, height x width)", ratio, height,
                width);
  auto h_bar = static_cast<int64_t>(round_half_even(h / f)) * factor;
  auto w_bar = static_cast<int64_t>(round_half_even(w / f)) * factor;
  if (h_bar * w_bar > max_pixels) {
    const double beta = std::sqrt(static_cast<double>(height * width) / static_cast<double>(max_pixels));
    h_bar = std::max(factor, static_cast<int64_t>(std::floor(h / beta / f)) * factor);
    w_bar = std::max(factor, static_cast<int64_t>(std::floor(w / beta / f)) * factor);
  } else if (h_bar * w_bar < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / static_cast<double>(height * width));
    h_bar = static_cast<int64_t>(std::ceil(h * beta / f)) * factor;
    w_bar = static_cast<int64_t>(std::ceil(w * beta / f)) * factor;
  }
  TESSERA_CHECK(h_bar > 0 && w_bar > 0,
                "smart_resize: image {} x {} resizes to {} x {} pixels with min_pixels {}; raise min_pixels", height,
                width, h_bar, w_bar, min_pixels);
  return {h_bar, w_bar};
}

Image resize_bicubic(const Image& image, int64_t width, int64_t height) {
  TESSERA_CHECK(image.width > 0 && image.height > 0 && image.width <= kMaxImagePixels &&
                    image.height <= kMaxImagePixels &&
                    image.rgb.size() == static_cast<size_t>(image.width * image.height) * 3,
                "resize_bicubic: the input image is empty or its pixel buffer ({} bytes) does not match {} x {} x 3",
                image.rgb.size(), image.width, image.height);
  TESSERA_CHECK(width > 0 && height > 0 && width <= kMaxImagePixels && height <= kMaxImagePixels &&
                    width * height <= kMaxImagePixels,
                "resize_bicubic: target size {} x {} must be positive and at most {} pixels", width, height,
                kMaxImagePixels);
  // Every size fits PIL's int arithmetic: both images are at most kMaxImagePixels, far below 2^31 per side.
  const int in_w = static_cast<int>(image.width), in_h = static_cast<int>(image.height);
  const int out_w = static_cast<int>(width), out_h = static_cast<int>(height);
  const bool need_horizontal = in_w != out_w, need_vertical = in_h != out_h;
  Image out;
  out.width = width;
  out.height = height;
  if (!need_horizontal && !need_vertical) {
    out.rgb = image.rgb;  // PIL returns a copy
    return out;
  }
  // PIL's ImagingResampleInner (Pillow 13): the vertical pass goes first when the height shrinks by more
  // than twice what the width shrinks. The intermediate image is rounded to uint8, so the order shows in
  // the result (Pillow <= 12.0 always went horizontal first).
  const bool horizontal_first = !((in_h - out_h) > 0 && (in_h - out_h) > (in_w - out_w) * 2);
  const Taps vertical = precompute_taps(in_h, out_h);
  if (horizontal_first) {
    if (!need_horizontal) {
      out.rgb = resample_vertical(image.rgb.data(), in_w, 0, vertical, out_h);
      return out;
    }
    // The vertical taps decide which input rows the horizontal pass needs.
    const int row_first = vertical.first.front();
    const int row_last = vertical.first.back() + vertical.count.back();
    const std::vector<uint8_t> rows =
        resample_horizontal(image.rgb.data(), in_w, row_first, row_last - row_first, out_w);
    // Without a vertical pass, row_first..row_last covered every row.
    out.rgb = need_vertical ? resample_vertical(rows.data(), out_w, row_first, vertical, out_h) : rows;
    return out;
  }
  const std::vector<uint8_t> rows = resample_vertical(image.rgb.data(), in_w, 0, vertical, out_h);
  out.rgb = need_horizontal ? resample_horizontal(rows.data(), in_w, 0, out_h, out_w) : rows;
  return out;
}

}  // namespace tessera::data
