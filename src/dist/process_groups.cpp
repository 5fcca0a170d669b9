#include "tessera/dist/process_groups.hpp"

#include <spdlog/spdlog.h>

#include <utility>

#include "tessera/dist/mpi_check.hpp"

namespace tessera::dist {

std::array<MPI_Comm, ProcessGroups::kKinds> ProcessGroups::null_comms() {
  std::array<MPI_Comm, kKinds> comms;
  comms.fill(MPI_COMM_NULL);
  return comms;
}

ProcessGroups::ProcessGroups(MPI_Comm world, const Topology& topology) : comms_(null_comms()) {
  int size = 0, rank = 0;
  TESSERA_MPI_CHECK(MPI_Comm_size(world, &size));
  TESSERA_MPI_CHECK(MPI_Comm_rank(world, &rank));
  // Every rank sees the same sizes, so every rank refuses together and no split is left half-entered.
  TESSERA_CHECK(size == topology.world_size(),
                "the parallel layout (tp={} × cp={} × dp={} × pp={}) is for {} ranks, but the job has {}",
                topology.tp(), topology.cp(), topology.dp(), topology.pp(), topology.world_size(), size);
  try {
    for (Group kind : all_groups()) {
      const int color = topology.group_index(kind, rank);
      TESSERA_MPI_CHECK(MPI_Comm_split(world, color == Topology::kNoGroup ? MPI_UNDEFINED : color,
                                       topology.group_rank(kind, rank),
                                       &comms_[static_cast<std::size_t>(kind)]));
    }
  } catch (...) {
    // The destructor does not run for a half-built object.
    free_all();
    throw;
  }
}

ProcessGroups::~ProcessGroups() { free_all(); }

ProcessGroups::ProcessGroups(ProcessGroups&& other) noexcept
    : comms_(std::exchange(other.comms_, null_comms())) {}

ProcessGroups& ProcessGroups::operator=(ProcessGroups&& other) noexcept {
  if (this != &other) {
    free_all();
    comms_ = std::exchange(other.comms_, null_comms());
  }
  return *this;
}

MPI_Comm ProcessGroups::comm(Group kind) const { return comms_.at(static_cast<std::size_t>(kind)); }

void ProcessGroups::free_all() noexcept {
  // A destructor must not throw: a failure is logged and the communicator leaked, the lesser harm.
  try {
    // After MPI_Finalize the communicators are already gone and freeing them is erroneous.
    int finalized = 0;
    TESSERA_MPI_CHECK(MPI_Finalized(&finalized));
    for (MPI_Comm& comm : comms_) {
      if (comm != MPI_COMM_NULL && !finalized) TESSERA_MPI_CHECK(MPI_Comm_free(&comm));
      comm = MPI_COMM_NULL;
    }
  } catch (const Error& e) {
    spdlog::warn("freeing process groups: {}", e.what());
    comms_ = null_comms();
  }
}

std::vector<std::string> verify_process_groups(MPI_Comm world, const ProcessGroups& groups, const Topology& topology) {
  int rank = 0;
  TESSERA_MPI_CHECK(MPI_Comm_rank(world, &rank));
  std::vector<std::string> problems;
  for (Group kind : all_groups()) {
    const MPI_Comm comm = groups.comm(kind);
    const std::vector<int>& expected = topology.group_of(kind, rank);
    if (comm == MPI_COMM_NULL) {
      if (!expected.empty())
        problems.push_back(fmt::format("rank {}: no {} communicator, expected group {}", rank, group_name(kind),
                                       fmt::join(expected, ",")));
      continue;
    }
    int size = 0;
    TESSERA_MPI_CHECK(MPI_Comm_size(comm, &size));
    std::vector<int> members(static_cast<std::size_t>(size));
    TESSERA_MPI_CHECK(MPI_Allgather(&rank, 1, MPI_INT, members.data(), 1, MPI_INT, comm));
    if (members != expected)
      problems.push_back(fmt::format("rank {}: {} communicator holds [{}], topology says [{}]", rank, group_name(kind),
                                     fmt::join(members, ","), fmt::join(expected, ",")));
  }
  return problems;
}

}  // namespace tessera::dist
