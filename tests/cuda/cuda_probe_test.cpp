#include <gtest/gtest.h>

#include <vector>

#include "tessera/backend/cuda_probe.hpp"

namespace tessera::cuda {
namespace {

TEST(CudaProbe, ReportsRuntimeAndNccl) {
  const ProbeReport r = probe();
  EXPECT_GE(r.runtime_version, 12000);
  EXPECT_GE(r.nccl_version, 21800);
  EXPECT_EQ(r.device_count > 0, r.why_no_device.empty()) << r.why_no_device;
}

TEST(CudaProbe, KernelFillsDeviceMemory) {
  const ProbeReport r = probe();
  if (r.device_count == 0) GTEST_SKIP() << "no GPU: " << r.why_no_device;
  std::vector<float> host(1 << 20, 0.0f);
  fill_roundtrip(host.data(), static_cast<long long>(host.size()), 3.25f);
  for (size_t i = 0; i < host.size(); ++i) ASSERT_EQ(host[i], 3.25f) << "at " << i;
}

}  // namespace
}  // namespace tessera::cuda
