// libFuzzer target for the safetensors reader: any byte string is either refused with tessera::Error or
// accepted as a header whose every promise holds. Any other exception, a sanitizer report, or a broken
// promise (checked below and turned into an abort) is a crash libFuzzer keeps.
//
// It drives SafetensorsFile::parse_header, the same validation open() runs on a file's header, over an
// image in memory: no file I/O per input, so it runs at full speed.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <span>

#include "tessera/core/error.hpp"
#include "tessera/io/safetensors.hpp"

namespace {

void require(bool promise) {
  if (!promise) std::abort();
}

// Reads every element the header says a tensor has, from the bytes it says hold it: AddressSanitizer
// turns any range outside the image into a report.
float touch(const tessera::io::TensorInfo& t, std::span<const std::byte> bytes) {
  using tessera::DType;
  float sum = 0;
  const size_t n = static_cast<size_t>(t.numel());
  for (size_t i = 0; i < n; ++i) {
    uint16_t h = 0;
    switch (t.dtype) {
      case DType::bf16:
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        sum += tessera::bf16_to_f32(h);
        break;
      case DType::f16:
        std::memcpy(&h, bytes.data() + 2 * i, 2);
        sum += tessera::f16_to_f32(h);
        break;
      default: sum += static_cast<float>(bytes[i * tessera::dtype_size(t.dtype)]);
    }
  }
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> image(reinterpret_cast<const std::byte*>(data), size);
  tessera::io::SafetensorsHeader header;
  try {
    header = tessera::io::SafetensorsFile::parse_header("fuzz.safetensors", image);
  } catch (const tessera::Error&) {
    return 0;  // refused with a message: the expected outcome for almost every input
  }

  // Accepted: the data section is exactly the rest of the image, and the tensors tile it.
  require(header.data_begin >= 8 && header.data_begin <= size);
  require(header.data_size == size - header.data_begin);
  std::set<std::string> names;
  uint64_t covered = 0;
  volatile float sink = 0;
  for (const tessera::io::TensorInfo& t : header.tensors) {
    require(names.insert(t.name).second);
    require(t.begin <= t.end && t.end <= header.data_size);
    require(t.numel() >= 0);
    for (int64_t d : t.shape) require(d >= 0);
    require(t.end - t.begin == static_cast<uint64_t>(t.numel()) * tessera::dtype_size(t.dtype));
    covered += t.end - t.begin;
    sink = sink + touch(t, image.subspan(header.data_begin + t.begin, t.end - t.begin));
  }
  require(covered == header.data_size);
  return 0;
}
