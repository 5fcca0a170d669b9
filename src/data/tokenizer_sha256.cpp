// The tokenizer's digest (recorded in data files) is the core SHA-256 of its tokenizer.json bytes.
#include "tessera/core/sha256.hpp"
#include "tessera/data/tokenizer.hpp"

namespace tessera::data {

std::string sha256_hex(std::string_view bytes) { return tessera::sha256_hex(bytes); }

}  // namespace tessera::data
