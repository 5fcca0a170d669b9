#pragma once
#include <cuda_runtime.h>

namespace tessera::cuda {

// Writes `value` into n floats at `device` on `stream`; returns the launch error.
cudaError_t launch_fill(float* device, long long n, float value, cudaStream_t stream);

}  // namespace tessera::cuda
