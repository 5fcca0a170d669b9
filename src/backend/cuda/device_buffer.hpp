#pragma once
// An owned device allocation of n elements (cudaMalloc, checked). Moves, never copies; freed on destruction.

#include <cuda_runtime_api.h>

#include <cstdint>
#include <utility>

#include "cuda_check.hpp"

namespace tessera::cuda {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(int64_t n) { resize(n); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Reallocates (contents lost) to exactly n elements; n = 0 frees.
  void resize(int64_t n) {
    release();
    if (n <= 0) return;
    TESSERA_CUDA_CHECK(cudaMalloc(&ptr_, static_cast<size_t>(n) * sizeof(T)));
    n_ = n;
  }
  void release() {
    if (ptr_) cudaFree(ptr_);  // cannot usefully fail on a valid pointer; destructors must not throw
    ptr_ = nullptr;
    n_ = 0;
  }
  T* get() const { return ptr_; }
  int64_t size() const { return n_; }
  bool empty() const { return n_ == 0; }

 private:
  T* ptr_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace tessera::cuda
