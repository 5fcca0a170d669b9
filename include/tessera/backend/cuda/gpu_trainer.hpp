#pragma once
// train::Trainer on one GPU: the same step (loss = mean CE over the step's targets + router losses,
// gradients summed over microbatches, global-norm clip, AdamW with the configured schedule) over the GPU
// decoder. train.precision picks the compute type: fp32 (exact path) or bf16 (fp32 master weights).
// Parameters are initialised exactly as the CPU trainer does (same seed → same initial weights).

#include <memory>
#include <vector>

#include <cuda_runtime_api.h>

#include "tessera/backend/cuda/phase_timer.hpp"
#include "tessera/core/config.hpp"
#include "tessera/model/batch.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/train/trainer.hpp"

namespace tessera::cuda {

class GpuTrainer {
 public:
  explicit GpuTrainer(const Config& config, cudaStream_t stream = nullptr);
  ~GpuTrainer();
  GpuTrainer(const GpuTrainer&) = delete;
  GpuTrainer& operator=(const GpuTrainer&) = delete;

  train::StepStats step(const std::vector<model::Batch>& microbatches);
  // The current master weights (downloaded into the host store, which is returned).
  model::ParameterStore& download_parameters();
  int64_t steps_taken() const;
  // Marks the step's phases (the decoder's, then grad norm and optimizer) on `timer`; null stops.
  void set_timer(PhaseTimer* timer);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::cuda
