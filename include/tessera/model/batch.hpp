#pragma once
// One microbatch of packed rows, flattened to N tokens. Samples never cross: cu_seqlens marks where each
// sample starts (position ids restart there and attention stays inside). targets[n] is the token position
// n must predict (already shifted), or -1 where no loss is taken (sample ends, masked prompt tokens).

#include <cstdint>
#include <vector>

namespace tessera::model {

struct Batch {
  std::vector<int32_t> input_ids;     // [N]
  std::vector<int64_t> position_ids;  // [N]
  std::vector<int32_t> targets;       // [N], -1 = ignored
  std::vector<int32_t> cu_seqlens;    // [samples + 1], cu_seqlens[0] = 0, back() = N

  int64_t tokens() const { return static_cast<int64_t>(input_ids.size()); }
  int64_t num_samples() const { return static_cast<int64_t>(cu_seqlens.size()) - 1; }
  int64_t num_targets() const;
  int64_t longest_sample() const;

  // Throws tessera::Error naming what is inconsistent (sizes, ranges, ids outside the vocabulary).
  void validate(int64_t vocab_size) const;
};

// The batch's rows (row_length tokens each) as separate one-row batches: the same samples, so a step over
// them equals a step over the whole batch up to float summation order. Throws when N is not a multiple of
// row_length or a sample crosses a row boundary.
std::vector<Batch> split_rows(const Batch& batch, int64_t row_length);

// Builds a Batch from rows in Hugging Face's convention: labels unshifted with -100 ignored, position ids
// restarting at 0 at each packed sample start. Targets are labels shifted by one inside each row.
Batch batch_from_hf_rows(const std::vector<int64_t>& input_ids, const std::vector<int64_t>& position_ids,
                         const std::vector<int64_t>& labels, int64_t rows, int64_t row_length);

}  // namespace tessera::model
