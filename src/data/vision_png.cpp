// PNG -> RGB exactly as PIL's PngImagePlugin followed by `.convert("RGB")` (or, with AlphaMode::over_white,
// `.convert("RGBA")` composited over white as transformers >= 5 does). libpng only unpacks and
// de-interlaces the samples; every value mapping is done here, spelled as PIL does it:
//   gray 1/2/4-bit -> scaled to 0..255 (PIL's "1", "L;2", "L;4"); gray 16-bit -> clipped to 255 (PIL's
//   "I;16" -> "RGB"); 16-bit colour -> high byte ("RGB;16B", "RGBA;16B", "LA;16B"); palette index past the
//   palette -> black, alpha from tRNS (255 past its end); a tRNS colour on gray/RGB makes matching pixels
//   transparent, compared after conversion to 8 bits against the tRNS value's low byte (PIL's rgbT2a).
// gAMA, iCCP, sBIT and friends are ignored, as PIL does without being asked.
#include <png.h>

#include <array>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <span>
#include <vector>

#include "tessera/core/error.hpp"
#include "vision_codecs.hpp"

namespace tessera::data::detail {
namespace {

// How one row of raw samples (after png_set_packing: one byte per sample below 8 bits, big-endian pairs at
// 16 bits) becomes RGBA8.
struct PngLayout {
  int color_type = 0;
  int bit_depth = 0;
  size_t width = 0;
  std::array<std::array<uint8_t, 3>, 256> palette{};  // entries past the PLTE stay black
  std::array<uint8_t, 256> palette_alpha{};           // 255 past the tRNS entries
  bool has_trns_color = false;
  std::array<int, 3> trns{};  // gray uses trns[0]
};

// Everything libpng touches lives here, owned by decode_png, so that a longjmp out of libpng never skips
// a destructor and never reads a clobbered local.
struct PngState {
  std::span<const uint8_t> bytes;
  size_t pos = 0;
  bool truncated = false;
  bool too_large = false;
  std::array<char, 256> message{};
  PngLayout layout;
  std::vector<uint8_t> raw;  // one row, or the whole image when interlaced
  std::vector<png_bytep> row_pointers;
  Image image;
};

void on_error(png_structp png, png_const_charp message) {
  auto* state = static_cast<PngState*>(png_get_error_ptr(png));
  std::snprintf(state->message.data(), state->message.size(), "%s", message);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}  // PIL reads past what libpng merely warns about

void on_read(png_structp png, png_bytep out, size_t count) {
  auto* state = static_cast<PngState*>(png_get_io_ptr(png));
  if (count > state->bytes.size() - state->pos) {
    state->truncated = true;
    png_error(png, "unexpected end of data");
  }
  std::memcpy(out, state->bytes.data() + state->pos, count);
  state->pos += count;
}

uint8_t gray_to_8bit(const uint8_t* sample, int bit_depth) {
  switch (bit_depth) {
    case 1:
      return sample[0] != 0 ? 255 : 0;
    case 2:
      return static_cast<uint8_t>(sample[0] * 0x55);
    case 4:
      return static_cast<uint8_t>(sample[0] * 0x11);
    case 8:
      return sample[0];
    default: {  // 16: PIL's I;16 -> RGB clips rather than scales
      const unsigned value = (unsigned{sample[0]} << 8) | sample[1];
      return value > 255 ? 255 : static_cast<uint8_t>(value);
    }
  }
}

// One raw row to RGB, with the alpha PIL would give each pixel applied as `alpha` asks.
void convert_row(const uint8_t* raw, const PngLayout& layout, AlphaMode alpha_mode, uint8_t* out) {
  const size_t sample_bytes = layout.bit_depth == 16 ? 2 : 1;
  for (size_t x = 0; x < layout.width; ++x) {
    uint8_t* px = out + 3 * x;
    uint8_t alpha = 255;
    switch (layout.color_type) {
      case PNG_COLOR_TYPE_GRAY: {
        const uint8_t v = gray_to_8bit(raw + x * sample_bytes, layout.bit_depth);
        px[0] = px[1] = px[2] = v;
        if (layout.has_trns_color && v == layout.trns[0]) alpha = 0;
        break;
      }
      case PNG_COLOR_TYPE_RGB: {
        const uint8_t* s = raw + x * 3 * sample_bytes;
        for (size_t c = 0; c < 3; ++c) px[c] = s[c * sample_bytes];  // high byte at 16 bits
        if (layout.has_trns_color && px[0] == layout.trns[0] && px[1] == layout.trns[1] && px[2] == layout.trns[2]) {
          alpha = 0;
        }
        break;
      }
      case PNG_COLOR_TYPE_PALETTE: {
        const uint8_t index = raw[x];
        std::memcpy(px, layout.palette[index].data(), 3);
        alpha = layout.palette_alpha[index];
        break;
      }
      case PNG_COLOR_TYPE_GRAY_ALPHA: {
        const uint8_t* s = raw + x * 2 * sample_bytes;
        px[0] = px[1] = px[2] = s[0];
        alpha = s[sample_bytes];
        break;
      }
      default: {  // RGBA
        const uint8_t* s = raw + x * 4 * sample_bytes;
        for (size_t c = 0; c < 3; ++c) px[c] = s[c * sample_bytes];
        alpha = s[3 * sample_bytes];
        break;
      }
    }
    // Compositing an opaque pixel leaves it unchanged, so every pixel can go through it: the same result
    // as PIL compositing only the images that have transparency.
    if (alpha_mode == AlphaMode::over_white) composite_over_white(px, alpha);
  }
}

void read_layout(png_structp png, png_infop info, PngState& state) {
  PngLayout& layout = state.layout;
  layout.color_type = png_get_color_type(png, info);
  layout.bit_depth = png_get_bit_depth(png, info);
  layout.width = png_get_image_width(png, info);
  layout.palette_alpha.fill(255);
  if (layout.color_type == PNG_COLOR_TYPE_PALETTE) {
    png_colorp palette = nullptr;
    int count = 0;
    if (png_get_PLTE(png, info, &palette, &count) != 0) {
      for (int i = 0; i < count && i < 256; ++i)
        layout.palette[static_cast<size_t>(i)] = {palette[i].red, palette[i].green, palette[i].blue};
    }
  }
  png_bytep trans_alpha = nullptr;
  int num_trans = 0;
  png_color_16p trans_color = nullptr;
  if (png_get_tRNS(png, info, &trans_alpha, &num_trans, &trans_color) != 0) {
    if (layout.color_type == PNG_COLOR_TYPE_PALETTE && trans_alpha != nullptr) {
      for (int i = 0; i < num_trans && i < 256; ++i) layout.palette_alpha[static_cast<size_t>(i)] = trans_alpha[i];
    } else if (trans_color != nullptr && layout.color_type == PNG_COLOR_TYPE_GRAY) {
      layout.has_trns_color = true;
      // PIL keeps a 1-bit image's transparency as 0/255 and any other as the raw value, then compares
      // its low byte with the converted pixel.
      layout.trns[0] = layout.bit_depth == 1 ? (trans_color->gray != 0 ? 255 : 0) : (trans_color->gray & 0xff);
    } else if (trans_color != nullptr && layout.color_type == PNG_COLOR_TYPE_RGB) {
      layout.has_trns_color = true;
      layout.trns = {trans_color->red & 0xff, trans_color->green & 0xff, trans_color->blue & 0xff};
    }
  }
}

// The libpng calls. Its errors longjmp back to the setjmp in run_png, discarding this frame: so it holds
// nothing with a destructor.
void read_png(png_structp png, png_infop info, PngState& state, AlphaMode alpha) {
  png_set_read_fn(png, &state, on_read);
  png_set_check_for_invalid_index(png, 0);  // out-of-palette indices are black, as in PIL
  // PIL refuses a bad CRC on any chunk before the image data, ancillary ones included (libpng would
  // drop those quietly). It skips IDAT CRCs, where libpng (and tessera) refuse: corrupt image data.
  png_set_crc_action(png, PNG_CRC_DEFAULT, PNG_CRC_ERROR_QUIT);
  png_read_info(png, info);
  const int64_t width = png_get_image_width(png, info);
  const int64_t height = png_get_image_height(png, info);
  if (width * height > kMaxImagePixels) {
    state.too_large = true;
    state.image.width = width;
    state.image.height = height;
    return;
  }
  read_layout(png, info, state);
  if (png_get_bit_depth(png, info) < 8) png_set_packing(png);
  const int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  const auto rows = static_cast<size_t>(height);

  state.image.width = width;
  state.image.height = height;
  state.image.rgb.resize(rows * static_cast<size_t>(width) * 3);
  const size_t out_stride = static_cast<size_t>(width) * 3;
  if (passes == 1) {
    state.raw.resize(row_bytes);
    for (size_t y = 0; y < rows; ++y) {
      png_read_row(png, state.raw.data(), nullptr);
      convert_row(state.raw.data(), state.layout, alpha, state.image.rgb.data() + y * out_stride);
    }
  } else {
    state.raw.resize(row_bytes * rows);
    state.row_pointers.resize(rows);
    for (size_t y = 0; y < rows; ++y) state.row_pointers[y] = state.raw.data() + y * row_bytes;
    png_read_image(png, state.row_pointers.data());
    for (size_t y = 0; y < rows; ++y) {
      convert_row(state.row_pointers[y], state.layout, alpha, state.image.rgb.data() + y * out_stride);
    }
  }
  // Like PIL, the chunks after the image data (up to IEND) are not needed and not required. Unlike PIL,
  // the image data must be complete up to its zlib checksum and CRC (PIL decodes a file cut just there).
}

bool run_png(png_structp png, png_infop info, PngState& state, AlphaMode alpha) {
  if (setjmp(png_jmpbuf(png))) return false;
  read_png(png, info, state, alpha);
  return true;
}

}  // namespace

Image decode_png(std::span<const uint8_t> bytes, const std::string& name, AlphaMode alpha) {
  PngState state;
  state.bytes = bytes;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, on_error, on_warning);
  TESSERA_CHECK(png != nullptr, "{}: cannot start the PNG decoder (out of memory)", name);
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    TESSERA_FAIL("{}: cannot start the PNG decoder (out of memory)", name);
  }
  bool ok = false;
  try {
    ok = run_png(png, info, state, alpha);
  } catch (...) {  // std::bad_alloc from our buffers: free libpng's state first
    png_destroy_read_struct(&png, &info, nullptr);
    throw;
  }
  png_destroy_read_struct(&png, &info, nullptr);
  TESSERA_CHECK(!state.too_large, "{}: PNG declares {} x {} pixels, more than the {} tessera (like PIL) accepts", name,
                state.image.width, state.image.height, kMaxImagePixels);
  TESSERA_CHECK(!state.truncated, "{}: PNG is truncated: the file ends before the image is complete", name);
  TESSERA_CHECK(ok, "{}: not a readable PNG: {}", name, state.message.data());
  return std::move(state.image);
}

}  // namespace tessera::data::detail
