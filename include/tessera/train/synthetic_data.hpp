#pragma once
// Learnable synthetic token streams, so training runs (and shows a falling loss) before any dataset is
// packed: each sample is an arithmetic progression modulo the vocabulary with its own start and stride,
// and samples of random length are packed whole into rows of seq_length (position ids restart per sample).
// The batch of (seed, step, microbatch) is always the same.

#include <cstdint>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/model/batch.hpp"

namespace tessera::train {

model::Batch synthetic_batch(int64_t vocab_size, int64_t seq_length, int64_t rows, uint64_t seed, int64_t step,
                             int64_t microbatch);

// Microbatches first … first + count − 1 of step `step` of a run's synthetic data (its vocabulary,
// seq_length, micro_batch_size and seed).
std::vector<model::Batch> synthetic_microbatches(const Config& config, int64_t step, int64_t first, int64_t count);

}  // namespace tessera::train
