// Device selection and memory queries. The environment tests need no GPU: this binary runs without
// MPI_Init, so local_rank_from_environment() falls back to 0 when no launcher variable is set.

#include "tessera/backend/cuda/device.hpp"

#include <gtest/gtest.h>


#include <cstdlib>
#include <optional>
#include <string>

#include "cuda_test_support.hpp"
#include "tessera/core/error.hpp"

namespace tessera::cuda {
namespace {

using test::error_of;

// Sets (or, with nullopt, unsets) an environment variable for a scope, restoring it afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      setenv(name, value->c_str(), 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      setenv(name_, old_->c_str(), 1);
    else
      unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(LocalRank, OpenMpiVariableFirst) {
  ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", "3"), slurm("SLURM_LOCALID", "5");
  EXPECT_EQ(local_rank_from_environment(), 3);
}

TEST(LocalRank, SlurmVariableWhenOpenMpiIsAbsent) {
  ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", std::nullopt), slurm("SLURM_LOCALID", "5");
  EXPECT_EQ(local_rank_from_environment(), 5);
  ScopedEnv empty("OMPI_COMM_WORLD_LOCAL_RANK", "");  // empty counts as unset
  EXPECT_EQ(local_rank_from_environment(), 5);
}

TEST(LocalRank, ZeroWithoutLauncherOrMpi) {
  ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", std::nullopt), slurm("SLURM_LOCALID", std::nullopt);
  EXPECT_EQ(local_rank_from_environment(), 0);
}

TEST(LocalRank, RefusesValuesThatAreNotLocalRanks) {
  ScopedEnv slurm("SLURM_LOCALID", std::nullopt);
  for (const char* bad : {"abc", "-1", "2x", "99999999999999999999"}) {
    ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", bad);
    const std::string message = error_of([] { local_rank_from_environment(); });
    EXPECT_NE(message.find("OMPI_COMM_WORLD_LOCAL_RANK"), std::string::npos) << bad << ": " << message;
    EXPECT_NE(message.find("is not a local rank"), std::string::npos) << bad << ": " << message;
  }
}

TEST(SelectDevice, SelectsTheLocalRanksDevice) {
  TESSERA_REQUIRE_GPU();
  EXPECT_EQ(select_device(0), 0);
  int current = -1;
  TESSERA_TEST_CUDA(cudaGetDevice(&current));
  EXPECT_EQ(current, 0);
}

TEST(SelectDevice, RefusesMoreRanksThanDevicesNamingBoth) {
  TESSERA_REQUIRE_GPU();
  const int count = device_count();
  ASSERT_GT(count, 0);
  const std::string message = error_of([&] { select_device(count + 1); });
  EXPECT_NE(message.find(fmt::format("local rank {} needs GPU {}", count + 1, count + 1)), std::string::npos) << message;
  EXPECT_NE(message.find(fmt::format("shows {} CUDA device(s)", count)), std::string::npos) << message;
  EXPECT_NE(error_of([] { select_device(-1); }).find("local rank -1 is negative"), std::string::npos);
}

TEST(DeviceMemory, ReportsFreeAndTotal) {
  TESSERA_REQUIRE_GPU();
  TESSERA_TEST_CUDA(cudaSetDevice(0));
  const DeviceMemory before = query_device_memory();
  EXPECT_GT(before.total, 0u);
  EXPECT_LE(before.free, before.total);

  constexpr std::size_t kBytes = 256u << 20;
  void* block = nullptr;
  TESSERA_TEST_CUDA(cudaMalloc(&block, kBytes));
  const DeviceMemory during = query_device_memory();
  EXPECT_LE(during.free + kBytes / 2, before.free);  // loose: the driver rounds and other users come and go
  TESSERA_TEST_CUDA(cudaFree(block));
}

}  // namespace
}  // namespace tessera::cuda
