#pragma once
// The decoder (model/decoder.hpp) on one GPU: the same function, the same parameter registry, explicit
// forward and backward over packed rows, now with the CUDA kernels.
//
// Precision: T = float computes in fp32 throughout (checked against the CPU reference to 1e-5); T = bf16
// keeps fp32 master weights, fp32 gradients and the fp32 residual stream, and computes every GEMM, the
// attention and the activations in bf16 with fp32 accumulation (Megatron's bf16 recipe).
//
// Memory: parameters live in one device buffer laid out exactly like the host ParameterStore (the same
// offsets), so host↔device copies, the optimizer and gradient reduction work on flat ranges.
// Activation recompute: flash attention never stores the softmax, which is what `selective` saves on the
// CPU, so `selective` and `none` are the same here; `full` is refused (not built for the GPU yet).

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include "tessera/core/config.hpp"
#include "tessera/model/batch.hpp"
#include "tessera/model/decoder.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/backend/cuda/phase_timer.hpp"

namespace tessera::cuda {

using bf16 = __nv_bfloat16;

// fp32 master values, fp32 gradients and (for bf16) the compute copy, at the host store's offsets.
template <class T>
class DeviceParameters {
 public:
  explicit DeviceParameters(const model::ParameterStore& store);
  ~DeviceParameters();
  DeviceParameters(const DeviceParameters&) = delete;
  DeviceParameters& operator=(const DeviceParameters&) = delete;

  int64_t size() const { return numel_; }
  float* master() const { return master_; }
  float* grads() const { return grads_; }
  T* compute() const { return compute_; }  // == master() when T is float

  // Host → device values (and the compute copy); device → host values / gradients.
  void upload_values(const model::ParameterStore& store, cudaStream_t stream);
  void download_values(model::ParameterStore& store, cudaStream_t stream) const;
  void download_grads(model::ParameterStore& store, cudaStream_t stream) const;
  void zero_grads(cudaStream_t stream);
  // Re-derives the compute copy from the master values (after an update that did not write it).
  void refresh_compute(cudaStream_t stream);

 private:
  int64_t numel_ = 0;
  float* master_ = nullptr;
  float* grads_ = nullptr;
  T* compute_ = nullptr;
};

template <class T>
class GpuDecoder {
 public:
  // `store` gives the specs and offsets (and must outlive the decoder); `params` holds the device copies.
  GpuDecoder(const ModelConfig& config, const model::ParameterStore& store, DeviceParameters<T>& params,
             int64_t max_tokens, int64_t max_sample_length, Recompute recompute, cudaStream_t stream);
  ~GpuDecoder();
  GpuDecoder(const GpuDecoder&) = delete;
  GpuDecoder& operator=(const GpuDecoder&) = delete;

  // Same contract as model::Decoder::forward/backward; gradients accumulate into params.grads().
  model::ForwardLoss forward(const model::Batch& batch);
  void backward(float ce_scale, float aux_scale, float z_scale = 0.0f);
  // Logits [tokens, vocab] of the last forward as fp32 on the host (valid until backward).
  std::vector<float> logits() const;
  cudaStream_t stream() const;
  // Marks each phase (per layer: attention, MLP/MoE; forward and backward) on `timer`; null stops.
  void set_timer(PhaseTimer* timer);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// torch.optim.AdamW over every parameter (fp32 state on the device), with the global grad-norm clip and
// the learning-rate schedule of train/optimizer.hpp. Weight decay follows each spec's weight_decay flag.
template <class T>
class GpuAdamW {
 public:
  GpuAdamW(const OptimConfig& config, const model::ParameterStore& store, DeviceParameters<T>& params,
           cudaStream_t stream);
  ~GpuAdamW();
  // sqrt(Σ g²) over all gradients, fp64 block sums added in order (reproducible).
  double grad_norm();
  // One update with learning rate lr; the gradients are scaled by `grad_scale` first (the clip coefficient).
  void step(double lr, double grad_scale);
  int64_t steps_taken() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::cuda
