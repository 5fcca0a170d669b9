#include <type_traits>

#include "cuda_check.hpp"
#include "tessera/backend/cuda/gpu_model.hpp"
#include "tessera/backend/cuda/ops.hpp"

namespace tessera::cuda {

template <class T>
DeviceParameters<T>::DeviceParameters(const model::ParameterStore& store)
    : numel_(static_cast<int64_t>(store.values().size())) {
  TESSERA_CHECK(numel_ > 0, "the parameter store is empty");
  const auto bytes = static_cast<size_t>(numel_) * sizeof(float);
  TESSERA_CUDA_CHECK(cudaMalloc(&master_, bytes));
  TESSERA_CUDA_CHECK(cudaMalloc(&grads_, bytes));
  if constexpr (std::is_same_v<T, float>) {
    compute_ = master_;
  } else {
    TESSERA_CUDA_CHECK(cudaMalloc(&compute_, static_cast<size_t>(numel_) * sizeof(T)));
  }
}

template <class T>
DeviceParameters<T>::~DeviceParameters() {
  if constexpr (!std::is_same_v<T, float>) cudaFree(compute_);
  cudaFree(grads_);
  cudaFree(master_);
}

template <class T>
void DeviceParameters<T>::upload_values(const model::ParameterStore& store, cudaStream_t stream) {
  TESSERA_CHECK(static_cast<int64_t>(store.values().size()) == numel_, "store has {} values, device copy {}",
                store.values().size(), numel_);
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(master_, store.values().data(), static_cast<size_t>(numel_) * sizeof(float),
                                     cudaMemcpyHostToDevice, stream));
  refresh_compute(stream);
  // The host buffer may change once this returns.
  TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream));
}

template <class T>
void DeviceParameters<T>::refresh_compute(cudaStream_t stream) {
  if constexpr (!std::is_same_v<T, float>) TESSERA_CUDA_CHECK((convert<T, float>(compute_, master_, numel_, stream)));
}

template <class T>
void DeviceParameters<T>::download_values(model::ParameterStore& store, cudaStream_t stream) const {
  TESSERA_CHECK(static_cast<int64_t>(store.values().size()) == numel_, "store size mismatch");
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(store.values().data(), master_, static_cast<size_t>(numel_) * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream));
  TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream));
}

template <class T>
void DeviceParameters<T>::download_grads(model::ParameterStore& store, cudaStream_t stream) const {
  TESSERA_CHECK(store.has_grads() && static_cast<int64_t>(store.grads().size()) == numel_,
                "store has no gradient buffer of the device's size");
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(store.grads().data(), grads_, static_cast<size_t>(numel_) * sizeof(float),
                                     cudaMemcpyDeviceToHost, stream));
  TESSERA_CUDA_CHECK(cudaStreamSynchronize(stream));
}

template <class T>
void DeviceParameters<T>::zero_grads(cudaStream_t stream) {
  TESSERA_CUDA_CHECK(cudaMemsetAsync(grads_, 0, static_cast<size_t>(numel_) * sizeof(float), stream));
}

template class DeviceParameters<float>;
template class DeviceParameters<bf16>;

}  // namespace tessera::cuda
