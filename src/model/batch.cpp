#include "tessera/model/batch.hpp"

#include <algorithm>

#include "tessera/core/error.hpp"

namespace tessera::model {

int64_t Batch::num_targets() const {
  return std::count_if(targets.begin(), targets.end(), [](int32_t t) { return t >= 0; });
}

int64_t Batch::longest_sample() const {
  int64_t longest = 0;
  for (size_t s = 0; s + 1 < cu_seqlens.size(); ++s)
    longest = std::max<int64_t>(longest, cu_seqlens[s + 1] - cu_seqlens[s]);
  return longest;
}

void Batch::validate(int64_t vocab_size) const {
  const auto n = input_ids.size();
  TESSERA_CHECK(position_ids.size() == n && targets.size() == n,
                "batch: {} input ids but {} position ids and {} targets", n, position_ids.size(), targets.size());
  TESSERA_CHECK(cu_seqlens.size() >= 2 && cu_seqlens.front() == 0 && cu_seqlens.back() == static_cast<int32_t>(n),
                "batch: cu_seqlens must run from 0 to the token count {}", n);
  for (size_t s = 0; s + 1 < cu_seqlens.size(); ++s)
    TESSERA_CHECK(cu_seqlens[s + 1] > cu_seqlens[s], "batch: sample {} is empty or cu_seqlens decreases", s);
  for (size_t i = 0; i < n; ++i) {
    TESSERA_CHECK(input_ids[i] >= 0 && input_ids[i] < vocab_size, "batch: token {} has id {} outside the vocabulary [0, {})",
                  i, input_ids[i], vocab_size);
    TESSERA_CHECK(targets[i] < vocab_size, "batch: target {} is {} outside the vocabulary", i, targets[i]);
    TESSERA_CHECK(position_ids[i] >= 0, "batch: token {} has negative position {}", i, position_ids[i]);
  }
}

Batch batch_from_hf_rows(const std::vector<int64_t>& input_ids, const std::vector<int64_t>& position_ids,
                         const std::vector<int64_t>& labels, int64_t rows, int64_t row_length) {
  const auto n = static_cast<size_t>(rows * row_length);
  TESSERA_CHECK(input_ids.size() == n && position_ids.size() == n && labels.size() == n,
                "HF rows: expected {} × {} ids, positions and labels", rows, row_length);
  Batch b;
  b.cu_seqlens.push_back(0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < row_length; ++t) {
      const size_t i = static_cast<size_t>(r * row_length + t);
      b.input_ids.push_back(static_cast<int32_t>(input_ids[i]));
      b.position_ids.push_back(position_ids[i]);
      const bool last_in_row = t + 1 == row_length;
      const int64_t next = last_in_row ? -100 : labels[i + 1];
      b.targets.push_back(next < 0 ? -1 : static_cast<int32_t>(next));
      if (t > 0 && position_ids[i] == 0) b.cu_seqlens.push_back(static_cast<int32_t>(i));
    }
  // Every row boundary is a sample boundary even if its first position id is not 0.
  for (int64_t r = 1; r < rows; ++r) b.cu_seqlens.push_back(static_cast<int32_t>(r * row_length));
  b.cu_seqlens.push_back(static_cast<int32_t>(n));
  std::sort(b.cu_seqlens.begin(), b.cu_seqlens.end());
  b.cu_seqlens.erase(std::unique(b.cu_seqlens.begin(), b.cu_seqlens.end()), b.cu_seqlens.end());
  return b;
}

std::vector<Batch> split_rows(const Batch& batch, int64_t row_length) {
  TESSERA_CHECK(row_length > 0 && batch.tokens() % row_length == 0, "a batch of {} tokens is not rows of {}",
                batch.tokens(), row_length);
  std::vector<Batch> rows(static_cast<size_t>(batch.tokens() / row_length));
  for (auto& r : rows) r.cu_seqlens.push_back(0);
  for (int64_t s = 0; s < batch.num_samples(); ++s) {
    const int32_t first = batch.cu_seqlens[s], end = batch.cu_seqlens[s + 1];
    const int64_t row = first / row_length;
    TESSERA_CHECK((end - 1) / row_length == row, "sample {} (tokens {}..{}) crosses a row boundary", s, first, end);
    Batch& r = rows[static_cast<size_t>(row)];
    r.input_ids.insert(r.input_ids.end(), batch.input_ids.begin() + first, batch.input_ids.begin() + end);
    r.position_ids.insert(r.position_ids.end(), batch.position_ids.begin() + first, batch.position_ids.begin() + end);
    r.targets.insert(r.targets.end(), batch.targets.begin() + first, batch.targets.begin() + end);
    r.cu_seqlens.push_back(static_cast<int32_t>(r.input_ids.size()));
  }
  return rows;
}

}  // namespace tessera::model
