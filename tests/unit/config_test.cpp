#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "tessera/core/config.hpp"
#include "tessera/core/error.hpp"
#include "test_support.hpp"

namespace tessera {
namespace {

using testing::error_of;


TEST(Config, EmptyDocumentIsAllDefaults) {
  const Config c = parse_config("", "empty.yaml");
  EXPECT_EQ(c.model.hidden_size, ModelConfig{}.hidden_size);
  EXPECT_EQ(c.parallel.order, "tp-cp-ep-dp-pp");
  EXPECT_EQ(c.train.precision, Precision::bf16);
}

TEST(Config, ReadsTypedValues) {
  const Config c = parse_config(R"(
model:
  architecture: qwen2
  hidden_size: 128
  qkv_bias: true
  qk_norm: false
  rope_theta: 1e4
parallel:
  pipeline_layers: [1, 1]
  pp: 2
train:
  recompute: full
)",
                                "t.yaml");
  EXPECT_EQ(c.model.architecture, Architecture::qwen2);
  EXPECT_EQ(c.model.hidden_size, 128);
  EXPECT_TRUE(c.model.qkv_bias);
  EXPECT_FALSE(c.model.qk_norm);
  EXPECT_DOUBLE_EQ(c.model.rope_theta, 1e4);
  EXPECT_EQ(c.parallel.pipeline_layers, (std::vector<int>{1, 1}));
  EXPECT_EQ(c.train.recompute, Recompute::full);
}

TEST(Config, UnknownKeyNamesPathLineAndSuggestion) {
  const std::string msg = error_of([] { parse_config("model:\n  hidden_size: 64\n  hiden_size: 3\n", "cfg.yaml"); });
  EXPECT_NE(msg.find("cfg.yaml:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("model.hiden_size"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'model.hidden_size'"), std::string::npos) << msg;
}

TEST(Config, UnknownSectionNamed) {
  const std::string msg = error_of([] { parse_config("modle:\n  x: 1\n", "cfg.yaml"); });
  EXPECT_NE(msg.find("cfg.yaml:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'modle'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'model'"), std::string::npos) << msg;
}

TEST(Config, WrongTypeNamesKeyAndLine) {
  struct Case {
    std::string yaml, line, path, expected;
  };
  const std::vector<Case> cases = {
      {"model:\n  hidden_size: big\n", "c.yaml:2", "model.hidden_size", "expected an integer"},
      {"model:\n  hidden_size: 64.5\n", "c.yaml:2", "model.hidden_size", "expected an integer"},
      {"model:\n  hidden_size: \"64\"\n", "c.yaml:2", "model.hidden_size", "quoted string"},
      {"optim:\n  lr: fast\n", "c.yaml:2", "optim.lr", "expected a number"},
      {"model:\n  qk_norm: 1\n", "c.yaml:2", "model.qk_norm", "expected true or false"},
      {"train:\n  recompute: some\n", "c.yaml:2", "train.recompute", "none | selective | full"},
      {"parallel:\n  pipeline_layers: 3\n", "c.yaml:2", "parallel.pipeline_layers", "expected a list"},
      {"model:\n  hidden_size: [1, 2]\n", "c.yaml:2", "model.hidden_size", "got a list"},
      {"model: 3\n", "c.yaml:1", "'model'", "must be a mapping"},
  };
  for (const auto& c : cases) {
    const std::string msg = error_of([&] { parse_config(c.yaml, "c.yaml"); });
    EXPECT_NE(msg.find(c.line), std::string::npos) << c.yaml << " -> " << msg;
    EXPECT_NE(msg.find(c.path), std::string::npos) << c.yaml << " -> " << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.yaml << " -> " << msg;
  }
}

TEST(Config, OutOfRangeNamesKeyLineAndRange) {
  struct Case {
    std::string yaml, path, range;
  };
  const std::vector<Case> cases = {
      {"\nmodel:\n  num_layers: 0\n", "model.num_layers", "≥ 1"},
      {"\noptim:\n  beta2: 1.0\n", "optim.beta2", "0.0 ≤ x < 1.0"},
      {"\noptim:\n  eps: 0\n", "optim.eps", "> 0"},
      {"\nparallel:\n  zero_stage: 3\n", "parallel.zero_stage", "0 ≤ x ≤ 2"},
      {"\nmodel:\n  num_layers: 99999999999\n", "model.num_layers", "out of range"},
      {"\noptim:\n  lr: .nan\n", "optim.lr", "finite"},
  };
  for (const auto& c : cases) {
    const std::string msg = error_of([&] { parse_config(c.yaml, "r.yaml"); });
    EXPECT_NE(msg.find("r.yaml:3"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.path), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.range), std::string::npos) << msg;
  }
}

TEST(Config, DuplicateKeyIsAnError) {
  const std::string msg = error_of([] { parse_config("model:\n  hidden_size: 64\n  hidden_size: 32\n", "d.yaml"); });
  EXPECT_NE(msg.find("d.yaml:3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("twice"), std::string::npos) << msg;
}

TEST(Config, SyntaxErrorNamesLine) {
  const std::string msg = error_of([] { parse_config("model:\n  hidden_size: [1, 2\n", "s.yaml"); });
  EXPECT_NE(msg.find("s.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("YAML syntax error"), std::string::npos) << msg;
}

TEST(Config, RelationErrorsNameTheKeyAndItsLine) {
  const std::string msg = error_of([] {
    parse_config("model:\n  num_attention_heads: 4\n  num_kv_heads: 3\n", "rel.yaml");
  });
  EXPECT_NE(msg.find("rel.yaml:3: model.num_kv_heads: 3 does not divide"), std::string::npos) << msg;

  const std::string tp = error_of([] { parse_config("parallel:\n  tp: 8\n", "tp.yaml"); });
  EXPECT_NE(tp.find("tp.yaml:2: parallel.tp: 8 does not divide num_attention_heads = 4"), std::string::npos) << tp;

  const std::string pp = error_of([] { parse_config("parallel:\n  pp: 3\n", "pp.yaml"); });
  EXPECT_NE(pp.find("3 pipeline stages but only 2 layers"), std::string::npos) << pp;

  const std::string ep = error_of([] { parse_config("parallel:\n  ep: 2\n", "ep.yaml"); });
  EXPECT_NE(ep.find("needs an MoE model"), std::string::npos) << ep;

  const std::string layers =
      error_of([] { parse_config("parallel:\n  pp: 2\n  pipeline_layers: [1, 2]\n", "pl.yaml"); });
  EXPECT_NE(layers.find("pl.yaml:3: parallel.pipeline_layers: sums to 3 layers"), std::string::npos) << layers;

  const std::string moe = error_of([] { parse_config("model:\n  architecture: qwen3_moe\n", "m.yaml"); });
  EXPECT_NE(moe.find("model.num_experts"), std::string::npos) << moe;
}

TEST(Config, KvHeadsReplicatedWhenTpIsAMultiple) {
  // tp 4 over 2 kv heads replicates each kv head on two ranks; tp 4 over 6 kv heads cannot be laid out.
  EXPECT_NO_THROW(parse_config("model:\n  num_attention_heads: 8\n  num_kv_heads: 2\nparallel:\n  tp: 4\n", "a"));
  const std::string msg = error_of([] {
    parse_config("model:\n  hidden_size: 96\n  num_attention_heads: 12\n  num_kv_heads: 6\nparallel:\n  tp: 4\n", "b");
  });
  EXPECT_NE(msg.find("num_kv_heads = 6 do not divide one another"), std::string::npos) << msg;
}

TEST(Config, OverridesApplyAfterTheFileAndNameThemselves) {
  const Config c = parse_config("model:\n  hidden_size: 64\n", "o.yaml",
                                {"model.hidden_size=128", "parallel.pipeline_layers=[1,1]", "parallel.pp=2",
                                 "data.paths=[/tmp/x.h5, /tmp/y.h5]", "data.weights=[3, 1]"});
  EXPECT_EQ(c.model.hidden_size, 128);
  EXPECT_EQ(c.parallel.pipeline_layers, (std::vector<int>{1, 1}));
  EXPECT_EQ(c.data.paths, (std::vector<std::string>{"/tmp/x.h5", "/tmp/y.h5"}));
  EXPECT_EQ(c.data.weights, (std::vector<double>{3.0, 1.0}));
  const std::string weights = error_of([] { parse_config("", "o.yaml", {"data.paths=[a.h5]", "data.weights=[1, 2]"}); });
  EXPECT_NE(weights.find("data.weights: has 2 entries but data.paths has 1"), std::string::npos) << weights;

  const std::string bad = error_of([] { parse_config("", "o.yaml", {"model.hidden_size=abc"}); });
  EXPECT_NE(bad.find("--set model.hidden_size=abc: model.hidden_size: expected an integer"), std::string::npos) << bad;
  const std::string unknown = error_of([] { parse_config("", "o.yaml", {"model.hiddensize=3"}); });
  EXPECT_NE(unknown.find("did you mean 'model.hidden_size'"), std::string::npos) << unknown;
  const std::string shape = error_of([] { parse_config("", "o.yaml", {"model.hidden_size"}); });
  EXPECT_NE(shape.find("expected section.key=value"), std::string::npos) << shape;
  const std::string relation = error_of([] { parse_config("", "o.yaml", {"model.num_kv_heads=3"}); });
  EXPECT_NE(relation.find("--set model.num_kv_heads=3: model.num_kv_heads"), std::string::npos) << relation;
}

TEST(Config, ResolvedYamlRoundTrips) {
  Config c = parse_config("model:\n  rope_theta: 1000000.0\n  init_std: 0.0123456789\n  name: \"a: b\"\n", "x",
                          {"optim.lr=1.5e-4", "data.paths=[\"a b.h5\", c.h5]", "data.tokenizer="});
  const std::string yaml = to_yaml(c);
  const Config again = parse_config(yaml, "resolved");
  EXPECT_EQ(to_yaml(again), yaml);
  EXPECT_EQ(again.model.name, "a: b");
  EXPECT_DOUBLE_EQ(again.model.init_std, 0.0123456789);
  EXPECT_DOUBLE_EQ(again.optim.lr, 1.5e-4);
  // The documented form also parses back (comments are ignored).
  EXPECT_EQ(to_yaml(parse_config(to_yaml(c, true), "doc")), yaml);
}

TEST(Config, MissingFileIsAClearError) {
  const std::string msg = error_of([] { load_config("/nonexistent/tessera.yaml"); });
  EXPECT_NE(msg.find("/nonexistent/tessera.yaml: cannot open"), std::string::npos) << msg;
}

TEST(Config, EveryShippedPresetLoads) {
  for (const char* name : {"qwen3-8b", "qwen2.5-7b", "qwen3-30b-a3b", "tiny-dense", "tiny-moe"}) {
    const std::string path = std::string(TESSERA_SOURCE_DIR) + "/configs/" + name + ".yaml";
    EXPECT_NO_THROW(load_config(path)) << path;
  }
}

// docs/configuration.md carries the generated reference between markers; regenerate it with
// `tessera config --reference` when a field changes.
TEST(Config, DocumentationMatchesTheSchema) {
  const std::string doc = testing::read_text(std::string(TESSERA_SOURCE_DIR) + "/docs/configuration.md");
  const std::string begin = "<!-- reference:begin -->\n", end = "<!-- reference:end -->";
  const size_t b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  EXPECT_EQ(doc.substr(b + begin.size(), e - b - begin.size()), config_reference_markdown())
      << "docs/configuration.md is stale: run `tessera config --reference` and paste between the markers";
}

}  // namespace
}  // namespace tessera
