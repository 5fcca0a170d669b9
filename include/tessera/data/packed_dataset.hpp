#pragma once
// The packed-data file, HDF5 format v1 (docs/data-format.md is the spec): flat datasets plus offsets, no
// variable-length types, so h5py or any HDF5 reader sees plain arrays. Rows are stored unpadded.
//
// Writing goes to "<path>.tmp-<pid>", which is flushed, fsynced and renamed over <path> only by finish():
// a failed or abandoned write leaves nothing under <path> (and removes the temp file).
// Reading opens read-only, validates every offset array against the others and against the payload
// dataset sizes before the first row is served, and refuses a file with a wrong version, a missing or
// mistyped dataset, or inconsistent offsets with an Error naming the file and the dataset.
// HDF5 takes a shared lock on open; on file systems without flock() set HDF5_USE_FILE_LOCKING=FALSE.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tessera/data/packer.hpp"
#include "tessera/data/sample.hpp"

namespace tessera::data {

inline constexpr int64_t kPackedFormatVersion = 1;

// Dataset and attribute names of format v1 (the spec's vocabulary; writer, reader and tests share them).
namespace packed_format {
inline constexpr const char* kTokens = "tokens";                          // int32 [T]
inline constexpr const char* kLabels = "labels";                          // uint8 [T]
inline constexpr const char* kPositionIds = "position_ids";               // int32 [T]
inline constexpr const char* kRowOffsets = "row_offsets";                 // int64 [R+1] into tokens
inline constexpr const char* kSampleOffsets = "sample_offsets";           // int64 [S+1] into tokens
inline constexpr const char* kRowSampleOffsets = "row_sample_offsets";    // int64 [R+1] into samples
inline constexpr const char* kSampleSourceIndex = "sample_source_index";  // uint64 [S]
inline constexpr const char* kVisionPatches = "vision_patches";           // uint16 [P, D] (bf16 bits)
inline constexpr const char* kVisionGridThw = "vision_grid_thw";          // int64 [V, 3]
inline constexpr const char* kVisionPatchOffsets = "vision_patch_offsets";  // int64 [V+1] into patches
inline constexpr const char* kVisionTokenOffsets = "vision_token_offsets";  // int64 [V] absolute token index
inline constexpr const char* kVisionTokenCounts = "vision_token_counts";    // int64 [V]
inline constexpr const char* kVisionIsVideo = "vision_is_video";            // uint8 [V]
inline constexpr const char* kRowVisionOffsets = "row_vision_offsets";      // int64 [R+1] into items
}  // namespace packed_format

// File attributes. The writer takes the descriptive fields from its caller and computes the counts; the
// reader fills everything from the file.
struct PackedDatasetInfo {
  int64_t format_version = kPackedFormatVersion;
  int64_t seq_length = 0;
  std::string tokenizer_sha256;     // hex SHA-256 of tokenizer.json (Tokenizer::sha256), may be empty
  std::string packing_policy;       // to_string(PackPolicy), or what the producer did
  std::string overlong_policy;      // to_string(OverlongPolicy)
  int64_t truncated = 0;            // from the PackReport
  int64_t dropped = 0;
  int64_t empty = 0;
  std::string source_checksums = "{}";  // JSON text: {"<source file>": "sha256:<hex>", ...}
  std::string created_by = "tessera";
  // Counts, computed by the writer.
  int64_t samples = 0;
  int64_t rows = 0;
  int64_t tokens = 0;
  int64_t vision_items = 0;
  int64_t patches = 0;
  int64_t patch_dim = 0;  // 0 when the file has no vision items
  double fill = 0.0;      // tokens / (rows * seq_length)
};

struct PackedDatasetWriteOptions {
  int deflate_level = 0;            // 0 = no compression; 1..9 = gzip level (chunks are decompressed whole)
  uint64_t chunk_bytes = 2u << 20;  // target chunk size per dataset
};

class PackedDatasetWriter {
 public:
  PackedDatasetWriter(std::string path, PackedDatasetInfo info, PackedDatasetWriteOptions options = {});
  ~PackedDatasetWriter();  // without finish(): removes the temp file, <path> is untouched
  PackedDatasetWriter(const PackedDatasetWriter&) = delete;
  PackedDatasetWriter& operator=(const PackedDatasetWriter&) = delete;

  // Appends one row: samples[i] keeps its first keep_tokens[i] tokens (its whole length when
  // keep_tokens is empty). A cut may not split a vision item; items after the cut are left out.
  // The row may not exceed seq_length tokens.
  void add_row(std::span<const Sample* const> samples, std::span<const int64_t> keep_tokens = {});
  // Writes the attributes, closes, fsyncs and renames. The info as written (counts filled in).
  const PackedDatasetInfo& finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One call: rows as `plan` says (truncations included), info's policy and counters taken from the plan.
PackedDatasetInfo write_packed_dataset(const std::string& path, std::span<const Sample> samples, const PackPlan& plan,
                                       PackedDatasetInfo info, PackedDatasetWriteOptions options = {});

// A row as training consumes it. Offsets are relative to the row: cu_seqlens[0] = 0, back() = tokens.size(),
// and each vision item's token_offset indexes tokens.
struct PackedRow {
  int32_t file = 0;   // the file's index in the Loader's list (0 when read directly)
  int64_t index = 0;  // the row's index in its file
  std::vector<int32_t> tokens;
  std::vector<uint8_t> labels;        // 1 = loss
  std::vector<int32_t> position_ids;  // restart at 0 at each sample
  std::vector<int32_t> cu_seqlens;    // [samples + 1]
  std::vector<uint64_t> source_index; // per sample
  std::vector<VisionItem> vision;
};

class PackedDataset {
 public:
  // Throws tessera::Error naming `path` and the dataset or attribute that is missing or inconsistent.
  static PackedDataset open(const std::string& path);

  int64_t rows() const;
  // Reads row i (0 <= i < rows()). Safe to call from several threads at once.
  PackedRow row(int64_t i) const;
  const PackedDatasetInfo& info() const;
  const std::string& path() const;

 private:
  struct Impl;
  explicit PackedDataset(std::shared_ptr<const Impl> impl);
  std::shared_ptr<const Impl> impl_;  // shared: copies are cheap and read the same open file
};

}  // namespace tessera::data
