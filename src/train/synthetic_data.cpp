#include "tessera/train/synthetic_data.hpp"

#include <random>

#include "tessera/core/error.hpp"

namespace tessera::train {

model::Batch synthetic_batch(int64_t vocab_size, int64_t seq_length, int64_t rows, uint64_t seed, int64_t step,
                             int64_t microbatch) {
  TESSERA_CHECK(seq_length >= 4, "synthetic data needs seq_length ≥ 4, got {}", seq_length);
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(step),
                    static_cast<uint32_t>(step >> 32), static_cast<uint32_t>(microbatch), 0x5eedu};
  std::mt19937_64 rng(seq);
  auto uniform = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  // Few strides keep the task learnable by a tiny model in a few dozen steps.
  const int64_t max_stride = std::min<int64_t>(7, vocab_size - 1);
  model::Batch b;
  b.cu_seqlens.push_back(0);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t filled = 0;
    while (filled < seq_length) {
      const int64_t left = seq_length - filled;
      const int64_t len = left < 8 ? left : uniform(std::min<int64_t>(8, left), std::min<int64_t>(seq_length / 2, left));
      const int64_t start = uniform(0, vocab_size - 1), stride = uniform(1, max_stride);
      for (int64_t i = 0; i < len; ++i) {
        b.input_ids.push_back(static_cast<int32_t>((start + stride * i) % vocab_size));
        b.position_ids.push_back(i);
        // The last token of a sample predicts nothing: the next sample is unrelated.
        b.targets.push_back(i + 1 < len ? static_cast<int32_t>((start + stride * (i + 1)) % vocab_size) : -1);
      }
      filled += len;
      b.cu_seqlens.push_back(static_cast<int32_t>(b.input_ids.size()));
    }
  }
  return b;
}

std::vector<model::Batch> synthetic_microbatches(const Config& config, int64_t step, int64_t first, int64_t count) {
  std::vector<model::Batch> out;
  for (int64_t m = first; m < first + count; ++m)
    out.push_back(synthetic_batch(config.model.vocab_size, config.data.seq_length, config.train.micro_batch_size,
                                  config.train.seed, step, m));
  return out;
}

}  // namespace tessera::train
