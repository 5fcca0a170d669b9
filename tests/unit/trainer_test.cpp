#include <gtest/gtest.h>

#include "tessera/core/config.hpp"
#include "tessera/core/error.hpp"
#include "tessera/train/synthetic_data.hpp"
#include "tessera/train/trainer.hpp"

namespace tessera::train {
namespace {

Config tiny(const std::string& name, std::vector<std::string> overrides = {}) {
  return load_config(std::string(TESSERA_SOURCE_DIR) + "/configs/" + name + ".yaml", overrides);
}

// The single-process loop can memorise one small batch: the loss falls from ln(vocab) ≈ 6.2 to below 0.5.
TEST(Trainer, OverfitsASmallBatch) {
  for (const char* name : {"tiny-dense", "tiny-moe"}) {
    const Config c = tiny(name, {"data.seq_length=64", "train.micro_batch_size=1", "train.global_batch_size=1",
                                 "optim.decay=constant", "optim.warmup_steps=0", "optim.lr=1e-2", "train.steps=60"});
    Trainer trainer(c);
    const std::vector<model::Batch> batch = {synthetic_batch(c.model.vocab_size, 64, 1, 42, 0, 0)};
    double first = 0, last = 0;
    for (int step = 0; step < 60; ++step) {
      const StepStats s = trainer.step(batch);
      if (step == 0) first = s.ce_loss;
      last = s.ce_loss;
    }
    EXPECT_GT(first, 5.5) << name;
    EXPECT_LT(last, 0.5) << name << ": loss went from " << first << " to " << last;
  }
}

TEST(Trainer, MicrobatchSplitDoesNotChangeTheStep) {
  // One step over 2 rows equals one step over the same rows as 2 microbatches of 1 (loss is the mean over
  // every target of the step), up to float summation order.
  const Config c = tiny("tiny-dense", {"data.seq_length=32", "train.micro_batch_size=2", "train.global_batch_size=2"});
  const Config split = tiny("tiny-dense", {"data.seq_length=32", "train.micro_batch_size=1", "train.global_batch_size=2"});
  const model::Batch both = synthetic_batch(c.model.vocab_size, 32, 2, 1, 0, 0);
  // The same two rows, cut apart at the row boundary.
  const std::vector<model::Batch> halves = model::split_rows(both, 32);
  ASSERT_EQ(halves.size(), 2u);
  EXPECT_EQ(halves[0].tokens() + halves[1].tokens(), both.tokens());
  Trainer a(c), b(split);
  const StepStats sa = a.step({both});
  const StepStats sb = b.step(halves);
  EXPECT_NEAR(sa.loss, sb.loss, 1e-6);
  EXPECT_NEAR(sa.grad_norm, sb.grad_norm, 1e-5 * sa.grad_norm);
  // Compare gradients, not the updated weights: Adam's first step moves every weight by about ±lr whatever
  // the gradient's size, so a gradient near zero flips the update on a rounding difference.
  const auto ga = a.parameters().grads(), gb = b.parameters().grads();
  for (size_t i = 0; i < ga.size(); ++i) ASSERT_NEAR(ga[i], gb[i], 1e-6f) << i;
}

// Every token is routed to top-k experts in every layer: the step's per-expert counts add up to
// tokens · k · layers, and a dense model reports none.
TEST(Trainer, CountsEachExpertsLoad) {
  const Config c = tiny("tiny-moe", {"data.seq_length=32", "train.micro_batch_size=1", "train.global_batch_size=2"});
  Trainer trainer(c);
  const StepStats s = trainer.step({synthetic_batch(c.model.vocab_size, 32, 1, 7, 1, 0),
                                    synthetic_batch(c.model.vocab_size, 32, 1, 7, 1, 1)});
  ASSERT_EQ(s.expert_load.size(), static_cast<size_t>(c.model.num_experts));
  int64_t total = 0;
  for (const int64_t n : s.expert_load) total += n;
  EXPECT_EQ(total, s.tokens * c.model.num_experts_per_tok * c.model.num_layers);
  const Config dense = tiny("tiny-dense", {"data.seq_length=32", "train.micro_batch_size=1", "train.global_batch_size=1"});
  Trainer dense_trainer(dense);
  EXPECT_TRUE(dense_trainer.step({synthetic_batch(dense.model.vocab_size, 32, 1, 7, 1, 0)}).expert_load.empty());
}

TEST(Trainer, RefusesWhatOneCpuProcessCannotDo) {
  EXPECT_THROW(Trainer(tiny("tiny-dense", {"parallel.tp=2"})), Error);
  EXPECT_THROW(Trainer(tiny("tiny-dense", {"train.precision=bf16"})), Error);
}

}  // namespace
}  // namespace tessera::train
