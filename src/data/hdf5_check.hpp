#pragma once
// Checked HDF5 calls for the data layer. Every call goes through TESSERA_H5_CHECK, which turns a failure
// into a tessera::Error that says what we were doing (file, dataset, row), which call failed, and the
// innermost entries of HDF5's error stack (e.g. "truncated file: eof = 1024, sblock->base_addr = 0"),
// with the source file:line in where(). HDF5's automatic printing of the stack to stderr is switched off
// while our code runs (H5Quiet) so a refused file gives one clean message, not a page of stack dump.
// The library here is built thread-safe: the error stack and its auto-print setting are per thread.

#include <hdf5.h>

#include <string>
#include <utility>
#include <vector>

#include "tessera/core/error.hpp"

namespace tessera::data::h5 {

// The most specific entries of this thread's HDF5 error stack, innermost first, then clears it.
inline std::string error_stack_summary() {
  std::vector<std::string> entries;
  const auto walk = [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
    auto* list = static_cast<std::vector<std::string>*>(out);
    char minor[128] = "";
    H5Eget_msg(e->min_num, nullptr, minor, sizeof(minor));
    const char* desc = e->desc != nullptr ? e->desc : "";
    list->push_back(fmt::format("{}(): {}{}{}", e->func_name != nullptr ? e->func_name : "?", desc,
                                (*desc != '\0' && minor[0] != '\0') ? " - " : "", minor));
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, &entries);
  H5Eclear2(H5E_DEFAULT);
  if (entries.empty()) return "no HDF5 error stack";
  // The innermost entries carry the cause; the outer ones only repeat which API call failed.
  if (entries.size() > 3) entries.resize(3);
  std::string out;
  for (size_t i = 0; i < entries.size(); ++i) out += (i == 0 ? "" : "; ") + entries[i];
  return out;
}

template <typename T, typename Context>
T checked(T result, const char* call, const char* file, int line, Context&& context) {
  if (result >= 0) return result;
  ::tessera::detail::throw_error(file, line,
                                 fmt::format("{}: {} failed: {}", context(), call, error_stack_summary()));
}

// Silences HDF5's automatic error printing for this thread while alive; restores the caller's handler.
class Quiet {
 public:
  Quiet() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~Quiet() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  Quiet(const Quiet&) = delete;
  Quiet& operator=(const Quiet&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// An owned HDF5 identifier, closed with the matching H5?close when it goes out of scope.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      close_ = o.close_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Close now; a failure to close is ignored here (destructors must not throw). Callers that must know
  // (the writer's final file close) use close_checked().
  void reset() {
    if (id_ >= 0 && close_ != nullptr) close_(id_);
    id_ = H5I_INVALID_HID;
  }
  herr_t release_and_close() {
    const herr_t rc = (id_ >= 0 && close_ != nullptr) ? close_(id_) : 0;
    id_ = H5I_INVALID_HID;
    return rc;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

}  // namespace tessera::data::h5

// Evaluates an HDF5 call; a negative result throws tessera::Error with the formatted context, the call's
// text and the HDF5 error stack summary. Yields the call's result otherwise.
#define TESSERA_H5_CHECK(call, ...) \
  ::tessera::data::h5::checked((call), #call, __FILE__, __LINE__, [&] { return fmt::format(__VA_ARGS__); })
