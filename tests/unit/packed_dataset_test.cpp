// HDF5 format v1: round trips of text and vision rows (patch bits exact), across many chunks with
// deflate, atomic publication, refusal of truncated / foreign / hand-damaged files by name, and h5py
// reading the file (when the machine's python3 has h5py).
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "tessera/core/error.hpp"
#include "tessera/data/packed_dataset.hpp"
#include "tessera/data/packer.hpp"
#include "test_support.hpp"

namespace tessera::data {
namespace {

namespace fs = std::filesystem;
namespace pf = packed_format;

uint64_t next_random(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Samples of random lengths; every third carries an image or a video whose patch bits are random (NaN
// and infinity patterns included: the file must keep bits, never values).
std::vector<Sample> make_samples(size_t n, int64_t max_length, uint64_t seed, bool with_vision) {
  uint64_t state = seed;
  std::vector<Sample> out(n);
  for (size_t i = 0; i < n; ++i) {
    Sample& s = out[i];
    // Vision samples need room for their placeholder tokens and a token on each side.
    const auto length = static_cast<size_t>(
        (with_vision && i % 3 == 0 ? 8 : 1) + next_random(state) % static_cast<uint64_t>(max_length));
    for (size_t t = 0; t < length; ++t) {
      s.ids.push_back(static_cast<int32_t>(next_random(state) % 151'000));
      s.labels.push_back(static_cast<uint8_t>(next_random(state) & 1));
    }
    s.source_index = 1000 + i;
    if (with_vision && i % 3 == 0) {
      VisionItem v;
      v.is_video = i % 2 == 0;
      v.grid_t = v.is_video ? 2 : 1;
      v.grid_h = 2;
      v.grid_w = 2 + static_cast<int64_t>(next_random(state) % 3);
      v.num_patches = v.grid_t * v.grid_h * v.grid_w;
      v.patch_dim = 12;
      v.num_tokens = std::min<int64_t>(v.num_patches / 4 + 1, static_cast<int64_t>(length) - 2);
      v.token_offset = 1;
      for (int64_t k = 0; k < v.num_patches * v.patch_dim; ++k)
        v.patches_bf16.push_back(static_cast<uint16_t>(next_random(state)));
      v.patches_bf16[0] = 0x7fc1;  // a NaN payload
      s.vision.push_back(std::move(v));
    }
  }
  return out;
}

using PackedDatasetTest = tessera::testing::TempDirTest;

PackedDatasetInfo test_info() {
  PackedDatasetInfo info;
  info.seq_length = 64;  // write_packed_dataset takes it from the plan; a PackedDatasetWriter needs it
  info.tokenizer_sha256 = "3f5a0c9e8d7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a19";
  info.source_checksums = R"({"train.jsonl": "sha256:00ff"})";
  info.created_by = "tessera test";
  return info;
}

// The file's rows equal the plan's rows of the samples, token for token and bit for bit.
void expect_rows_match(const PackedDataset& file, std::span<const Sample> samples, const PackPlan& plan) {
  ASSERT_EQ(file.rows(), static_cast<int64_t>(plan.rows.size()));
  for (int64_t r = 0; r < file.rows(); ++r) {
    const PackedRow row = file.row(r);
    EXPECT_EQ(row.index, r);
    const auto& members = plan.rows[static_cast<size_t>(r)];
    ASSERT_EQ(row.cu_seqlens.size(), members.size() + 1);
    ASSERT_EQ(row.source_index.size(), members.size());
    size_t item = 0;
    for (size_t k = 0; k < members.size(); ++k) {
      const Sample& s = samples[static_cast<size_t>(members[k])];
      const int64_t kept = plan.kept_lengths[static_cast<size_t>(members[k])];
      const int32_t begin = row.cu_seqlens[k];
      ASSERT_EQ(row.cu_seqlens[k + 1] - begin, kept);
      EXPECT_EQ(row.source_index[k], s.source_index);
      for (int64_t t = 0; t < kept; ++t) {
        const auto at = static_cast<size_t>(begin + t);
        ASSERT_EQ(row.tokens[at], s.ids[static_cast<size_t>(t)]) << "row " << r << " sample " << k << " token " << t;
        ASSERT_EQ(row.labels[at], s.labels[static_cast<size_t>(t)]);
        ASSERT_EQ(row.position_ids[at], t);
      }
      for (const VisionItem& v : s.vision) {
        if (v.token_offset >= kept) continue;
        ASSERT_LT(item, row.vision.size());
        const VisionItem& got = row.vision[item++];
        EXPECT_EQ(got.token_offset, begin + v.token_offset);
        EXPECT_EQ(got.num_tokens, v.num_tokens);
        EXPECT_EQ(got.num_patches, v.num_patches);
        EXPECT_EQ(got.patch_dim, v.patch_dim);
        EXPECT_EQ(std::tie(got.grid_t, got.grid_h, got.grid_w), std::tie(v.grid_t, v.grid_h, v.grid_w));
        EXPECT_EQ(got.is_video, v.is_video);
        EXPECT_EQ(got.patches_bf16, v.patches_bf16);
      }
    }
    EXPECT_EQ(item, row.vision.size());
    EXPECT_EQ(static_cast<size_t>(row.cu_seqlens.back()), row.tokens.size());
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST_F(PackedDatasetTest, RoundTripsTextAndVisionRows) {
  const auto samples = make_samples(300, 90, 1, true);
  const PackPlan plan = plan_packing(samples, 128, PackPolicy::best_fit_decreasing, OverlongPolicy::truncate);
  const PackedDatasetInfo written = write_packed_dataset(path("d.h5"), samples, plan, test_info());
  EXPECT_EQ(listing(), std::vector<std::string>{"d.h5"});
  const PackedDataset file = PackedDataset::open(path("d.h5"));
  const PackedDatasetInfo& info = file.info();
  EXPECT_EQ(info.format_version, 1);
  EXPECT_EQ(info.seq_length, 128);
  EXPECT_EQ(info.tokenizer_sha256, test_info().tokenizer_sha256);
  EXPECT_EQ(info.source_checksums, test_info().source_checksums);
  EXPECT_EQ(info.created_by, "tessera test");
  EXPECT_EQ(info.packing_policy, "best_fit_decreasing");
  EXPECT_EQ(info.overlong_policy, "truncate");
  EXPECT_EQ(info.samples, 300);
  EXPECT_EQ(info.rows, plan.report.rows);
  EXPECT_EQ(info.tokens, plan.report.real_tokens);
  EXPECT_EQ(info.patch_dim, 12);
  EXPECT_GT(info.vision_items, 50);
  EXPECT_DOUBLE_EQ(info.fill, plan.report.fill());
  EXPECT_EQ(written.rows, info.rows);
  EXPECT_EQ(written.vision_items, info.vision_items);
  expect_rows_match(file, samples, plan);
}

TEST_F(PackedDatasetTest, RoundTripsAcrossManyChunksWithDeflateAndTruncation) {
  auto samples = make_samples(3000, 300, 2, true);
  const PackPlan plan = plan_packing(samples, 256, PackPolicy::greedy, OverlongPolicy::truncate);
  ASSERT_GT(plan.report.truncated, 0);
  PackedDatasetWriteOptions options;
  options.chunk_bytes = 1024;  // hundreds of chunks per dataset: the extendable path
  options.deflate_level = 4;
  write_packed_dataset(path("z.h5"), samples, plan, test_info(), options);
  const PackedDataset file = PackedDataset::open(path("z.h5"));
  EXPECT_EQ(file.info().truncated, plan.report.truncated);
  EXPECT_EQ(file.info().packing_policy, "greedy");
  expect_rows_match(file, samples, plan);
}

TEST_F(PackedDatasetTest, TextOnlyFileHasEmptyVisionDatasets) {
  const auto samples = make_samples(50, 40, 3, false);
  const PackPlan plan = plan_packing(samples, 64, PackPolicy::best_fit_decreasing, OverlongPolicy::drop);
  write_packed_dataset(path("t.h5"), samples, plan, test_info());
  const PackedDataset file = PackedDataset::open(path("t.h5"));
  EXPECT_EQ(file.info().vision_items, 0);
  EXPECT_EQ(file.info().patch_dim, 0);
  expect_rows_match(file, samples, plan);
}

TEST_F(PackedDatasetTest, LargeSourceChecksumsAttributeFits) {
  nlohmann::json sources;
  for (int i = 0; i < 2000; ++i) sources[fmt::format("shard-{:05}.jsonl", i)] = fmt::format("sha256:{:064x}", i);
  PackedDatasetInfo info = test_info();
  info.source_checksums = sources.dump();
  ASSERT_GT(info.source_checksums.size(), 100'000u);  // above the 64 KiB compact-attribute limit
  const auto samples = make_samples(10, 20, 4, false);
  write_packed_dataset(path("big.h5"), samples, plan_packing(samples, 32, PackPolicy::greedy, OverlongPolicy::drop), info);
  EXPECT_EQ(PackedDataset::open(path("big.h5")).info().source_checksums, info.source_checksums);
}

TEST_F(PackedDatasetTest, AnAbandonedWriteLeavesNoFileAndKeepsTheOldOne) {
  const auto samples = make_samples(20, 30, 5, true);
  const PackPlan plan = plan_packing(samples, 64, PackPolicy::best_fit_decreasing, OverlongPolicy::drop);
  write_packed_dataset(path("d.h5"), samples, plan, test_info());
  {
    PackedDatasetWriter writer(path("d.h5"), test_info());
    const Sample* one[] = {&samples[0]};
    writer.add_row(one);
    EXPECT_EQ(listing().size(), 2u);  // d.h5 and the temp file
    // A refused row names the file and row, and leaves the writer usable.
    const Sample* too_many[] = {&samples[0], &samples[1], &samples[2], &samples[3], &samples[4], &samples[5]};
    EXPECT_NE(error_of([&] { writer.add_row(too_many); }).find("d.h5: row 1 has"), std::string::npos);
    writer.add_row(one);
  }  // destroyed without finish()
  EXPECT_EQ(listing(), std::vector<std::string>{"d.h5"});
  expect_rows_match(PackedDataset::open(path("d.h5")), samples, plan);
  {
    PackedDatasetWriter writer(path("new.h5"), test_info());
  }
  EXPECT_EQ(listing(), std::vector<std::string>{"d.h5"});
}

TEST_F(PackedDatasetTest, RefusesACutThroughAVisionItem) {
  const auto samples = make_samples(1, 30, 6, true);
  ASSERT_EQ(samples[0].vision.size(), 1u);
  PackedDatasetWriter writer(path("v.h5"), test_info());
  const Sample* one[] = {&samples[0]};
  const int64_t cut[] = {samples[0].vision[0].token_offset + 1};
  EXPECT_NE(error_of([&] { writer.add_row(one, cut); }).find("splits a vision item"), std::string::npos);
}

// Writes a small good file and returns its path.
std::string good_file(const std::string& path) {
  const auto samples = make_samples(40, 50, 7, true);
  write_packed_dataset(path, samples, plan_packing(samples, 64, PackPolicy::best_fit_decreasing, OverlongPolicy::drop),
                       test_info());
  return path;
}

// Opens `path` read-write with plain HDF5 (as a user with h5py might) to damage it.
void edit_file(const std::string& path, const std::function<void(hid_t)>& edit) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  edit(file);
  ASSERT_GE(H5Fclose(file), 0);
}

void replace_int64_dataset(hid_t file, const char* name, const std::vector<int64_t>& values, hid_t type = H5T_STD_I64LE) {
  ASSERT_GE(H5Ldelete(file, name, H5P_DEFAULT), 0);
  const hsize_t dims[1] = {values.size()};
  const hid_t space = H5Screate_simple(1, dims, nullptr);
  const hid_t d = H5Dcreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(d, 0);
  ASSERT_GE(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), 0);
  H5Dclose(d);
  H5Sclose(space);
}

std::vector<int64_t> read_int64_dataset(const std::string& path, const char* name) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
  const hid_t space = H5Dget_space(d);
  std::vector<int64_t> out(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
  H5Sclose(space);
  H5Dclose(d);
  H5Fclose(file);
  return out;
}

TEST_F(PackedDatasetTest, RefusesMissingFilesAndFilesThatAreNotHdf5) {
  EXPECT_NE(error_of([&] { PackedDataset::open(path("absent.h5")); }).find("absent.h5: no such packed-data file"),
            std::string::npos);
  std::ofstream(path("text.h5")) << "not hdf5 at all\n";
  EXPECT_NE(error_of([&] { PackedDataset::open(path("text.h5")); }).find("text.h5: cannot open as HDF5"), std::string::npos);
}

TEST_F(PackedDatasetTest, RefusesATruncatedCopy) {
  const std::string good = good_file(path("good.h5"));
  const auto size = fs::file_size(good);
  for (const uintmax_t keep : {size / 2, size - 1, uintmax_t{600}}) {
    fs::copy_file(good, path("cut.h5"), fs::copy_options::overwrite_existing);
    fs::resize_file(path("cut.h5"), keep);
    const std::string message = error_of([&] { PackedDataset::open(path("cut.h5")); });
    EXPECT_NE(message.find("cut.h5"), std::string::npos) << message;
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
  }
}

TEST_F(PackedDatasetTest, RefusesAnotherFormatVersion) {
  const std::string p = good_file(path("v2.h5"));
  edit_file(p, [](hid_t f) {
    ASSERT_GE(H5Adelete(f, "format_version"), 0);
    const hid_t space = H5Screate(H5S_SCALAR);
    const hid_t a = H5Acreate2(f, "format_version", H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
    const int64_t two = 2;
    H5Awrite(a, H5T_NATIVE_INT64, &two);
    H5Aclose(a);
    H5Sclose(space);
  });
  EXPECT_NE(error_of([&] { PackedDataset::open(p); }).find("v2.h5: format_version 2 is not supported"), std::string::npos);
  edit_file(p, [](hid_t f) { ASSERT_GE(H5Adelete(f, "format_version"), 0); });
  EXPECT_NE(error_of([&] { PackedDataset::open(p); }).find("attribute format_version is missing"), std::string::npos);
}

TEST_F(PackedDatasetTest, RefusesAMissingOrMistypedDataset) {
  const std::string p = good_file(path("m.h5"));
  edit_file(p, [](hid_t f) { ASSERT_GE(H5Ldelete(f, pf::kSampleOffsets, H5P_DEFAULT), 0); });
  EXPECT_NE(error_of([&] { PackedDataset::open(p); }).find("m.h5: dataset sample_offsets is missing"), std::string::npos);
  const std::string q = good_file(path("t.h5"));
  const auto offsets = read_int64_dataset(q, pf::kRowOffsets);
  edit_file(q, [&](hid_t f) { replace_int64_dataset(f, pf::kRowOffsets, offsets, H5T_STD_I32LE); });
  EXPECT_NE(error_of([&] { PackedDataset::open(q); }).find("t.h5: dataset row_offsets has the wrong element type"),
            std::string::npos);
}

TEST_F(PackedDatasetTest, RefusesInconsistentOffsets) {
  {
    const std::string p = good_file(path("a.h5"));
    auto offsets = read_int64_dataset(p, pf::kRowOffsets);
    offsets.back() += 1;  // points past the tokens
    edit_file(p, [&](hid_t f) { replace_int64_dataset(f, pf::kRowOffsets, offsets); });
    const std::string message = error_of([&] { PackedDataset::open(p); });
    EXPECT_NE(message.find("a.h5: dataset row_offsets ends at"), std::string::npos) << message;
  }
  {
    const std::string p = good_file(path("b.h5"));
    auto offsets = read_int64_dataset(p, pf::kSampleOffsets);
    offsets[1] += 1;  // a sample boundary no longer where its row starts
    std::swap(offsets[1], offsets[2]);
    edit_file(p, [&](hid_t f) { replace_int64_dataset(f, pf::kSampleOffsets, offsets); });
    const std::string message = error_of([&] { PackedDataset::open(p); });
    EXPECT_NE(message.find("b.h5: dataset sample_offsets: entry"), std::string::npos) << message;
  }
  {
    const std::string p = good_file(path("c.h5"));
    auto offsets = read_int64_dataset(p, pf::kVisionTokenOffsets);
    offsets[0] = 1'000'000;  // outside its row
    edit_file(p, [&](hid_t f) { replace_int64_dataset(f, pf::kVisionTokenOffsets, offsets); });
    const std::string message = error_of([&] { PackedDataset::open(p); });
    EXPECT_NE(message.find("c.h5: datasets vision_token_offsets/vision_token_counts: item 0"), std::string::npos)
        << message;
  }
  {
    const std::string p = good_file(path("d.h5"));
    auto rows = read_int64_dataset(p, pf::kRowOffsets);
    edit_file(p, [&](hid_t f) {
      const hid_t a = H5Aopen(f, "num_rows", H5P_DEFAULT);
      const int64_t wrong = static_cast<int64_t>(rows.size());
      H5Awrite(a, H5T_NATIVE_INT64, &wrong);
      H5Aclose(a);
    });
    const std::string message = error_of([&] { PackedDataset::open(p); });
    EXPECT_NE(message.find("d.h5: dataset row_offsets has"), std::string::npos) << message;
    EXPECT_NE(message.find("attribute num_rows"), std::string::npos) << message;
  }
}

TEST_F(PackedDatasetTest, RefusesDamagedPayloadWhenTheRowIsRead) {
  const std::string p = good_file(path("p.h5"));
  edit_file(p, [](hid_t f) {
    const hid_t d = H5Dopen2(f, pf::kPositionIds, H5P_DEFAULT);
    const hid_t space = H5Dget_space(d);
    const hsize_t start[1] = {0}, count[1] = {1};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
    const hid_t mem = H5Screate_simple(1, count, nullptr);
    const int32_t bad = 5;
    H5Dwrite(d, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &bad);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
  });
  const PackedDataset file = PackedDataset::open(p);
  const std::string message = error_of([&] { file.row(0); });
  EXPECT_NE(message.find("p.h5: dataset position_ids: row 0 token 0 has position 5"), std::string::npos) << message;
  EXPECT_NE(error_of([&] { file.row(file.rows()); }).find("out of range"), std::string::npos);
}

// The interpreter with h5py: $PYTHON when set (a developer's venv), else python3 from PATH, else Debian's
// /usr/bin/python3 (where scripts/install-deps.sh puts python3-h5py, so CI runs this check); empty if none.
std::string python() {
  const char* env = std::getenv("PYTHON");
  std::vector<std::string> candidates = {"python3", "/usr/bin/python3"};
  if (env != nullptr && *env != '\0') candidates.insert(candidates.begin(), env);
  for (const auto& c : candidates)
    if (std::system((c + " -c 'import h5py, numpy' >/dev/null 2>&1").c_str()) == 0) return c;
  return "";
}

TEST_F(PackedDatasetTest, H5pyReadsTheFile) {
  const std::string py = python();
  if (py.empty()) GTEST_SKIP() << "no python3 here can import h5py and numpy (apt-get install python3-h5py)";
  const auto samples = make_samples(200, 90, 8, true);
  const PackPlan plan = plan_packing(samples, 128, PackPolicy::best_fit_decreasing, OverlongPolicy::truncate);
  PackedDatasetWriteOptions options;
  options.chunk_bytes = 4096;
  options.deflate_level = 1;
  const PackedDatasetInfo info = write_packed_dataset(path("py.h5"), samples, plan, test_info(), options);
  const PackedRow row0 = PackedDataset::open(path("py.h5")).row(0);
  uint64_t bits_sum = 0;
  for (const auto& r : plan.rows)
    for (int64_t s : r)
      for (const VisionItem& v : samples[static_cast<size_t>(s)].vision)
        for (uint16_t b : v.patches_bf16) bits_sum += b;
  const nlohmann::json expected = {{"seq_length", info.seq_length},       {"num_rows", info.rows},
                                   {"num_samples", info.samples},         {"num_tokens", info.tokens},
                                   {"num_vision_items", info.vision_items}, {"vision_patch_dim", info.patch_dim},
                                   {"truncated", info.truncated},         {"dropped", info.dropped},
                                   {"tokenizer_sha256", info.tokenizer_sha256},
                                   {"packing_policy", info.packing_policy}, {"row0_tokens", row0.tokens},
                                   {"patch_bits_sum", bits_sum}};
  std::ofstream(path("expected.json")) << expected.dump();
  const std::string command = fmt::format("{} {}/tests/unit/h5py_check.py {} {} 2>&1", py, TESSERA_SOURCE_DIR,
                                          path("py.h5"), path("expected.json"));
  std::FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) output += buffer;
  const int status = ::pclose(pipe);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(output, "ok\n");
}

}  // namespace
}  // namespace tessera::data
