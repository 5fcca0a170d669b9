#include "tessera/io/hf_tensor_dir.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

#include "tessera/core/error.hpp"
#include "tessera/io/atomic_file.hpp"

namespace tessera::io {
namespace fs = std::filesystem;

namespace {

// An index lists one line per tensor; even the largest models' indexes are a few MB. The limit keeps a
// wrong file (someone's checkpoint renamed) from being read whole into memory.
constexpr uint64_t kMaxIndexBytes = 100'000'000;

std::string read_small_file(const std::string& path, uint64_t limit) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  TESSERA_CHECK(!ec, "{}: cannot read its size: {}", path, ec.message());
  TESSERA_CHECK(size <= limit, "{}: {} bytes is too large for an index file (limit {})", path, size, limit);
  std::ifstream in(path, std::ios::binary);
  TESSERA_CHECK(in.good(), "{}: cannot open for reading", path);
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  TESSERA_CHECK(static_cast<uint64_t>(in.gcount()) == size, "{}: read {} of {} bytes", path, in.gcount(), size);
  return text;
}

// nlohmann keeps the last of two equal keys without a word; in a weight_map that would silently send a
// tensor to the wrong shard. The parse callback sees every key, so duplicates are refused per object.
nlohmann::json parse_json_refusing_duplicates(const std::string& path, const std::string& text) {
  std::vector<std::unordered_set<std::string>> open_objects;
  const auto callback = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& value) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) open_objects.emplace_back();
    if (event == E::object_end && !open_objects.empty()) open_objects.pop_back();
    if (event == E::key && !open_objects.empty()) {
      const std::string& key = value.get_ref<const std::string&>();
      TESSERA_CHECK(open_objects.back().insert(key).second, "{}: key '{}' appears twice", path, key);
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, callback);
  } catch (const nlohmann::json::exception& e) {
    TESSERA_FAIL("{}: not valid JSON: {}", path, e.what());
  }
}

// A weight_map entry must name a file inside the model directory, not somewhere else on the machine.
void check_shard_name(const std::string& index_path, const std::string& tensor, const std::string& file) {
  const fs::path p(file);
  bool escapes = file.empty() || p.is_absolute();
  for (const auto& part : p) escapes = escapes || part == "..";
  TESSERA_CHECK(!escapes, "{}: tensor '{}' is mapped to '{}', which is not a file name inside the model directory",
                index_path, tensor, file);
}

bool is_shard_file_name(const std::string& name) {
  return name.starts_with("model-") && name.ends_with(".safetensors") && name.find("-of-") != std::string::npos;
}

void remove_file(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);
  TESSERA_CHECK(!ec, "{}: cannot remove this file left by a previous save: {}", path.string(), ec.message());
}

}  // namespace

HfTensorDir HfTensorDir::open(const std::string& dir) {
  std::error_code ec;
  TESSERA_CHECK(fs::is_directory(dir, ec), "{}: not a directory{}", dir, ec ? ": " + ec.message() : "");
  HfTensorDir out;
  out.dir_ = dir;
  const fs::path index_path = fs::path(dir) / kHfIndexFile;
  const fs::path single_path = fs::path(dir) / kHfSingleFile;

  if (fs::is_regular_file(single_path, ec)) {
    out.files_.push_back(SafetensorsFile::open(single_path.string()));
    for (const TensorInfo& t : out.files_[0].tensors()) out.tensors_.emplace(t.name, Location{0, &t});
    return out;
  }
  TESSERA_CHECK(fs::is_regular_file(index_path, ec), "{}: neither {} nor {} is there", dir, kHfSingleFile,
                kHfIndexFile);

  out.index_path_ = index_path.string();
  const std::string& index = out.index_path_;
  const nlohmann::json root = parse_json_refusing_duplicates(index, read_small_file(index, kMaxIndexBytes));
  TESSERA_CHECK(root.is_object(), "{}: must be a JSON object with a weight_map", index);
  TESSERA_CHECK(root.contains("weight_map"), "{}: missing weight_map", index);
  const nlohmann::json& weight_map = root.at("weight_map");
  TESSERA_CHECK(weight_map.is_object(), "{}: weight_map must be an object of tensor name -> shard file", index);
  TESSERA_CHECK(!weight_map.empty(), "{}: weight_map lists no tensors", index);
  if (root.contains("metadata"))
    TESSERA_CHECK(root.at("metadata").is_object(), "{}: metadata must be an object", index);

  std::map<std::string, std::string> shard_of;     // tensor -> shard file, as the index says
  std::map<std::string, std::string> first_tensor;  // shard file -> a tensor mapped to it, for messages
  for (const auto& [tensor, file] : weight_map.items()) {
    TESSERA_CHECK(file.is_string(), "{}: weight_map['{}'] must be a shard file name, got {}", index, tensor,
                  file.dump());
    const std::string& name = file.get_ref<const std::string&>();
    check_shard_name(index, tensor, name);
    shard_of.emplace(tensor, name);
    first_tensor.emplace(name, tensor);
  }

  std::map<std::string, size_t> file_index;
  for (const auto& [file, tensor] : first_tensor) {
    const fs::path shard = fs::path(dir) / file;
    TESSERA_CHECK(fs::is_regular_file(shard, ec), "{}: tensor '{}' is mapped to '{}', which does not exist in {}",
                  index, tensor, file, dir);
    file_index.emplace(file, out.files_.size());
    out.files_.push_back(SafetensorsFile::open(shard.string()));
  }

  for (const auto& [tensor, file] : shard_of) {
    const size_t f = file_index.at(file);
    const TensorInfo* info = out.files_[f].find(tensor);
    TESSERA_CHECK(info != nullptr, "{}: tensor '{}' is listed in the index under '{}', but {} does not contain it",
                  index, tensor, file, out.files_[f].path());
    out.tensors_.emplace(tensor, Location{f, info});
  }
  for (const auto& [file, f] : file_index) {
    for (const TensorInfo& t : out.files_[f].tensors()) {
      const auto it = shard_of.find(t.name);
      TESSERA_CHECK(it != shard_of.end(), "{}: tensor '{}' is in this shard but not in the weight_map of {}",
                    out.files_[f].path(), t.name, index);
      TESSERA_CHECK(it->second == file, "{}: tensor '{}' is in this shard but {} maps it to '{}'",
                    out.files_[f].path(), t.name, index, it->second);
    }
  }
  return out;
}

std::vector<std::string> HfTensorDir::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, location] : tensors_) out.push_back(name);
  return out;
}

bool HfTensorDir::contains(std::string_view name) const { return tensors_.find(name) != tensors_.end(); }

const HfTensorDir::Location& HfTensorDir::locate(std::string_view name) const {
  const auto it = tensors_.find(name);
  TESSERA_CHECK(it != tensors_.end(), "{}: the model has no tensor '{}' ({} tensors in {})", dir_, name,
                tensors_.size(), index_path_.empty() ? std::string(kHfSingleFile) : std::string(kHfIndexFile));
  return it->second;
}

const TensorInfo& HfTensorDir::info(std::string_view name) const { return *locate(name).info; }

const SafetensorsFile& HfTensorDir::file_of(std::string_view name) const { return files_[locate(name).file]; }

std::vector<float> HfTensorDir::read_f32(std::string_view name) const { return file_of(name).read_f32(name); }

void HfTensorDir::read_f32_into(std::string_view name, std::span<float> out) const {
  file_of(name).read_f32_into(name, out);
}

std::vector<std::byte> HfTensorDir::read_bytes(std::string_view name) const { return file_of(name).read_bytes(name); }

void write_hf_tensor_dir(const std::string& dir, const std::vector<WriteTensor>& tensors, uint64_t max_shard_bytes) {
  TESSERA_CHECK(max_shard_bytes > 0, "{}: max_shard_bytes must be positive", dir);
  // Everything is checked before the first byte is written, so a bad tensor never leaves half a save.
  std::unordered_set<std::string_view> names;
  for (const WriteTensor& t : tensors) {
    check_write_tensor(dir, t);
    TESSERA_CHECK(names.insert(t.name).second, "{}: tensor '{}' is given twice", dir, t.name);
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  TESSERA_CHECK(!ec, "{}: cannot create the directory: {}", dir, ec.message());

  // Greedy packing in the given order, as transformers' shard_checkpoint does.
  std::vector<std::vector<const WriteTensor*>> shards(1);
  uint64_t shard_bytes = 0, total_bytes = 0;
  for (const WriteTensor& t : tensors) {
    const uint64_t size = t.data().size();
    if (!shards.back().empty() && shard_bytes + size > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&t);
    shard_bytes += size;
    total_bytes += size;
  }

  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  const fs::path root(dir);
  std::set<std::string> written;
  // Readers (ours and transformers') take model.safetensors over an index, so the order below keeps
  // every crash point loadable: a new single file wins as soon as it is renamed into place; new shards
  // and their index take over only once a stale single file is gone.
  if (shards.size() == 1) {
    write_safetensors((root / kHfSingleFile).string(), shards[0], metadata);
    written.insert(std::string(kHfSingleFile));
    if (fs::exists(root / kHfIndexFile, ec)) remove_file(root / kHfIndexFile);
  } else {
    nlohmann::json weight_map = nlohmann::json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string file = fmt::format("model-{:05d}-of-{:05d}.safetensors", i + 1, shards.size());
      write_safetensors((root / file).string(), shards[i], metadata);
      for (const WriteTensor* t : shards[i]) weight_map[t->name] = file;
      written.insert(file);
    }
    const nlohmann::json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_text_file_atomically((root / kHfIndexFile).string(), index.dump(2) + "\n");
    written.insert(std::string(kHfIndexFile));
    if (fs::exists(root / kHfSingleFile, ec)) remove_file(root / kHfSingleFile);
  }

  std::vector<fs::path> stale;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (is_shard_file_name(name) && !written.contains(name)) stale.push_back(it->path());
  }
  TESSERA_CHECK(!ec, "{}: cannot list the directory to remove stale shards: {}", dir, ec.message());
  for (const fs::path& p : stale) remove_file(p);
}

}  // namespace tessera::io
