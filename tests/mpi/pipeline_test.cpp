// Pipeline-parallel training (1F1B) reproduces the 1-rank Trainer bit for bit: the same per-step loss and
// gradient norm, and every stage's weights equal to the 1-rank weights at the stage's place in the flat
// layout, after every step — pp2, pp4 and pp2·dp2 with ZeRO-0 and ZeRO-1, dense and MoE, 8 microbatches
// per step.
// Every rank also runs the 1-rank reference itself (the models are tiny), so the comparison is local.

#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/dist/mpi_communicator.hpp"
#include "tessera/dist/process_groups.hpp"
#include "tessera/train/pipeline_trainer.hpp"
#include "tessera/train/synthetic_data.hpp"
#include "tessera/train/trainer.hpp"
#include "../unit/test_support.hpp"

namespace tessera::train {
namespace {

constexpr int kSteps = 4;
constexpr int kMicrobatches = 8;

Config tiny(const std::string& name, int pp, std::vector<std::string> more = {}) {
  // (pp × dp = the world size: dp is derived.)
  std::vector<std::string> overrides = {"data.seq_length=32", "train.micro_batch_size=1", "train.global_batch_size=8",
                                        "train.steps=4", "optim.warmup_steps=1", "parallel.pp=" + std::to_string(pp)};
  overrides.insert(overrides.end(), more.begin(), more.end());
  return load_config(std::string(TESSERA_SOURCE_DIR) + "/configs/" + name + ".yaml", overrides);
}

struct World {
  int size = 0, rank = 0;
  World() {
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  }
};

void expect_same_as_one_rank(const std::string& name, int pp, std::vector<std::string> more = {}) {
  const World w;
  const Config c = tiny(name, pp, more);
  Config one = c;
  one.parallel.pp = 1;
  one.parallel.pipeline_layers.clear();
  const dist::Topology topology = dist::Topology::build(w.size, dist::parallel_sizes(c.parallel));
  const dist::ProcessGroups groups(MPI_COMM_WORLD, topology);
  dist::Communicators comms(groups, topology, w.rank, {.timeout_seconds = 120});
  dist::Communicator& dp = comms.get(dist::Group::dp);
  SCOPED_TRACE(name + " pp" + std::to_string(pp) + " dp" + std::to_string(dp.size()) + " zero" +
               std::to_string(c.parallel.zero_stage));
  PipelineTrainer pipeline(c, comms.get(dist::Group::pp), &dp);
  Trainer reference(one);
  const int per_replica = kMicrobatches / dp.size();
  for (int step = 1; step <= kSteps; ++step) {
    const auto all = synthetic_microbatches(c, step, 0, kMicrobatches);
    const auto local = synthetic_microbatches(c, step, dp.rank() * per_replica, per_replica);
    const StepStats want = reference.step(all);
    const StepStats got = pipeline.step(local);
    EXPECT_EQ(got.loss, want.loss) << "step " << step;
    EXPECT_EQ(got.grad_norm, want.grad_norm) << "step " << step;
    EXPECT_EQ(got.targets, want.targets);
    EXPECT_EQ(got.expert_load, want.expert_load) << "step " << step;
    const auto mine = pipeline.parameters().values();
    const auto ref = reference.parameters().values().subspan(pipeline.global_offset(), mine.size());
    size_t differing = 0;
    for (size_t i = 0; i < mine.size(); ++i) differing += mine[i] != ref[i] ? 1 : 0;
    EXPECT_EQ(differing, 0u) << "stage " << w.rank << "'s weights differ from the 1-rank run after step " << step;
  }
}

// ctest runs this binary on 2 and on 4 ranks: pp is the world size (tiny models have 4 layers).
TEST(Pipeline, OneFOneBReproducesOneRankBitForBit) {
  const World w;
  expect_same_as_one_rank("tiny-dense", w.size);
  expect_same_as_one_rank("tiny-moe", w.size);
}

// pp2 · dp2 on 4 ranks: each replica pipelines its 4 microbatches; stages reduce over dp.
TEST(Pipeline, WithDataParallelismReproducesOneRankBitForBit) {
  const World w;
  if (w.size != 4) GTEST_SKIP() << "pp2·dp2 needs 4 ranks";
  for (const char* name : {"tiny-dense", "tiny-moe"})
    for (const char* zero : {"parallel.zero_stage=0", "parallel.zero_stage=1"}) expect_same_as_one_rank(name, 2, {zero});
}

// Uneven explicit stage sizes (the first stage also carries the embedding, the last the head).
TEST(Pipeline, ExplicitStageLayers) {
  const World w;
  if (w.size != 2) GTEST_SKIP() << "the 3+1 split is a pp2 layout";
  expect_same_as_one_rank("tiny-dense", 2, {"parallel.pipeline_layers=[3,1]"});
}

// Interleaved 1F1B (Megatron's virtual stages): stage s holds chunks s and s + pp of the 4 one-layer
// chunks, activations wrap from the last stage back to the first. Still the 1-rank run bit for bit: each
// chunk adds its microbatches' gradients in order, and the norm's Σ g² is exact. Compared tensor by tensor
// (a stage's tensors are no longer one run of the flat layout).
void expect_interleaved_same_as_one_rank(const std::string& name, std::vector<std::string> more = {}) {
  const World w;
  more.push_back("parallel.virtual_stages=2");
  const Config c = tiny(name, 2, more);
  Config one = c;
  one.parallel.pp = 1;
  one.parallel.virtual_stages = 1;
  const dist::Topology topology = dist::Topology::build(w.size, dist::parallel_sizes(c.parallel));
  const dist::ProcessGroups groups(MPI_COMM_WORLD, topology);
  dist::Communicators comms(groups, topology, w.rank, {.timeout_seconds = 120});
  dist::Communicator& dp = comms.get(dist::Group::dp);
  SCOPED_TRACE(name + " pp2 × 2 virtual stages, dp" + std::to_string(dp.size()));
  PipelineTrainer pipeline(c, comms.get(dist::Group::pp), &dp);
  Trainer reference(one);
  const int per_replica = kMicrobatches / dp.size();
  for (int step = 1; step <= kSteps; ++step) {
    const StepStats want = reference.step(synthetic_microbatches(c, step, 0, kMicrobatches));
    const StepStats got = pipeline.step(synthetic_microbatches(c, step, dp.rank() * per_replica, per_replica));
    EXPECT_EQ(got.loss, want.loss) << "step " << step;
    EXPECT_EQ(got.grad_norm, want.grad_norm) << "step " << step;
    EXPECT_EQ(got.expert_load, want.expert_load) << "step " << step;
    for (const auto& [tensor, values] : pipeline.whole_tensors()) {
      const auto i = reference.parameters().find(tensor);
      ASSERT_TRUE(i.has_value()) << tensor;
      const auto ref = reference.parameters().value(*i);
      EXPECT_TRUE(std::equal(values.begin(), values.end(), ref.begin(), ref.end()))
          << tensor << " differs from the 1-rank run after step " << step;
    }
  }
}

TEST(Pipeline, InterleavedReproducesOneRankBitForBit) {
  const World w;
  for (const char* name : {"tiny-dense", "tiny-moe"}) {
    if (w.size == 2) expect_interleaved_same_as_one_rank(name);
    if (w.size == 4) expect_interleaved_same_as_one_rank(name, {"parallel.zero_stage=1"});
  }
}

TEST(Pipeline, RefusesWhatItCannotDo) {
  const World w;
  const Config c = tiny("tiny-dense", w.size);
  const dist::Topology topology = dist::Topology::build(w.size, dist::parallel_sizes(c.parallel));
  const dist::ProcessGroups groups(MPI_COMM_WORLD, topology);
  dist::Communicators comms(groups, topology, w.rank, {.timeout_seconds = 60});
  const std::string tied = tessera::testing::error_of(
      [&] { PipelineTrainer(tiny("tiny-dense", w.size, {"model.tie_embeddings=true"}), comms.get(dist::Group::pp)); });
  EXPECT_NE(tied.find("tied LM head"), std::string::npos) << tied;
}

}  // namespace
}  // namespace tessera::train
