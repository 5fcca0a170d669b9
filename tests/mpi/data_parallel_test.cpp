// Data-parallel training reproduces the 1-rank Trainer bit for bit: the same per-step loss and gradient
// norm, and identical weights after every step, for dp 2 and dp 4, ZeRO-0, 1 and 2, dense and MoE.
// Every rank also runs the 1-rank reference itself (the models are tiny), so the comparison is local.

#include <gtest/gtest.h>
#include <mpi.h>

#include <string>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/dist/mpi_communicator.hpp"
#include "tessera/dist/process_groups.hpp"
#include "tessera/train/data_parallel_trainer.hpp"
#include "tessera/train/synthetic_data.hpp"
#include "tessera/train/trainer.hpp"
#include "../unit/test_support.hpp"

namespace tessera::train {
namespace {

constexpr int kSteps = 4;
constexpr int kMicrobatches = 8;

Config tiny(const std::string& name, int zero_stage) {
  return load_config(std::string(TESSERA_SOURCE_DIR) + "/configs/" + name + ".yaml",
                     {"data.seq_length=32", "train.micro_batch_size=1", "train.global_batch_size=8",
                      "train.steps=4", "parallel.zero_stage=" + std::to_string(zero_stage), "optim.warmup_steps=1"});
}

model::Batch microbatch(const Config& c, int step, int m) {
  return synthetic_batch(c.model.vocab_size, c.data.seq_length, 1, c.train.seed, step, m);
}

// Runs both trainers over `comm` (a dp group of its size) and compares them step by step.
void expect_same_as_one_rank(const std::string& name, int zero_stage, MPI_Comm comm) {
  int size = 0, rank = 0;
  MPI_Comm_size(comm, &size);
  MPI_Comm_rank(comm, &rank);
  SCOPED_TRACE(name + " dp" + std::to_string(size) + " zero" + std::to_string(zero_stage));
  const Config c = tiny(name, zero_stage);
  const dist::Topology topology = dist::Topology::build(size, {.dp = size});
  const dist::ProcessGroups groups(comm, topology);
  dist::Communicators comms(groups, topology, rank, {.timeout_seconds = 120});
  DataParallelTrainer parallel(c, comms.get(dist::Group::dp));
  Trainer reference(c);
  for (int step = 1; step <= kSteps; ++step) {
    std::vector<model::Batch> all, mine;
    for (int m = 0; m < kMicrobatches; ++m) all.push_back(microbatch(c, step, m));
    for (int m = 0; m < kMicrobatches; ++m)
      if (DataParallelTrainer::takes_microbatch(c, rank, size, m, kMicrobatches)) mine.push_back(all[static_cast<size_t>(m)]);
    const StepStats want = reference.step(all);
    const StepStats got = parallel.step(mine);
    EXPECT_EQ(got.loss, want.loss) << "step " << step;
    EXPECT_EQ(got.grad_norm, want.grad_norm) << "step " << step;
    EXPECT_EQ(got.targets, want.targets);
    EXPECT_EQ(got.expert_load, want.expert_load);
    const auto a = parallel.parameters().values(), b = reference.parameters().values();
    ASSERT_EQ(a.size(), b.size());
    size_t differing = 0;
    for (size_t i = 0; i < a.size(); ++i) differing += a[i] != b[i] ? 1 : 0;
    EXPECT_EQ(differing, 0u) << "weights differ from the 1-rank run after step " << step;
  }
}

// ctest runs this binary on 2 and on 4 ranks: dp is the world size.
TEST(DataParallel, ReproducesOneRankBitForBit) {
  for (const char* name : {"tiny-dense", "tiny-moe"})
    for (int zero : {0, 1, 2}) expect_same_as_one_rank(name, zero, MPI_COMM_WORLD);
}

TEST(DataParallel, RefusesWhatItDoesNotDo) {
  int world = 0, rank = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const dist::Topology topology = dist::Topology::build(world, {.dp = world});
  const dist::ProcessGroups groups(MPI_COMM_WORLD, topology);
  dist::Communicators comms(groups, topology, rank, {.timeout_seconds = 60});
  Config odd = tiny("tiny-dense", 2);
  odd.train.global_batch_size = 3;  // 3 microbatches over 2 or 4 ranks
  const std::string split = tessera::testing::error_of([&] { DataParallelTrainer(odd, comms.get(dist::Group::dp)); });
  EXPECT_NE(split.find("cannot be split over dp"), std::string::npos) << split;
}

}  // namespace
}  // namespace tessera::train
