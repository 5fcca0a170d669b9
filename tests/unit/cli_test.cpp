// The `tessera` executable end to end: exit codes and the messages a user sees.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>

#include "test_support.hpp"
#include "tessera/io/hf_model.hpp"
#include "tessera/train/checkpoint.hpp"

namespace {

struct Result {
  int status = -1;
  std::string output;  // stdout and stderr together
};

Result run(const std::string& args) {
  const std::string command = std::string(TESSERA_BINARY) + " " + args + " 2>&1";
  Result r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buffer{};
  size_t n = 0;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) r.output.append(buffer.data(), n);
  const int raw = pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  return r;
}

const std::string kConfigs = std::string(TESSERA_SOURCE_DIR) + "/configs/";

class Cli : public tessera::testing::TempDirTest {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    const auto path = dir_ / name;
    std::ofstream(path) << text;
    return path.string();
  }
};

TEST_F(Cli, BrokenConfigNamesKeyAndLine) {
  const std::string path = write("bad.yaml", "model:\n  hidden_size: 64\n\n  num_layers: two\n");
  const Result r = run("config -c " + path);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find(path + ":4: model.num_layers: expected an integer, got 'two'"), std::string::npos)
      << r.output;
}

TEST_F(Cli, ResolvedConfigLoadsBackUnchanged) {
  const Result first = run("config -c " + kConfigs + "qwen3-30b-a3b.yaml --resolved --set optim.lr=2e-5");
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_NE(first.output.find("  lr: 2e-05\n"), std::string::npos) << first.output;
  const Result second = run("config -c " + write("resolved.yaml", first.output) + " --resolved");
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_EQ(first.output, second.output);
}

TEST_F(Cli, PlanPrintsGridAndBudget) {
  const Result r = run("plan -c " + kConfigs + "qwen3-8b.yaml --world-size 8");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("world 8 = tp 4 × cp 1 × pp 2 × dp 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[0,1,2,3] [4,5,6,7]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("21.95"), std::string::npos) << r.output;
}

TEST_F(Cli, PlanJsonParses) {
  const Result r = run("plan -c " + kConfigs + "qwen3-30b-a3b.yaml --json --gpu-memory 141GB");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["world_size"], 16);
  EXPECT_EQ(j["sizes"]["ep"], 8);
  EXPECT_DOUBLE_EQ(j["gpu_memory_bytes"].get<double>(), 141e9);
}

TEST_F(Cli, PlanRefusesWithReasonAndExitCode) {
  Result r = run("plan -c " + kConfigs + "qwen3-8b.yaml --world-size 12");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("tessera: error: tp=4 × cp=1 × pp=2 = 8 does not divide world size 12"), std::string::npos)
      << r.output;
  r = run("plan -c " + kConfigs + "qwen3-8b.yaml --gpu-memory 16GiB");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("but the GPU has 16.00 GiB"), std::string::npos) << r.output;
  r = run("plan -c " + kConfigs + "qwen3-8b.yaml --set parallel.tp=5");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("--set parallel.tp=5: parallel.tp: 5 does not divide num_attention_heads = 32"),
            std::string::npos)
      << r.output;
}

TEST_F(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(run("").status, 2);
  EXPECT_EQ(run("plan").status, 2);
  EXPECT_EQ(run("frobnicate").status, 2);
}

TEST_F(Cli, ReferenceIsMarkdown) {
  const Result r = run("config --reference");
  ASSERT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("| `model.hidden_size` | int |"), std::string::npos) << r.output;
}

}  // namespace

namespace {

// A checkpoint exported as a Hugging Face directory holds exactly the checkpoint's weights (f32), and a
// missing checkpoint is named.
TEST_F(Cli, ExportsACheckpointAsHuggingFaceAndStartsFromIt) {
  const std::string run_dir = (dir_ / "run").string();
  const Result trained = run("train -c " + kConfigs + "tiny-dense.yaml --set train.steps=2 --set data.seq_length=32 " +
                             "--set logging.run_dir=" + run_dir);
  ASSERT_EQ(trained.status, 0) << trained.output;
  const std::string out = (dir_ / "hf").string();
  const Result exported = run("export --checkpoint " + run_dir + "/checkpoints --dtype f32 " + out);
  ASSERT_EQ(exported.status, 0) << exported.output;

  const tessera::ModelConfig config = tessera::io::read_hf_config(out);
  tessera::model::ParameterStore hf(tessera::model::parameter_specs(config), false);
  tessera::io::load_hf_weights(out, hf);
  tessera::model::ParameterStore saved(tessera::model::parameter_specs(config), false);
  tessera::train::load_checkpoint_weights(run_dir + "/checkpoints/step-00000002", saved);
  ASSERT_EQ(hf.values().size(), saved.values().size());
  EXPECT_TRUE(std::equal(hf.values().begin(), hf.values().end(), saved.values().begin()));

  // A new run starts from the exported model (model.init_from): with a learning rate far below any
  // weight's ulp, its step-1 checkpoint holds exactly the Hugging Face weights.
  const std::string run2 = (dir_ / "run2").string();
  const Result started = run("train -c " + kConfigs + "tiny-dense.yaml --set train.steps=1 --set data.seq_length=32 " +
                             "--set optim.lr=1e-30 --set optim.min_lr=1e-30 --set optim.warmup_steps=0 " +
                             "--set model.init_from=" + out + " --set logging.run_dir=" + run2);
  ASSERT_EQ(started.status, 0) << started.output;
  EXPECT_NE(started.output.find("initialised from the Hugging Face model"), std::string::npos) << started.output;
  tessera::model::ParameterStore again(tessera::model::parameter_specs(config), false);
  tessera::train::load_checkpoint_weights(run2 + "/checkpoints/step-00000001", again);
  EXPECT_TRUE(std::equal(again.values().begin(), again.values().end(), hf.values().begin()));

  const Result missing = run("export --checkpoint " + dir_.string() + " " + out);
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("no latest"), std::string::npos) << missing.output;
}

}  // namespace
