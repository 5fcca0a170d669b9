// `tessera inspect FILE.h5`: what a packed dataset holds — rows, tokens, padding, samples per row, vision
// items, a histogram of sample lengths — and, with a tokenizer, one row decoded back to text.

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>

#include "commands.hpp"
#include "tessera/core/error.hpp"
#include "tessera/data/packed_dataset.hpp"
#include "tessera/data/tokenizer.hpp"

namespace tessera::apps {

void add_inspect_command(CLI::App& app) {
  struct Options {
    std::string file, tokenizer;
    int64_t row = -1;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("inspect", "Summarise a packed HDF5 dataset; decode a row with --tokenizer");
  cmd->add_option("file", o->file, "Packed HDF5 file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--row", o->row, "Row to decode (needs --tokenizer)");
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json or its directory (must be the one the file records)");
  cmd->callback([o] {
    const data::PackedDataset ds = data::PackedDataset::open(o->file);
    const data::PackedDatasetInfo& info = ds.info();
    int64_t samples = 0, tokens = 0, min_samples = INT64_MAX, max_samples = 0, vision = 0, videos = 0, patches = 0;
    int64_t trained = 0;
    std::map<int64_t, int64_t> histogram;  // bucket (power of two upper bound) -> samples
    for (int64_t r = 0; r < ds.rows(); ++r) {
      const data::PackedRow row = ds.row(r);
      const int64_t n = static_cast<int64_t>(row.cu_seqlens.size()) - 1;
      samples += n;
      tokens += static_cast<int64_t>(row.tokens.size());
      min_samples = std::min(min_samples, n);
      max_samples = std::max(max_samples, n);
      trained += std::count(row.labels.begin(), row.labels.end(), 1);
      for (int64_t s = 0; s < n; ++s) {
        int64_t bucket = 16;
        while (bucket < row.cu_seqlens[s + 1] - row.cu_seqlens[s]) bucket *= 2;
        ++histogram[bucket];
      }
      for (const auto& v : row.vision) {
        ++vision;
        videos += v.is_video ? 1 : 0;
        patches += v.num_patches;
      }
    }
    const double slots = static_cast<double>(ds.rows()) * static_cast<double>(info.seq_length);
    std::cout << fmt::format("{}: format v{}, seq_length {}, tokenizer sha256 {}\n", o->file, info.format_version,
                             info.seq_length, info.tokenizer_sha256.empty() ? "(none)" : info.tokenizer_sha256);
    std::cout << fmt::format("rows {}, samples {} ({:.2f} per row, min {}, max {}), tokens {} ({} with loss)\n",
                             ds.rows(), samples, ds.rows() ? static_cast<double>(samples) / ds.rows() : 0.0,
                             ds.rows() ? min_samples : 0, max_samples, tokens, trained);
    std::cout << fmt::format("padding {:.2f}% of {} slots; packing {} (overlong: {}; truncated {}, dropped {})\n",
                             slots > 0 ? 100.0 * (1.0 - static_cast<double>(tokens) / slots) : 0.0,
                             static_cast<int64_t>(slots), info.packing_policy, info.overlong_policy, info.truncated,
                             info.dropped);
    std::cout << fmt::format("vision: {} item(s) ({} video), {} patches of {} values\n", vision, videos, patches,
                             info.patch_dim);
    std::cout << "sample lengths:\n";
    const int64_t most = histogram.empty() ? 1 : std::max_element(histogram.begin(), histogram.end(), [](auto& a, auto& b) {
                                                   return a.second < b.second;
                                                 })->second;
    for (const auto& [bucket, count] : histogram)
      std::cout << fmt::format("  ≤{:>6} {:>7} {}\n", bucket, count, std::string(static_cast<size_t>(40 * count / most), '#'));

    if (o->row >= 0) {
      TESSERA_CHECK(!o->tokenizer.empty(), "inspect --row needs --tokenizer to decode");
      TESSERA_CHECK(o->row < ds.rows(), "{} has {} rows; row {} does not exist", o->file, ds.rows(), o->row);
      const data::Tokenizer tokenizer = data::Tokenizer::load(o->tokenizer);
      TESSERA_CHECK(info.tokenizer_sha256.empty() || info.tokenizer_sha256 == tokenizer.sha256(),
                    "{} was packed with tokenizer sha256 {}, but {} is {}", o->file, info.tokenizer_sha256,
                    o->tokenizer, tokenizer.sha256());
      const data::PackedRow row = ds.row(o->row);
      for (size_t s = 0; s + 1 < row.cu_seqlens.size(); ++s) {
        const std::span<const int32_t> ids(row.tokens.data() + row.cu_seqlens[s],
                                           static_cast<size_t>(row.cu_seqlens[s + 1] - row.cu_seqlens[s]));
        std::cout << fmt::format("--- row {} sample {} (source line {}, {} tokens)\n", o->row, s, row.source_index[s],
                                 ids.size())
                  << tokenizer.decode(ids) << "\n";
      }
    }
  });
}

}  // namespace tessera::apps
