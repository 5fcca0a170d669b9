// libFuzzer target for the JSONL sample parser: any bytes as one line. A crash is a sanitizer report or
// any exception other than tessera::Error; an accepted sample must keep the parser's promises.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tessera/core/error.hpp"
#include "tessera/data/jsonl_samples.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  try {
    const tessera::data::RawSample raw = tessera::data::parse_sample_line(line, "fuzz:1");
    size_t images = 0, videos = 0;
    for (const auto& m : raw.messages) {
      for (size_t at = m.content.find(tessera::data::kImageMarker); at != std::string::npos;
           at = m.content.find(tessera::data::kImageMarker, at + 1))
        ++images;
      for (size_t at = m.content.find(tessera::data::kVideoMarker); at != std::string::npos;
           at = m.content.find(tessera::data::kVideoMarker, at + 1))
        ++videos;
    }
    if (raw.messages.empty() || images != raw.images.size() || videos != raw.videos.size()) std::abort();
    for (const auto& v : raw.videos)
      if (v.empty()) std::abort();
  } catch (const tessera::Error&) {
    // refused with a message: the expected outcome for most inputs
  }
  return 0;
}
