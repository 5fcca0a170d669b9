#pragma once
// Small helpers shared by the unit tests.

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <vector>
#include <fstream>
#include <sstream>
#include <string>

#include "tessera/core/error.hpp"
#include "tessera/data/tokenizer.hpp"

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

// The Qwen3 tokenizer, loaded once per test binary (it parses an 11 MB JSON); null when absent.
inline const data::Tokenizer* qwen3_tokenizer() {
  static const std::unique_ptr<data::Tokenizer> tokenizer = []() -> std::unique_ptr<data::Tokenizer> {
    const std::string dir = qwen3_tokenizer_dir();
    if (!std::filesystem::exists(dir + "/tokenizer.json")) return nullptr;
    return std::make_unique<data::Tokenizer>(data::Tokenizer::load(dir));
  }();
  return tokenizer.get();
}

// A fresh directory under the system temp dir, named after the running test (and process, so parallel
// ctest runs never share one), removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "-" + info->name();
    std::replace(name.begin(), name.end(), '/', '_');  // parameterised tests have '/' in their names
    dir_ = std::filesystem::temp_directory_path() / ("tessera-" + std::to_string(::getpid()) + "-" + name);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir() const { return dir_.string(); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // File names in the directory, sorted.
  std::vector<std::string> listing() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::filesystem::path dir_;
};

}  // namespace tessera::testing
