// Qwen2-VL vision preprocessing against PIL and transformers: tests/golden/vision (written by its
// generate.py with transformers 4.57 and 5.24) holds PIL's decoded and resized bytes and transformers'
// pixel_values for every test image; tessera must reproduce the bytes exactly and the patches within 1e-5.
#include "tessera/data/vision.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tessera/core/error.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using tessera::data::AlphaMode;
using tessera::data::Image;
using tessera::data::VisionConfig;
using tessera::testing::error_of;

const std::string kGolden = std::string(TESSERA_SOURCE_DIR) + "/tests/golden/vision";

std::vector<uint8_t> read_gz(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw std::runtime_error("cannot open " + path);
  std::vector<uint8_t> out;
  std::vector<uint8_t> buffer(1 << 16);
  int n = 0;
  while ((n = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()))) > 0) {
    out.insert(out.end(), buffer.begin(), buffer.begin() + n);
  }
  gzclose(file);
  if (n < 0) throw std::runtime_error("cannot decompress " + path);
  return out;
}

std::vector<float> read_floats(const std::string& path) {
  const std::vector<uint8_t> bytes = read_gz(path);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));  // little-endian float32, as written
  return out;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const json& manifest() {
  static const json m = json::parse(read_bytes(kGolden + "/manifest.json"));
  return m;
}

std::string image_path(const std::string& name) { return kGolden + "/images/" + name; }

AlphaMode alpha_of(const json& entry) {
  return entry.at("alpha").get<std::string>() == "over_white" ? AlphaMode::over_white : AlphaMode::drop;
}

VisionConfig config_of(const json& settings) {
  VisionConfig config;
  config.patch_size = settings.at("patch_size");
  config.temporal_patch_size = settings.at("temporal_patch_size");
  config.merge_size = settings.at("merge_size");
  config.min_pixels = settings.at("min_pixels");
  config.max_pixels = settings.at("max_pixels");
  return config;
}

std::string fnv1a64(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ULL;
  char out[17];
  std::snprintf(out, sizeof(out), "%016llx", static_cast<unsigned long long>(h));
  return out;
}

int max_byte_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  int diff = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) diff = std::max(diff, std::abs(int{a[i]} - int{b[i]}));
  return diff;
}

double max_abs_diff(const float* a, const float* b, size_t n) {
  double diff = 0;
  for (size_t i = 0; i < n; ++i)
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return diff;
}

// ---------------------------------------------------------------------------------------------------------

TEST(VisionGolden, DecodeMatchesPil) {
  ASSERT_GE(manifest().at("decode").size(), 30u);
  for (const json& entry : manifest().at("decode")) {
    const std::string name = entry.at("image");
    SCOPED_TRACE(name + " " + entry.at("alpha").get<std::string>());
    const Image image = tessera::data::decode_image(image_path(name), alpha_of(entry));
    const json& info = *std::find_if(manifest().at("images").begin(), manifest().at("images").end(),
                                     [&](const json& i) { return i.at("file") == name; });
    EXPECT_EQ(image.width, info.at("width").get<int64_t>());
    EXPECT_EQ(image.height, info.at("height").get<int64_t>());
    ASSERT_EQ(image.rgb.size(), static_cast<size_t>(image.width * image.height * 3));
    if (entry.contains("fnv1a64")) {
      EXPECT_EQ(fnv1a64(image.rgb), entry.at("fnv1a64").get<std::string>()) << "decoded bytes differ from PIL's";
      continue;
    }
    const std::vector<uint8_t> expected = read_gz(kGolden + "/" + entry.at("file").get<std::string>());
    ASSERT_EQ(image.rgb.size(), expected.size());
    EXPECT_EQ(max_byte_diff(image.rgb, expected), 0) << "largest difference from PIL's decode";
  }
}

TEST(VisionGolden, ResizeBicubicIsBitExactWithPil) {
  ASSERT_GE(manifest().at("resize").size(), 8u);
  for (const json& entry : manifest().at("resize")) {
    SCOPED_TRACE(entry.at("case").get<std::string>());
    const Image source = tessera::data::decode_image(image_path(entry.at("image")));
    const Image resized = tessera::data::resize_bicubic(source, entry.at("width"), entry.at("height"));
    EXPECT_EQ(resized.width, entry.at("width").get<int64_t>());
    EXPECT_EQ(resized.height, entry.at("height").get<int64_t>());
    const std::vector<uint8_t> expected = read_gz(kGolden + "/" + entry.at("file").get<std::string>());
    ASSERT_EQ(resized.rgb.size(), expected.size());
    EXPECT_EQ(max_byte_diff(resized.rgb, expected), 0) << "largest difference from PIL's resize";
  }
}

TEST(VisionGolden, SmartResizeMatchesTransformers) {
  const json& table = manifest().at("smart_resize");
  ASSERT_GE(table.size(), 200u);
  for (const json& entry : table) {
    const auto& in = entry.at("in");
    SCOPED_TRACE(in.dump());
    const auto call = [&] { return tessera::data::smart_resize(in[0], in[1], in[2], in[3], in[4]); };
    if (entry.contains("error")) {
      const std::string message = error_of(call);
      if (entry.at("error") != "zero") {
        EXPECT_NE(message.find("absolute aspect ratio must be smaller than 200"), std::string::npos) << message;
      }
    } else {
      const auto [h, w] = call();
      EXPECT_EQ(h, entry.at("out")[0].get<int64_t>());
      EXPECT_EQ(w, entry.at("out")[1].get<int64_t>());
    }
  }
}

// Patches and grid of one golden case; returns the largest absolute difference.
double check_patches(const tessera::data::VisionPatches& got, const json& entry, const std::vector<float>& expected,
                     const std::vector<int64_t>& rows) {
  const auto& grid = entry.at("grid_thw");
  EXPECT_EQ(got.grid_t, grid[0].get<int64_t>());
  EXPECT_EQ(got.grid_h, grid[1].get<int64_t>());
  EXPECT_EQ(got.grid_w, grid[2].get<int64_t>());
  const int64_t dim = entry.at("shape")[1];
  EXPECT_EQ(got.num_patches(), entry.at("shape")[0].get<int64_t>());
  EXPECT_EQ(got.patch_dim, dim);
  EXPECT_EQ(got.patches.size(), static_cast<size_t>(got.num_patches() * got.patch_dim));
  double diff = 0;
  if (rows.empty()) {
    EXPECT_EQ(got.patches.size(), expected.size());
    if (got.patches.size() != expected.size()) return INFINITY;
    diff = max_abs_diff(got.patches.data(), expected.data(), expected.size());
  } else {
    EXPECT_EQ(expected.size(), rows.size() * static_cast<size_t>(dim));
    for (size_t i = 0; i < rows.size(); ++i) {
      diff = std::max(diff, max_abs_diff(got.patches.data() + rows[i] * dim,
                                         expected.data() + i * static_cast<size_t>(dim), static_cast<size_t>(dim)));
    }
  }
  EXPECT_LE(diff, 1e-5) << "max abs difference from transformers";
  return diff;
}

TEST(VisionGolden, ImagePatchesMatchTransformers) {
  const json& cases = manifest().at("patches");
  ASSERT_GE(cases.size(), 30u);
  double worst = 0;
  std::string report;
  for (const json& entry : cases) {
    const std::string name = entry.at("case").get<std::string>() + "." + entry.at("alpha").get<std::string>();
    SCOPED_TRACE(name);
    const Image image = tessera::data::decode_image(image_path(entry.at("image")), alpha_of(entry));
    const auto patches = tessera::data::preprocess_images({image}, config_of(entry.at("settings")));
    const double diff =
        check_patches(patches, entry, read_floats(kGolden + "/" + entry.at("file").get<std::string>()), {});
    worst = std::max(worst, diff);
    report += fmt::format("  {:<40} grid {}x{}x{}  max|diff| {:.3g}\n", name, patches.grid_t, patches.grid_h,
                          patches.grid_w, diff);
  }
  std::cout << "vision patches vs transformers (max abs difference per case):\n"
            << report << "  worst " << worst << "\n";
}

TEST(VisionGolden, LargeImageAboveDefaultMaxPixels) {
  for (const json& entry : manifest().at("sampled_patches")) {
    SCOPED_TRACE(entry.at("case").get<std::string>());
    const Image image = tessera::data::decode_image(image_path(entry.at("image")), alpha_of(entry));
    const VisionConfig config = config_of(entry.at("settings"));
    const auto [h, w] = tessera::data::smart_resize(image.height, image.width, config.patch_size * config.merge_size,
                                                    config.min_pixels, config.max_pixels);
    ASSERT_EQ(h, entry.at("resized_height").get<int64_t>());
    ASSERT_EQ(w, entry.at("resized_width").get<int64_t>());
    EXPECT_EQ(fnv1a64(tessera::data::resize_bicubic(image, w, h).rgb), entry.at("resized_fnv1a64").get<std::string>())
        << "resized bytes differ from PIL's";
    const auto patches = tessera::data::preprocess_images({image}, config);
    const double diff = check_patches(patches, entry, read_floats(kGolden + "/" + entry.at("file").get<std::string>()),
                                      entry.at("rows").get<std::vector<int64_t>>());
    std::cout << "  " << entry.at("case").get<std::string>() << " (sampled rows) max|diff| " << diff << "\n";
  }
}

TEST(VisionGolden, VideoPatchesMatchTransformers) {
  ASSERT_GE(manifest().at("video").size(), 1u);
  for (const json& entry : manifest().at("video")) {
    SCOPED_TRACE(entry.at("case").get<std::string>());
    std::vector<Image> frames;
    for (const auto& name : entry.at("frames")) frames.push_back(tessera::data::decode_image(image_path(name)));
    const VisionConfig config = config_of(entry.at("settings"));
    const auto patches = tessera::data::preprocess_images(frames, config);
    const double diff =
        check_patches(patches, entry, read_floats(kGolden + "/" + entry.at("file").get<std::string>()), {});
    std::cout << "  " << entry.at("case").get<std::string>() << " grid " << patches.grid_t << "x" << patches.grid_h
              << "x" << patches.grid_w << " max|diff| " << diff << "\n";
    EXPECT_EQ(patches.num_tokens(config.merge_size), patches.num_patches() / (config.merge_size * config.merge_size));
  }
}

// ---------------------------------------------------------------------------------------------------------

TEST(Vision, OneImageIsRepeatedOverTheTemporalPatch) {
  Image image;
  image.width = 30;
  image.height = 20;
  image.rgb.resize(30 * 20 * 3);
  for (size_t i = 0; i < image.rgb.size(); ++i) image.rgb[i] = static_cast<uint8_t>(i * 7);
  const auto one = tessera::data::preprocess_images({image});
  const auto two = tessera::data::preprocess_images({image, image});
  EXPECT_EQ(one.grid_t, 1);
  EXPECT_EQ(one.patches, two.patches);
  EXPECT_EQ(one.patch_dim, 3 * 2 * 14 * 14);
  EXPECT_EQ(one.num_tokens(2), one.num_patches() / 4);
}

TEST(Vision, SameSizeResizeIsACopy) {
  Image image;
  image.width = 5;
  image.height = 3;
  image.rgb.assign(45, 0);
  image.rgb[7] = 200;
  const Image out = tessera::data::resize_bicubic(image, 5, 3);
  EXPECT_EQ(out.rgb, image.rgb);
}

TEST(Vision, SampleFrameIndices) {
  using tessera::data::sample_frame_indices;
  // 4 s at 25 fps sampled at 2 fps: 8 frames, round(i * 99 / 7).
  EXPECT_EQ(sample_frame_indices(100, 25, 2), (std::vector<size_t>{0, 14, 28, 42, 57, 71, 85, 99}));
  // Short videos still give FPS_MIN_FRAMES (4), when they have them.
  EXPECT_EQ(sample_frame_indices(10, 30, 2), (std::vector<size_t>{0, 3, 6, 9}));
  EXPECT_EQ(sample_frame_indices(3, 30, 2), (std::vector<size_t>{0, 2}));
  EXPECT_EQ(sample_frame_indices(2, 30, 2), (std::vector<size_t>{0, 1}));
  // 9.15 frames round down to an even 8.
  EXPECT_EQ(sample_frame_indices(61, 10, 1.5), (std::vector<size_t>{0, 9, 17, 26, 34, 43, 51, 60}));
  // Long videos stop at FPS_MAX_FRAMES (768).
  const auto many = sample_frame_indices(100000, 30, 2);
  ASSERT_EQ(many.size(), 768u);
  EXPECT_EQ(many.front(), 0u);
  EXPECT_EQ(many.back(), 99999u);
  EXPECT_TRUE(std::is_sorted(many.begin(), many.end()));
  // Upsampling never repeats frames: at most every frame.
  EXPECT_EQ(sample_frame_indices(6, 1, 30), (std::vector<size_t>{0, 1, 2, 3, 4, 5}));

  EXPECT_NE(error_of([] { sample_frame_indices(1, 30, 2); }).find("at least 2 frames"), std::string::npos);
  EXPECT_NE(error_of([] { sample_frame_indices(100, 0, 2); }).find("fps"), std::string::npos);
  EXPECT_NE(error_of([] { sample_frame_indices(100, 30, NAN); }).find("fps"), std::string::npos);
}

TEST(Vision, RefusesBadArguments) {
  using tessera::data::preprocess_images;
  EXPECT_NE(error_of([] { preprocess_images({}); }).find("no frames"), std::string::npos);
  Image broken;
  broken.width = 4;
  broken.height = 4;
  broken.rgb.resize(10);
  EXPECT_NE(error_of([&] { preprocess_images({broken}); }).find("frame 0"), std::string::npos);
  Image fine;
  fine.width = 4;
  fine.height = 4;
  fine.rgb.resize(48);
  VisionConfig bad;
  bad.merge_size = 0;
  EXPECT_NE(error_of([&] { preprocess_images({fine}, bad); }).find("merge_size"), std::string::npos);
  VisionConfig zero_std;
  zero_std.std[1] = 0;
  EXPECT_NE(error_of([&] { preprocess_images({fine}, zero_std); }).find("std"), std::string::npos);
  EXPECT_NE(error_of([&] { tessera::data::resize_bicubic(fine, 0, 3); }).find("target size"), std::string::npos);
  EXPECT_NE(error_of([] { tessera::data::smart_resize(0, 10, 28, 3136, 1003520); }).find("positive"),
            std::string::npos);
  EXPECT_NE(error_of([] { tessera::data::smart_resize(10, 10, 28, 0, 1003520); }).find("raise min_pixels"),
            std::string::npos);
  // A 1 x 201 strip is refused, as transformers refuses it.
  EXPECT_NE(error_of([] { tessera::data::smart_resize(1, 201, 28, 3136, 1003520); }).find("aspect ratio"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------
// Bad files: each is a tessera::Error naming the file, never a crash.

class VisionBadInput : public tessera::testing::TempDirTest {
 protected:
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  // The error for decoding `bytes` saved as `name`; checks it names the file.
  std::string error_for(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = write(name, bytes);
    const std::string message = error_of([&] { tessera::data::decode_image(path); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    return message;
  }
  static std::vector<uint8_t> golden(const std::string& name) { return read_bytes(image_path(name)); }
  static std::vector<uint8_t> head(std::vector<uint8_t> bytes, size_t n) {
    bytes.resize(n);
    return bytes;
  }
};

TEST_F(VisionBadInput, EmptyFile) { EXPECT_NE(error_for("empty.png", {}).find("empty"), std::string::npos); }

TEST_F(VisionBadInput, TextFileNamedPng) {
  const std::string text = "hello, this is not an image\n";
  const std::string message = error_for("text.png", std::vector<uint8_t>(text.begin(), text.end()));
  EXPECT_NE(message.find("not a PNG or JPEG"), std::string::npos) << message;
  const std::vector<uint8_t> gif = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0};
  EXPECT_NE(error_for("anim.gif", gif).find("47 49 46 38"), std::string::npos);
}

TEST_F(VisionBadInput, MissingFileAndDirectory) {
  EXPECT_NE(error_of([&] { tessera::data::decode_image((dir_ / "nope.png").string()); }).find("nope.png"),
            std::string::npos);
  EXPECT_NE(error_of([&] { tessera::data::decode_image(dir_.string()); }).find("cannot read image file"),
            std::string::npos);
}

TEST_F(VisionBadInput, TruncatedPng) {
  const auto png = golden("rgb8_67x45.png");
  // The last: only IEND, the IDAT CRC and the zlib checksum are missing. PIL still decodes that (every row
  // arrived); tessera requires complete image data.
  for (size_t n : {8ul, 20ul, 40ul, png.size() / 2, png.size() - 20}) {
    SCOPED_TRACE(n);
    const std::string message = error_for("cut.png", head(png, n));
    EXPECT_NE(message.find("PNG is truncated"), std::string::npos) << message;
  }
  // Only IEND missing: PIL decodes it, and so does tessera.
  const Image image = tessera::data::decode_image_bytes(head(png, png.size() - 12), "no-iend.png");
  EXPECT_EQ(image.rgb, tessera::data::decode_image(image_path("rgb8_67x45.png")).rgb);
  // Interlaced images are read whole: the same check holds.
  const auto interlaced = golden("rgb8_interlaced_53x38.png");
  EXPECT_NE(error_for("cut-interlaced.png", head(interlaced, interlaced.size() / 2)).find("truncated"),
            std::string::npos);
}

TEST_F(VisionBadInput, CorruptPng) {
  auto png = golden("rgb8_67x45.png");
  png[png.size() / 2] ^= 0x55;  // inside IDAT: its CRC no longer matches
  EXPECT_NE(error_for("crc.png", png).find("not a readable PNG"), std::string::npos);
  // A bad CRC on an ancillary chunk before the image data (tRNS here) is refused, as PIL refuses it.
  auto trns = golden("gray8_trns_41x29.png");
  const std::string tag = "tRNS";
  const auto at = std::search(trns.begin(), trns.end(), tag.begin(), tag.end());
  ASSERT_NE(at, trns.end());
  *(at + 4) ^= 0x01;  // first data byte
  EXPECT_NE(error_for("trns-crc.png", trns).find("CRC"), std::string::npos);
  auto header = golden("rgb8_67x45.png");
  header[16] = header[17] = header[18] = header[19] = 0;  // width 0
  EXPECT_NE(error_for("zero-width.png", header).find("not a readable PNG"), std::string::npos);
}

TEST_F(VisionBadInput, TruncatedJpeg) {
  for (const char* name : {"baseline420_97x71.jpg", "progressive422_97x71.jpg"}) {
    const auto jpeg = golden(name);
    for (size_t n : {3ul, 100ul, jpeg.size() / 2, jpeg.size() - 2}) {  // the last: only EOI missing (PIL refuses too)
      SCOPED_TRACE(std::string(name) + " " + std::to_string(n));
      const std::string message = error_for("cut.jpg", head(jpeg, n));
      EXPECT_TRUE(message.find("JPEG is truncated") != std::string::npos ||
                  message.find("not a readable JPEG") != std::string::npos)
          << message;
    }
  }
}

// An 8-byte IHDR claiming 20000 x 20000 (4e8 pixels): refused from the header, before any pixel buffer.
TEST_F(VisionBadInput, HugePngDimensions) {
  auto png = golden("rgb8_67x45.png");
  const uint8_t dims[8] = {0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20};
  std::memcpy(png.data() + 16, dims, 8);
  const uLong crc = crc32(0, png.data() + 12, 17);  // "IHDR" + 13 data bytes
  for (int i = 0; i < 4; ++i) png[29 + static_cast<size_t>(i)] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  const std::string message = error_for("huge.png", png);
  EXPECT_NE(message.find("20000 x 20000"), std::string::npos) << message;
}

TEST_F(VisionBadInput, HugeJpegDimensions) {
  auto jpeg = golden("baseline420_97x71.jpg");
  // SOF0: FF C0, length (2), precision (1), height (2), width (2).
  size_t sof = 2;
  while (sof + 9 < jpeg.size() && !(jpeg[sof] == 0xff && jpeg[sof + 1] == 0xc0)) ++sof;
  ASSERT_LT(sof + 9, jpeg.size());
  jpeg[sof + 5] = jpeg[sof + 7] = 0xfd;  // 65000 x 65000
  jpeg[sof + 6] = jpeg[sof + 8] = 0xe8;
  const std::string message = error_for("huge.jpg", jpeg);
  EXPECT_NE(message.find("65000 x 65000"), std::string::npos) << message;
}

// Seeded byte flips and cuts of every small golden image: each decode either succeeds (libjpeg repairs
// much corrupt entropy-coded data, as in PIL) or throws tessera::Error; nothing else escapes.
TEST_F(VisionBadInput, RandomCorruptionNeverCrashes) {
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  const auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  int decoded = 0, refused = 0;
  for (const auto& entry : fs::directory_iterator(kGolden + "/images")) {
    const std::vector<uint8_t> original = read_bytes(entry.path().string());
    if (original.size() > 60000) continue;  // the big images add time, not coverage
    for (int trial = 0; trial < 40; ++trial) {
      std::vector<uint8_t> bytes = original;
      const int flips = 1 + static_cast<int>(next() % 4);
      for (int f = 0; f < flips; ++f) bytes[next() % bytes.size()] ^= static_cast<uint8_t>(1 + next() % 255);
      if (trial % 5 == 0) bytes.resize(8 + next() % (bytes.size() - 8));
      try {
        const Image image = tessera::data::decode_image_bytes(bytes, entry.path().filename().string(),
                                                              trial % 2 ? AlphaMode::over_white : AlphaMode::drop);
        EXPECT_EQ(image.rgb.size(), static_cast<size_t>(image.width * image.height * 3));
        ++decoded;
      } catch (const tessera::Error& e) {
        EXPECT_NE(std::string(e.what()).find(entry.path().filename().string()), std::string::npos) << e.what();
        ++refused;
      }
    }
  }
  EXPECT_GT(decoded, 0);
  EXPECT_GT(refused, 0);
}

TEST_F(VisionBadInput, GarbageAfterJpegMagic) {
  std::vector<uint8_t> bytes = {0xff, 0xd8, 0xff};
  for (int i = 0; i < 200; ++i) bytes.push_back(static_cast<uint8_t>(i * 37));
  EXPECT_NE(error_for("garbage.jpg", bytes).find("JPEG"), std::string::npos);
}

}  // namespace
