// The hang watchdog end to end, as its own program (a GoogleTest run could not survive MPI_Abort): on 4
// ranks as tp2·dp2, rank 1 skips an all_reduce on its dp group {1,3}, so rank 3 waits for it forever. The
// watchdog on rank 3 must end the whole job within a few seconds (timeout 2 s) with exit code 124 and a line
// naming rank 3, the operation and the group. communicator_hang_test.sh checks all of that.

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "tessera/dist/mpi_communicator.hpp"
#include "tessera/dist/mpi_session.hpp"

int main(int argc, char** argv) {
  using namespace tessera::dist;
  const MpiSession mpi(&argc, &argv);
  const Topology topology = Topology::build(mpi.size(), {.tp = 2, .dp = 2});
  const ProcessGroups groups(MPI_COMM_WORLD, topology);
  Communicators comms(groups, topology, mpi.rank(), {.timeout_seconds = 2});

  std::vector<float> data(7, 1.0f);
  comms.get(Group::dp).all_reduce(data, ReduceOp::sum)->wait();  // a completed one does not trip it
  if (mpi.rank() != 1) comms.get(Group::dp).all_reduce(data, ReduceOp::sum)->wait();

  // Ranks 0 and 2 completed theirs; rank 1 skipped its own. All of them idle here until the abort ends them.
  std::this_thread::sleep_for(std::chrono::seconds(60));
  std::fprintf(stderr, "rank %d: the watchdog did not end the job\n", mpi.rank());
  return 3;
}
