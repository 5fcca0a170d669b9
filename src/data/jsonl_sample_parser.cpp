// The JSONL sample parser: text of one line → messages and media paths, with every check that needs no
// file, tokenizer or image. Kept apart from the builder so the fuzz target links only this and the chat
// message reader.

#include <nlohmann/json.hpp>

#include "tessera/core/error.hpp"
#include "tessera/data/jsonl_samples.hpp"

namespace tessera::data {
namespace {

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
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for numbers too large
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

}  // namespace tessera::data
