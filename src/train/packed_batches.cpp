#include "tessera/train/packed_batches.hpp"

#include "tessera/core/error.hpp"
#include "tessera/data/tokenizer.hpp"

namespace tessera::train {

model::Batch batch_from_rows(std::span<const data::PackedRow> rows, const std::vector<std::string>& files) {
  model::Batch b;
  b.cu_seqlens.push_back(0);
  for (const data::PackedRow& row : rows) {
    const std::string& file = files.at(static_cast<size_t>(row.file));
    TESSERA_CHECK(row.vision.empty(),
                  "{} row {} has {} image/video item(s), but the model has no vision tower yet; pack text-only data "
                  "for it",
                  file, row.index, row.vision.size());
    const auto base = static_cast<int32_t>(b.input_ids.size());
    for (size_t s = 0; s + 1 < row.cu_seqlens.size(); ++s) {
      const int32_t begin = row.cu_seqlens[s], end = row.cu_seqlens[s + 1];
      for (int32_t t = begin; t < end; ++t) {
        b.input_ids.push_back(row.tokens[static_cast<size_t>(t)]);
        b.position_ids.push_back(row.position_ids[static_cast<size_t>(t)]);
        const bool learn_next = t + 1 < end && row.labels[static_cast<size_t>(t + 1)] != 0;
        b.targets.push_back(learn_next ? row.tokens[static_cast<size_t>(t + 1)] : -1);
      }
      b.cu_seqlens.push_back(base + end);
    }
  }
  return b;
}

std::unique_ptr<data::Loader> open_training_data(const Config& config, int64_t dp_rank, int64_t dp_size) {
  const DataConfig& d = config.data;
  TESSERA_CHECK(!d.paths.empty(), "data.paths is empty: nothing to load");
  std::string tokenizer_sha;
  if (!d.tokenizer.empty()) tokenizer_sha = data::Tokenizer::load(d.tokenizer).sha256();
  std::vector<std::pair<std::string, double>> files;
  for (size_t i = 0; i < d.paths.size(); ++i) {
    const data::PackedDataset ds = data::PackedDataset::open(d.paths[i]);
    TESSERA_CHECK(ds.info().seq_length == d.seq_length, "{} was packed for seq_length {}, the config says {}",
                  d.paths[i], ds.info().seq_length, d.seq_length);
    TESSERA_CHECK(tokenizer_sha.empty() || ds.info().tokenizer_sha256 == tokenizer_sha,
                  "{} was packed with tokenizer sha256 {}, but data.tokenizer {} is {}", d.paths[i],
                  ds.info().tokenizer_sha256, d.tokenizer, tokenizer_sha);
    files.emplace_back(d.paths[i], d.weights.empty() ? static_cast<double>(ds.rows()) : d.weights[i]);
  }
  data::LoaderOptions options;
  options.seed = config.train.seed;
  options.dp_rank = dp_rank;
  options.dp_size = dp_size;
  options.rows_per_batch = config.train.micro_batch_size;
  return std::make_unique<data::Loader>(std::move(files), options);
}

}  // namespace tessera::train
