// Data pipeline benchmark: (1) the packing step on 1M log-normal lengths (20..4096, seq 4096), best-fit
// decreasing vs greedy next-fit: fill and samples/s; (2) reading a packed file: PackedDataset::row and the
// Loader (prefetch thread) in rows/s, against the same bytes read raw, by H5Dread on the same hyperslabs
// and by pread of equally many bytes at random file offsets. Prints one JSON object.
// usage: data_bench [work_dir] [loader_rows]
#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "tessera/data/loader.hpp"
#include "tessera/data/packed_dataset.hpp"
#include "tessera/data/packer.hpp"

using namespace tessera::data;
using Clock = std::chrono::steady_clock;

namespace {

uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::vector<int64_t> lognormal_lengths(size_t n, uint64_t seed) {
  std::vector<int64_t> out(n);
  uint64_t state = seed;
  for (auto& len : out) {
    const double u1 = (static_cast<double>(next_random(state) >> 11) + 0.5) / 9007199254740992.0;
    const double u2 = static_cast<double>(next_random(state) >> 11) / 9007199254740992.0;
    const double normal = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    len = std::clamp<int64_t>(static_cast<int64_t>(std::exp(std::log(600.0) + 1.0 * normal)), 20, 4096);
  }
  return out;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best of `repeats` runs of f (seconds).
template <typename F>
double best_time(int repeats, F&& f) {
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

nlohmann::json bench_packing() {
  const auto lengths = lognormal_lengths(1'000'000, 1);
  nlohmann::json out;
  for (PackPolicy policy : {PackPolicy::best_fit_decreasing, PackPolicy::greedy}) {
    PackPlan plan;
    const double s = best_time(3, [&] { plan = plan_packing(lengths, 4096, policy, OverlongPolicy::truncate); });
    out[std::string(to_string(policy))] = {{"fill", plan.report.fill()},
                                           {"rows", plan.report.rows},
                                           {"seconds", s},
                                           {"samples_per_s", static_cast<double>(lengths.size()) / s}};
  }
  out["samples"] = lengths.size();
  out["mean_length"] = std::accumulate(lengths.begin(), lengths.end(), 0.0) / static_cast<double>(lengths.size());
  return out;
}

void read_hyperslab(hid_t dataset, hid_t mem_type, uint64_t begin, uint64_t count, void* out) {
  const hid_t space = H5Dget_space(dataset);
  const hsize_t start[1] = {begin}, n[1] = {count};
  H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, n, nullptr);
  const hid_t mem = H5Screate_simple(1, n, nullptr);
  if (H5Dread(dataset, mem_type, mem, space, H5P_DEFAULT, out) < 0) std::abort();
  H5Sclose(mem);
  H5Sclose(space);
}

nlohmann::json bench_reading(const std::string& dir, int64_t loader_rows) {
  // A text file of about loader_rows full rows: samples from the same length mix, packed best-fit.
  const auto lengths = lognormal_lengths(static_cast<size_t>(loader_rows) * 5, 2);
  std::vector<Sample> samples(lengths.size());
  uint64_t state = 3;
  for (size_t i = 0; i < samples.size(); ++i) {
    samples[i].ids.resize(static_cast<size_t>(lengths[i]));
    for (auto& id : samples[i].ids) id = static_cast<int32_t>(next_random(state) % 151'000);
    samples[i].labels.assign(samples[i].ids.size(), 1);
    samples[i].source_index = i;
  }
  const std::string path = dir + "/bench.h5";
  const PackPlan plan = plan_packing(samples, 4096, PackPolicy::best_fit_decreasing, OverlongPolicy::truncate);
  const auto t_write = Clock::now();
  const PackedDatasetInfo info = write_packed_dataset(path, samples, plan, PackedDatasetInfo{});
  const double write_s = seconds_since(t_write);
  samples.clear();
  samples.shrink_to_fit();
  const PackedDataset file = PackedDataset::open(path);
  const int64_t rows = file.rows();
  const double bytes_per_token = 9.0;  // int32 token + uint8 label + int32 position
  const uint64_t total_bytes = static_cast<uint64_t>(info.tokens) * 9;

  std::vector<int64_t> order(static_cast<size_t>(rows));
  std::iota(order.begin(), order.end(), 0);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[next_random(state) % i]);

  // Warm the page cache, then every measurement reads from memory: what is compared is the software.
  for (int64_t r : order) (void)file.row(r);

  const double row_s = best_time(2, [&] {
    for (int64_t r : order) (void)file.row(r);
  });

  LoaderOptions options;
  options.seed = 1;
  options.rows_per_batch = 8;
  options.prefetch = 4;
  const int64_t batches = rows / 8;
  const double loader_s = best_time(2, [&] {
    Loader loader({{path, 1.0}}, options);
    for (int64_t b = 0; b < batches; ++b) (void)loader.next_batch();
  });

  // Raw HDF5: the same three hyperslabs per row, into reused buffers, no checks.
  const hid_t h5 = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t tokens = H5Dopen2(h5, "tokens", H5P_DEFAULT);
  const hid_t labels = H5Dopen2(h5, "labels", H5P_DEFAULT);
  const hid_t positions = H5Dopen2(h5, "position_ids", H5P_DEFAULT);
  const hid_t offsets_ds = H5Dopen2(h5, "row_offsets", H5P_DEFAULT);
  std::vector<int64_t> offsets(static_cast<size_t>(rows) + 1);
  H5Dread(offsets_ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets.data());
  std::vector<int32_t> buf32(4096), pos32(4096);
  std::vector<uint8_t> buf8(4096);
  const double h5_rows_s = best_time(2, [&] {
    for (int64_t r : order) {
      const auto b = static_cast<uint64_t>(offsets[static_cast<size_t>(r)]);
      const auto n = static_cast<uint64_t>(offsets[static_cast<size_t>(r) + 1]) - b;
      read_hyperslab(tokens, H5T_NATIVE_INT32, b, n, buf32.data());
      read_hyperslab(labels, H5T_NATIVE_UINT8, b, n, buf8.data());
      read_hyperslab(positions, H5T_NATIVE_INT32, b, n, pos32.data());
    }
  });
  // Raw HDF5 in bulk: each whole dataset in one H5Dread (the ceiling for HDF5 itself).
  std::vector<int32_t> all32(static_cast<size_t>(info.tokens));
  std::vector<uint8_t> all8(static_cast<size_t>(info.tokens));
  const double h5_bulk_s = best_time(2, [&] {
    H5Dread(tokens, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, all32.data());
    H5Dread(labels, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, all8.data());
    H5Dread(positions, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, all32.data());
  });
  H5Dclose(offsets_ds), H5Dclose(positions), H5Dclose(labels), H5Dclose(tokens), H5Fclose(h5);

  // pread: as many bytes per row as a row holds, as three reads at random offsets of the file.
  const int fd = ::open(path.c_str(), O_RDONLY);
  const auto file_size = static_cast<uint64_t>(std::filesystem::file_size(path));
  std::vector<char> raw(4096 * 4);
  const double pread_s = best_time(2, [&] {
    for (int64_t r : order) {
      const auto n = static_cast<uint64_t>(offsets[static_cast<size_t>(r) + 1] - offsets[static_cast<size_t>(r)]);
      for (const uint64_t bytes : {4 * n, n, 4 * n}) {
        const uint64_t at = next_random(state) % (file_size - bytes);
        if (::pread(fd, raw.data(), bytes, static_cast<off_t>(at)) != static_cast<ssize_t>(bytes)) std::abort();
      }
    }
  });
  ::close(fd);
  std::filesystem::remove(path);

  const auto per_s = [&](double s) { return static_cast<double>(rows) / s; };
  const double mean_row_bytes = static_cast<double>(total_bytes) / static_cast<double>(rows);
  return {{"rows", rows},
          {"tokens", info.tokens},
          {"fill", info.fill},
          {"bytes_per_row", mean_row_bytes},
          {"bytes_per_token", bytes_per_token},
          {"write_seconds", write_s},
          {"packed_dataset_row_rows_per_s", per_s(row_s)},
          {"loader_rows_per_s", static_cast<double>(batches * 8) / loader_s},
          {"raw_h5dread_hyperslab_rows_per_s", per_s(h5_rows_s)},
          {"raw_h5dread_bulk_rows_per_s", per_s(h5_bulk_s)},
          {"raw_pread_rows_per_s", per_s(pread_s)},
          {"loader_vs_raw_h5dread", (static_cast<double>(batches * 8) / loader_s) / per_s(h5_rows_s)},
          {"loader_vs_raw_pread", (static_cast<double>(batches * 8) / loader_s) / per_s(pread_s)}};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : std::filesystem::temp_directory_path().string();
  const int64_t loader_rows = argc > 2 ? std::stoll(argv[2]) : 4000;
  nlohmann::json out;
  out["packing"] = bench_packing();
  out["reading"] = bench_reading(dir, loader_rows);
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}
