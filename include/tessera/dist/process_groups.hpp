#pragma once
// One MPI communicator per kind of rank group, split from a world communicator along a Topology. Every
// rank takes part in every split (MPI_Comm_split is collective), so all ranks must build ProcessGroups from
// the same Topology at the same point in the program.

#include <mpi.h>

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "tessera/dist/topology.hpp"

namespace tessera::dist {

class ProcessGroups {
 public:
  // Throws tessera::Error when `world` does not have topology.world_size() ranks, or an MPI call fails.
  ProcessGroups(MPI_Comm world, const Topology& topology);
  ~ProcessGroups();

  ProcessGroups(ProcessGroups&& other) noexcept;
  ProcessGroups& operator=(ProcessGroups&& other) noexcept;
  ProcessGroups(const ProcessGroups&) = delete;
  ProcessGroups& operator=(const ProcessGroups&) = delete;

  // This rank's communicator for `kind`, ranked by position in the group. MPI_COMM_NULL where the rank
  // belongs to no such group (embedding on middle pipeline stages) or after a move.
  MPI_Comm comm(Group kind) const;

 private:
  void free_all() noexcept;

  // etp_ep_pp is the last Group enumerator; a fixed array keeps moves allocation-free and noexcept.
  static constexpr std::size_t kKinds = static_cast<std::size_t>(Group::etp_ep_pp) + 1;
  static std::array<MPI_Comm, kKinds> null_comms();

  std::array<MPI_Comm, kKinds> comms_;  // indexed by Group
};

// Checks, with collectives over every communicator, that the communicators hold exactly the ranks the
// topology says, in its order: an all-gather of world ranks over each group must reproduce the group list.
// Returns one line per disagreement (empty when all agree). Collective over `world`.
std::vector<std::string> verify_process_groups(MPI_Comm world, const ProcessGroups& groups, const Topology& topology);

}  // namespace tessera::dist
