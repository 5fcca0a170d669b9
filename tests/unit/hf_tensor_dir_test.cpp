// Hugging Face model directories: one model.safetensors or shards plus model.safetensors.index.json,
// written as save_pretrained does and refused with both files named when index and shards disagree.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tessera/core/error.hpp"
#include "tessera/io/hf_tensor_dir.hpp"
#include "test_support.hpp"

namespace tessera::io {
namespace {

namespace fs = std::filesystem;

class HfDir : public tessera::testing::TempDirTest {
 protected:
  void write_text(const std::string& name, const std::string& text) const { std::ofstream(path(name)) << text; }
  nlohmann::json read_json(const std::string& name) const { return nlohmann::json::parse(std::ifstream(path(name))); }
};

std::vector<float> ramp(size_t n, float start) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

// Five tensors of 16, 16, 40, 8 and 16 bytes.
std::vector<WriteTensor> small_model() {
  std::vector<WriteTensor> t;
  t.push_back(tensor_from_f32("model.embed_tokens.weight", {2, 2}, ramp(4, 0), DType::f32));
  t.push_back(tensor_from_f32("model.layers.0.mlp.up_proj.weight", {2, 4}, ramp(8, 10), DType::bf16));
  t.push_back(tensor_from_f32("model.layers.0.self_attn.q_proj.weight", {5, 2}, ramp(10, 20), DType::f32));
  t.push_back(tensor_from_f32("model.norm.weight", {4}, ramp(4, 1), DType::f16));
  const std::vector<int64_t> ids = {7, 8};
  t.push_back(tensor_from_i64("model.position_ids", {2}, ids));
  return t;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST_F(HfDir, SingleFileRoundTrip) {
  write_hf_tensor_dir(dir(), small_model());
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
  const HfTensorDir hf = HfTensorDir::open(dir());
  EXPECT_FALSE(hf.sharded());
  EXPECT_EQ(hf.names(), (std::vector<std::string>{"model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight",
                                                  "model.layers.0.self_attn.q_proj.weight", "model.norm.weight",
                                                  "model.position_ids"}));
  EXPECT_TRUE(hf.contains("model.norm.weight"));
  EXPECT_FALSE(hf.contains("lm_head.weight"));
  EXPECT_EQ(hf.read_f32("model.layers.0.mlp.up_proj.weight"), ramp(8, 10));
  EXPECT_EQ(hf.read_f32("model.norm.weight"), ramp(4, 1));
  EXPECT_EQ(hf.info("model.layers.0.self_attn.q_proj.weight").shape, (std::vector<int64_t>{5, 2}));
  EXPECT_EQ(hf.info("model.position_ids").dtype, DType::i64);
  // transformers refuses safetensors files whose metadata lacks a known "format".
  EXPECT_EQ(hf.file_of("model.norm.weight").metadata().at("format"), "pt");
  const std::string absent = error_of([&] { hf.info("lm_head.weight"); });
  EXPECT_NE(absent.find(dir() + ": the model has no tensor 'lm_head.weight'"), std::string::npos) << absent;
}

TEST_F(HfDir, ShardedRoundTripWithIndex) {
  const std::vector<WriteTensor> model = small_model();
  // 32-byte shards: [16+16] [40, alone and over the limit] [8+16].
  write_hf_tensor_dir(dir(), model, 32);
  EXPECT_EQ(listing(), (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                                 "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));
  const nlohmann::json index = read_json("model.safetensors.index.json");
  EXPECT_EQ(index.at("metadata").at("total_size"), 96);
  EXPECT_EQ(index.at("weight_map").at("model.embed_tokens.weight"), "model-00001-of-00003.safetensors");
  EXPECT_EQ(index.at("weight_map").at("model.layers.0.mlp.up_proj.weight"), "model-00001-of-00003.safetensors");
  EXPECT_EQ(index.at("weight_map").at("model.layers.0.self_attn.q_proj.weight"), "model-00002-of-00003.safetensors");
  EXPECT_EQ(index.at("weight_map").at("model.norm.weight"), "model-00003-of-00003.safetensors");
  EXPECT_EQ(index.at("weight_map").size(), 5u);

  const HfTensorDir hf = HfTensorDir::open(dir());
  EXPECT_TRUE(hf.sharded());
  EXPECT_EQ(hf.names().size(), 5u);
  for (const WriteTensor& t : model) EXPECT_EQ(hf.read_bytes(t.name), t.bytes) << t.name;
  EXPECT_EQ(hf.read_f32("model.layers.0.self_attn.q_proj.weight"), ramp(10, 20));
  EXPECT_EQ(hf.file_of("model.norm.weight").path(), path("model-00003-of-00003.safetensors"));
}

TEST_F(HfDir, RewriteRemovesTheOtherLayout) {
  write_hf_tensor_dir(dir(), small_model(), 32);
  write_text("config.json", "{}");  // not ours: must survive
  write_hf_tensor_dir(dir(), small_model());
  EXPECT_EQ(listing(), (std::vector<std::string>{"config.json", "model.safetensors"}));
  write_hf_tensor_dir(dir(), small_model(), 80);  // [16+16+40+8] [16]
  EXPECT_EQ(listing(), (std::vector<std::string>{"config.json", "model-00001-of-00002.safetensors",
                                                 "model-00002-of-00002.safetensors", "model.safetensors.index.json"}));
  EXPECT_EQ(HfTensorDir::open(dir()).read_f32("model.norm.weight"), ramp(4, 1));
}

TEST_F(HfDir, SingleFileWinsOverIndexAsInTransformers) {
  write_hf_tensor_dir(dir(), small_model(), 32);
  write_safetensors(path("model.safetensors"), {tensor_from_f32("only", {1}, ramp(1, 5), DType::f32)});
  const HfTensorDir hf = HfTensorDir::open(dir());
  EXPECT_FALSE(hf.sharded());
  EXPECT_EQ(hf.names(), std::vector<std::string>{"only"});
}

TEST_F(HfDir, WriterRefusesBeforeWritingAnything) {
  std::vector<WriteTensor> model = small_model();
  model.push_back(model[0]);
  const std::string message = error_of([&] { write_hf_tensor_dir(dir(), model, 32); });
  EXPECT_NE(message.find(dir() + ": tensor 'model.embed_tokens.weight' is given twice"), std::string::npos) << message;
  EXPECT_TRUE(listing().empty());
  EXPECT_NE(error_of([&] { write_hf_tensor_dir(dir(), small_model(), 0); }).find("max_shard_bytes must be positive"),
            std::string::npos);
}

// Index errors: a sharded save, then one file changed to disagree.
class HfDirIndexErrors : public HfDir {
 protected:
  void SetUp() override {
    HfDir::SetUp();
    write_hf_tensor_dir(dir(), small_model(), 32);
    index_ = read_json("model.safetensors.index.json");
  }
  void rewrite_index() const { write_text("model.safetensors.index.json", index_.dump(2)); }
  std::string open_error() const {
    return error_of([&] { HfTensorDir::open(dir()); });
  }
  std::string index_path() const { return path("model.safetensors.index.json"); }

  nlohmann::json index_;
};

TEST_F(HfDirIndexErrors, MissingShardFile) {
  fs::remove(path("model-00002-of-00003.safetensors"));
  const std::string message = open_error();
  EXPECT_NE(message.find(index_path() + ": tensor 'model.layers.0.self_attn.q_proj.weight' is mapped to "
                                        "'model-00002-of-00003.safetensors', which does not exist in " +
                         dir()),
            std::string::npos)
      << message;
}

TEST_F(HfDirIndexErrors, IndexedTensorAbsentFromShard) {
  index_["weight_map"]["lm_head.weight"] = "model-00003-of-00003.safetensors";
  rewrite_index();
  const std::string message = open_error();
  EXPECT_NE(message.find(index_path() + ": tensor 'lm_head.weight' is listed in the index under "
                                        "'model-00003-of-00003.safetensors', but " +
                         path("model-00003-of-00003.safetensors") + " does not contain it"),
            std::string::npos)
      << message;
}

TEST_F(HfDirIndexErrors, ShardTensorMissingFromIndex) {
  index_["weight_map"].erase("model.norm.weight");
  rewrite_index();
  const std::string message = open_error();
  EXPECT_NE(message.find(path("model-00003-of-00003.safetensors") +
                         ": tensor 'model.norm.weight' is in this shard but not in the weight_map of " + index_path()),
            std::string::npos)
      << message;
}

TEST_F(HfDirIndexErrors, TensorMappedToTheWrongShard) {
  // The same tensor in two shards: listed under the third, also present in the first.
  write_safetensors(path("model-00001-of-00003.safetensors"),
                    {tensor_from_f32("model.embed_tokens.weight", {2, 2}, ramp(4, 0), DType::f32),
                     tensor_from_f32("model.layers.0.mlp.up_proj.weight", {2, 4}, ramp(8, 10), DType::bf16),
                     tensor_from_f32("model.norm.weight", {4}, ramp(4, 1), DType::f16)});
  const std::string message = open_error();
  EXPECT_NE(message.find(path("model-00001-of-00003.safetensors") +
                         ": tensor 'model.norm.weight' is in this shard but " + index_path() +
                         " maps it to 'model-00003-of-00003.safetensors'"),
            std::string::npos)
      << message;
}

TEST_F(HfDirIndexErrors, DuplicateWeightMapKey) {
  write_text("model.safetensors.index.json",
             R"({"weight_map":{"a":"model-00001-of-00003.safetensors","a":"model-00002-of-00003.safetensors"}})");
  const std::string message = open_error();
  EXPECT_NE(message.find(index_path() + ": key 'a' appears twice"), std::string::npos) << message;
}

TEST_F(HfDirIndexErrors, MalformedIndex) {
  write_text("model.safetensors.index.json", R"({"weight_map":{"a":"../outside.safetensors"}})");
  EXPECT_NE(open_error().find("tensor 'a' is mapped to '../outside.safetensors', which is not a file name inside"),
            std::string::npos);
  write_text("model.safetensors.index.json", R"({"weight_map":{"a":3}})");
  EXPECT_NE(open_error().find(index_path() + ": weight_map['a'] must be a shard file name, got 3"), std::string::npos);
  write_text("model.safetensors.index.json", R"({"metadata":{}})");
  EXPECT_NE(open_error().find(index_path() + ": missing weight_map"), std::string::npos);
  write_text("model.safetensors.index.json", R"({"weight_map":)");
  EXPECT_NE(open_error().find(index_path() + ": not valid JSON"), std::string::npos);
}

TEST_F(HfDir, NoWeightsInDirectory) {
  const std::string message = error_of([&] { HfTensorDir::open(dir()); });
  EXPECT_NE(message.find(dir() + ": neither model.safetensors nor model.safetensors.index.json is there"),
            std::string::npos)
      << message;
  EXPECT_NE(error_of([&] { HfTensorDir::open(path("absent")); }).find(path("absent") + ": not a directory"),
            std::string::npos);
}

}  // namespace
}  // namespace tessera::io
