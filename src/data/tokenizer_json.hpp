#pragma once
// Reading tokenizer.json with errors that name the file and the JSON path ("model.merges[12]"), so a user
// can find the offending field. Components tessera does not know are refused, not skipped: an unknown key
// may change the ids.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "tessera/core/error.hpp"

namespace tessera::data {

class JsonField {
 public:
  JsonField(const nlohmann::json& value, std::string path, const std::string& file)
      : value_(&value), path_(std::move(path)), file_(&file) {}

  const std::string& path() const { return path_; }
  const nlohmann::json& raw() const { return *value_; }
  bool is_null() const { return value_->is_null(); }

  template <class... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) const {
    TESSERA_FAIL("{}: {}: {}", *file_, path_.empty() ? "(top level)" : path_,
                 fmt::format(format, std::forward<Args>(args)...));
  }

  // A required member of an object.
  JsonField at(std::string_view key) const {
    expect_object();
    auto it = value_->find(key);
    if (it == value_->end()) child_path_fail(key, "missing");
    return {*it, child(key), *file_};
  }
  // An optional member; absent and null are the same.
  std::optional<JsonField> find(std::string_view key) const {
    expect_object();
    auto it = value_->find(key);
    if (it == value_->end() || it->is_null()) return std::nullopt;
    return JsonField(*it, child(key), *file_);
  }
  // Refuses members outside `known`.
  void only_keys(std::initializer_list<std::string_view> known) const {
    expect_object();
    for (auto it = value_->begin(); it != value_->end(); ++it) {
      bool ok = false;
      for (auto k : known) ok = ok || it.key() == k;
      if (!ok) {
        child_path_fail(it.key(), "unknown key: tessera does not know how it would change the ids");
      }
    }
  }

  std::string string() const {
    if (!value_->is_string()) fail("expected a string, got {}", type());
    return value_->get<std::string>();
  }
  bool boolean() const {
    if (!value_->is_boolean()) fail("expected true or false, got {}", type());
    return value_->get<bool>();
  }
  int64_t integer() const {
    if (!value_->is_number_integer()) fail("expected an integer, got {}", type());
    return value_->get<int64_t>();
  }
  size_t size() const {
    if (!value_->is_array()) fail("expected an array, got {}", type());
    return value_->size();
  }
  JsonField item(size_t i) const { return {(*value_)[i], fmt::format("{}[{}]", path_, i), *file_}; }
  void expect_object() const {
    if (!value_->is_object()) fail("expected an object, got {}", type());
  }
  // The "type" member of a component, which every HF component has.
  std::string type_name() const { return at("type").string(); }

 private:
  std::string type() const {
    if (value_->is_string()) return fmt::format("the string \"{}\"", value_->get<std::string>());
    return value_->type_name();
  }
  std::string child(std::string_view key) const { return path_.empty() ? std::string(key) : path_ + "." + std::string(key); }
  [[noreturn]] void child_path_fail(std::string_view key, std::string_view what) const {
    TESSERA_FAIL("{}: {}: {}", *file_, child(key), what);
  }

  const nlohmann::json* value_;
  std::string path_;
  const std::string* file_;
};

}  // namespace tessera::data
