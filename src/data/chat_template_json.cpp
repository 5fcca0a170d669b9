// JSON written the way the Qwen3 chat template writes it. transformers replaces Jinja's `tojson` filter
// with Python's json.dumps(x, ensure_ascii=False), so tool schemas and tool-call arguments appear in the
// prompt with Python's separators (", " and ": "), key order and float spelling. nlohmann's dump() writes
// no spaces and spells some floats its own way, so the writer is our own.
#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tessera/core/error.hpp"
#include "tessera/data/chat_template.hpp"

namespace tessera::data {
namespace {

using ojson = nlohmann::ordered_json;

// Python's repr(float): the shortest digits that round-trip (std::to_chars gives the same digits, being
// also shortest-then-nearest), written positionally when the decimal exponent is in (-4, 16], else as
// d.ddde+XX with at least two exponent digits.
void append_python_float(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "Infinity" : "-Infinity";
    return;
  }
  if (value == 0.0) {
    out += std::signbit(value) ? "-0.0" : "0.0";
    return;
  }
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::scientific);
  std::string_view sci(buffer, static_cast<size_t>(result.ptr - buffer));
  if (sci.front() == '-') {
    out += '-';
    sci.remove_prefix(1);
  }
  const size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits += c;
  }
  std::string_view exp_text = sci.substr(e_pos + 1);
  const bool exp_negative = exp_text.front() == '-';
  if (exp_text.front() == '-' || exp_text.front() == '+') exp_text.remove_prefix(1);
  int exponent = 0;
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exponent);
  if (exp_negative) exponent = -exponent;

  const int n = static_cast<int>(digits.size());
  const int decimal_point = exponent + 1;  // value = 0.DIGITS * 10^decimal_point
  if (decimal_point > -4 && decimal_point <= 16) {
    if (decimal_point <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-decimal_point), '0');
      out += digits;
    } else if (decimal_point >= n) {
      out += digits;
      out.append(static_cast<size_t>(decimal_point - n), '0');
      out += ".0";
    } else {
      out.append(digits, 0, static_cast<size_t>(decimal_point));
      out += '.';
      out.append(digits, static_cast<size_t>(decimal_point));
    }
    return;
  }
  out += digits[0];
  if (n > 1) {
    out += '.';
    out.append(digits, 1);
  }
  out += exponent < 0 ? "e-" : "e+";
  const int magnitude = std::abs(exponent);
  if (magnitude < 10) out += '0';
  out += std::to_string(magnitude);
}

// json.dumps(ensure_ascii=False) escapes only the quote, the backslash and C0 controls (lowercase hex).
void append_python_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out += kHex[static_cast<unsigned char>(c) >> 4];
          out += kHex[static_cast<unsigned char>(c) & 0xF];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void append_python_json(std::string& out, const ojson& value) {
  switch (value.type()) {
    case ojson::value_t::null: out += "null"; return;
    case ojson::value_t::boolean: out += value.get<bool>() ? "true" : "false"; return;
    case ojson::value_t::number_integer: out += std::to_string(value.get<int64_t>()); return;
    case ojson::value_t::number_unsigned: out += std::to_string(value.get<uint64_t>()); return;
    case ojson::value_t::number_float: append_python_float(out, value.get<double>()); return;
    case ojson::value_t::string: append_python_string(out, value.get_ref<const std::string&>()); return;
    case ojson::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& item : value) {
        if (!first) out += ", ";
        first = false;
        append_python_json(out, item);
      }
      out += ']';
      return;
    }
    case ojson::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : value.items()) {
        if (!first) out += ", ";
        first = false;
        append_python_string(out, key);
        out += ": ";
        append_python_json(out, item);
      }
      out += '}';
      return;
    }
    case ojson::value_t::binary:
    case ojson::value_t::discarded: break;
  }
  TESSERA_FAIL("cannot write a JSON {} value as text", value.type_name());
}

// Finds integer literals that nlohmann had to turn into doubles (beyond 64 bits): Python's json.loads
// keeps them exact, so json.dumps would write digits we cannot reproduce.
class BigIntegerFinder : public nlohmann::json_sax<ojson> {
 public:
  std::string found;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t& text) override {
    if (found.empty() && text.find_first_of(".eE") == std::string::npos) found = text;
    return true;
  }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

}  // namespace

std::string python_json_dumps(const nlohmann::ordered_json& value) {
  std::string out;
  append_python_json(out, value);
  return out;
}

nlohmann::ordered_json parse_json_for_python(const std::string& text, const std::string& where) {
  ojson value;
  try {
    value = ojson::parse(text);
  } catch (const nlohmann::json::exception& e) {
    TESSERA_FAIL("{}: not valid JSON: {}", where, e.what());
  }
  BigIntegerFinder finder;
  ojson::sax_parse(text, &finder);
  TESSERA_CHECK(finder.found.empty(),
                "{}: the integer {} does not fit in 64 bits; Python would keep it exact and tessera cannot "
                "reproduce how the template writes it",
                where, finder.found);
  return value;
}

}  // namespace tessera::data
