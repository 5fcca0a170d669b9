#pragma once
// Packed HDF5 rows → the decoder's Batch, and the training data source that serves them: the loader
// over data.paths, checked against the config (seq_length, tokenizer) before the first step.

#include <memory>
#include <span>

#include "tessera/core/config.hpp"
#include "tessera/data/loader.hpp"
#include "tessera/model/batch.hpp"

namespace tessera::train {

// Concatenates rows into one Batch. Labels are unshifted (label[t] = 1: token t is predicted from t−1),
// so the target of position t is token t+1 when it is in the same sample and labelled, else none. Rows
// with image or video items are refused: the model has no vision tower yet.
model::Batch batch_from_rows(std::span<const data::PackedRow> rows, const std::vector<std::string>& files);

// The loader for config.data with one data-parallel rank; throws naming the file when its seq_length or
// tokenizer differs from the config.
std::unique_ptr<data::Loader> open_training_data(const Config& config, int64_t dp_rank = 0, int64_t dp_size = 1);

}  // namespace tessera::train
