#pragma once
// One exception type for everything tessera refuses or fails at. The message says what went wrong in the
// user's terms (file, line, key, tensor); `where()` keeps the source location that raised it so a bug
// report can point at the code without cluttering the user's message.

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace tessera {

class Error : public std::runtime_error {
 public:
  Error(std::string message, std::string where)
      : std::runtime_error(std::move(message)), where_(std::move(where)) {}
  const std::string& where() const noexcept { return where_; }

 private:
  std::string where_;
};

namespace detail {
[[noreturn]] void throw_error(const char* file, int line, std::string message);
}  // namespace detail

}  // namespace tessera

// Refuse with a formatted reason when `cond` is false.
#define TESSERA_CHECK(cond, ...)                                                 \
  do {                                                                           \
    if (!(cond)) ::tessera::detail::throw_error(__FILE__, __LINE__, fmt::format(__VA_ARGS__)); \
  } while (0)

#define TESSERA_FAIL(...) ::tessera::detail::throw_error(__FILE__, __LINE__, fmt::format(__VA_ARGS__))
