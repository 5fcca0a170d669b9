#pragma once
// Qwen2-VL vision preprocessing, value for value what Hugging Face transformers' slow (PIL-based)
// Qwen2VLImageProcessor produces: decode to 8-bit RGB as PIL does, smart_resize to a multiple of
// patch_size * merge_size, PIL's BICUBIC resize, rescale by 1/255, normalize with the CLIP mean/std, and
// cut into temporal x spatial patches with each merge_size x merge_size group contiguous. The golden tests
// (tests/golden/vision) hold transformers' and PIL's own outputs; docs for the choices are next to each
// declaration.
//
// Everything here is a pure function of its arguments: safe to call from many threads at once.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace tessera::data {

// 8-bit RGB, row-major, 3 bytes per pixel (rgb.size() == width * height * 3).
struct Image {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;
};

// Larger declared images are refused before any pixel memory is allocated. The number is PIL's own
// decompression-bomb limit (2 * Image.MAX_IMAGE_PIXELS), so tessera refuses exactly what the Python
// pipeline refuses; it also bounds one decoded image to ~512 MiB of RGB.
inline constexpr int64_t kMaxImagePixels = 2 * (int64_t{1024} * 1024 * 1024 / 4 / 3);

// What becomes of transparency (an alpha channel, or a PNG tRNS colour/palette entry).
enum class AlphaMode {
  // Drop it, keeping the colour underneath: PIL's `.convert("RGB")`, which transformers <= 4.x
  // (Qwen2VLImageProcessor) applies.
  drop,
  // Composite over opaque white with PIL's integer `alpha_composite`, as transformers >= 5
  // (`convert_to_rgb`) does for any image whose mode has an "A" band or that carries a "transparency" entry.
  over_white,
};

// Decodes a PNG (every colour type and bit depth, interlaced or not) or a JPEG (baseline, progressive,
// grayscale, CMYK/YCCK) chosen by the magic bytes, to RGB exactly as PIL's `Image.open(p).convert("RGB")`:
// 16-bit samples keep their high byte, 16-bit grayscale is clipped to 255 (PIL's "I;16" -> "RGB"), 1/2/4-bit
// grayscale is scaled to 0..255, palette indices past the palette are black, CMYK JPEGs are read with
// Adobe's inverted polarity. EXIF orientation, gamma and ICC profiles are ignored, as PIL does without
// being asked. Empty, truncated, corrupt or unknown data and images over kMaxImagePixels throw
// tessera::Error naming the file.
Image decode_image(const std::string& path, AlphaMode alpha = AlphaMode::drop);
Image decode_image_bytes(std::span<const uint8_t> bytes, const std::string& name_for_errors,
                         AlphaMode alpha = AlphaMode::drop);

struct VisionConfig {
  int64_t patch_size = 14, temporal_patch_size = 2, merge_size = 2;
  int64_t min_pixels = 56 * 56, max_pixels = 28 * 28 * 1280;
  std::array<float, 3> mean = {0.48145466f, 0.4578275f, 0.40821073f};
  std::array<float, 3> std = {0.26862954f, 0.26130258f, 0.27577711f};
};

// transformers' smart_resize: the (height, width) closest to the input's aspect ratio with both sides
// multiples of `factor` and height * width within [min_pixels, max_pixels], evaluated with Python's
// float semantics (round half to even, true division, sqrt). Throws, as transformers does, when the
// aspect ratio exceeds 200, and also on non-positive sizes or a result of zero pixels (where transformers
// would fail later).
std::pair<int64_t, int64_t> smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels,
                                         int64_t max_pixels);

// Bit-exact PIL `Image.resize((width, height), Image.BICUBIC)` of an RGB image, as Pillow 13 computes it:
// separable convolution, one pass per axis with the intermediate rounded and clipped to uint8, cubic kernel
// a = -0.5, support widened by the scale when downscaling, coefficients in 22-bit fixed point. The
// horizontal pass goes first unless the height shrinks by more than twice as many pixels as the width
// (Pillow <= 12.0 always went horizontal first, so for those resizes it differs by at most 1 per value).
// Same size is a copy.
Image resize_bicubic(const Image& image, int64_t width, int64_t height);

// Patches in transformers' layout: row r = ((t * gh/m + bh) * gw/m + bw) * m*m + mh * m + mw (so each
// merge group of m*m = merge_size^2 patches is contiguous), column = ((c * T + tt) * P + py) * P + px.
struct VisionPatches {
  std::vector<float> patches;  // [num_patches(), patch_dim]
  int64_t grid_t = 0, grid_h = 0, grid_w = 0;
  int64_t patch_dim = 0;  // 3 * temporal_patch_size * patch_size^2
  int64_t num_patches() const { return grid_t * grid_h * grid_w; }
  // LLM tokens after the vision merger: num_patches() / merge_size^2.
  int64_t num_tokens(int64_t merge_size) const;
};

// One image is one frame, repeated to fill temporal_patch_size (grid_t = 1). A video is its frames in
// order; every frame is resized to the smart_resize size of the first frame, and the last frame is
// repeated until the count is a multiple of temporal_patch_size, as transformers does. Each value is
// float32((double)v * (1/255)), then (x - mean) / std in float32: transformers' exact operation order.
VisionPatches preprocess_images(const std::vector<Image>& frames, const VisionConfig& config = {});

// Which frames of a video to keep, qwen-vl-utils style (its smart_nframes with FRAME_FACTOR 2,
// FPS_MIN_FRAMES 4, FPS_MAX_FRAMES 768): n = frame_count / source_fps * target_fps, clamped to
// [4, min(768, frame_count) rounded down to even] and to frame_count, then rounded down to even; the
// indices are round(i * (frame_count - 1) / (n - 1)) for i < n. Unlike qwen-vl-utils (torch.linspace in
// float32), the division is exact and ties go to even, so the result never depends on float rounding.
// Throws for fewer than 2 frames or a non-positive / non-finite fps.
std::vector<size_t> sample_frame_indices(size_t frame_count, double source_fps, double target_fps);

}  // namespace tessera::data
