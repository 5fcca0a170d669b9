#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tessera/core/error.hpp"
#include "test_support.hpp"
#include "tessera/io/hf_model.hpp"
#include "tessera/io/hf_tensor_dir.hpp"

namespace tessera::io {
namespace {

namespace fs = std::filesystem;
const std::string kGolden = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/data/";

using testing::error_of;

class HfModel : public testing::TempDirTest {
 protected:
  // A copy of a golden model whose config.json has `edit` applied.
  std::string with_config(const std::string& golden, const std::function<void(nlohmann::json&)>& edit) {
    const fs::path out = dir_ / golden;
    fs::create_directories(out);
    fs::copy_file(kGolden + golden + "/model.safetensors", out / "model.safetensors");
    nlohmann::json j = nlohmann::json::parse(std::ifstream(kGolden + golden + "/config.json"));
    edit(j);
    std::ofstream(out / "config.json") << j.dump(2);
    return out.string();
  }
};

TEST_F(HfModel, ReadsEveryGoldenArchitecture) {
  const ModelConfig moe = read_hf_config(kGolden + "qwen3_moe");
  EXPECT_EQ(moe.architecture, Architecture::qwen3_moe);
  EXPECT_EQ(moe.num_experts, 8);  // spelled num_local_experts by transformers 5
  EXPECT_DOUBLE_EQ(moe.rope_theta, 1e6);  // from rope_parameters
  const ModelConfig llama = read_hf_config(kGolden + "llama");
  EXPECT_TRUE(llama.tie_embeddings);
  EXPECT_FALSE(llama.qk_norm);
  EXPECT_TRUE(read_hf_config(kGolden + "qwen2").qkv_bias);
}

TEST_F(HfModel, ExportRoundTripsExactlyInF32AndRoundsInBf16) {
  for (const char* name : {"qwen3", "qwen3_moe", "qwen2", "llama"}) {
    const ModelConfig config = read_hf_config(kGolden + name);
    model::ParameterStore original(model::parameter_specs(config), false);
    load_hf_weights(kGolden + name, original);
    EXPECT_EQ(original.spec(0).dtype, DType::f32) << "golden files are stored in F32";

    const std::string f32_dir = (dir_ / (std::string(name) + "-f32")).string();
    export_hf_model(f32_dir, config, original, DType::f32, 100'000);  // small shards: exercise the index
    EXPECT_TRUE(fs::exists(f32_dir + "/model.safetensors.index.json")) << name;
    const ModelConfig again = read_hf_config(f32_dir);
    model::ParameterStore reloaded(model::parameter_specs(again), false);
    load_hf_weights(f32_dir, reloaded);
    ASSERT_EQ(reloaded.values().size(), original.values().size());
    // Without a dtype, export keeps each tensor's recorded one.
    const std::string kept_dir = (dir_ / (std::string(name) + "-kept")).string();
    export_hf_model(kept_dir, config, original);
    EXPECT_EQ(HfTensorDir::open(kept_dir).info(original.spec(0).hf_name).dtype, DType::f32) << name;
    EXPECT_TRUE(std::equal(original.values().begin(), original.values().end(), reloaded.values().begin())) << name;

    const std::string bf16_dir = (dir_ / (std::string(name) + "-bf16")).string();
    export_hf_model(bf16_dir, config, original, DType::bf16);
    model::ParameterStore rounded(model::parameter_specs(config), false);
    load_hf_weights(bf16_dir, rounded);
    for (size_t i = 0; i < original.values().size(); ++i)
      ASSERT_EQ(rounded.values()[i], bf16_to_f32(f32_to_bf16(original.values()[i]))) << name << " value " << i;
  }
}

TEST_F(HfModel, RefusesFieldsThatChangeTheMath) {
  struct Case {
    std::string model, expected;
    std::function<void(nlohmann::json&)> edit;
  };
  const std::vector<Case> cases = {
      {"qwen3", "\"rope_parameters.rope_type\"", [](auto& j) { j["rope_parameters"]["rope_type"] = "yarn"; }},
      {"llama", "\"rope_scaling\"", [](auto& j) { j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}}; }},
      {"qwen2", "\"use_sliding_window\"", [](auto& j) { j["use_sliding_window"] = true; }},
      {"qwen3", "\"layer_types\"", [](auto& j) { j["layer_types"] = {"sliding_attention", "full_attention"}; }},
      {"llama", "\"attention_bias\"", [](auto& j) { j["attention_bias"] = true; }},
      {"llama", "\"hidden_act\"", [](auto& j) { j["hidden_act"] = "gelu"; }},
      {"qwen3_moe", "\"mlp_only_layers\"", [](auto& j) { j["mlp_only_layers"] = {0}; }},
      {"qwen3", "unknown field \"quantization_config\"", [](auto& j) { j["quantization_config"] = {{"bits", 4}}; }},
      {"qwen3", "model_type \"mistral\" is not supported", [](auto& j) { j["model_type"] = "mistral"; }},
      {"qwen3", "missing \"hidden_size\"", [](auto& j) { j.erase("hidden_size"); }},
      {"qwen3", "\"num_hidden_layers\" must be an integer", [](auto& j) { j["num_hidden_layers"] = "2"; }},
  };
  for (const auto& c : cases) {
    const std::string dir = with_config(c.model, c.edit);
    const std::string msg = error_of([&] { read_hf_config(dir); });
    EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
    EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
    fs::remove_all(dir);
  }
}

TEST_F(HfModel, RefusesMissingExtraAndMisShapedTensors) {
  const ModelConfig config = read_hf_config(kGolden + "qwen3");
  model::ParameterStore store(model::parameter_specs(config), false);

  // One layer fewer in the config: the checkpoint then holds tensors the model does not have.
  ModelConfig shallow = config;
  shallow.num_layers = 1;
  model::ParameterStore shallow_store(model::parameter_specs(shallow), false);
  std::string msg = error_of([&] { load_hf_weights(kGolden + "qwen3", shallow_store); });
  EXPECT_NE(msg.find("model.layers.1."), std::string::npos) << msg;
  EXPECT_NE(msg.find("not part of the model"), std::string::npos) << msg;

  ModelConfig deeper = config;
  deeper.num_layers = 3;
  model::ParameterStore deeper_store(model::parameter_specs(deeper), false);
  msg = error_of([&] { load_hf_weights(kGolden + "qwen3", deeper_store); });
  EXPECT_NE(msg.find("tensor model.layers.2.input_layernorm.weight is missing"), std::string::npos) << msg;

  ModelConfig wider = config;
  wider.ffn_hidden_size = 96;
  model::ParameterStore wider_store(model::parameter_specs(wider), false);
  msg = error_of([&] { load_hf_weights(kGolden + "qwen3", wider_store); });
  EXPECT_NE(msg.find("model.layers.0.mlp.gate_proj.weight has shape [128, 64], the config needs [96, 64]"),
            std::string::npos)
      << msg;
}

}  // namespace
}  // namespace tessera::io
