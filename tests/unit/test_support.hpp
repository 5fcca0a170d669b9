#pragma once
// Small helpers shared by the unit tests.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tessera/core/error.hpp"

namespace tessera::testing {

// The message of the tessera::Error `fn` throws; records a failure if it throws nothing.
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected tessera::Error";
  return "";
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The Qwen3 tokenizer directory: the project's shared copy when present, else the one CMake extracted
// from data/tokenizers (the same bytes, hash-checked at configure time).
inline std::string qwen3_tokenizer_dir() {
  const std::string shared = std::string(TESSERA_SOURCE_DIR) + "/../shared/data/qwen3-tokenizer";
  if (std::filesystem::exists(shared + "/tokenizer.json")) return shared;
  return TESSERA_BUNDLED_TOKENIZER;
}

// A fresh directory under the system temp dir, named after the running test, removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           ("tessera-" + std::string(info->test_suite_name()) + "-" + std::string(info->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
};

}  // namespace tessera::testing
