// safetensors reading, writing and the atomic file replacement underneath: round trips for every
// dtype, byte-exact agreement with the reference writer, and one hand-crafted file per reader refusal.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tessera/core/error.hpp"
#include "tessera/io/atomic_file.hpp"
#include "tessera/io/safetensors.hpp"
#include "test_support.hpp"

namespace tessera::io {
namespace {

namespace fs = std::filesystem;

using TempDir = tessera::testing::TempDirTest;

std::vector<std::byte> file_image(std::string_view header, size_t data_bytes, uint64_t declared_length) {
  std::vector<std::byte> out(8);
  for (size_t i = 0; i < 8; ++i) out[i] = static_cast<std::byte>((declared_length >> (8 * i)) & 0xffu);
  for (char c : header) out.push_back(static_cast<std::byte>(c));
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<std::byte>(i & 0xffu));
  return out;
}

std::vector<std::byte> file_image(std::string_view header, size_t data_bytes) {
  return file_image(header, data_bytes, header.size());
}

void write_raw(const std::string& path, std::span<const std::byte> bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::vector<std::byte> read_raw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  std::memcpy(out.data(), chars.data(), chars.size());
  return out;
}

template <typename T>
std::vector<std::byte> as_bytes_vector(std::span<const T> values) {
  const auto bytes = std::as_bytes(values);
  return {bytes.begin(), bytes.end()};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

// ------------------------------------------------------------------------------------------------
// Round trips

using Safetensors = TempDir;

TEST_F(Safetensors, RoundTripEveryDtype) {
  const std::vector<float> f32 = {1.0f, -2.5f, 3.14159274f, 0.0f, -0.0f, 1e-30f};
  const std::vector<float> bf16_in = {1.0f, -2.5f, 1.0f + std::ldexp(1.0f, -8), 1.0f + 3 * std::ldexp(1.0f, -8),
                                      65280.0f, -0.15625f};
  const std::vector<float> bf16_out = {1.0f, -2.5f, 1.0f, 1.0f + 4 * std::ldexp(1.0f, -8), 65280.0f, -0.15625f};
  const std::vector<float> f16_in = {1.0f, 65504.0f, std::ldexp(1.0f, -24), 1.0f + std::ldexp(1.0f, -11), -0.5f,
                                     70000.0f};
  const std::vector<float> f16_out = {1.0f, 65504.0f, std::ldexp(1.0f, -24), 1.0f, -0.5f,
                                      std::numeric_limits<float>::infinity()};
  const std::vector<int64_t> i64 = {std::numeric_limits<int64_t>::min(), -1, 0, 1, std::numeric_limits<int64_t>::max()};
  const std::vector<int32_t> i32 = {std::numeric_limits<int32_t>::min(), -7, 7, std::numeric_limits<int32_t>::max()};
  const std::vector<uint8_t> u8 = {0, 1, 127, 128, 255};
  const float scalar = 42.0f;

  std::vector<WriteTensor> tensors;
  tensors.push_back(tensor_from_f32("model.f32", {2, 3}, f32, DType::f32));
  tensors.push_back(tensor_from_f32("model.bf16", {3, 2}, bf16_in, DType::bf16));
  tensors.push_back(tensor_from_f32("model.f16", {6}, f16_in, DType::f16));
  tensors.push_back(tensor_from_i64("ids.i64", {5}, i64));
  tensors.push_back(tensor_from_i32("ids.i32", {2, 2}, i32));
  tensors.push_back(tensor_from_u8("mask.u8", {5}, u8));
  tensors.push_back(tensor_from_f32("scalar", {}, std::span<const float>(&scalar, 1), DType::f32));
  tensors.push_back(tensor_from_f32("empty", {0, 4}, std::span<const float>(), DType::bf16));
  const std::string file = path("all.safetensors");
  write_safetensors(file, tensors);

  const SafetensorsFile st = SafetensorsFile::open(file);
  EXPECT_EQ(st.path(), file);
  ASSERT_EQ(st.tensors().size(), tensors.size());
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {  // header order is the given order, laid out contiguously
    const TensorInfo& info = st.tensors()[i];
    EXPECT_EQ(info.name, tensors[i].name);
    EXPECT_EQ(info.dtype, tensors[i].dtype);
    EXPECT_EQ(info.shape, tensors[i].shape);
    EXPECT_EQ(info.begin, offset);
    offset = info.end;
    EXPECT_EQ(st.read_bytes(info.name), tensors[i].bytes) << info.name;
    EXPECT_EQ(st.find(info.name), &info);
  }
  EXPECT_EQ(st.find("absent"), nullptr);
  EXPECT_TRUE(st.metadata().empty());

  EXPECT_EQ(st.read_f32("model.f32"), f32);
  EXPECT_EQ(st.read_f32("model.bf16"), bf16_out);
  EXPECT_EQ(st.read_f32("model.f16"), f16_out);
  EXPECT_EQ(st.read_f32("scalar"), std::vector<float>{42.0f});
  EXPECT_EQ(st.find("scalar")->numel(), 1);
  EXPECT_TRUE(st.read_f32("empty").empty());
  EXPECT_EQ(st.read_bytes("ids.i64"), as_bytes_vector<int64_t>(i64));
  EXPECT_EQ(st.read_bytes("ids.i32"), as_bytes_vector<int32_t>(i32));
  EXPECT_EQ(st.read_bytes("mask.u8"), as_bytes_vector<uint8_t>(u8));

  // The header is space-padded so the data section starts 8-aligned, as the reference writer does.
  const std::vector<std::byte> raw = read_raw(file);
  uint64_t n = 0;
  for (size_t i = 0; i < 8; ++i) n |= static_cast<uint64_t>(raw[i]) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(raw.size(), 8 + n + offset);
}

TEST_F(Safetensors, LargeHalfTensorConvertsAcrossChunks) {
  // More elements than the reader's conversion buffer, so the chunk boundary is crossed.
  std::vector<float> values(200'003);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 256);  // exact in f16 and bf16
  const std::string file = path("big.safetensors");
  write_safetensors(file, {tensor_from_f32("h", {200'003}, values, DType::f16),
                           tensor_from_f32("b", {1, 200'003}, values, DType::bf16)});
  const SafetensorsFile st = SafetensorsFile::open(file);
  EXPECT_EQ(st.read_f32("h"), values);
  std::vector<float> into(values.size());
  st.read_f32_into("b", into);
  EXPECT_EQ(into, values);
}

TEST_F(Safetensors, MetadataRoundTrips) {
  const std::string file = path("meta.safetensors");
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "quote \" and \xc3\xa9"}};
  const std::vector<float> one = {1.0f};
  write_safetensors(file, {tensor_from_f32("w", {1}, one, DType::f32)}, metadata);
  EXPECT_EQ(SafetensorsFile::open(file).metadata(), metadata);
}

TEST_F(Safetensors, WriterMatchesReferenceBytes) {
  // The expected bytes are those of test_serialization in huggingface/safetensors (safetensors/src/tensor.rs):
  // one F32 tensor "attn.0" of shape [1, 2, 3] holding 0..5.
  const std::vector<float> values = {0, 1, 2, 3, 4, 5};
  const std::string file = path("ref.safetensors");
  write_safetensors(file, {tensor_from_f32("attn.0", {1, 2, 3}, values, DType::f32)});
  const std::string header = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  std::vector<std::byte> expected = file_image(header, 0);
  const auto data = as_bytes_vector<float>(values);
  expected.insert(expected.end(), data.begin(), data.end());
  EXPECT_EQ(read_raw(file), expected);
}

TEST_F(Safetensors, ReadsHeaderInAnyOffsetOrderWithPadding) {
  // Offsets need not follow header order (older writers sorted by name); trailing spaces pad the header.
  const std::string header = R"({"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
                             R"("a":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"extra":[{"x":1}]}}   )";
  const std::string file = path("order.safetensors");
  write_raw(file, file_image(header, 4));
  const SafetensorsFile st = SafetensorsFile::open(file);
  ASSERT_EQ(st.tensors().size(), 2u);
  EXPECT_EQ(st.tensors()[0].name, "b");
  EXPECT_EQ(st.read_bytes("b"), (std::vector<std::byte>{std::byte{2}, std::byte{3}}));
  EXPECT_EQ(st.read_bytes("a"), (std::vector<std::byte>{std::byte{0}, std::byte{1}}));
}

TEST_F(Safetensors, ReadErrorsNameFileAndTensor) {
  const std::string file = path("r.safetensors");
  const std::vector<int64_t> ids = {1, 2, 3};
  const std::vector<float> values = {1, 2, 3};
  write_safetensors(file, {tensor_from_i64("ids", {3}, ids), tensor_from_f32("w", {3}, values, DType::bf16)});
  const SafetensorsFile st = SafetensorsFile::open(file);
  const std::string not_float = error_of([&] { st.read_f32("ids"); });
  EXPECT_NE(not_float.find(file + ": tensor 'ids' is I64, not a float type"), std::string::npos) << not_float;
  const std::string absent = error_of([&] { st.read_bytes("nope"); });
  EXPECT_NE(absent.find(file + ": no tensor 'nope'"), std::string::npos) << absent;
  std::vector<float> small(2);
  const std::string size = error_of([&] { st.read_f32_into("w", small); });
  EXPECT_NE(size.find(file + ": tensor 'w' has 3 elements ([3]) but the destination holds 2"), std::string::npos)
      << size;
  const std::string missing = error_of([&] { SafetensorsFile::open(path("missing.safetensors")); });
  EXPECT_NE(missing.find(path("missing.safetensors") + ": cannot open"), std::string::npos) << missing;
  const std::string directory = error_of([&] { SafetensorsFile::open(dir_.string()); });
  EXPECT_NE(directory.find("not a regular file"), std::string::npos) << directory;
}

TEST_F(Safetensors, MoveKeepsTheFileReadable) {
  const std::string file = path("m.safetensors");
  const std::vector<float> values = {1, 2};
  write_safetensors(file, {tensor_from_f32("w", {2}, values, DType::f32)});
  SafetensorsFile a = SafetensorsFile::open(file);
  SafetensorsFile b = std::move(a);
  EXPECT_EQ(b.read_f32("w"), values);
  a = std::move(b);
  EXPECT_EQ(a.read_f32("w"), values);
}

TEST_F(Safetensors, WriterRefusesBadTensorsAndWritesNothing) {
  const std::string file = path("bad.safetensors");
  const std::vector<float> two = {1, 2};
  const auto expect_refused = [&](const std::vector<WriteTensor>& tensors, const std::string& needle) {
    const std::string message = error_of([&] { write_safetensors(file, tensors); });
    EXPECT_NE(message.find(needle), std::string::npos) << message;
    EXPECT_FALSE(fs::exists(file));
    EXPECT_TRUE(listing().empty());
  };
  expect_refused({tensor_from_f32("w", {2}, two, DType::f32), tensor_from_f32("w", {2}, two, DType::f32)},
                 file + ": tensor 'w' is given twice");
  WriteTensor short_bytes = tensor_from_f32("w", {2}, two, DType::f32);
  short_bytes.bytes.pop_back();
  expect_refused({short_bytes}, file + ": tensor 'w': 7 bytes given but shape [2] of F32 needs 8");
  WriteTensor negative = tensor_from_f32("w", {2}, two, DType::f32);
  negative.shape = {-2};
  expect_refused({negative}, file + ": tensor 'w': shape [-2] has a negative dimension");
  WriteTensor reserved = tensor_from_f32("__metadata__", {2}, two, DType::f32);
  expect_refused({reserved}, "\"__metadata__\" is reserved");
  WriteTensor huge = tensor_from_f32("w", {2}, two, DType::f32);
  huge.shape = {int64_t{1} << 62, 8};
  expect_refused({huge}, file + ": tensor 'w': shape [4611686018427387904, 8] is too large");
  WriteTensor bad_utf8 = tensor_from_f32("w\xff", {2}, two, DType::f32);
  expect_refused({bad_utf8}, "is not valid UTF-8");

  EXPECT_NE(error_of([&] { tensor_from_f32("w", {3}, two, DType::bf16); })
                .find("tensor 'w': shape [3] has 3 elements but 2 values were given"),
            std::string::npos);
  EXPECT_NE(error_of([&] { tensor_from_f32("w", {2}, two, DType::i32); }).find("cannot store floats as I32"),
            std::string::npos);
}

// ------------------------------------------------------------------------------------------------
// Reader refusals, one hand-crafted file each. open() and parse_header() must agree word for word.

struct BadFile {
  std::string label;
  std::vector<std::byte> bytes;
  std::vector<std::string> needles;  // each must appear in the message, after "<path>: "
};

std::vector<BadFile> bad_files() {
  const auto entry = [](std::string_view name, std::string_view dtype, std::string_view shape, uint64_t b,
                        uint64_t e) {
    return fmt::format(R"("{}":{{"dtype":"{}","shape":{},"data_offsets":[{},{}]}})", name, dtype, shape, b, e);
  };
  const std::string good = entry("w", "F32", "[2]", 0, 8);
  std::vector<BadFile> v;
  v.push_back({"ShortFile", {std::byte{1}, std::byte{0}, std::byte{0}}, {"file is 3 bytes, too short"}});
  v.push_back({"HeaderLengthZero", file_image("", 16, 0), {"header length is 0"}});
  v.push_back({"HeaderTooLarge", file_image("{}", 0, 100'000'001), {"header length 100000001 exceeds the 100 MB"}});
  v.push_back({"HeaderLengthHuge", file_image("{}", 0, ~uint64_t{0}), {"exceeds the 100 MB limit"}});
  v.push_back({"HeaderPastEnd", file_image("{}", 0, 64), {"header length 64 runs past the end of the file of 10"}});
  v.push_back({"NotJson", file_image("{\"w\":", 0), {"header is not valid JSON"}});
  v.push_back({"TrailingGarbage", file_image("{}x", 0), {"header is not valid JSON"}});
  v.push_back({"InvalidUtf8", file_image("{\"\xff\":{}}", 0), {"header is not valid JSON", "\\xff"}});
  v.push_back({"NotObject", file_image("[1,2]", 0), {"header is not a JSON object"}});
  v.push_back({"ScalarHeader", file_image("7", 0), {"header is not a JSON object (it is 7)"}});
  v.push_back({"EntryNotObject", file_image(R"({"w":[1]})", 0), {"tensor 'w': entry must be an object"}});
  v.push_back({"EntryScalar", file_image(R"({"w":"F32"})", 0), {"tensor 'w': entry must be an object"}});
  v.push_back({"MissingDtype", file_image(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4),
               {"tensor 'w': missing dtype"}});
  v.push_back({"MissingShape", file_image(R"({"w":{"dtype":"U8","data_offsets":[0,4]}})", 4),
               {"tensor 'w': missing shape"}});
  v.push_back({"MissingOffsets", file_image(R"({"w":{"dtype":"U8","shape":[4]}})", 4),
               {"tensor 'w': missing data_offsets"}});
  v.push_back({"UnknownDtype", file_image("{" + entry("w", "F64", "[1]", 0, 8) + "}", 8),
               {"tensor 'w': unknown dtype 'F64'"}});
  v.push_back({"DtypeNotString", file_image(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4),
               {"tensor 'w': dtype must be a string, got 4"}});
  v.push_back({"ShapeNegative", file_image("{" + entry("w", "F32", "[-2]", 0, 8) + "}", 8),
               {"tensor 'w': shape must be a list of non-negative integers, got -2"}});
  v.push_back({"ShapeFloat", file_image("{" + entry("w", "F32", "[2.0]", 0, 8) + "}", 8),
               {"tensor 'w': shape must be a list of non-negative integers, got 2.0 in the list"}});
  v.push_back({"ShapeNotList", file_image("{" + entry("w", "F32", "2", 0, 8) + "}", 8),
               {"tensor 'w': shape must be a list of non-negative integers, got 2"}});
  v.push_back({"ShapeNested", file_image("{" + entry("w", "F32", "[[2]]", 0, 8) + "}", 8),
               {"tensor 'w': shape must be a list of non-negative integers, got a list in the list"}});
  v.push_back({"ShapeDimTooLarge", file_image("{" + entry("w", "U8", "[18446744073709551615]", 0, 8) + "}", 8),
               {"tensor 'w': shape dimension 18446744073709551615 is too large"}});
  v.push_back({"NumelOverflow",
               file_image("{" + entry("w", "F32", "[4294967296,4294967296,4]", 0, 8) + "}", 8),
               {"tensor 'w': shape [4294967296, 4294967296, 4] of F32 is too large to address"}});
  v.push_back({"BytesOverflow", file_image("{" + entry("w", "I64", "[4611686018427387904]", 0, 8) + "}", 8),
               {"tensor 'w': shape [4611686018427387904] of I64 is too large to address"}});
  v.push_back({"OffsetsThree", file_image(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,2,4]}})", 4),
               {"tensor 'w': data_offsets must be two integers [begin, end], got 3"}});
  v.push_back({"OffsetsNotIntegers", file_image(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":["0",4]}})", 4),
               {"tensor 'w': data_offsets must be two non-negative integers"}});
  v.push_back({"OffsetsNegative", file_image(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[-1,3]}})", 4),
               {"tensor 'w': data_offsets must be two non-negative integers [begin, end], got -1"}});
  v.push_back({"OffsetsDecreasing", file_image("{" + entry("w", "U8", "[0]", 4, 0) + "}", 4),
               {"tensor 'w': data_offsets [4, 0] end before they begin"}});
  v.push_back({"OffsetsDisagreeWithShape", file_image("{" + entry("w", "F32", "[3]", 0, 8) + "}", 8),
               {"tensor 'w': data_offsets [0, 8] hold 8 bytes but shape [3] of F32 needs 12"}});
  v.push_back({"TruncatedData", file_image("{" + good + "}", 5),
               {"tensor 'w': data_offsets [0, 8] run past the data section of 5 bytes (truncated file?)"}});
  v.push_back({"OffsetsHuge",
               file_image("{" + entry("w", "U8", "[1]", 18446744073709551614ULL, 18446744073709551615ULL) + "}", 4),
               {"tensor 'w': data_offsets [18446744073709551614, 18446744073709551615] run past the data section"}});
  v.push_back({"Overlap", file_image("{" + good + "," + entry("v", "F32", "[2]", 4, 12) + "}", 12),
               {"tensor 'v': bytes [4, 12) overlap tensor 'w' at [0, 8)"}});
  v.push_back({"EmptyTensorInsideAnother", file_image("{" + good + "," + entry("e", "F32", "[0]", 4, 4) + "}", 8),
               {"tensor 'e': bytes [4, 4) overlap tensor 'w' at [0, 8)"}});
  v.push_back({"HoleAtStart", file_image("{" + entry("w", "F32", "[2]", 4, 12) + "}", 12),
               {"data section bytes [0, 4) before tensor 'w' belong to no tensor"}});
  v.push_back({"HoleBetween", file_image("{" + good + "," + entry("v", "F32", "[1]", 12, 16) + "}", 16),
               {"data section bytes [8, 12) before tensor 'v' belong to no tensor"}});
  v.push_back({"TrailingBytes", file_image("{" + good + "}", 10),
               {"data section has 2 bytes after the last tensor 'w' ends at 8, belonging to no tensor"}});
  v.push_back({"DataWithoutTensors", file_image("{}", 3), {"header lists no tensors but 3 data bytes follow it"}});
  v.push_back({"MetadataNotStrings", file_image(R"({"__metadata__":{"format":1}})", 0),
               {"\"__metadata__\" value for 'format' must be a string, got 1"}});
  v.push_back({"MetadataNested", file_image(R"({"__metadata__":{"format":{"a":"b"}}})", 0),
               {"\"__metadata__\" value for 'format' must be a string, got an object"}});
  v.push_back({"MetadataNotObject", file_image(R"({"__metadata__":["pt"]})", 0),
               {"\"__metadata__\" must be an object of strings, got a list"}});
  v.push_back({"MetadataDuplicateKey", file_image(R"({"__metadata__":{"a":"1","a":"2"}})", 0),
               {"\"__metadata__\" key 'a' appears twice"}});
  v.push_back({"MetadataTwice", file_image(R"({"__metadata__":{},"__metadata__":{}})", 0),
               {"\"__metadata__\" appears twice"}});
  v.push_back({"DuplicateTensorName", file_image("{" + good + "," + good + "}", 8),
               {"tensor 'w' appears twice in the header"}});
  v.push_back({"DuplicateField",
               file_image(R"({"w":{"dtype":"U8","dtype":"F32","shape":[4],"data_offsets":[0,4]}})", 4),
               {"tensor 'w': field 'dtype' appears twice"}});
  return v;
}

class SafetensorsBadFile : public TempDir, public ::testing::WithParamInterface<BadFile> {};

TEST_P(SafetensorsBadFile, RefusedWithFileAndTensorNamed) {
  const BadFile& bad = GetParam();
  const std::string file = path(bad.label + ".safetensors");
  write_raw(file, bad.bytes);
  const std::string from_open = error_of([&] { SafetensorsFile::open(file); });
  const std::string from_memory = error_of([&] { SafetensorsFile::parse_header(file, bad.bytes); });
  EXPECT_EQ(from_open, from_memory);
  EXPECT_TRUE(from_open.starts_with(file + ": ")) << from_open;
  for (const std::string& needle : bad.needles) EXPECT_NE(from_open.find(needle), std::string::npos) << from_open;
}

INSTANTIATE_TEST_SUITE_P(Reader, SafetensorsBadFile, ::testing::ValuesIn(bad_files()),
                         [](const ::testing::TestParamInfo<BadFile>& info) { return info.param.label; });

TEST_F(Safetensors, ParseHeaderAcceptsWhatOpenAccepts) {
  const std::string header = R"({"__metadata__":null,"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})";
  const std::vector<std::byte> image = file_image(header, 4);
  const SafetensorsHeader h = SafetensorsFile::parse_header("mem", image);
  EXPECT_EQ(h.data_begin, 8 + header.size());
  EXPECT_EQ(h.data_size, 4u);
  ASSERT_EQ(h.tensors.size(), 1u);
  EXPECT_EQ(h.tensors[0].dtype, DType::bf16);
  EXPECT_TRUE(h.metadata.empty());
}

// ------------------------------------------------------------------------------------------------
// Atomic replacement

using AtomicFile = TempDir;

TEST_F(AtomicFile, ReplacesContents) {
  const std::string file = path("f.txt");
  write_text_file_atomically(file, "old");
  write_text_file_atomically(file, "new contents");
  std::ifstream in(file);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "new contents");
  EXPECT_EQ(listing(), std::vector<std::string>{"f.txt"});
}

TEST_F(AtomicFile, ThrowingWriterLeavesOldFileAndNoTemp) {
  const std::string file = path("model.safetensors");
  const std::vector<float> values = {1, 2, 3};
  write_safetensors(file, {tensor_from_f32("w", {3}, values, DType::f32)});
  const std::vector<std::byte> before = read_raw(file);

  const std::string message = error_of([&] {
    write_file_atomically(file, [&](std::FILE* f) {
      write_all(f, std::string_view("partial new contents"), file);
      TESSERA_FAIL("{}: simulated failure halfway", file);
    });
  });
  EXPECT_NE(message.find("simulated failure halfway"), std::string::npos) << message;
  EXPECT_EQ(read_raw(file), before);
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
  EXPECT_EQ(SafetensorsFile::open(file).read_f32("w"), values);
}

TEST_F(AtomicFile, UncheckedWriteErrorIsCaught) {
  // A writer that ignores fwrite's result still cannot publish a short file: the stream's error flag
  // is checked before the rename. Writing to a read-only stream sets it.
  const std::string file = path("f.txt");
  write_text_file_atomically(file, "old");
  const std::string message = error_of([&] {
    write_file_atomically(file, [&](std::FILE* f) {
      char c = 0;
      EXPECT_EQ(std::fread(&c, 1, 1, f), 0u);  // reading a write-only stream sets the error flag
    });
  });
  EXPECT_NE(message.find(file + ": write error"), std::string::npos) << message;
  std::ifstream in(file);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "old");
  EXPECT_EQ(listing(), std::vector<std::string>{"f.txt"});
}

TEST_F(AtomicFile, MissingDirectoryIsNamed) {
  const std::string file = path("no/such/dir/f.txt");
  const std::string message = error_of([&] { write_text_file_atomically(file, "x"); });
  EXPECT_NE(message.find(file + ": cannot create temp file"), std::string::npos) << message;
}

}  // namespace
}  // namespace tessera::io
