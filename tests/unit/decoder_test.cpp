#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>

#include "tessera/core/config.hpp"
#include "tessera/model/decoder.hpp"
#include "tessera/model/parameter_store.hpp"

namespace tessera::model {
namespace {

ModelConfig tiny(bool moe, bool qkv_bias, bool tie) {
  ModelConfig m;
  m.vocab_size = 40;
  m.hidden_size = 16;
  m.num_layers = 2;
  m.num_attention_heads = 4;
  m.num_kv_heads = 2;
  m.head_dim = 8;
  m.ffn_hidden_size = 24;
  m.qkv_bias = qkv_bias;
  m.qk_norm = !qkv_bias;
  m.tie_embeddings = tie;
  if (moe) {
    m.architecture = Architecture::qwen3_moe;
    m.num_experts = 4;
    m.num_experts_per_tok = 2;
    m.moe_ffn_hidden_size = 12;
  }
  return m;
}

// Two rows of 12: the first packs samples of 5 and 7 tokens, the second is one sample.
Batch packed_batch(int64_t vocab) {
  Batch b;
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(vocab) - 1);
  b.cu_seqlens = {0, 5, 12, 24};
  for (int s = 0; s < 3; ++s)
    for (int32_t t = b.cu_seqlens[s]; t < b.cu_seqlens[s + 1]; ++t) {
      b.input_ids.push_back(id(rng));
      b.position_ids.push_back(t - b.cu_seqlens[s]);
    }
  for (size_t t = 0; t < b.input_ids.size(); ++t) {
    const bool sample_end = std::find(b.cu_seqlens.begin(), b.cu_seqlens.end(), static_cast<int32_t>(t + 1)) !=
                            b.cu_seqlens.end();
    b.targets.push_back(sample_end || t == 3 ? -1 : b.input_ids[t + 1]);
  }
  return b;
}

// Randomise every parameter (norm weights and biases too) so no gradient is trivially zero.
void randomise(ParameterStore& store, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> normal(0.0f, 0.3f);
  for (float& v : store.values()) v = normal(rng);
  for (size_t i = 0; i < store.size(); ++i)
    if (store.spec(i).role == Role::input_norm || store.spec(i).role == Role::final_norm)
      for (float& v : store.value(i)) v += 1.0f;
}

double loss_of(const ModelConfig& m, ParameterStore& store, const Batch& b, double aux_coef, double z_coef) {
  Decoder dec(m, store, b.tokens(), b.longest_sample(), Recompute::none);
  const ForwardLoss l = dec.forward(b);
  return l.ce_sum / static_cast<double>(l.targets) + aux_coef * l.aux + z_coef * l.z;
}

struct Case {
  bool moe, bias, tie;
};

class DecoderGradient : public ::testing::TestWithParam<Case> {};

// Central differences in fp32 are noisy, so this checks direction and size loosely; the exact check is
// against transformers' own gradients (golden tests).
TEST_P(DecoderGradient, MatchesFiniteDifferences) {
  const Case c = GetParam();
  const ModelConfig m = tiny(c.moe, c.bias, c.tie);
  ParameterStore store(parameter_specs(m));
  randomise(store, 11);
  const Batch b = packed_batch(m.vocab_size);
  const double aux_coef = c.moe ? 0.5 : 0.0, z_coef = c.moe ? 0.1 : 0.0;
  {
    Decoder dec(m, store, b.tokens(), b.longest_sample(), Recompute::none);
    const ForwardLoss l = dec.forward(b);
    if (c.moe) {
      EXPECT_GT(l.z, 0.0);
    }
    dec.backward(1.0f / static_cast<float>(l.targets), static_cast<float>(aux_coef), static_cast<float>(z_coef));
  }
  std::mt19937 rng(3);
  int checked = 0;
  for (size_t i = 0; i < store.size(); ++i) {
    auto values = store.value(i);
    auto grads = store.grad(i);
    for (int probe = 0; probe < 2; ++probe) {
      const size_t j = std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng);
      const float saved = values[j];
      const float h = 1e-2f;
      values[j] = saved + h;
      const double up = loss_of(m, store, b, aux_coef, z_coef);
      values[j] = saved - h;
      const double down = loss_of(m, store, b, aux_coef, z_coef);
      values[j] = saved;
      const double numeric = (up - down) / (2 * h);
      EXPECT_NEAR(grads[j], numeric, 2e-3 + 0.05 * std::fabs(numeric)) << store.spec(i).hf_name << "[" << j << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

INSTANTIATE_TEST_SUITE_P(Families, DecoderGradient,
                         ::testing::Values(Case{false, false, false}, Case{false, true, true}, Case{true, false, false}));

TEST(Decoder, RecomputeGivesIdenticalGradients) {
  for (bool moe : {false, true}) {
    const ModelConfig m = tiny(moe, false, false);
    std::vector<std::vector<float>> results;
    for (Recompute r : {Recompute::none, Recompute::selective, Recompute::full}) {
      ParameterStore store(parameter_specs(m));
      randomise(store, 5);
      const Batch b = packed_batch(m.vocab_size);
      Decoder dec(m, store, b.tokens(), b.longest_sample(), r);
      const ForwardLoss l = dec.forward(b);
      dec.backward(1.0f / static_cast<float>(l.targets), 0.01f);
      results.emplace_back(store.grads().begin(), store.grads().end());
    }
    EXPECT_EQ(results[0], results[1]) << "selective, moe=" << moe;
    EXPECT_EQ(results[0], results[2]) << "full, moe=" << moe;
  }
}

TEST(Decoder, ThreadCountDoesNotChangeAnyBit) {
  // Same loss and gradients to the bit on 1 and 2 threads (OpenBLAS threading alone used to differ), so a
  // run is reproducible on any core count and data-parallel ranks match the 1-rank run.
  for (bool moe : {false, true}) {
    ModelConfig m = tiny(moe, false, false);
    m.hidden_size = 256;  // big enough that the GEMMs span several column tiles
    m.ffn_hidden_size = 384;
    m.moe_ffn_hidden_size = moe ? 160 : 0;
    m.head_dim = 64;
    std::vector<std::vector<float>> grads;
    std::vector<double> losses;
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      ParameterStore store(parameter_specs(m));
      randomise(store, 3);
      const Batch b = packed_batch(m.vocab_size);
      Decoder dec(m, store, b.tokens(), b.longest_sample(), Recompute::none);
      const ForwardLoss l = dec.forward(b);
      dec.backward(1.0f / static_cast<float>(l.targets), 0.01f);
      losses.push_back(l.ce_sum);
      grads.emplace_back(store.grads().begin(), store.grads().end());
    }
    omp_set_num_threads(saved);
    EXPECT_EQ(losses[0], losses[1]) << "moe=" << moe;
    EXPECT_TRUE(grads[0] == grads[1]) << "moe=" << moe;
  }
}

TEST(Decoder, PackedSamplesDoNotSeeEachOther) {
  // The second sample's logits are the same whether it is packed after another sample or alone.
  const ModelConfig m = tiny(false, false, false);
  ParameterStore store(parameter_specs(m));
  randomise(store, 9);
  const Batch packed = packed_batch(m.vocab_size);
  Batch alone;
  for (int32_t t = 5; t < 12; ++t) {
    alone.input_ids.push_back(packed.input_ids[t]);
    alone.position_ids.push_back(packed.position_ids[t]);
    alone.targets.push_back(packed.targets[t]);
  }
  alone.cu_seqlens = {0, 7};
  Decoder a(m, store, packed.tokens(), 12, Recompute::none);
  a.forward(packed);
  const std::vector<float> packed_logits(a.logits().begin() + 5 * m.vocab_size, a.logits().begin() + 12 * m.vocab_size);
  Decoder b(m, store, alone.tokens(), 12, Recompute::none);
  b.forward(alone);
  const std::vector<float> alone_logits(b.logits().begin(), b.logits().end());
  ASSERT_EQ(packed_logits.size(), alone_logits.size());
  for (size_t i = 0; i < alone_logits.size(); ++i) EXPECT_NEAR(packed_logits[i], alone_logits[i], 1e-5f) << i;
}

}  // namespace
}  // namespace tessera::model
