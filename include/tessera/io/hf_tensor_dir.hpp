#pragma once
// The tensors of a Hugging Face model directory, as transformers' save_pretrained lays them out: either
// one `model.safetensors`, or shards `model-00001-of-0000N.safetensors` with
// `model.safetensors.index.json` ({"metadata": {"total_size": N}, "weight_map": {tensor: shard file}}).
// Opening checks that the index and the shards agree in both directions, so a partial download or a
// hand-edited index is refused up front with the tensor and both files named.

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/io/safetensors.hpp"

namespace tessera::io {

inline constexpr std::string_view kHfSingleFile = "model.safetensors";
inline constexpr std::string_view kHfIndexFile = "model.safetensors.index.json";

class HfTensorDir {
 public:
  // model.safetensors wins when both it and the index exist: transformers' from_pretrained checks for
  // it first, and a directory must load the same weights here as there.
  static HfTensorDir open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool sharded() const { return !index_path_.empty(); }  // read through model.safetensors.index.json
  std::vector<std::string> names() const;  // sorted
  bool contains(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;  // refuses, naming the directory, when absent
  const SafetensorsFile& file_of(std::string_view name) const;
  std::vector<float> read_f32(std::string_view name) const;
  void read_f32_into(std::string_view name, std::span<float> out) const;
  std::vector<std::byte> read_bytes(std::string_view name) const;

 private:
  struct Location {
    size_t file;
    const TensorInfo* info;  // points into files_[file]'s header, whose storage does not move
  };
  const Location& locate(std::string_view name) const;

  std::string dir_;
  std::string index_path_;  // empty for a single-file directory
  std::vector<SafetensorsFile> files_;
  std::map<std::string, Location, std::less<>> tensors_;
};

// One shard -> model.safetensors; more -> model-0000i-of-0000N.safetensors plus the index, with tensors
// packed in the given order into shards of at most max_shard_bytes (a larger tensor gets a shard of its
// own), as save_pretrained does. Each shard carries metadata {"format": "pt"}, which transformers checks.
// Files of a previous save that the new layout does not use (a stale index or shard) are removed, so the
// directory never mixes two saves.
void write_hf_tensor_dir(const std::string& dir, const std::vector<WriteTensor>& tensors,
                         uint64_t max_shard_bytes = 5'000'000'000ULL);

}  // namespace tessera::io
