#include <cmath>
#include <type_traits>
#include <vector>

#include "cuda_check.hpp"
#include "device_buffer.hpp"
#include "tessera/backend/cuda/gpu_model.hpp"
#include "tessera/backend/cuda/ops.hpp"
#include "tessera/train/tree_sum.hpp"

namespace tessera::cuda {

namespace {
// The CPU's block, so both norms add the same partial sums in the same order.
constexpr auto kNormBlock = static_cast<int64_t>(train::kNormBlock);
}  // namespace

template <class T>
struct GpuAdamW<T>::Impl {
  OptimConfig config;
  const model::ParameterStore& store;
  DeviceParameters<T>& params;
  cudaStream_t stream;
  DeviceBuffer<float> m, v;
  DeviceBuffer<double> partials;
  std::vector<double> host_partials;
  int64_t steps = 0;

  Impl(const OptimConfig& c, const model::ParameterStore& s, DeviceParameters<T>& p, cudaStream_t st)
      : config(c), store(s), params(p), stream(st), m(p.size()), v(p.size()),
        partials((p.size() + kNormBlock - 1) / kNormBlock),
        host_partials(static_cast<size_t>(partials.size())) {
    TESSERA_CUDA_CHECK(cudaMemsetAsync(m.get(), 0, static_cast<size_t>(m.size()) * sizeof(float), stream));
    TESSERA_CUDA_CHECK(cudaMemsetAsync(v.get(), 0, static_cast<size_t>(v.size()) * sizeof(float), stream));
  }
};

template <class T>
GpuAdamW<T>::GpuAdamW(const OptimConfig& config, const model::ParameterStore& store, DeviceParameters<T>& params,
                      cudaStream_t stream)
    : impl_(std::make_unique<Impl>(config, store, params, stream)) {}
template <class T>
GpuAdamW<T>::~GpuAdamW() = default;

template <class T>
double GpuAdamW<T>::grad_norm() {
  Impl& s = *impl_;
  TESSERA_CUDA_CHECK(sum_squares_blocks(s.partials.get(), s.params.grads(), s.params.size(), kNormBlock, s.stream));
  TESSERA_CUDA_CHECK(cudaMemcpyAsync(s.host_partials.data(), s.partials.get(), s.host_partials.size() * sizeof(double),
                                     cudaMemcpyDeviceToHost, s.stream));
  TESSERA_CUDA_CHECK(cudaStreamSynchronize(s.stream));
  double sum = 0;
  for (double p : s.host_partials) sum += p;  // in block order, like the CPU's sum_in_order
  return std::sqrt(sum);
}

template <class T>
void GpuAdamW<T>::step(double lr, double grad_scale) {
  Impl& s = *impl_;
  ++s.steps;
  AdamWArgs args;
  args.lr = static_cast<float>(lr);
  args.beta1 = static_cast<float>(s.config.beta1);
  args.beta2 = static_cast<float>(s.config.beta2);
  args.eps = static_cast<float>(s.config.eps);
  args.bias_correction1 = static_cast<float>(1.0 - std::pow(s.config.beta1, static_cast<double>(s.steps)));
  args.bias_correction2 = static_cast<float>(1.0 - std::pow(s.config.beta2, static_cast<double>(s.steps)));
  args.grad_scale = static_cast<float>(grad_scale);
  // One launch per run of tensors that share the weight-decay flag: ranges are contiguous in the store.
  size_t t = 0;
  while (t < s.store.size()) {
    const bool decay = s.store.spec(t).weight_decay;
    size_t end = t + 1;
    while (end < s.store.size() && s.store.spec(end).weight_decay == decay) ++end;
    const auto first = static_cast<int64_t>(s.store.offset(t));
    const auto n = static_cast<int64_t>(s.store.offset(end - 1) + s.store.numel(end - 1)) - first;
    args.weight_decay = decay ? static_cast<float>(s.config.weight_decay) : 0.0f;
    T* compute = std::is_same_v<T, float> ? nullptr : s.params.compute() + first;
    TESSERA_CUDA_CHECK(adamw_update<T>(s.params.master() + first, compute, s.params.grads() + first, s.m.get() + first,
                                       s.v.get() + first, n, args, s.stream));
    t = end;
  }
}

template <class T>
int64_t GpuAdamW<T>::steps_taken() const {
  return impl_->steps;
}

template class GpuAdamW<float>;
template class GpuAdamW<bf16>;

}  // namespace tessera::cuda
