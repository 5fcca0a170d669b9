#pragma once
// What the CUDA backend can see on this machine, without requiring a GPU: built with TESSERA_HAVE_CUDA the
// probe asks the runtime, NCCL and cuBLAS; a machine with the toolkit but no driver or device reports why.

#include <string>

namespace tessera::cuda {

struct ProbeReport {
  int runtime_version = 0;  // cudaRuntimeGetVersion, e.g. 13000
  int driver_version = 0;   // 0 when no driver is installed
  int nccl_version = 0;     // ncclGetVersion, e.g. 22703
  int device_count = 0;
  std::string device_name;  // of device 0
  std::string why_no_device;  // empty when device_count > 0
};

ProbeReport probe();

// Fills n floats on device 0 with `value` through a kernel and copies them back into `host`: the smallest
// end-to-end check that kernels launch. Throws tessera::Error (with the CUDA error and file:line) on failure.
void fill_roundtrip(float* host, long long n, float value);

}  // namespace tessera::cuda
