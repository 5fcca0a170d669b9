// `tessera pack`: JSONL conversations (with images and videos) → tokenised samples → packed rows → one
// HDF5 file (format v1, docs/data-format.md). Samples are built on all threads with a progress line on
// stderr; the file appears under its final name only when complete.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "tessera/core/error.hpp"
#include "tessera/core/file.hpp"
#include "tessera/data/jsonl_samples.hpp"
#include "tessera/data/packed_dataset.hpp"
#include "tessera/data/packer.hpp"

namespace tessera::apps {
namespace {

struct Line {
  size_t file = 0;
  int64_t number = 0;  // 1-based
  std::string text;
};

void progress(size_t done, size_t total, double seconds) {
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
  std::fprintf(stderr, "\rpack: %zu/%zu samples built, %.0f samples/s, ETA %.0f s   ", done, total, rate, eta);
  std::fflush(stderr);
}

}  // namespace

void add_pack_command(CLI::App& app) {
  struct Options {
    std::vector<std::string> inputs;
    std::string tokenizer, output, policy = "bfd", overlong = "truncate", on_error = "fail";
    int64_t seq_length = 0, min_pixels = 56 * 56, max_pixels = 28 * 28 * 1280;
    double video_source_fps = 2.0, video_fps = 2.0;
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    int deflate = 0;
  };
  auto o = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("pack", "Tokenise and pack JSONL conversations (with images/videos) into HDF5");
  cmd->add_option("--input", o->inputs, "JSONL file(s), comma-separated")->required()->delimiter(',')
      ->check(CLI::ExistingFile);
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json or its directory")->required();
  cmd->add_option("--seq-length", o->seq_length, "Tokens per packed row")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--output", o->output, "HDF5 file to write")->required();
  cmd->add_option("--policy", o->policy, "Packing: bfd (best-fit decreasing) or greedy (next-fit)")
      ->capture_default_str()->check(CLI::IsMember({"bfd", "greedy"}));
  cmd->add_option("--overlong", o->overlong, "Samples longer than a row: truncate or drop")
      ->capture_default_str()->check(CLI::IsMember({"truncate", "drop"}));
  cmd->add_option("--on-error", o->on_error, "A bad sample: fail (stop, write nothing) or skip (count it)")
      ->capture_default_str()->check(CLI::IsMember({"fail", "skip"}));
  cmd->add_option("--threads", o->threads, "Worker threads")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--min-pixels", o->min_pixels, "Qwen2-VL smart_resize lower bound")->capture_default_str();
  cmd->add_option("--max-pixels", o->max_pixels, "Qwen2-VL smart_resize upper bound")->capture_default_str();
  cmd->add_option("--video-source-fps", o->video_source_fps, "Rate the listed video frames were captured at")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--video-fps", o->video_fps, "Rate video frames are sampled at for the model")
      ->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--deflate", o->deflate, "gzip level for the HDF5 chunks (0 = none)")->capture_default_str()
      ->check(CLI::Range(0, 9));
  cmd->callback([o] {
    const auto start = std::chrono::steady_clock::now();
    const data::Tokenizer tokenizer = data::Tokenizer::load(o->tokenizer);

    // Every non-blank line of every input, with where it came from.
    std::vector<Line> lines;
    nlohmann::json checksums = nlohmann::json::object();
    for (size_t f = 0; f < o->inputs.size(); ++f) {
      const std::string text = read_file(o->inputs[f]);
      checksums[o->inputs[f]] = "sha256:" + data::sha256_hex(text);
      std::istringstream stream(text);
      std::string line;
      for (int64_t n = 1; std::getline(stream, line); ++n)
        if (line.find_first_not_of(" \t\r") != std::string::npos) lines.push_back({f, n, std::move(line)});
    }

    // One builder per input: media paths are relative to that file's directory.
    std::vector<data::SampleBuilder> builders;
    for (const auto& input : o->inputs) {
      data::SampleBuilderOptions options;
      options.base_dir = std::filesystem::path(input).parent_path().string();
      options.vision.min_pixels = o->min_pixels;
      options.vision.max_pixels = o->max_pixels;
      options.video_source_fps = o->video_source_fps;
      options.video_fps = o->video_fps;
      builders.emplace_back(tokenizer, options);
    }

    std::vector<std::optional<data::Sample>> built(lines.size());
    std::vector<std::string> errors(lines.size());
    std::atomic<size_t> next{0}, done{0};
    auto work = [&] {
      for (size_t i = next++; i < lines.size(); i = next++) {
        const Line& l = lines[i];
        const std::string where = fmt::format("{}:{}", o->inputs[l.file], l.number);
        try {
          built[i] = builders[l.file].build(data::parse_sample_line(l.text, where), where,
                                            static_cast<uint64_t>(l.number));
        } catch (const Error& e) {
          errors[i] = e.what();
        }
        ++done;
      }
    };
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < o->threads; ++t) pool.emplace_back(work);
    while (done < lines.size()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      progress(done, lines.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    for (auto& t : pool) t.join();
    progress(done, lines.size(), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    std::fprintf(stderr, "\n");

    size_t skipped = 0;
    std::vector<data::Sample> samples;
    samples.reserve(lines.size());
    for (size_t i = 0; i < lines.size(); ++i) {
      if (errors[i].empty()) {
        samples.push_back(std::move(*built[i]));
        continue;
      }
      if (o->on_error == "fail") TESSERA_FAIL("{} (nothing written; --on-error skip counts such samples instead)", errors[i]);
      if (skipped++ < 5) std::cerr << "pack: skipped " << errors[i] << "\n";
    }
    // A sample whose labelled tokens all lie beyond seq_length would train nothing once truncated: it is
    // dropped here and counted, whatever --on-error says (it is a length policy outcome, not bad input).
    const auto overlong = data::overlong_policy_from_string(o->overlong);
    size_t nothing_to_learn = 0;
    if (overlong == data::OverlongPolicy::truncate)
      std::erase_if(samples, [&](const data::Sample& s) {
        const int64_t kept = std::min(s.length(), data::truncation_length(s, o->seq_length));
        const bool learns = std::find(s.labels.begin(), s.labels.begin() + kept, 1) != s.labels.begin() + kept;
        nothing_to_learn += learns ? 0 : 1;
        return !learns;
      });
    TESSERA_CHECK(!samples.empty(), "pack: no usable sample in {}", fmt::join(o->inputs, ", "));

    const auto policy = o->policy == "bfd" ? data::PackPolicy::best_fit_decreasing : data::PackPolicy::greedy;
    const data::PackPlan plan = data::plan_packing(std::span<const data::Sample>(samples), o->seq_length, policy, overlong);
    const data::PackPlan baseline =
        data::plan_packing(std::span<const data::Sample>(samples), o->seq_length, data::PackPolicy::greedy, overlong);

    data::PackedDatasetInfo info;
    info.seq_length = o->seq_length;
    info.tokenizer_sha256 = tokenizer.sha256();
    info.source_checksums = checksums.dump();
    data::PackedDatasetWriteOptions write_options;
    write_options.deflate_level = o->deflate;
    const data::PackedDatasetInfo written = data::write_packed_dataset(o->output, samples, plan, info, write_options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const data::PackReport& r = plan.report;
    std::cout << fmt::format(
        "pack: {} samples ({} skipped) → {} rows of {} tokens in {}\n"
        "      fill {:.2f}% ({} real tokens / {} slots; greedy baseline {:.2f}% in {} rows)\n"
        "      truncated {}, dropped {} (+{} with no labelled token within seq_length), vision items {} ({} patches)\n"
        "      tokenizer sha256 {}; {:.1f} s, {:.0f} samples/s\n",
        samples.size(), skipped, r.rows, o->seq_length, o->output, 100.0 * r.fill(), r.real_tokens, r.slots,
        100.0 * baseline.report.fill(), baseline.report.rows, r.truncated, r.dropped, nothing_to_learn,
        written.vision_items,
        written.patches, written.tokenizer_sha256, seconds, static_cast<double>(lines.size()) / seconds);
  });
}

}  // namespace tessera::apps
