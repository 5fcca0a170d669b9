// Frames -> Qwen2-VL patches: transformers' Qwen2VLImageProcessor._preprocess and its patch reshape, one
// operation at a time, in the same float precision.
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tessera/core/error.hpp"
#include "tessera/data/vision.hpp"

namespace tessera::data {
namespace {

void check_config(const VisionConfig& config) {
  TESSERA_CHECK(config.patch_size > 0 && config.temporal_patch_size > 0 && config.merge_size > 0,
                "vision config: patch_size ({}), temporal_patch_size ({}) and merge_size ({}) must be positive",
                config.patch_size, config.temporal_patch_size, config.merge_size);
  for (size_t c = 0; c < 3; ++c) {
    TESSERA_CHECK(std::isfinite(config.mean[c]) && std::isfinite(config.std[c]) && config.std[c] != 0.0f,
                  "vision config: mean[{}] = {} and std[{}] = {} must be finite, std non-zero", c, config.mean[c], c,
                  config.std[c]);
  }
}

// The normalized value of every byte per channel. transformers rescales in float64 and casts to float32
// (image_transforms.rescale), then normalizes in float32 ((x - mean) / std with float32 mean/std).
std::array<std::array<float, 256>, 3> value_table(const VisionConfig& config) {
  std::array<std::array<float, 256>, 3> table{};
  for (size_t c = 0; c < 3; ++c) {
    for (size_t v = 0; v < 256; ++v) {
      const auto rescaled = static_cast<float>(static_cast<double>(v) * (1.0 / 255.0));
      table[c][v] = (rescaled - config.mean[c]) / config.std[c];
    }
  }
  return table;
}

}  // namespace

int64_t VisionPatches::num_tokens(int64_t merge_size) const {
  TESSERA_CHECK(merge_size > 0, "num_tokens: merge_size ({}) must be positive", merge_size);
  return num_patches() / (merge_size * merge_size);
}

VisionPatches preprocess_images(const std::vector<Image>& frames, const VisionConfig& config) {
  check_config(config);
  TESSERA_CHECK(!frames.empty(), "preprocess_images: no frames given");
  for (size_t i = 0; i < frames.size(); ++i) {
    const Image& f = frames[i];
    TESSERA_CHECK(f.width > 0 && f.height > 0 && f.width <= kMaxImagePixels && f.height <= kMaxImagePixels &&
                      f.rgb.size() == static_cast<size_t>(f.width * f.height) * 3,
                  "preprocess_images: frame {} is empty or its pixel buffer ({} bytes) does not match {} x {} x 3", i,
                  f.rgb.size(), f.width, f.height);
  }
  const int64_t P = config.patch_size, T = config.temporal_patch_size, m = config.merge_size;
  // Every frame goes to the size smart_resize picks for the first, as transformers does for a video.
  const auto [height, width] =
      smart_resize(frames[0].height, frames[0].width, P * m, config.min_pixels, config.max_pixels);
  const auto table = value_table(config);

  VisionPatches out;
  const auto frame_count = static_cast<int64_t>(frames.size());
  out.grid_t = (frame_count + T - 1) / T;  // the last frame repeats up to a multiple of T
  out.grid_h = height / P;
  out.grid_w = width / P;
  out.patch_dim = 3 * T * P * P;
  out.patches.resize(static_cast<size_t>(out.num_patches() * out.patch_dim));

  const int64_t blocks_h = out.grid_h / m, blocks_w = out.grid_w / m;
  Image resized;
  for (int64_t f = 0; f < out.grid_t * T; ++f) {
    if (f < frame_count) resized = resize_bicubic(frames[static_cast<size_t>(f)], width, height);
    const int64_t t = f / T, tt = f % T;
    for (int64_t y = 0; y < height; ++y) {
      const int64_t bh = y / (m * P), mh = (y / P) % m, py = y % P;
      const uint8_t* row = resized.rgb.data() + static_cast<size_t>(y * width * 3);
      for (int64_t x = 0; x < width; ++x) {
        const int64_t bw = x / (m * P), mw = (x / P) % m, px = x % P;
        // transformers: (t, T, C, bh, m, P, bw, m, P) transposed to (t, bh, bw, mh, mw, C, T, P, P).
        const int64_t patch = ((t * blocks_h + bh) * blocks_w + bw) * m * m + mh * m + mw;
        float* dst = out.patches.data() + static_cast<size_t>(patch * out.patch_dim + (tt * P + py) * P + px);
        for (int64_t c = 0; c < 3; ++c) {
          dst[static_cast<size_t>(c * T * P * P)] = table[static_cast<size_t>(c)][row[3 * x + c]];
        }
      }
    }
  }
  return out;
}

}  // namespace tessera::data
