// Checkpoints resume exactly and load under another layout: a run that trains 4 steps under layout A,
// saves, and continues for 4 more under layout B (a fresh process state, weights and optimizer loaded from
// the checkpoint) gives the 1-rank 8-step run's losses, gradient norms and weights bit for bit — for A, B
// among 1 rank, dp (ZeRO-0/1), pp, pp·dp and interleaved pp, dense and MoE. A corrupted newest checkpoint is reported and
// the previous one is used.

#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/dist/mpi_communicator.hpp"
#include "tessera/dist/process_groups.hpp"
#include "tessera/train/checkpoint.hpp"
#include "tessera/train/data_parallel_trainer.hpp"
#include "tessera/train/pipeline_trainer.hpp"
#include "tessera/train/synthetic_data.hpp"
#include "tessera/train/trainer.hpp"

namespace tessera::train {
namespace {

namespace fs = std::filesystem;
constexpr int kMicrobatches = 8;

struct Layout {
  int pp = 0;  // 0: one process (every rank runs its own 1-rank trainer); else pp × (world / pp) dp
  int zero = 0;
  int virtual_stages = 1;  // interleaved 1F1B when > 1
  std::string name() const {
    return pp == 0 ? "1 rank"
                   : "pp" + std::to_string(pp) + " zero" + std::to_string(zero) +
                         (virtual_stages > 1 ? " v" + std::to_string(virtual_stages) : "");
  }
};

int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}
int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

Config tiny(const std::string& model, const Layout& l, const std::string& dir) {
  return load_config(std::string(TESSERA_SOURCE_DIR) + "/configs/" + model + ".yaml",
                     {"data.seq_length=32", "train.micro_batch_size=1", "train.global_batch_size=8", "train.steps=8",
                      "optim.warmup_steps=1", "parallel.pp=" + std::to_string(std::max(l.pp, 1)),
                      "parallel.zero_stage=" + std::to_string(l.zero),
                      "parallel.virtual_stages=" + std::to_string(l.virtual_stages), "checkpoint.dir=" + dir,
                      "checkpoint.keep_last=3"});
}

// One layout's trainer over the world (or, for the 1-rank layout, over this rank alone).
class Runner {
 public:
  Runner(const Config& c, const Layout& l) : layout_(l), config_(c) {
    if (l.pp == 0) {
      single_ = std::make_unique<Trainer>(c);
      return;
    }
    topology_ = std::make_unique<dist::Topology>(dist::Topology::build(world_size(), dist::parallel_sizes(c.parallel)));
    groups_ = std::make_unique<dist::ProcessGroups>(MPI_COMM_WORLD, *topology_);
    comms_ = std::make_unique<dist::Communicators>(*groups_, *topology_, world_rank(),
                                                   dist::CommOptions{.timeout_seconds = 120});
    if (l.pp > 1)
      pipeline_ = std::make_unique<PipelineTrainer>(c, comms_->get(dist::Group::pp), &comms_->get(dist::Group::dp));
    else
      parallel_ = std::make_unique<DataParallelTrainer>(c, comms_->get(dist::Group::dp));
  }
  MPI_Comm comm() const { return layout_.pp == 0 ? MPI_COMM_SELF : MPI_COMM_WORLD; }
  CheckpointView view() {
    return single_ ? single_->checkpoint_view() : pipeline_ ? pipeline_->checkpoint_view() : parallel_->checkpoint_view();
  }
  StepStats step(const std::vector<model::Batch>& all) {
    if (single_) return single_->step(all);
    const int dp = topology_->dp(), r = topology_->coord(world_rank()).dp, k = kMicrobatches / dp;
    if (pipeline_) return pipeline_->step(std::vector<model::Batch>(all.begin() + r * k, all.begin() + (r + 1) * k));
    std::vector<model::Batch> mine;
    for (int m = 0; m < kMicrobatches; ++m)
      if (DataParallelTrainer::takes_microbatch(config_, r, dp, m, kMicrobatches)) mine.push_back(all[m]);
    return parallel_->step(mine);
  }

 private:
  Layout layout_;
  Config config_;
  std::unique_ptr<dist::Topology> topology_;
  std::unique_ptr<dist::ProcessGroups> groups_;
  std::unique_ptr<dist::Communicators> comms_;
  std::unique_ptr<Trainer> single_;
  std::unique_ptr<DataParallelTrainer> parallel_;
  std::unique_ptr<PipelineTrainer> pipeline_;
};

std::vector<model::Batch> batches(const Config& c, int step) {
  std::vector<model::Batch> all;
  for (int m = 0; m < kMicrobatches; ++m)
    all.push_back(synthetic_batch(c.model.vocab_size, c.data.seq_length, 1, c.train.seed, step, m));
  return all;
}

// A directory every rank agrees on (rank 0 names it), empty.
std::string fresh_dir(const std::string& tag) {
  std::string dir = fs::temp_directory_path() / ("tessera-ckpt-" + tag + "-" + std::to_string(::getpid()));
  int length = static_cast<int>(dir.size());
  MPI_Bcast(&length, 1, MPI_INT, 0, MPI_COMM_WORLD);
  dir.resize(static_cast<size_t>(length));
  MPI_Bcast(dir.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
  MPI_Barrier(MPI_COMM_WORLD);
  return dir;
}

// Trains steps 1..save_at under A (saving after `save_at`), then save_at+1..8 under B from the checkpoint,
// against the 1-rank 8-step run. `corrupt_newest` saves twice and breaks the newer one first.
void resume_matches_uninterrupted(const std::string& model, const Layout& a, const Layout& b, bool corrupt_newest = false) {
  SCOPED_TRACE(model + ": " + a.name() + " → " + b.name());
  const std::string dir = fresh_dir(model);
  const Config ca = tiny(model, a, dir), cb = tiny(model, b, dir), c1 = tiny(model, Layout{}, dir);
  Trainer reference(c1);
  std::vector<StepStats> want;
  for (int s = 1; s <= 8; ++s) want.push_back(reference.step(batches(c1, s)));

  const int save_at = 4;
  {
    Runner first(ca, a);
    for (int s = 1; s <= save_at; ++s) {
      first.step(batches(ca, s));
      if (s == 2 || s == save_at)
        // The 1-rank layout saves from every rank into the same place: only rank 0 does it.
        if (a.pp != 0 || world_rank() == 0) save_checkpoint(first.comm(), ca, s, first.view(), std::nullopt);
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  int resume_from = save_at;
  if (corrupt_newest) {
    if (world_rank() == 0) {
      const fs::path victim = fs::path(dir) / "step-00000004";
      for (const auto& e : fs::directory_iterator(victim))
        if (e.path().filename().string().starts_with("model-")) {
          std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
          f.seekp(-7, std::ios::end);
          f.put('\x5a');
          break;
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    resume_from = 2;
  }

  Runner second(cb, b);
  std::vector<std::string> warnings;
  const std::string path = find_checkpoint(second.comm(), dir, cb, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_EQ(path, (fs::path(dir) / (resume_from == 2 ? "step-00000002" : "step-00000004")).string());
  if (corrupt_newest && world_rank() == 0) {
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("sha256"), std::string::npos) << warnings[0];
  }
  const Resumed r = load_checkpoint(path, cb, second.view());
  EXPECT_EQ(r.step, resume_from);
  for (int s = resume_from + 1; s <= 8; ++s) {
    const StepStats got = second.step(batches(cb, s));
    EXPECT_EQ(got.loss, want[s - 1].loss) << "step " << s;
    EXPECT_EQ(got.grad_norm, want[s - 1].grad_norm) << "step " << s;
  }
  const CheckpointView v = second.view();
  const auto mine = v.store->values();
  size_t differing = 0;
  for (const CheckpointView::Run& run : v.store_runs()) {
    const auto ref = reference.parameters().values().subspan(run.global, run.length);
    for (size_t i = 0; i < run.length; ++i) differing += mine[run.local + i] != ref[i] ? 1 : 0;
  }
  EXPECT_EQ(differing, 0u) << "final weights differ from the uninterrupted run";
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

TEST(Checkpoint, ExactResumeOnTheSameLayout) {
  resume_matches_uninterrupted("tiny-dense", Layout{}, Layout{});
  resume_matches_uninterrupted("tiny-dense", Layout{1, 1}, Layout{1, 1});
  resume_matches_uninterrupted("tiny-moe", Layout{2, 1}, Layout{2, 1});
}

TEST(Checkpoint, ResumeUnderAnotherLayout) {
  resume_matches_uninterrupted("tiny-dense", Layout{2, 1}, Layout{1, 0});
  resume_matches_uninterrupted("tiny-dense", Layout{1, 1}, Layout{});
  resume_matches_uninterrupted("tiny-moe", Layout{1, 0}, Layout{2, 1});
  resume_matches_uninterrupted("tiny-dense", Layout{1, 2}, Layout{2, 1});
  resume_matches_uninterrupted("tiny-moe", Layout{2, 0}, Layout{1, 2});
  if (world_size() == 4) resume_matches_uninterrupted("tiny-dense", Layout{4, 0}, Layout{2, 1});
  // Interleaved stages write one optimizer file per chunk (each a run of the flat layout).
  resume_matches_uninterrupted("tiny-moe", Layout{2, 1, 2}, Layout{});
  resume_matches_uninterrupted("tiny-dense", Layout{1, 1}, Layout{2, 0, 2});
}

// An async save writes the state of the step it was started at, although training goes on meanwhile.
TEST(Checkpoint, AsyncSaveKeepsItsStepsState) {
  const std::string dir = fresh_dir("async");
  const Layout a{1, 1}, b{2, 1};
  const Config ca = tiny("tiny-dense", a, dir), cb = tiny("tiny-dense", b, dir), c1 = tiny("tiny-dense", Layout{}, dir);
  Trainer reference(c1);
  std::vector<StepStats> want;
  for (int s = 1; s <= 8; ++s) want.push_back(reference.step(batches(c1, s)));
  {
    Runner first(ca, a);
    AsyncCheckpointer saver(first.comm());
    for (int s = 1; s <= 6; ++s) {
      first.step(batches(ca, s));
      if (s == 4) saver.start(ca, 4, first.view(), std::nullopt);
    }
    EXPECT_EQ(saver.finish(), std::optional<int64_t>(4));
  }
  Runner second(cb, b);
  const std::string path = find_checkpoint(second.comm(), dir, cb, [](const std::string&) {});
  ASSERT_EQ(path, (fs::path(dir) / "step-00000004").string());
  EXPECT_EQ(load_checkpoint(path, cb, second.view()).step, 4);
  for (int s = 5; s <= 8; ++s) EXPECT_EQ(second.step(batches(cb, s)).loss, want[s - 1].loss) << "step " << s;
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

TEST(Checkpoint, CorruptedNewestIsSkipped) { resume_matches_uninterrupted("tiny-dense", Layout{2, 0}, Layout{2, 0}, true); }

TEST(Checkpoint, RefusesAnotherModel) {
  const std::string dir = fresh_dir("other");
  const Layout one;
  {
    Trainer t(tiny("tiny-dense", one, dir));
    t.step(batches(tiny("tiny-dense", one, dir), 1));
    if (world_rank() == 0) save_checkpoint(MPI_COMM_SELF, tiny("tiny-dense", one, dir), 1, t.checkpoint_view(), std::nullopt);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  std::vector<std::string> warnings;
  const std::string path =
      find_checkpoint(MPI_COMM_SELF, dir, tiny("tiny-moe", one, dir), [&](const std::string& w) { warnings.push_back(w); });
  EXPECT_TRUE(path.empty());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("not 'tiny-moe'"), std::string::npos) << warnings[0];
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() == 0) fs::remove_all(dir);
}

}  // namespace
}  // namespace tessera::train
