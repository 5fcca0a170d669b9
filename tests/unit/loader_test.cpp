// The sharded resumable loader: the order is a permutation per epoch, ranks partition it, blending
// follows the weights, a restored loader continues exactly (over epoch boundaries, with two files, for
// both ranks of dp 2, and into another dp size), errors from the prefetch thread reach the caller.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "tessera/core/error.hpp"
#include "tessera/data/loader.hpp"
#include "tessera/data/packer.hpp"

namespace tessera::data {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSeq = 16;

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / fmt::format("tessera-loader-{}-{}", ::getpid(), info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A file of `rows` rows, one full-length sample each; row r's first token is tag * 10000 + r, so any
  // row read back says where it came from.
  std::string make_file(const std::string& name, int64_t rows, int32_t tag, int64_t seq = kSeq) {
    std::vector<Sample> samples(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      Sample& s = samples[static_cast<size_t>(r)];
      s.ids.assign(static_cast<size_t>(seq), tag);
      s.ids[0] = tag * 10000 + static_cast<int32_t>(r);
      s.labels.assign(static_cast<size_t>(seq), 1);
      s.source_index = static_cast<uint64_t>(r);
    }
    const std::string path = (dir_ / name).string();
    write_packed_dataset(path, samples, plan_packing(samples, seq, PackPolicy::best_fit_decreasing, OverlongPolicy::drop),
                         PackedDatasetInfo{});
    return path;
  }

  fs::path dir_;
};

using RowId = std::pair<int32_t, int64_t>;

std::vector<std::vector<RowId>> take(Loader& loader, int batches) {
  std::vector<std::vector<RowId>> out;
  for (int b = 0; b < batches; ++b) {
    std::vector<RowId> ids;
    for (const PackedRow& row : loader.next_batch()) ids.emplace_back(row.file, row.index);
    out.push_back(std::move(ids));
  }
  return out;
}

TEST(PermuteIndex, IsAPermutationForAnySize) {
  for (uint64_t n : {1u, 2u, 3u, 5u, 17u, 64u, 1000u, 4097u, 65537u}) {
    for (uint64_t key : {0ull, 1ull, 0xdeadbeefull}) {
      std::vector<char> hit(n, 0);
      for (uint64_t i = 0; i < n; ++i) {
        const uint64_t p = permute_index(i, n, key);
        ASSERT_LT(p, n);
        ASSERT_FALSE(hit[p]) << "n " << n << " key " << key << " index " << i;
        hit[p] = 1;
      }
    }
  }
  // Not the identity, and different keys give different orders.
  int same = 0, fixed = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    same += permute_index(i, 1000, 1) == permute_index(i, 1000, 2);
    fixed += permute_index(i, 1000, 1) == i;
  }
  EXPECT_LT(same, 20);
  EXPECT_LT(fixed, 20);
}

TEST_F(LoaderTest, RanksPartitionEachEpochAndServeTheRightRows) {
  const std::string a = make_file("a.h5", 40, 1);
  const std::string b = make_file("b.h5", 26, 2);
  // Weights proportional to sizes: each row exactly once per epoch. 66 rows, batches of 2 x 3 = 6 slots.
  for (const auto& files : {std::vector<std::pair<std::string, double>>{{a, 1.0}},
                            std::vector<std::pair<std::string, double>>{{a, 40.0}, {b, 26.0}}}) {
    LoaderOptions options;
    options.seed = 42;
    options.dp_size = 2;
    options.rows_per_batch = 3;
    Loader rank0(files, options);
    options.dp_rank = 1;
    Loader rank1(files, options);
    const auto epoch_rows = static_cast<uint64_t>(rank0.rows_per_epoch());
    std::map<uint64_t, RowId> by_slot;
    for (uint64_t batch = 0; batch * 6 < 2 * epoch_rows; ++batch) {
      for (int r = 0; r < 2; ++r) {
        const auto rows = (r == 0 ? rank0 : rank1).next_batch();
        ASSERT_EQ(rows.size(), 3u);
        for (size_t i = 0; i < rows.size(); ++i) {
          const PackedRow& row = rows[i];
          EXPECT_EQ(row.tokens[0], (row.file + 1) * 10000 + row.index) << "the row read is the row named";
          by_slot[batch * 6 + static_cast<uint64_t>(r) * 3 + i] = {row.file, row.index};
        }
      }
    }
    for (uint64_t epoch = 0; epoch < 2; ++epoch) {
      std::set<RowId> seen;
      for (uint64_t t = 0; t < epoch_rows; ++t) {
        EXPECT_EQ(by_slot.at(epoch * epoch_rows + t), rank0.row_at(epoch * epoch_rows + t));
        seen.insert(by_slot.at(epoch * epoch_rows + t));
      }
      EXPECT_EQ(seen.size(), epoch_rows) << "every row once in epoch " << epoch;
    }
    // A new epoch is a new order.
    int same = 0;
    for (uint64_t t = 0; t < epoch_rows; ++t) same += by_slot.at(t) == by_slot.at(epoch_rows + t);
    EXPECT_LT(same, static_cast<int>(epoch_rows) / 4);
  }
}

TEST_F(LoaderTest, BlendFollowsTheWeights) {
  const std::string a = make_file("a.h5", 30, 1);
  const std::string b = make_file("b.h5", 50, 2);
  LoaderOptions options;
  options.seed = 7;
  options.rows_per_batch = 8;
  options.prefetch = 0;
  Loader loader({{a, 3.0}, {b, 1.0}}, options);  // 80 slots per epoch: 60 from a (twice its rows), 20 from b
  std::map<int32_t, int> per_file;
  std::map<RowId, int> per_row;
  for (int slot = 0; slot < 160; ++slot) {
    const RowId id = loader.row_at(static_cast<uint64_t>(slot));
    ++per_file[id.first];
    ++per_row[id];
    if (slot == 79) {
      EXPECT_EQ(per_file[0], 60);
      EXPECT_EQ(per_file[1], 20);
    }
  }
  EXPECT_EQ(per_file[0], 120);
  EXPECT_EQ(per_file[1], 40);
  // Upsampled a: 4 passes over its rows in two epochs, each row 4 times. Downsampled b: 40 of its 50
  // rows in two epochs, none twice (the next epoch continues its permutation).
  for (int64_t r = 0; r < 30; ++r) EXPECT_EQ(per_row[(RowId{0, r})], 4);
  int b_rows = 0;
  for (const auto& [id, count] : per_row)
    if (id.first == 1) {
      EXPECT_EQ(count, 1);
      ++b_rows;
    }
  EXPECT_EQ(b_rows, 40);
}

// Runs `total` batches uninterrupted, then again stopping after `stop` batches, saving the state through
// JSON text and continuing in a fresh loader: the batches must be identical.
void expect_resume_is_exact(const std::vector<std::pair<std::string, double>>& files, LoaderOptions options, int total,
                            int stop) {
  Loader reference(files, options);
  const auto expected = take(reference, total);
  Loader first(files, options);
  auto got = take(first, stop);
  const std::string saved = first.state().to_json().dump();
  Loader second(files, options);
  second.restore(LoaderState::from_json(nlohmann::json::parse(saved)));
  EXPECT_EQ(second.state(), first.state());
  const auto rest = take(second, total - stop);
  got.insert(got.end(), rest.begin(), rest.end());
  EXPECT_EQ(got, expected) << "seed " << options.seed << " rank " << options.dp_rank << " stop " << stop;
}

TEST_F(LoaderTest, ResumedLoaderYieldsExactlyTheUninterruptedBatches) {
  const std::string a = make_file("a.h5", 29, 1);
  const std::string b = make_file("b.h5", 17, 2);
  LoaderOptions options;
  options.seed = 1234;
  options.rows_per_batch = 4;
  // One file, one rank: 29 rows per epoch, 4 per batch: the stop at batch 9 is past the first boundary.
  expect_resume_is_exact({{a, 1.0}}, options, 20, 9);
  // Two files blended 0.7 / 0.3 (a upsampled, b downsampled), over several epochs.
  expect_resume_is_exact({{a, 0.7}, {b, 0.3}}, options, 30, 13);
  // dp_size 2, both ranks, no prefetch and deep prefetch.
  options.dp_size = 2;
  for (int64_t prefetch : {0, 1, 5})
    for (int64_t rank = 0; rank < 2; ++rank) {
      options.dp_rank = rank;
      options.prefetch = prefetch;
      expect_resume_is_exact({{a, 0.7}, {b, 0.3}}, options, 16, 6);
    }
}

TEST_F(LoaderTest, ResumesOnAnotherDataParallelSize) {
  const std::string a = make_file("a.h5", 31, 1);
  LoaderOptions two;
  two.seed = 5;
  two.dp_size = 2;
  two.rows_per_batch = 3;
  Loader rank0({{a, 1.0}}, two);
  two.dp_rank = 1;
  Loader rank1({{a, 1.0}}, two);
  take(rank0, 4);
  take(rank1, 4);
  EXPECT_EQ(rank0.state(), rank1.state()) << "every rank holds the same state";
  LoaderOptions one;
  one.seed = 5;
  one.rows_per_batch = 6;
  Loader single({{a, 1.0}}, one);
  single.restore(rank0.state());
  for (int b = 0; b < 8; ++b) {
    auto joined = take(rank0, 1)[0];
    const auto second = take(rank1, 1)[0];
    joined.insert(joined.end(), second.begin(), second.end());
    EXPECT_EQ(take(single, 1)[0], joined) << "batch " << b;
  }
}

TEST_F(LoaderTest, StateRoundTripsThroughJsonAndRefusesAnotherOrder) {
  const std::string a = make_file("a.h5", 12, 1);
  const std::string b = make_file("b.h5", 12, 2);
  LoaderOptions options;
  options.seed = 9;
  Loader loader({{a, 1.0}}, options);
  take(loader, 15);
  const LoaderState state = loader.state();
  EXPECT_EQ(state.epoch, 1u);
  EXPECT_EQ(state.cursor, 3u);
  EXPECT_EQ(LoaderState::from_json(state.to_json()), state);
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  options.seed = 10;
  Loader other_seed({{a, 1.0}}, options);
  EXPECT_NE(message([&] { other_seed.restore(state); }).find("seed 9, this loader has seed 10"), std::string::npos);
  options.seed = 9;
  Loader other_files({{a, 1.0}, {b, 1.0}}, options);
  EXPECT_NE(message([&] { other_files.restore(state); }).find("the order would differ"), std::string::npos);
  nlohmann::json broken = state.to_json();
  broken.erase("cursor");
  EXPECT_NE(message([&] { LoaderState::from_json(broken); }).find("'cursor' is missing"), std::string::npos);
}

TEST_F(LoaderTest, RefusesFilesThatDoNotBelongTogetherAndBadOptions) {
  const std::string a = make_file("a.h5", 4, 1);
  const std::string c = make_file("c.h5", 4, 3, 2 * kSeq);
  const auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { Loader({{a, 1.0}, {c, 1.0}}, {}); }).find("seq_length 32"), std::string::npos);
  EXPECT_NE(message([&] { Loader({{a, 0.0}}, {}); }).find("weight 0 must be a positive number"), std::string::npos);
  EXPECT_NE(message([&] { Loader({{a, 1.0}, {c, 1e-9}}, {}); }).find("seq_length"), std::string::npos);
  const std::string d = make_file("d.h5", 4, 4);
  EXPECT_NE(message([&] { Loader({{a, 1.0}, {d, 1e-6}}, {}); }).find("gives it no row"), std::string::npos);
  LoaderOptions bad;
  bad.dp_rank = 2;
  bad.dp_size = 2;
  EXPECT_NE(message([&] { Loader({{a, 1.0}}, bad); }).find("dp_rank 2 is outside dp_size 2"), std::string::npos);
  EXPECT_NE(message([&] { Loader({{(dir_ / "none.h5").string(), 1.0}}, {}); }).find("none.h5: no such"), std::string::npos);
}

TEST_F(LoaderTest, AReadErrorReachesTheCallerAtItsBatch) {
  const std::string a = make_file("a.h5", 10, 1);
  // Damage row 6's position ids: opening succeeds (offsets are fine), reading that row fails.
  {
    const hid_t f = H5Fopen(a.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "position_ids", H5P_DEFAULT);
    const hid_t space = H5Dget_space(d);
    const hsize_t start[1] = {6 * kSeq + 3}, count[1] = {1};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, nullptr, count, nullptr);
    const hid_t mem = H5Screate_simple(1, count, nullptr);
    const int32_t bad = 99;
    H5Dwrite(d, H5T_NATIVE_INT32, mem, space, H5P_DEFAULT, &bad);
    H5Sclose(mem), H5Sclose(space), H5Dclose(d), H5Fclose(f);
  }
  for (int64_t prefetch : {0, 3}) {
    LoaderOptions options;
    options.seed = 3;
    options.prefetch = prefetch;
    Loader loader({{a, 1.0}}, options);
    uint64_t bad_slot = 0;
    while (loader.row_at(bad_slot).second != 6) ++bad_slot;
    for (uint64_t b = 0; b < bad_slot; ++b) EXPECT_NO_THROW(loader.next_batch()) << "batch " << b;
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        loader.next_batch();
        ADD_FAILURE() << "no error at the damaged row";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("a.h5: dataset position_ids: row 6"), std::string::npos) << e.what();
      }
      EXPECT_EQ(loader.state().cursor, bad_slot) << "the failed batch is not consumed";
    }
  }
}

TEST_F(LoaderTest, ShutsDownCleanlyWithAFullQueueOrNoneStarted) {
  const std::string a = make_file("a.h5", 50, 1);
  LoaderOptions options;
  options.prefetch = 4;
  {
    Loader unused({{a, 1.0}}, options);
  }
  {
    Loader loader({{a, 1.0}}, options);
    loader.next_batch();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the queue fill
  }
  {
    Loader loader({{a, 1.0}}, options);
    loader.next_batch();
    loader.restore(loader.state());  // restarts the producer later, at the same place
    EXPECT_EQ(loader.next_batch()[0].index, loader.row_at(1).second);
  }
}

}  // namespace
}  // namespace tessera::data
