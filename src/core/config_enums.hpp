#pragma once
// Names of the config enums, in enum order: the YAML spelling is the enum's name.

#include <array>
#include <string_view>

#include "tessera/core/config.hpp"

namespace tessera::config_detail {

template <class Enum>
struct EnumNames;
template <>
struct EnumNames<Architecture> {
  static constexpr std::array<std::string_view, 4> names = {"qwen3", "qwen3_moe", "qwen2", "llama"};
};
template <>
struct EnumNames<Precision> {
  static constexpr std::array<std::string_view, 2> names = {"bf16", "fp32"};
};
template <>
struct EnumNames<Device> {
  static constexpr std::array<std::string_view, 2> names = {"cpu", "cuda"};
};
template <>
struct EnumNames<Recompute> {
  static constexpr std::array<std::string_view, 3> names = {"none", "selective", "full"};
};
template <>
struct EnumNames<LrDecay> {
  static constexpr std::array<std::string_view, 3> names = {"cosine", "linear", "constant"};
};
template <>
struct EnumNames<LogLevel> {
  static constexpr std::array<std::string_view, 4> names = {"debug", "info", "warn", "error"};
};

template <class Enum>
constexpr auto enum_names() {
  return EnumNames<Enum>::names;
}

template <class Enum>
constexpr std::string_view enum_name(Enum value) {
  return EnumNames<Enum>::names.at(static_cast<size_t>(value));
}

}  // namespace tessera::config_detail
