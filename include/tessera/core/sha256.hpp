#pragma once
// SHA-256 (FIPS 180-4): data files record their tokenizer's digest, checkpoints every file's. Hashes whole
// buffers or streams (files in chunks); uses the CPU's SHA extensions (x86 SHA-NI) when present — several
// times faster, the same digests — and portable code otherwise.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace tessera {

class Sha256 {
 public:
  Sha256();
  void update(std::span<const std::byte> bytes);
  void update(std::string_view bytes);
  // Lower-case hex of the digest; the object is spent afterwards.
  std::string hex_digest();

 private:
  std::array<uint32_t, 8> state_;
  std::array<unsigned char, 64> buffer_{};
  size_t buffered_ = 0;
  uint64_t length_ = 0;
};

std::string sha256_hex(std::string_view bytes);
// The file's digest, read in chunks (never whole into memory). Throws naming the file on a read error.
std::string sha256_file_hex(const std::string& path);

namespace detail {
// The portable implementation alone, for tests that compare it with the accelerated one.
std::string sha256_hex_portable(std::string_view bytes);
bool sha256_accelerated();
}  // namespace detail

}  // namespace tessera
