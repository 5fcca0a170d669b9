// Which frames of a decoded video go to the vision encoder: qwen-vl-utils' fps-based sampling, evaluated in
// exact arithmetic (see vision.hpp).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "tessera/core/error.hpp"
#include "tessera/data/vision.hpp"

namespace tessera::data {

std::vector<size_t> sample_frame_indices(size_t frame_count, double source_fps, double target_fps) {
  TESSERA_CHECK(std::isfinite(source_fps) && source_fps > 0 && std::isfinite(target_fps) && target_fps > 0,
                "sample_frame_indices: fps must be positive and finite (source {}, target {})", source_fps, target_fps);
  TESSERA_CHECK(frame_count >= 2, "sample_frame_indices: a video needs at least 2 frames, got {}", frame_count);
  // qwen-vl-utils' smart_nframes with FRAME_FACTOR 2, FPS_MIN_FRAMES 4, FPS_MAX_FRAMES 768.
  constexpr double kFactor = 2, kMinFrames = 4, kMaxFrames = 768;
  const auto total = static_cast<double>(frame_count);
  const double max_frames = std::floor(std::min(kMaxFrames, total) / kFactor) * kFactor;
  double n = total / source_fps * target_fps;
  n = std::min(std::min(std::max(n, kMinFrames), max_frames), total);
  const auto count = static_cast<size_t>(std::floor(n / kFactor) * kFactor);
  TESSERA_CHECK(count >= 2 && count <= frame_count, "sample_frame_indices: {} frames at {} fps give {} samples",
                frame_count, source_fps, count);
  // round(i * (frame_count - 1) / (count - 1)), exactly, ties to even.
  std::vector<size_t> indices(count);
  const size_t den = count - 1;
  for (size_t i = 0; i < count; ++i) {
    const size_t num = i * (frame_count - 1);
    size_t q = num / den;
    const size_t r = num % den;
    if (2 * r > den || (2 * r == den && q % 2 == 1)) ++q;
    indices[i] = q;
  }
  return indices;
}

}  // namespace tessera::data
