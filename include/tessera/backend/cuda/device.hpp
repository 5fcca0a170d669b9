#pragma once
// Which GPU this process drives, and how much of its memory is in use.
//
// One process per GPU, as Megatron and torchtitan run: the launcher starts one rank per device on each node
// and each rank selects the device numbered by its node-local rank. select_device() refuses a local rank
// with no device of its own instead of silently putting two ranks on one GPU (NCCL refuses that anyway, and
// two ranks sharing a GPU halve its memory).

#include <cstddef>

namespace tessera::cuda {

// This process's rank among the ranks on its node: OMPI_COMM_WORLD_LOCAL_RANK (Open MPI's mpirun), else
// SLURM_LOCALID (srun), else, when MPI is initialised (and not finalised), this rank's position in
// MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED) — collective over MPI_COMM_WORLD, so every rank
// must reach it at the same point (they do: all ranks of one launch see the same variables) — else 0.
// Throws tessera::Error when a variable is set but is not a non-negative integer.
int local_rank_from_environment();

// CUDA devices visible to this process (honours CUDA_VISIBLE_DEVICES). Throws when the runtime fails.
int device_count();

// cudaSetDevice(local_rank) and returns the device. Throws tessera::Error naming both numbers when
// local_rank >= the visible device count (more ranks on this node than GPUs: fix the launch, e.g. mpirun -np
// or --ntasks-per-node; if the launcher gives each rank one GPU through CUDA_VISIBLE_DEVICES, pass 0), or
// when local_rank < 0.
int select_device(int local_rank);

struct DeviceMemory {
  std::size_t free = 0;   // cudaMemGetInfo: free on the device (all processes counted)
  std::size_t total = 0;  // cudaMemGetInfo: the device's memory
};

// cudaMemGetInfo on the current device. CUDA keeps no per-process peak; tessera allocates every buffer up
// front, so the memory in use after the first step is the run's peak.
DeviceMemory query_device_memory();

}  // namespace tessera::cuda
