#pragma once
// One tokenised training sample, as the chat template and the vision preprocessing hand it to the packer:
// token ids, a per-token loss flag, and the image/video items whose patch embeddings replace a run of
// placeholder tokens (<|image_pad|> / <|video_pad|>) inside the ids. Everything downstream (packing, the
// HDF5 file, the loader) moves samples whole: a sample is never split across rows.

#include <cstdint>
#include <vector>

namespace tessera::data {

struct VisionItem {
  // Patches as bf16 bit patterns, row-major [num_patches, patch_dim] (Qwen2-VL's pixel_values rows:
  // channels x temporal_patch x patch x patch flattened). Bits are stored, never converted.
  std::vector<uint16_t> patches_bf16;
  int64_t num_patches = 0;
  int64_t patch_dim = 0;
  // The patch grid before spatial merging; num_patches == grid_t * grid_h * grid_w.
  int64_t grid_t = 1;
  int64_t grid_h = 0;
  int64_t grid_w = 0;
  // Index, within the sample (or the row, once packed), of its first placeholder token, and how many
  // placeholder tokens it fills (num_patches / merge_size^2 for Qwen2-VL). The count lets truncation and
  // the file checks see whether an item's tokens are whole without knowing the placeholder ids.
  int64_t token_offset = 0;
  int64_t num_tokens = 0;
  bool is_video = false;
};

struct Sample {
  std::vector<int32_t> ids;
  std::vector<uint8_t> labels;     // one per id: 1 = loss is taken on this token, 0 = not
  std::vector<VisionItem> vision;  // in token order, non-overlapping
  uint64_t source_index = 0;       // where it came from in its source (line / record number), kept in the file

  int64_t length() const { return static_cast<int64_t>(ids.size()); }
};

// Throws tessera::Error naming sample `index` and the inconsistency (labels not one per id or not 0/1,
// negative ids, patch bytes not num_patches x patch_dim, grid not matching num_patches, placeholder range
// outside the ids or overlapping the previous item).
void validate_sample(const Sample& sample, int64_t index);

// The longest prefix of `sample` no longer than `max_tokens` that cuts no vision item in half: items
// wholly inside the prefix stay, items wholly after it go with their tokens, and an item straddling the
// cut moves the cut to just before its first placeholder token (possibly 0: nothing usable is left).
int64_t truncation_length(const Sample& sample, int64_t max_tokens);

}  // namespace tessera::data
