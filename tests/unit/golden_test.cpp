// The CPU fp32 reference against Hugging Face transformers itself: tiny random Qwen3, Qwen3-MoE, Qwen2 and
// Llama (tied) models saved by tests/golden/generate.py with the logits, loss and every parameter's
// gradient on a batch with a packed row. Logits and loss must agree to 1e-5 relative, gradients to 1e-4.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "tessera/io/hf_model.hpp"
#include "tessera/io/safetensors.hpp"
#include "tessera/model/batch.hpp"
#include "tessera/model/decoder.hpp"

namespace tessera {
namespace {

const std::string kGolden = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/data/";

std::vector<int64_t> read_i64(const io::SafetensorsFile& f, const std::string& name) {
  const auto bytes = f.read_bytes(name);
  std::vector<int64_t> out(bytes.size() / sizeof(int64_t));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

// max |a − b| / max |b|: relative to the tensor's scale, so values near zero do not dominate.
double relative_error(std::span<const float> a, std::span<const float> b) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(b[i])));
  }
  return scale == 0 ? diff : diff / scale;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, LogitsLossAndGradientsMatchTransformers) {
  const std::string dir = kGolden + GetParam();
  const ModelConfig config = io::read_hf_config(dir);
  model::ParameterStore store(model::parameter_specs(config));
  io::load_hf_weights(dir, store);

  const auto expected = io::SafetensorsFile::open(dir + "/expected.safetensors");
  const io::TensorInfo* ids_info = expected.find("input_ids");
  ASSERT_NE(ids_info, nullptr);
  const int64_t rows = ids_info->shape[0], length = ids_info->shape[1];
  const model::Batch batch = model::batch_from_hf_rows(read_i64(expected, "input_ids"), read_i64(expected, "position_ids"),
                                                       read_i64(expected, "labels"), rows, length);
  const auto cu_bytes = expected.read_bytes("cu_seqlens");
  std::vector<int32_t> cu(cu_bytes.size() / sizeof(int32_t));
  std::memcpy(cu.data(), cu_bytes.data(), cu_bytes.size());
  ASSERT_EQ(batch.cu_seqlens, cu) << "packed sample boundaries";

  model::Decoder decoder(config, store, batch.tokens(), batch.longest_sample(), Recompute::none);
  const model::ForwardLoss loss = decoder.forward(batch);
  const double ce = loss.ce_sum / static_cast<double>(loss.targets);
  const double total = ce + (config.is_moe() ? config.router_aux_loss_coef * loss.aux : 0.0);

  const auto golden_logits = expected.read_f32("logits");
  const double logits_error = relative_error(decoder.logits(), golden_logits);
  EXPECT_LE(logits_error, 1e-5) << "logits";
  EXPECT_NEAR(ce, expected.read_f32("ce_loss")[0], 1e-5 * std::fabs(ce)) << "cross-entropy";
  EXPECT_NEAR(total, expected.read_f32("loss")[0], 1e-5 * std::fabs(total)) << "loss";
  if (config.is_moe()) {
    EXPECT_NEAR(loss.aux, expected.read_f32("aux_loss")[0], 1e-5 * loss.aux) << "aux loss";
  }

  decoder.backward(1.0f / static_cast<float>(loss.targets),
                   config.is_moe() ? static_cast<float>(config.router_aux_loss_coef) : 0.0f);
  size_t compared = 0;
  double worst_gradient = 0;
  for (size_t i = 0; i < store.size(); ++i) {
    const std::string& name = store.spec(i).hf_name;
    const auto golden = expected.read_f32("grad." + name);
    ASSERT_EQ(golden.size(), store.grad(i).size()) << name;
    const double error = relative_error(store.grad(i), golden);
    EXPECT_LE(error, 1e-4) << "gradient of " << name;
    worst_gradient = std::max(worst_gradient, error);
    ++compared;
  }
  EXPECT_EQ(compared, store.size());
  std::printf("%s: logits rel error %.2e, loss %.9f vs %.9f, worst gradient rel error %.2e over %zu tensors\n",
              GetParam().c_str(), logits_error, total, expected.read_f32("loss")[0], worst_gradient, compared);
}

INSTANTIATE_TEST_SUITE_P(Transformers, Golden, ::testing::Values("qwen3", "qwen3_moe", "qwen2", "llama"));

}  // namespace
}  // namespace tessera
