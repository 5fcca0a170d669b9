#pragma once
// Shared by the GPU tests: a skip that names the reason when no GPU is present, device arrays that
// upload/download host vectors, random (never zero) inputs and the relative error measure.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "tessera/backend/cuda_probe.hpp"
#include "tessera/core/error.hpp"

namespace tessera::cuda::test {

// GTEST_SKIP()s the calling test (by name, with the reason) on a machine without a GPU.
#define TESSERA_REQUIRE_GPU()                                                          \
  do {                                                                                 \
    static const ::tessera::cuda::ProbeReport tessera_probe_ = ::tessera::cuda::probe(); \
    if (tessera_probe_.device_count == 0) GTEST_SKIP() << "no GPU: " << tessera_probe_.why_no_device; \
  } while (0)

// The repository root: TESSERA_SOURCE_DIR from the environment (a build carried to another machine runs
// from another checkout path), else the one compiled in.
inline std::string source_dir() {
  const char* env = std::getenv("TESSERA_SOURCE_DIR");
  return env && *env ? env : TESSERA_SOURCE_DIR;
}

inline void check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(rc));
}
#define TESSERA_TEST_CUDA(call) ::tessera::cuda::test::check((call), #call)

inline float to_float(float x) { return x; }
inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
template <class T>
T from_float(float x) {
  if constexpr (std::is_same_v<T, float>) return x; else return __float2bfloat16(x);
}

// A device buffer of n elements of T; freed on destruction.
template <class T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : n_(n) { check(cudaMalloc(&ptr_, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc"); }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { upload(host); }
  ~DeviceArray() { cudaFree(ptr_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* get() { return ptr_; }
  const T* get() const { return ptr_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    check(cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    check(cudaDeviceSynchronize(), "sync before download");
    check(cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return host;
  }
  // Fills with a NaN pattern so a test sees any element a kernel failed to write.
  void poison() { check(cudaMemset(ptr_, 0xff, n_ * sizeof(T)), "poison"); }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

// Uniform in [lo, hi), never exactly zero, deterministic per seed.
inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(n);
  for (auto& x : out) {
    do x = dist(rng); while (x == 0.0f);
  }
  return out;
}
// The values as T, and back to float (what a bf16 kernel actually sees).
template <class T>
std::vector<T> to_type(const std::vector<float>& x) {
  std::vector<T> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = from_float<T>(x[i]);
  return out;
}
template <class T>
std::vector<float> to_floats(const std::vector<T>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = to_float(x[i]);
  return out;
}
template <class T>
std::vector<float> rounded(const std::vector<float>& x) { return to_floats(to_type<T>(x)); }

// ‖got − want‖₂ / ‖want‖₂, NaN-propagating (a NaN anywhere makes it NaN, which fails any `<` check).
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

// The message of the tessera::Error `f` throws, or "no error" when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// bf16 keeps 8 significant bits: one rounding is ≤ 2^-8 relative. Tolerances for bf16 paths are stated as
// multiples of it, derived per op from how many roundings an element passes through.
inline constexpr double kBf16Eps = 1.0 / 256.0;

}  // namespace tessera::cuda::test
