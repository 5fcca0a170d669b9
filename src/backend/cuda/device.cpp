#include "tessera/backend/cuda/device.hpp"

#include <mpi.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "cuda_check.hpp"
#include "tessera/core/error.hpp"
#include "tessera/dist/mpi_check.hpp"

namespace tessera::cuda {

namespace {


// The variable as a local rank; -1 when unset or empty.
int local_rank_variable(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return -1;
  errno = 0;
  char* end = nullptr;
  const long parsed = std::strtol(value, &end, 10);
  TESSERA_CHECK(errno == 0 && *end == '\0' && parsed >= 0 && parsed <= 1 << 20,
                "{}={:?} is not a local rank (a non-negative integer)", name, std::string(value));
  return static_cast<int>(parsed);
}

}  // namespace

int local_rank_from_environment() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID"})
    if (const int rank = local_rank_variable(name); rank >= 0) return rank;
  int initialized = 0, finalized = 0;
  TESSERA_MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) return 0;
  TESSERA_MPI_CHECK(MPI_Finalized(&finalized));
  if (finalized) return 0;
  MPI_Comm node = MPI_COMM_NULL;
  TESSERA_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int rank = 0;
  const int rc = MPI_Comm_rank(node, &rank);
  MPI_Comm_free(&node);
  TESSERA_MPI_CHECK(rc);
  return rank;
}

int device_count() {
  int count = 0;
  const cudaError_t rc = cudaGetDeviceCount(&count);
  if (rc != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    TESSERA_FAIL("no usable CUDA device: cudaGetDeviceCount failed: {} ({})", cudaGetErrorString(rc),
                 cudaGetErrorName(rc));
  }
  return count;
}

int select_device(int local_rank) {
  TESSERA_CHECK(local_rank >= 0, "local rank {} is negative", local_rank);
  const int count = device_count();
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  TESSERA_CHECK(local_rank < count,
                "local rank {} needs GPU {}, but this node shows {} CUDA device(s){}: start at most {} rank(s) per "
                "node (mpirun -np / --ntasks-per-node), one per GPU; if the launcher gives each rank its own GPU "
                "through CUDA_VISIBLE_DEVICES, select device 0",
                local_rank, local_rank, count,
                visible ? fmt::format(" (CUDA_VISIBLE_DEVICES={})", visible) : std::string(), count);
  TESSERA_CUDA_CHECK(cudaSetDevice(local_rank));
  return local_rank;
}

DeviceMemory query_device_memory() {
  DeviceMemory memory;
  TESSERA_CUDA_CHECK(cudaMemGetInfo(&memory.free, &memory.total));
  return memory;
}


}  // namespace tessera::cuda
