#include <gtest/gtest.h>

#include <cmath>

#include "tessera/train/optimizer.hpp"

namespace tessera::train {
namespace {

TEST(LearningRate, WarmupThenCosineToFloor) {
  OptimConfig o;
  o.lr = 1.0;
  o.min_lr = 0.1;
  o.warmup_steps = 10;
  o.decay = LrDecay::cosine;
  EXPECT_DOUBLE_EQ(learning_rate(o, 110, 1), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(o, 110, 10), 1.0);
  EXPECT_NEAR(learning_rate(o, 110, 60), 0.55, 1e-12);  // half way: (1 + 0.1) / 2
  EXPECT_DOUBLE_EQ(learning_rate(o, 110, 110), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(o, 110, 500), 0.1);
  o.decay = LrDecay::linear;
  EXPECT_NEAR(learning_rate(o, 110, 35), 1.0 - 0.9 * 0.25, 1e-12);
  o.decay = LrDecay::constant;
  EXPECT_DOUBLE_EQ(learning_rate(o, 110, 90), 1.0);
}

TEST(GradClip, MatchesTorchSemantics) {
  std::vector<float> g = {3.0f, 4.0f};
  const double norm = global_grad_norm(g);
  EXPECT_DOUBLE_EQ(norm, 5.0);
  EXPECT_EQ(clip_grad_norm(g, norm, 10.0), 1.0f);  // below the limit: untouched
  const float scale = clip_grad_norm(g, norm, 1.0);
  EXPECT_FLOAT_EQ(scale, static_cast<float>(1.0 / (5.0 + 1e-6)));
  EXPECT_NEAR(global_grad_norm(g), 1.0, 1e-6);
}

TEST(AdamW, MatchesTheTorchUpdateAndSkipsDecayOnNorms) {
  // Reference values from torch.optim.AdamW(lr=0.1, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1), written out:
  // step 1: p ← p(1 − lr·wd); m = 0.1 g; v = 0.05 g²; p ← p − lr/(1−0.9) · m / (sqrt(v)/sqrt(1−0.95) + eps).
  std::vector<model::ParameterSpec> specs = {
      {"w", {2}, model::Split::replicated, model::Placement::layer, 0, -1, true, model::Role::q_proj},
      {"norm", {1}, model::Split::replicated, model::Placement::layer, 0, -1, false, model::Role::input_norm}};
  model::ParameterStore store(specs);
  store.value(0)[0] = 1.0f;
  store.value(0)[1] = -2.0f;
  store.value(1)[0] = 0.5f;
  store.grad(0)[0] = 0.5f;
  store.grad(0)[1] = -1.0f;
  store.grad(1)[0] = 2.0f;
  OptimConfig o;
  o.beta1 = 0.9;
  o.beta2 = 0.95;
  o.eps = 1e-8;
  o.weight_decay = 0.1;
  AdamW adam(o, store);
  adam.step(store, 0.1);
  auto expected = [](double p, double g, double decay) {
    p *= 1 - 0.1 * decay;
    const double m = 0.1 * g, v = 0.05 * g * g;
    return p - 0.1 / 0.1 * m / (std::sqrt(v) / std::sqrt(0.05) + 1e-8);
  };
  EXPECT_NEAR(store.value(0)[0], expected(1.0, 0.5, 0.1), 1e-6);
  EXPECT_NEAR(store.value(0)[1], expected(-2.0, -1.0, 0.1), 1e-6);
  EXPECT_NEAR(store.value(1)[0], expected(0.5, 2.0, 0.0), 1e-6);  // norm: no decay
  EXPECT_EQ(adam.steps_taken(), 1);
}

}  // namespace
}  // namespace tessera::train
