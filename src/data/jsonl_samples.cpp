#include "tessera/data/jsonl_samples.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "tessera/core/dtype.hpp"
#include "tessera/core/error.hpp"

namespace tessera::data {
SampleBuilder::SampleBuilder(const Tokenizer& tokenizer, SampleBuilderOptions options)
    : tokenizer_(tokenizer), options_(std::move(options)) {
  image_pad_ = tokenizer_.token_to_id("<|image_pad|>").value_or(-1);
  video_pad_ = tokenizer_.token_to_id("<|video_pad|>").value_or(-1);
}

Sample SampleBuilder::build(const RawSample& raw, const std::string& where, uint64_t source_index) const {
  namespace fs = std::filesystem;
  const auto resolve = [&](const std::string& path) {
    const fs::path p(path);
    return (p.is_absolute() ? p : fs::path(options_.base_dir) / p).string();
  };
  TESSERA_CHECK((raw.images.empty() || image_pad_ >= 0) && (raw.videos.empty() || video_pad_ >= 0),
                "{}: the tokenizer {} has no <|image_pad|>/<|video_pad|> token for the sample's images or videos",
                where, tokenizer_.source());

  // Vision items in marker order: images first by their own order, videos by theirs; the marker text
  // decides where each lands.
  struct Pending {
    VisionPatches patches;
    bool video;
  };
  std::vector<Pending> images, videos;
  for (const auto& path : raw.images) {
    const std::string full = resolve(path);
    try {
      images.push_back({preprocess_images({decode_image(full)}, options_.vision), false});
    } catch (const Error& e) {
      TESSERA_FAIL("{}: image {}: {}", where, path, e.what());
    }
  }
  for (const auto& frames : raw.videos) {
    const auto keep = sample_frame_indices(frames.size(), options_.video_source_fps, options_.video_fps);
    std::vector<Image> decoded;
    for (const size_t i : keep) {
      try {
        decoded.push_back(decode_image(resolve(frames[i])));
      } catch (const Error& e) {
        TESSERA_FAIL("{}: video frame {}: {}", where, frames[i], e.what());
      }
    }
    videos.push_back({preprocess_images(decoded, options_.vision), true});
  }

  // Expand each marker into <|vision_start|> + N pads + <|vision_end|>.
  const int64_t merge = options_.vision.merge_size;
  std::vector<Message> messages = raw.messages;
  size_t next_image = 0, next_video = 0;
  std::vector<const Pending*> order;
  for (auto& m : messages) {
    std::string out;
    for (size_t at = 0; at < m.content.size();) {
      const std::string_view rest = std::string_view(m.content).substr(at);
      const bool image = rest.starts_with(kImageMarker), video = rest.starts_with(kVideoMarker);
      if (!image && !video) {
        out += m.content[at++];
        continue;
      }
      const Pending& item = image ? images.at(next_image++) : videos.at(next_video++);
      order.push_back(&item);
      out += "<|vision_start|>";
      const std::string pad = image ? "<|image_pad|>" : "<|video_pad|>";
      for (int64_t i = 0; i < item.patches.num_tokens(merge); ++i) out += pad;
      out += "<|vision_end|>";
      at += (image ? kImageMarker : kVideoMarker).size();
    }
    m.content = std::move(out);
  }

  ChatOptions chat;
  chat.tools_json = raw.tools_json;
  TokenizedChat tokens = tokenize_chat(tokenizer_, messages, chat);
  Sample sample;
  sample.ids = std::move(tokens.ids);
  sample.labels = std::move(tokens.labels);
  sample.source_index = source_index;
  TESSERA_CHECK(std::find(sample.labels.begin(), sample.labels.end(), 1) != sample.labels.end(),
                "{}: no assistant token to train on", where);

  // Locate each item's run of pad tokens, in order, and attach its patches as bf16 bits.
  size_t cursor = 0;
  for (const Pending* item : order) {
    const int32_t pad = item->video ? video_pad_ : image_pad_;
    while (cursor < sample.ids.size() && sample.ids[cursor] != pad) ++cursor;
    const int64_t want = item->patches.num_tokens(merge);
    int64_t run = 0;
    while (cursor + static_cast<size_t>(run) < sample.ids.size() && sample.ids[cursor + static_cast<size_t>(run)] == pad)
      ++run;
    TESSERA_CHECK(run == want, "{}: expected a run of {} pad tokens for a vision item, found {}", where, want, run);
    VisionItem v;
    v.patches_bf16.resize(item->patches.patches.size());
    for (size_t i = 0; i < v.patches_bf16.size(); ++i) v.patches_bf16[i] = f32_to_bf16(item->patches.patches[i]);
    v.num_patches = item->patches.num_patches();
    v.patch_dim = item->patches.patch_dim;
    v.grid_t = item->patches.grid_t;
    v.grid_h = item->patches.grid_h;
    v.grid_w = item->patches.grid_w;
    v.token_offset = static_cast<int64_t>(cursor);
    v.num_tokens = want;
    v.is_video = item->video;
    sample.vision.push_back(std::move(v));
    cursor += static_cast<size_t>(run);
  }
  validate_sample(sample, static_cast<int64_t>(source_index));
  return sample;
}

}  // namespace tessera::data
