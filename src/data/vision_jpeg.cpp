// JPEG -> RGB exactly as PIL's JpegImagePlugin followed by `.convert("RGB")`: libjpeg(-turbo) with PIL's
// settings (its defaults: ISLOW integer IDCT, fancy upsampling), 1 component -> gray replicated, 3 -> RGB
// (libjpeg converts YCbCr), 4 -> CMYK read with Adobe's inverted polarity (PIL's "CMYK;I", YCCK converted
// by libjpeg) and turned into RGB with PIL's integer cmyk2rgb. EXIF orientation is not applied (PIL does
// not either unless asked). A file that ends early is an error, as in PIL (which refuses truncated images
// unless LOAD_TRUNCATED_IMAGES is set); libjpeg's other warnings about recoverable corruption are ignored,
// as PIL ignores them.
// clang-format off
#include <cstdio>  // jpeglib.h needs FILE and size_t declared first
#include <jpeglib.h>
#include <jerror.h>
// clang-format on

#include <array>
#include <csetjmp>
#include <cstring>
#include <span>
#include <vector>

#include "tessera/core/error.hpp"
#include "vision_codecs.hpp"

namespace tessera::data::detail {
namespace {

// Everything libjpeg touches lives here, owned by decode_jpeg, so that a longjmp out of libjpeg never skips
// a destructor and never reads a clobbered local.
struct JpegState;

// What cinfo.err points at: libjpeg's error manager and the way back to our state.
struct JpegErrors {
  jpeg_error_mgr pub{};
  JpegState* state = nullptr;
};

struct JpegState {
  JpegErrors errors;
  std::jmp_buf jump{};
  bool truncated = false;
  bool too_large = false;
  bool unsupported = false;
  int components = 0;
  std::array<char, JMSG_LENGTH_MAX> message{};
  std::vector<uint8_t> row;
  Image image;
};

JpegState& state_of(j_common_ptr cinfo) {
  // cinfo->err points at JpegErrors::pub, its first member (JpegErrors is standard-layout).
  return *reinterpret_cast<JpegErrors*>(cinfo->err)->state;
}

[[noreturn]] void on_error(j_common_ptr cinfo) {
  JpegState& state = state_of(cinfo);
  (*cinfo->err->format_message)(cinfo, state.message.data());
  std::longjmp(state.jump, 1);
}

void on_message(j_common_ptr cinfo, int level) {
  JpegState& state = state_of(cinfo);
  // Level -1 is a warning. Running out of data is the only one PIL turns into an error: libjpeg would pad
  // the image with gray.
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    state.truncated = true;
    std::longjmp(state.jump, 1);
  }
}

// PIL's MULDIV255: a * b / 255, rounded, in integers.
uint8_t muldiv255(unsigned a, unsigned b) {
  const unsigned tmp = a * b + 128;
  return static_cast<uint8_t>(((tmp >> 8) + tmp) >> 8);
}

void convert_row(const uint8_t* in, size_t width, int components, uint8_t* out) {
  for (size_t x = 0; x < width; ++x) {
    uint8_t* px = out + 3 * x;
    if (components == 1) {
      px[0] = px[1] = px[2] = in[x];
    } else if (components == 3) {
      std::memcpy(px, in + 3 * x, 3);
    } else {
      // "CMYK;I" stores 255 - v; cmyk2rgb then gives nk - nk * c / 255 with nk = 255 - K.
      const uint8_t* s = in + 4 * x;
      const unsigned nk = s[3];
      for (int c = 0; c < 3; ++c) {
        const int value = static_cast<int>(nk) - muldiv255(255u - s[c], nk);
        px[c] = static_cast<uint8_t>(value < 0 ? 0 : value);
      }
    }
  }
}

// The libjpeg calls. Its errors longjmp back to the setjmp in run_jpeg, discarding this frame: so it holds
// nothing with a destructor.
void read_jpeg(jpeg_decompress_struct& cinfo, std::span<const uint8_t> bytes, JpegState& state) {
  jpeg_mem_src(&cinfo, bytes.data(), static_cast<unsigned long>(bytes.size()));
  jpeg_read_header(&cinfo, TRUE);
  state.components = cinfo.num_components;
  state.image.width = cinfo.image_width;
  state.image.height = cinfo.image_height;
  if (cinfo.num_components != 1 && cinfo.num_components != 3 && cinfo.num_components != 4) {
    state.unsupported = true;  // PIL refuses these too
    return;
  }
  if (state.image.width * state.image.height > kMaxImagePixels) {
    state.too_large = true;
    return;
  }
  cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : cinfo.num_components == 3 ? JCS_RGB : JCS_CMYK;
  jpeg_start_decompress(&cinfo);
  const auto width = static_cast<size_t>(cinfo.output_width);
  const auto height = static_cast<size_t>(cinfo.output_height);
  state.image.width = cinfo.output_width;
  state.image.height = cinfo.output_height;
  state.image.rgb.resize(width * height * 3);
  state.row.resize(width * static_cast<size_t>(cinfo.output_components));
  while (cinfo.output_scanline < cinfo.output_height) {
    const size_t y = cinfo.output_scanline;
    JSAMPROW row = state.row.data();
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
      state.truncated = true;  // a suspending source is not used; defensive only
      return;
    }
    convert_row(state.row.data(), width, cinfo.output_components, state.image.rgb.data() + y * width * 3);
  }
  jpeg_finish_decompress(&cinfo);
}

bool run_jpeg(jpeg_decompress_struct& cinfo, std::span<const uint8_t> bytes, JpegState& state) {
  if (setjmp(state.jump)) return false;
  read_jpeg(cinfo, bytes, state);
  return true;
}

}  // namespace

Image decode_jpeg(std::span<const uint8_t> bytes, const std::string& name, AlphaMode) {
  JpegState state;
  jpeg_decompress_struct cinfo{};
  state.errors.state = &state;
  cinfo.err = jpeg_std_error(&state.errors.pub);
  state.errors.pub.error_exit = on_error;
  state.errors.pub.emit_message = on_message;
  jpeg_create_decompress(&cinfo);
  bool ok = false;
  try {
    ok = run_jpeg(cinfo, bytes, state);
  } catch (...) {  // std::bad_alloc from our buffers: free libjpeg's state first
    jpeg_destroy_decompress(&cinfo);
    throw;
  }
  jpeg_destroy_decompress(&cinfo);
  TESSERA_CHECK(!state.truncated, "{}: JPEG is truncated: the file ends before the image is complete", name);
  TESSERA_CHECK(ok, "{}: not a readable JPEG: {}", name, state.message.data());
  TESSERA_CHECK(!state.unsupported,
                "{}: JPEG has {} colour components; only 1 (gray), 3 (YCbCr/RGB) and 4 (CMYK/YCCK) are supported", name,
                state.components);
  TESSERA_CHECK(!state.too_large, "{}: JPEG declares {} x {} pixels, more than the {} tessera (like PIL) accepts", name,
                state.image.width, state.image.height, kMaxImagePixels);
  TESSERA_CHECK(state.image.rgb.size() == static_cast<size_t>(state.image.width * state.image.height) * 3,
                "{}: JPEG is truncated: the file ends before the image is complete", name);
  return std::move(state.image);
}

}  // namespace tessera::data::detail
