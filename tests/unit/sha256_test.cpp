// SHA-256: the accelerated (SHA-NI) path and the portable one give the same digests on random data of every
// awkward length, streaming in odd pieces equals hashing at once, and files hash as their bytes do.
// (The FIPS 180-4 vectors are checked in tokenizer_test.cpp through data::sha256_hex.)
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <string>

#include "tessera/core/sha256.hpp"
#include "test_support.hpp"

namespace tessera {
namespace {

std::string random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(Sha256, AcceleratedAndPortableAgree) {
  if (!detail::sha256_accelerated()) GTEST_SKIP() << "this CPU has no SHA extensions: only the portable path runs";
  for (size_t n : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 119u, 128u, 1000u, 4096u + 7u, 1u << 20})
    EXPECT_EQ(sha256_hex(random_bytes(n, n)), detail::sha256_hex_portable(random_bytes(n, n))) << n << " bytes";
}

TEST(Sha256, StreamingEqualsOneShot) {
  const std::string data = random_bytes(100000, 7);
  Sha256 h;
  for (size_t at = 0, piece = 1; at < data.size(); at += piece, piece = piece * 3 % 977 + 1)
    h.update(std::string_view(data).substr(at, piece));
  EXPECT_EQ(h.hex_digest(), detail::sha256_hex_portable(data));
}

class Sha256File : public testing::TempDirTest {};

TEST_F(Sha256File, HashesTheBytesAndNamesAMissingFile) {
  const std::string data = random_bytes((16u << 20) + 12345, 3);  // more than one read chunk
  const std::string path = this->path("blob.bin");
  std::ofstream(path, std::ios::binary) << data;
  EXPECT_EQ(sha256_file_hex(path), detail::sha256_hex_portable(data));
  EXPECT_NE(testing::error_of([&] { sha256_file_hex(path + ".missing"); }).find("blob.bin.missing"), std::string::npos);
}

}  // namespace
}  // namespace tessera
