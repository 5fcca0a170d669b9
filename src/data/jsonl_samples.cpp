#include "tessera/data/jsonl_samples.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>

#include "tessera/core/dtype.hpp"
#include "tessera/core/error.hpp"

namespace tessera::data {
namespace {

constexpr std::string_view kImageMarker = "<image>";
constexpr std::string_view kVideoMarker = "<video>";

size_t count_markers(std::string_view text, std::string_view marker) {
  size_t n = 0;
  for (size_t at = text.find(marker); at != std::string_view::npos; at = text.find(marker, at + marker.size())) ++n;
  return n;
}

std::vector<std::string> string_list(const nlohmann::json& j, const std::string& where, const std::string& field) {
  TESSERA_CHECK(j.is_array(), "{}: \"{}\" must be a list of paths", where, field);
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i) {
    TESSERA_CHECK(j[i].is_string() && !j[i].get<std::string>().empty(), "{}: {}[{}] must be a non-empty path",
                  where, field, i);
    out.push_back(j[i].get<std::string>());
  }
  return out;
}

}  // namespace

RawSample parse_sample_line(std::string_view line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    TESSERA_FAIL("{}: not valid JSON: {}", where, e.what());
  }
  TESSERA_CHECK(j.is_object(), "{}: a sample must be a JSON object", where);
  // Other fields (ids, categories, sources) are metadata and pass through; a near-miss of a field that
  // carries content would silently drop that content, so it is refused.
  static constexpr std::pair<std::string_view, std::string_view> kNearMisses[] = {
      {"message", "messages"}, {"image", "images"}, {"video", "videos"}, {"tool", "tools"},
      {"conversations", "messages"}, {"conversation", "messages"}};
  for (const auto& [key, value] : j.items())
    for (const auto& [wrong, right] : kNearMisses)
      TESSERA_CHECK(key != wrong, "{}: field \"{}\" is not read; did you mean \"{}\"?", where, key, right);
  TESSERA_CHECK(j.contains("messages"), "{}: no \"messages\"", where);
  RawSample raw;
  raw.messages = messages_from_json(j.at("messages"), where);
  TESSERA_CHECK(!raw.messages.empty(), "{}: \"messages\" is empty", where);
  if (j.contains("images")) raw.images = string_list(j.at("images"), where, "images");
  if (j.contains("videos")) {
    const auto& videos = j.at("videos");
    TESSERA_CHECK(videos.is_array(), "{}: \"videos\" must be a list of frame lists", where);
    for (size_t v = 0; v < videos.size(); ++v) {
      raw.videos.push_back(string_list(videos[v], where, fmt::format("videos[{}]", v)));
      TESSERA_CHECK(!raw.videos.back().empty(), "{}: videos[{}] has no frames", where, v);
    }
  }
  if (j.contains("tools") && !j.at("tools").is_null()) {
    TESSERA_CHECK(j.at("tools").is_array(), "{}: \"tools\" must be a list of tool schemas", where);
    raw.tools_json = j.at("tools").dump();
  }
  size_t image_markers = 0, video_markers = 0;
  for (const auto& m : raw.messages) {
    image_markers += count_markers(m.content, kImageMarker);
    video_markers += count_markers(m.content, kVideoMarker);
  }
  TESSERA_CHECK(image_markers == raw.images.size(), "{}: {} <image> marker(s) but {} image(s) listed", where,
                image_markers, raw.images.size());
  TESSERA_CHECK(video_markers == raw.videos.size(), "{}: {} <video> marker(s) but {} video(s) listed", where,
                video_markers, raw.videos.size());
  return raw;
}

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
