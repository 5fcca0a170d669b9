// Tensor parallelism (Megatron's column/row-parallel attention and MLP, vocabulary-parallel embedding and
// loss) and expert parallelism (experts split over the ep group, routed tokens sent to them and back by
// all-to-all), alone and with pipeline and data parallelism, reproduce the 1-rank Trainer for 10 steps:
// the loss and gradient norm within 1e-5 relative, every gradient (gathered whole; ZeRO-0 or dp = 1) within
// 1e-5 of its tensor's largest, after every step, and the final weights within 1e-5 of each tensor's
// largest value.
//
// Not bit for bit: a row-parallel layer adds its ranks' partial products, which rounds differently from
// one matrix product, and an expert multiplies the rows of several ranks' microbatches at once. Adam is
// therefore linearised here (eps = 1 ≫ √v, so the update is lr times the gradient's moving average;
// lr = 0.3 moves the weights by up to 0.02, their own size): with the default eps Adam moves every weight
// by about ±lr whatever its gradient's size, so an element whose gradient is zero up to rounding gets a
// full step of either sign, and two runs that differ only in summation order part ways (measured on tp2:
// weights 2.5e-5 apart by step 10 with lr = 1e-2, gradients equal to 1e-5 at every step before). The
// pipeline and data-parallel layouts, which keep the 1-rank order, are tested bit for bit with the default
// Adam (pipeline_test, data_parallel_test).
//
// Layouts by world size: 2: tp2, ep2. 4: tp4 (kv heads replicated: tiny models have 2), tp2·pp2, tp2·dp2
// with ZeRO-0 and ZeRO-1, ep2·tp2 (ZeRO-0 and 1), ep2·edp2. 8: tp2·pp2·dp2, ep4·pp2. Sequence parallelism
// on tp2, tp4, tp2·pp2, tp2·pp2·dp2 and ep2·tp2; interleaved stages on tp2·pp2 × 2 chunks. Dense and MoE
// for tp, MoE for ep.

#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/dist/mpi_communicator.hpp"
#include "tessera/dist/process_groups.hpp"
#include "tessera/model/parameter_spec.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/pipeline_trainer.hpp"
#include "tessera/train/synthetic_data.hpp"
#include "tessera/train/trainer.hpp"
#include "../unit/test_support.hpp"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;
constexpr int kSteps = 10;
constexpr int kMicrobatches = 8;
constexpr double kTolerance = 1e-5;

struct World {
  int size = 0, rank = 0;
  World() {
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  }
};

Config tiny(const std::string& name, int tp, int pp, std::vector<std::string> more = {}) {
  std::vector<std::string> overrides = {"data.seq_length=32", "train.micro_batch_size=1", "train.global_batch_size=8",
                                        "train.steps=10", "optim.warmup_steps=2", "optim.eps=1.0", "optim.lr=0.3",
                                        "optim.min_lr=0.03", "parallel.tp=" + std::to_string(tp),
                                        "parallel.pp=" + std::to_string(pp)};
  overrides.insert(overrides.end(), more.begin(), more.end());
  return load_config(std::string(TESSERA_SOURCE_DIR) + "/configs/" + name + ".yaml", overrides);
}

void expect_close_to_one_rank(const std::string& name, int tp, int pp, std::vector<std::string> more = {}) {
  const World w;
  const Config c = tiny(name, tp, pp, more);
  Config one = c;
  one.parallel.tp = one.parallel.pp = one.parallel.ep = 1;
  const dist::Topology topology = dist::Topology::build(w.size, dist::parallel_sizes(c.parallel));
  const dist::ProcessGroups groups(MPI_COMM_WORLD, topology);
  dist::Communicators comms(groups, topology, w.rank, {.timeout_seconds = 120});
  dist::Communicator& dp = comms.get(dist::Group::dp);
  const std::string layout = name + " tp" + std::to_string(tp) + " pp" + std::to_string(pp) + " ep" +
                             std::to_string(c.parallel.ep) + " dp" + std::to_string(dp.size()) + " zero" +
                             std::to_string(c.parallel.zero_stage);
  SCOPED_TRACE(layout);
  PipelineTrainer parallel(c, comms.get(dist::Group::pp), &dp, &comms.get(dist::Group::tp), &comms.get(dist::Group::ep),
                           &comms.get(dist::Group::edp));
  Trainer reference(one);
  model::ParameterStore& ref = reference.parameters();
  // Each of this rank's tensors, whole, within 1e-5 of the 1-rank tensor's largest magnitude.
  auto expect_close = [&](bool grads, const std::string& when) {
    for (const auto& [tensor, mine] : parallel.whole_tensors(grads)) {
      const auto i = ref.find(tensor);
      ASSERT_TRUE(i.has_value()) << tensor;
      const auto want = grads ? ref.grads().subspan(ref.offset(*i), ref.numel(*i)) : ref.value(*i);
      ASSERT_EQ(mine.size(), want.size()) << tensor;
      float scale = 0, worst = 0;
      for (size_t j = 0; j < want.size(); ++j) {
        scale = std::max(scale, std::abs(want[j]));
        worst = std::max(worst, std::abs(mine[j] - want[j]));
      }
      EXPECT_LE(worst, kTolerance * scale) << when << (grads ? " gradient of " : " value of ") << tensor
                                           << " on world rank " << w.rank;
    }
  };
  const auto initial = parallel.whole_tensors();
  const int per_replica = kMicrobatches / dp.size();
  for (int step = 1; step <= kSteps; ++step) {
    const auto all = synthetic_microbatches(c, step, 0, kMicrobatches);
    const auto local = synthetic_microbatches(c, step, dp.rank() * per_replica, per_replica);
    const StepStats want = reference.step(all);
    const StepStats got = parallel.step(local);
    EXPECT_NEAR(got.loss, want.loss, kTolerance * std::abs(want.loss)) << "step " << step;
    EXPECT_NEAR(got.grad_norm, want.grad_norm, kTolerance * want.grad_norm) << "step " << step;
    EXPECT_EQ(got.targets, want.targets);
    EXPECT_EQ(got.expert_load, want.expert_load) << "step " << step;
    // Under ZeRO-1 a data-parallel rank reduces only its chunk of the gradient (the norm is summed from
    // the chunks); the ZeRO-0 layouts compare every gradient.
    if (c.parallel.zero_stage == 0 || dp.size() == 1) expect_close(true, "step " + std::to_string(step));
  }
  expect_close(false, "after the last step");
  // The comparison means something only if training moved the weights well past the tolerance.
  double moved = 0;
  const auto final_tensors = parallel.whole_tensors();
  for (size_t t = 0; t < final_tensors.size(); ++t)
    for (size_t j = 0; j < final_tensors[t].second.size(); ++j)
      moved = std::max(moved, std::abs(double(final_tensors[t].second[j]) - initial[t].second[j]));
  EXPECT_GT(moved, 1e-2) << "the weights barely moved in " << kSteps << " steps";
}

TEST(TensorParallel, ReproducesOneRank) {
  const World w;
  for (const char* name : {"tiny-dense", "tiny-moe"}) {
    if (w.size == 2) expect_close_to_one_rank(name, 2, 1);
    // A tied LM head: the embedding's vocabulary shard is also the head's.
    if (w.size == 2) expect_close_to_one_rank(name, 2, 1, {"model.tie_embeddings=true"});
    if (w.size == 4) {
      expect_close_to_one_rank(name, 4, 1);
      expect_close_to_one_rank(name, 2, 2);
      for (const char* zero : {"parallel.zero_stage=0", "parallel.zero_stage=1"})
        expect_close_to_one_rank(name, 2, 1, {zero});
    }
    if (w.size == 8) expect_close_to_one_rank(name, 2, 2);
  }
  // With interleaved pipeline stages (2 chunks of one layer per stage).
  if (w.size == 4) expect_close_to_one_rank("tiny-dense", 2, 2, {"parallel.virtual_stages=2"});
}

// Sequence parallelism: each tp rank keeps 1/tp of the tokens between the parallel regions.
TEST(SequenceParallel, ReproducesOneRank) {
  const World w;
  const std::string sp = "parallel.sequence_parallel=true";
  for (const char* name : {"tiny-dense", "tiny-moe"}) {
    if (w.size == 2) expect_close_to_one_rank(name, 2, 1, {sp});
    if (w.size == 4) {
      expect_close_to_one_rank(name, 4, 1, {sp});
      expect_close_to_one_rank(name, 2, 2, {sp});
    }
    if (w.size == 8) expect_close_to_one_rank(name, 2, 2, {sp});
  }
  if (w.size == 4) expect_close_to_one_rank("tiny-moe", 2, 1, {sp, "parallel.ep=2"});
  // Packed rows are not padded: 33-token microbatches split 9 + 9 + 9 + 6 over tp4, 17 + 16 over tp2 (and
  // over two stages).
  if (w.size == 2) expect_close_to_one_rank("tiny-dense", 2, 1, {sp, "data.seq_length=33"});
  if (w.size == 4) {
    expect_close_to_one_rank("tiny-moe", 4, 1, {sp, "data.seq_length=33"});
    expect_close_to_one_rank("tiny-dense", 2, 2, {sp, "data.seq_length=33"});
  }
}

TEST(ExpertParallel, ReproducesOneRank) {
  const World w;
  if (w.size == 2) expect_close_to_one_rank("tiny-moe", 1, 1, {"parallel.ep=2"});
  if (w.size == 4) {
    expect_close_to_one_rank("tiny-moe", 2, 1, {"parallel.ep=2"});
    expect_close_to_one_rank("tiny-moe", 2, 1, {"parallel.ep=2", "parallel.zero_stage=0"});
    // ep2 × edp2: replicas holding the same experts reduce their gradients (ZeRO-1 shards their state).
    expect_close_to_one_rank("tiny-moe", 1, 1, {"parallel.ep=2"});
  }
  if (w.size == 8) expect_close_to_one_rank("tiny-moe", 1, 2, {"parallel.ep=4"});
}

// Checkpoints of these layouts: 4 steps, a save (shards, experts and ZeRO chunks gathered into the
// layout-independent format), then a fresh trainer of the same layout loads it and trains 4 more steps
// equal bit for bit to the uninterrupted run, and a 1-rank Trainer loads exactly the gathered weights.
void checkpoint_round_trip(const std::string& name, int tp, int pp, std::vector<std::string> more = {}) {
  const World w;
  const std::string tag = name + "-tp" + std::to_string(tp) + "-pp" + std::to_string(pp) + "-" +
                          std::to_string(more.size()) + (more.empty() ? "" : more.back());
  const fs::path dir = fs::temp_directory_path() / ("tessera-model-parallel-checkpoint-" + tag);
  if (w.rank == 0) fs::remove_all(dir);
  MPI_Barrier(MPI_COMM_WORLD);
  more.push_back("checkpoint.dir=" + dir.string());
  const Config c = tiny(name, tp, pp, more);
  SCOPED_TRACE(tag);
  const dist::Topology topology = dist::Topology::build(w.size, dist::parallel_sizes(c.parallel));
  const dist::ProcessGroups groups(MPI_COMM_WORLD, topology);
  dist::Communicators comms(groups, topology, w.rank, {.timeout_seconds = 120});
  dist::Communicator& dp = comms.get(dist::Group::dp);
  auto make = [&] {
    return std::make_unique<PipelineTrainer>(c, comms.get(dist::Group::pp), &dp, &comms.get(dist::Group::tp),
                                             &comms.get(dist::Group::ep), &comms.get(dist::Group::edp));
  };
  const int per_replica = kMicrobatches / dp.size();
  auto local = [&](int step) { return synthetic_microbatches(c, step, dp.rank() * per_replica, per_replica); };
  auto uninterrupted = make();
  for (int step = 1; step <= 4; ++step) uninterrupted->step(local(step));
  save_checkpoint(MPI_COMM_WORLD, c, 4, uninterrupted->checkpoint_view(), std::nullopt);
  const auto saved = uninterrupted->whole_tensors();
  std::vector<StepStats> want;
  for (int step = 5; step <= 8; ++step) want.push_back(uninterrupted->step(local(step)));

  const std::string path = find_checkpoint(MPI_COMM_WORLD, dir.string(), c, [](const std::string& warning) {
    ADD_FAILURE() << warning;
  });
  ASSERT_FALSE(path.empty());
  auto resumed = make();
  const Resumed r = load_checkpoint(path, c, resumed->checkpoint_view());
  resumed->checkpoint_loaded(true);
  EXPECT_EQ(r.step, 4);
  for (int step = 5; step <= 8; ++step) {
    const StepStats got = resumed->step(local(step));
    EXPECT_EQ(got.loss, want[static_cast<size_t>(step - 5)].loss) << "step " << step;
    EXPECT_EQ(got.grad_norm, want[static_cast<size_t>(step - 5)].grad_norm) << "step " << step;
  }

  // The same checkpoint on one rank: the gathered weights, exactly.
  Config one = c;
  one.parallel.tp = one.parallel.pp = one.parallel.ep = 1;
  one.parallel.sequence_parallel = false;
  Trainer single(one);
  load_checkpoint(path, one, single.checkpoint_view());
  for (const auto& [tensor, values] : saved) {
    const auto i = single.parameters().find(tensor);
    ASSERT_TRUE(i.has_value()) << tensor;
    const auto loaded = single.parameters().value(*i);
    EXPECT_TRUE(std::equal(loaded.begin(), loaded.end(), values.begin(), values.end())) << tensor;
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (w.rank == 0) fs::remove_all(dir);
}

TEST(ModelParallelCheckpoint, ResumesExactlyAndLoadsOnOneRank) {
  const World w;
  if (w.size == 2) {
    checkpoint_round_trip("tiny-dense", 2, 1);
    checkpoint_round_trip("tiny-moe", 1, 1, {"parallel.ep=2"});
  }
  if (w.size == 4) {
    checkpoint_round_trip("tiny-moe", 2, 2, {"parallel.sequence_parallel=true"});
    checkpoint_round_trip("tiny-moe", 2, 1, {"parallel.ep=2"});  // ZeRO-1 chunks over dp
    checkpoint_round_trip("tiny-moe", 1, 1, {"parallel.ep=2"});  // expert chunks over edp
    checkpoint_round_trip("tiny-dense", 4, 1, {"parallel.zero_stage=0"});  // kv heads replicated
    checkpoint_round_trip("tiny-moe", 2, 2, {"parallel.virtual_stages=2"});  // two runs per stage
  }
  if (w.size == 8) checkpoint_round_trip("tiny-dense", 2, 2);
}

TEST(TensorParallel, RefusesWhatDoesNotDivide) {
  ModelConfig m = tiny("tiny-dense", 1, 1).model;
  m.vocab_size = 511;
  const std::string vocab = tessera::testing::error_of([&] { model::check_tensor_parallel(m, 2); });
  EXPECT_NE(vocab.find("vocabulary of 511"), std::string::npos) << vocab;
  m = tiny("tiny-dense", 1, 1).model;
  const std::string heads = tessera::testing::error_of([&] { model::check_tensor_parallel(m, 8); });
  EXPECT_NE(heads.find("4 attention heads"), std::string::npos) << heads;
}

TEST(ExpertParallel, RefusesWhatItCannotSplit) {
  const ModelConfig dense = tiny("tiny-dense", 1, 1).model;
  const std::string no_experts = tessera::testing::error_of([&] { model::check_expert_parallel(dense, 2); });
  EXPECT_NE(no_experts.find("has no experts"), std::string::npos) << no_experts;
  const ModelConfig moe = tiny("tiny-moe", 1, 1).model;
  const std::string uneven = tessera::testing::error_of([&] { model::check_expert_parallel(moe, 3); });
  EXPECT_NE(uneven.find("does not divide the 8 experts"), std::string::npos) << uneven;
}

// The trainer's refusals name the setting: experts split over a tp other than tp.
TEST(ModelParallel, RefusesLayoutsItDoesNotRun) {
  const World w;
  auto trainer_error = [&](const Config& c) {
    const dist::Topology topology = dist::Topology::build(w.size, dist::parallel_sizes(c.parallel));
    const dist::ProcessGroups groups(MPI_COMM_WORLD, topology);
    dist::Communicators comms(groups, topology, w.rank, {.timeout_seconds = 60});
    return tessera::testing::error_of([&] {
      PipelineTrainer t(c, comms.get(dist::Group::pp), &comms.get(dist::Group::dp), &comms.get(dist::Group::tp),
                        &comms.get(dist::Group::ep), &comms.get(dist::Group::edp));
      t.step(synthetic_microbatches(c, 1, 0, microbatches_per_step(c.train) / comms.get(dist::Group::dp).size()));
    });
  };
  if (w.size == 4) {
    const std::string etp = trainer_error(tiny("tiny-moe", 2, 1, {"parallel.ep=2", "parallel.etp=1"}));
    EXPECT_NE(etp.find("parallel.etp = 1"), std::string::npos) << etp;
  }

}

}  // namespace
}  // namespace tessera::train
