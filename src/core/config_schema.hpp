#pragma once
// The one description of every config field: where it lives (section.key), what it means, its type and its
// allowed values, bound to a Config instance. The loader, the resolved printer and the markdown reference
// all walk this list, so none of them can drift from the structs.

#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>
#include <vector>

#include "tessera/core/config.hpp"

namespace tessera::config_detail {

// Where a value came from, for error messages: "configs/x.yaml:12" or "--set model.hidden_size=3".
struct Origin {
  std::string text;
};

struct Field {
  std::string section;
  std::string key;
  std::string type;     // "int", "float", "bool", "string", "list of int", or "enum"
  std::string allowed;  // human-readable range or choices; empty when anything of the type goes
  std::string doc;
  std::function<std::string()> get;  // the value as a YAML flow scalar / sequence
  std::function<void(const YAML::Node&, const Origin&)> set;  // converts, checks, assigns or throws

  std::string path() const { return section + "." + key; }
};

std::vector<Field> bind_fields(Config& config);

// The sections in schema order, for printing.
const std::vector<std::string>& section_names();

}  // namespace tessera::config_detail
