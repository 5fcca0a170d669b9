#pragma once
// Every CUDA, cuBLAS and NCCL call is checked here so a failure names the call, the library's own error
// text and the source line.

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include "tessera/core/error.hpp"

#define TESSERA_CUDA_CHECK(call)                                                                      \
  do {                                                                                                \
    const cudaError_t tessera_cuda_rc_ = (call);                                                      \
    if (tessera_cuda_rc_ != cudaSuccess)                                                              \
      TESSERA_FAIL("{} failed: {} ({})", #call, cudaGetErrorString(tessera_cuda_rc_),                 \
                   cudaGetErrorName(tessera_cuda_rc_));                                               \
  } while (0)

#define TESSERA_NCCL_CHECK(call)                                                                      \
  do {                                                                                                \
    const ncclResult_t tessera_nccl_rc_ = (call);                                                     \
    if (tessera_nccl_rc_ != ncclSuccess)                                                              \
      TESSERA_FAIL("{} failed: {}", #call, ncclGetErrorString(tessera_nccl_rc_));                     \
  } while (0)

#define TESSERA_CUBLAS_CHECK(call)                                                                    \
  do {                                                                                                \
    const cublasStatus_t tessera_cublas_rc_ = (call);                                                 \
    if (tessera_cublas_rc_ != CUBLAS_STATUS_SUCCESS)                                                  \
      TESSERA_FAIL("{} failed: {}", #call, cublasGetStatusString(tessera_cublas_rc_));                \
  } while (0)
