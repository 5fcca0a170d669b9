// Image files to RGB: read the bytes, pick the decoder by magic number (as PIL does, never by the file's
// extension), and report any failure with the file's name.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "tessera/core/error.hpp"
#include "tessera/data/vision.hpp"
#include "vision_codecs.hpp"

namespace tessera::data {
namespace {

constexpr std::array<uint8_t, 8> kPngMagic = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
constexpr std::array<uint8_t, 3> kJpegMagic = {0xff, 0xd8, 0xff};

template <size_t N>
bool starts_with(std::span<const uint8_t> bytes, const std::array<uint8_t, N>& magic) {
  return bytes.size() >= N && std::equal(magic.begin(), magic.end(), bytes.begin());
}

std::string leading_bytes(std::span<const uint8_t> bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < 8; ++i) out += fmt::format("{}{:02x}", i == 0 ? "" : " ", bytes[i]);
  return out;
}

}  // namespace

Image decode_image_bytes(std::span<const uint8_t> bytes, const std::string& name_for_errors, AlphaMode alpha) {
  TESSERA_CHECK(!bytes.empty(), "{}: image file is empty", name_for_errors);
  if (starts_with(bytes, kPngMagic)) return detail::decode_png(bytes, name_for_errors, alpha);
  if (starts_with(bytes, kJpegMagic)) return detail::decode_jpeg(bytes, name_for_errors, alpha);
  TESSERA_FAIL("{}: not a PNG or JPEG image (it starts with bytes {}); only PNG and JPEG are supported",
               name_for_errors, leading_bytes(bytes));
}

Image decode_image(const std::string& path, AlphaMode alpha) {
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);  // fails for directories and missing files
  TESSERA_CHECK(!error, "{}: cannot read image file: {}", path, error.message());
  std::ifstream in(path, std::ios::binary);
  TESSERA_CHECK(in.is_open(), "{}: cannot open image file: {}", path, std::strerror(errno));
  std::vector<uint8_t> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  TESSERA_CHECK(static_cast<uintmax_t>(in.gcount()) == size, "{}: cannot read image file ({} of {} bytes read)", path,
                in.gcount(), size);
  return decode_image_bytes(bytes, path, alpha);
}

}  // namespace tessera::data
