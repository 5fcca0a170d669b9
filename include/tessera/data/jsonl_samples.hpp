#pragma once
// Training samples from JSONL conversations: one JSON object per line,
//   {"messages": [...], "images": ["a.png", ...], "videos": [["f0.png", "f1.png", ...], ...], "tools": [...]}
// with "<image>" / "<video>" markers in message contents, one per listed image / video, in order. A sample
// becomes token ids (Qwen ChatML via the chat template), per-token labels (assistant tokens), and vision
// items: each marker turns into <|vision_start|> + N pad tokens + <|vision_end|>, N = the item's patches
// / merge_size², as transformers' Qwen2-VL processor expands it. Other top-level fields are metadata and
// are ignored, except near-misses of the fields above ("image", "conversations", …), which are refused.

#include <string>
#include <string_view>
#include <vector>

#include "tessera/data/chat_template.hpp"
#include "tessera/data/sample.hpp"
#include "tessera/data/tokenizer.hpp"
#include "tessera/data/vision.hpp"

namespace tessera::data {

inline constexpr std::string_view kImageMarker = "<image>";
inline constexpr std::string_view kVideoMarker = "<video>";

struct RawSample {
  std::vector<Message> messages;
  std::vector<std::string> images;               // paths as written in the line
  std::vector<std::vector<std::string>> videos;  // frame paths per video
  std::string tools_json;                        // JSON array text, or empty
};

// Parses one line. `where` is "file:line" for messages; every error names it and the field at fault.
// Needs no files, tokenizer or images, so it can be fuzzed on its own.
RawSample parse_sample_line(std::string_view line, const std::string& where);

struct SampleBuilderOptions {
  VisionConfig vision;
  std::string base_dir;          // image and frame paths are relative to it (the JSONL file's directory)
  double video_source_fps = 2.0;  // the rate the listed frames were captured at
  double video_fps = 2.0;         // the rate frames are sampled at for the model
};

class SampleBuilder {
 public:
  SampleBuilder(const Tokenizer& tokenizer, SampleBuilderOptions options);
  // Thread-safe. Throws tessera::Error naming `where` and the cause (marker/list mismatch, an image that
  // cannot be read, no trainable token, …).
  Sample build(const RawSample& raw, const std::string& where, uint64_t source_index) const;

 private:
  const Tokenizer& tokenizer_;
  SampleBuilderOptions options_;
  int32_t image_pad_ = -1, video_pad_ = -1;
};

}  // namespace tessera::data
