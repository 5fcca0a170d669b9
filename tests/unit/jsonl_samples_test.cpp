#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tessera/data/jsonl_samples.hpp"
#include "tessera/data/packed_dataset.hpp"
#include "test_support.hpp"

namespace tessera::data {
namespace {

using testing::error_of;
const std::string kTokenizer = tessera::testing::qwen3_tokenizer_dir();
const std::string kEmbedded = std::string(TESSERA_SOURCE_DIR) + "/data/embedded";

TEST(JsonlSampleParser, ReadsMessagesImagesVideosAndIgnoresMetadata) {
  const RawSample raw = parse_sample_line(
      R"({"id": 7, "category": "x", "messages": [{"role": "user", "content": "<image> and <video>?"},)"
      R"( {"role": "assistant", "content": "a card"}], "images": ["a.png"], "videos": [["f0.png", "f1.png"]]})",
      "f.jsonl:3");
  ASSERT_EQ(raw.messages.size(), 2u);
  EXPECT_EQ(raw.images, std::vector<std::string>{"a.png"});
  EXPECT_EQ(raw.videos.at(0).size(), 2u);
}

TEST(JsonlSampleParser, RefusesBadLinesNamingTheLine) {
  struct Case {
    std::string line, expected;
  };
  const std::vector<Case> cases = {
      {"{\"messages\": [", "f.jsonl:9: not valid JSON"},
      {"2E2222222222222223", "f.jsonl:9: not valid JSON"},  // number overflow: found by the fuzzer
      {"[1, 2]", "must be a JSON object"},
      {"{\"images\": []}", "no \"messages\""},
      {"{\"messages\": []}", "no messages"},
      {R"({"messages": [{"role": "robot", "content": "hi"}]})", "robot"},
      {R"({"messages": [{"role": "user", "content": "<image><image>"}], "images": ["a.png"]})",
       "2 <image> marker(s) but 1 image(s) listed"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "image": ["a.png"]})", "did you mean \"images\"?"},
      {R"({"messages": [{"role": "user", "content": "<video>"}], "videos": [[]]})", "videos[0] has no frames"},
      {R"({"messages": [{"role": "user", "content": "x"}], "images": [3]})", "images[0] must be a non-empty path"},
  };
  for (const auto& c : cases) {
    const std::string msg = error_of([&] { parse_sample_line(c.line, "f.jsonl:9"); });
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.line << " -> " << msg;
    EXPECT_NE(msg.find("f.jsonl:9"), std::string::npos) << msg;
  }
}

class SampleBuilderTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!std::filesystem::exists(kTokenizer + "/tokenizer.json"))
      GTEST_SKIP() << "needs the Qwen3 tokenizer at " << kTokenizer << " (absent here)";
    tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(kTokenizer));
  }
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(SampleBuilderTest, ImageMarkerBecomesOneRunOfPadTokensWithThePatches) {
  SampleBuilderOptions options;
  options.base_dir = kEmbedded;
  const SampleBuilder builder(*tokenizer_, options);
  const RawSample raw = parse_sample_line(
      R"({"messages": [{"role": "user", "content": "Which skill? <image>"}, {"role": "assistant", "content": "First aid."}],)"
      R"( "images": ["images/cert_0001.png"]})",
      "t:1");
  const Sample s = builder.build(raw, "t:1", 1);
  ASSERT_EQ(s.vision.size(), 1u);
  const VisionItem& v = s.vision[0];
  EXPECT_EQ(v.num_tokens * 4, v.num_patches);
  EXPECT_EQ(v.patch_dim, 1176);
  const int32_t pad = *tokenizer_->token_to_id("<|image_pad|>");
  EXPECT_EQ(s.ids.at(static_cast<size_t>(v.token_offset - 1)), *tokenizer_->token_to_id("<|vision_start|>"));
  for (int64_t i = 0; i < v.num_tokens; ++i) EXPECT_EQ(s.ids.at(static_cast<size_t>(v.token_offset + i)), pad);
  EXPECT_EQ(s.ids.at(static_cast<size_t>(v.token_offset + v.num_tokens)), *tokenizer_->token_to_id("<|vision_end|>"));
  // Loss only on the assistant's answer, never on the image.
  for (int64_t i = 0; i < v.num_tokens; ++i) EXPECT_EQ(s.labels.at(static_cast<size_t>(v.token_offset + i)), 0);
  EXPECT_TRUE(tokenizer_->decode(std::span<const int32_t>(s.ids).last(8)).ends_with("First aid.<|im_end|>\n"));
}

TEST_F(SampleBuilderTest, RefusesMissingImagesAndSamplesWithNothingToLearn) {
  SampleBuilderOptions options;
  options.base_dir = dir_.string();
  const SampleBuilder builder(*tokenizer_, options);
  const RawSample missing = parse_sample_line(
      R"({"messages": [{"role": "user", "content": "<image>"}, {"role": "assistant", "content": "?"}], "images": ["nope.png"]})",
      "t:4");
  std::string msg = error_of([&] { builder.build(missing, "t:4", 4); });
  EXPECT_NE(msg.find("t:4: image nope.png"), std::string::npos) << msg;
  const RawSample no_answer = parse_sample_line(R"({"messages": [{"role": "user", "content": "hello"}]})", "t:5");
  msg = error_of([&] { builder.build(no_answer, "t:5", 5); });
  EXPECT_NE(msg.find("t:5: no assistant token to train on"), std::string::npos) << msg;
}

TEST_F(SampleBuilderTest, PackCommandWritesAFileOrNothing) {
  const std::string tessera = TESSERA_BINARY;
  const auto input = dir_ / "in.jsonl";
  {
    std::ofstream out(input);
    out << R"({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})" << "\n\n"
        << R"({"messages": [{"role": "user", "content": "Capital of Italy?"}, {"role": "assistant", "content": "Rome."}]})"
        << "\n"
        << R"({"messages": [{"role": "user", "content": "hi"}]})" << "\n";
  }
  const auto output = dir_ / "out.h5";
  const std::string base = tessera + " pack --input " + input.string() + " --tokenizer " + kTokenizer +
                           " --seq-length 64 --output " + output.string() + " 2>&1";
  // The third line has no assistant turn: by default the whole pack fails and writes nothing.
  EXPECT_NE(std::system((base + " > /dev/null").c_str()), 0);
  EXPECT_FALSE(std::filesystem::exists(output));
  ASSERT_EQ(std::system((tessera + " pack --on-error skip --input " + input.string() + " --tokenizer " + kTokenizer +
                         " --seq-length 64 --output " + output.string() + " > /dev/null 2>&1")
                            .c_str()),
            0);
  const PackedDataset ds = PackedDataset::open(output.string());
  EXPECT_EQ(ds.rows(), 1);
  EXPECT_EQ(ds.row(0).cu_seqlens.size(), 3u);  // both good samples in one row of 64
  EXPECT_EQ(ds.info().tokenizer_sha256, tokenizer_->sha256());
}

}  // namespace
}  // namespace tessera::data
