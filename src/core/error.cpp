#include "tessera/core/error.hpp"

namespace tessera::detail {

void throw_error(const char* file, int line, std::string message) {
  throw Error(std::move(message), fmt::format("{}:{}", file, line));
}

}  // namespace tessera::detail
