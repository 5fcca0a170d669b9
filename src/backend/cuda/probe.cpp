#include "cuda_check.hpp"
#include "fill.cuh"
#include "tessera/backend/cuda_probe.hpp"

namespace tessera::cuda {

ProbeReport probe() {
  ProbeReport report;
  TESSERA_CUDA_CHECK(cudaRuntimeGetVersion(&report.runtime_version));
  TESSERA_NCCL_CHECK(ncclGetVersion(&report.nccl_version));
  // No driver is normal on build machines: report it instead of failing.
  if (cudaDriverGetVersion(&report.driver_version) != cudaSuccess || report.driver_version == 0) {
    report.why_no_device = "no CUDA driver installed";
    return report;
  }
  const cudaError_t rc = cudaGetDeviceCount(&report.device_count);
  if (rc != cudaSuccess) {
    report.device_count = 0;
    report.why_no_device = cudaGetErrorString(rc);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return report;
  }
  if (report.device_count == 0) {
    report.why_no_device = "the driver reports no CUDA device";
    return report;
  }
  cudaDeviceProp prop{};
  TESSERA_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  report.device_name = prop.name;
  // cuBLAS is linked for the GEMMs to come; creating a handle proves the library loads with this driver.
  cublasHandle_t handle = nullptr;
  TESSERA_CUBLAS_CHECK(cublasCreate(&handle));
  TESSERA_CUBLAS_CHECK(cublasDestroy(handle));
  return report;
}

void fill_roundtrip(float* host, long long n, float value) {
  TESSERA_CHECK(n > 0, "fill_roundtrip needs n > 0, got {}", n);
  float* device = nullptr;
  TESSERA_CUDA_CHECK(cudaSetDevice(0));
  TESSERA_CUDA_CHECK(cudaMalloc(&device, static_cast<size_t>(n) * sizeof(float)));
  const cudaError_t launch = launch_fill(device, n, value, nullptr);
  const cudaError_t copy =
      launch == cudaSuccess ? cudaMemcpy(host, device, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToHost)
                            : launch;
  TESSERA_CUDA_CHECK(cudaFree(device));
  TESSERA_CUDA_CHECK(copy);
}

}  // namespace tessera::cuda
