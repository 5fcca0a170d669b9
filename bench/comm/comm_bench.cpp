// The MPI communicator's cost over raw MPI: the same operations, sizes and buffers, timed in the same run.
// Three variants per (operation, size):
//   raw-nb   the MPI call tessera makes, by hand (MPI_Iallreduce + MPI_Wait, ...)     <- the named peer
//   raw-blk  the blocking call a user would write (MPI_Allreduce, ...), for reference
//   ours     Communicator::<op>(...)->wait(), with tracing and the watchdog on, as in training
// "overhead" is ours against raw-nb: what the layer (checks, Work handle, trace, watchdog) adds. See
// median_call for how noise is kept out.
//
//   mpirun -np N comm_bench [seconds_per_op] [max_bytes]      (bench/comm/run.sh builds and runs it)

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "tessera/dist/mpi_communicator.hpp"

namespace {

using namespace tessera::dist;

struct Variant {
  const char* name;
  std::function<void()> run;
};

// Seconds for one call of each variant: the variants take turns call by call (in rotating order), each
// call is timed on its own, and the figure is the median call, taken on the slowest rank. Turn-taking makes
// a load spike or frequency change hit all three alike; the median drops the calls a busy machine preempted.
std::array<double, 3> median_call(std::array<Variant, 3>& variants, int calls) {
  std::array<std::vector<double>, 3> seconds;
  for (auto& s : seconds) s.reserve(static_cast<std::size_t>(calls));
  MPI_Barrier(MPI_COMM_WORLD);
  for (int i = 0; i < calls; ++i)
    for (int k = 0; k < 3; ++k) {
      const auto v = static_cast<std::size_t>((i + k) % 3);
      const double t0 = MPI_Wtime();
      variants[v].run();
      seconds[v].push_back(MPI_Wtime() - t0);
    }
  std::array<double, 3> mine{}, slowest{};
  for (std::size_t v = 0; v < 3; ++v) {
    std::sort(seconds[v].begin(), seconds[v].end());
    mine[v] = seconds[v][seconds[v].size() / 2];
  }
  MPI_Allreduce(mine.data(), slowest.data(), 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return slowest;
}

void measure(const char* op, std::size_t bytes, std::array<Variant, 3>& variants, double seconds_per_op, int rank) {
  // Warm up every path (first touch, MPI's lazy connection set-up), then size the run to the time budget.
  const std::array<double, 3> probe = median_call(variants, 31);
  const double per_call = std::max({probe[0], probe[1], probe[2], 1e-7});
  const int calls = std::clamp(static_cast<int>(seconds_per_op / (3 * per_call)), 31, 20000);
  const std::array<double, 3> t = median_call(variants, calls);
  if (rank != 0) return;
  const double nb = t[0] * 1e6, blk = t[1] * 1e6, ours = t[2] * 1e6;
  std::printf("%-15s %10zu %7d %11.2f %11.2f %11.2f %+9.2f%% %+9.2f%%\n", op, bytes, calls, nb, blk, ours,
              100.0 * (ours - nb) / nb, 100.0 * (ours - blk) / blk);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const double seconds_per_op = argc > 1 ? std::atof(argv[1]) : 1.0;
  const std::size_t max_bytes = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : (std::size_t{16} << 20);
  {
    const Topology topology = Topology::build(size, {.dp = size});
    const ProcessGroups groups(MPI_COMM_WORLD, topology);
    Communicators comms(groups, topology, rank);  // trace and watchdog on, the training defaults
    Communicator& c = comms.get(Group::dp);
    const MPI_Comm comm = groups.comm(Group::dp);
    const auto n = static_cast<std::size_t>(size);
    const int peer = rank ^ 1;  // point to point between pairs (0,1), (2,3), ...

    if (rank == 0)
      std::printf(
          "# %d ranks, ~%.1f s per (op, size), median call of each variant; bytes = the payload S per\n"
          "# rank (reduce_scatter: whole input, all_gather: whole output, all_to_all_v: all chunks)\n"
          "%-15s %10s %7s %11s %11s %11s %10s %10s\n",
          size, seconds_per_op, "op", "bytes", "calls", "raw-nb us", "raw-blk us", "ours us", "vs nb", "vs blk");
    for (std::size_t bytes = 4096; bytes <= max_bytes; bytes *= 16) {
      const std::size_t count = bytes / sizeof(float), chunk = count / n;
      const int icount = static_cast<int>(count), ichunk = static_cast<int>(chunk);
      // Zeros stay zeros under repeated in-place sums: no overflow to inf across thousands of iterations.
      std::vector<float> data(count, 0.0f), out(count, 0.0f), part(chunk, 0.0f);
      std::vector<std::int64_t> counts(n, static_cast<std::int64_t>(chunk));
      std::vector<int> icounts(n, ichunk), displs(n);
      for (std::size_t p = 0; p < n; ++p) displs[p] = static_cast<int>(p * chunk);
      const auto wait = [](MPI_Request r) { MPI_Wait(&r, MPI_STATUS_IGNORE); };

      std::array<Variant, 3> all_reduce = {
          Variant{"raw-nb",
                  [&] {
                    MPI_Request r;
                    MPI_Iallreduce(MPI_IN_PLACE, data.data(), icount, MPI_FLOAT, MPI_SUM, comm, &r);
                    wait(r);
                  }},
          Variant{"raw-blk", [&] { MPI_Allreduce(MPI_IN_PLACE, data.data(), icount, MPI_FLOAT, MPI_SUM, comm); }},
          Variant{"ours", [&] { c.all_reduce(data, ReduceOp::sum)->wait(); }}};
      measure("all_reduce", bytes, all_reduce, seconds_per_op, rank);

      std::array<Variant, 3> reduce_scatter = {
          Variant{"raw-nb",
                  [&] {
                    MPI_Request r;
                    MPI_Ireduce_scatter_block(data.data(), part.data(), ichunk, MPI_FLOAT, MPI_SUM, comm, &r);
                    wait(r);
                  }},
          Variant{"raw-blk",
                  [&] { MPI_Reduce_scatter_block(data.data(), part.data(), ichunk, MPI_FLOAT, MPI_SUM, comm); }},
          Variant{"ours", [&] {
                    c.reduce_scatter(std::span<const float>(data).first(chunk * n), part, ReduceOp::sum)->wait();
                  }}};
      measure("reduce_scatter", bytes, reduce_scatter, seconds_per_op, rank);

      std::array<Variant, 3> all_gather = {
          Variant{"raw-nb",
                  [&] {
                    MPI_Request r;
                    MPI_Iallgather(part.data(), ichunk, MPI_FLOAT, out.data(), ichunk, MPI_FLOAT, comm, &r);
                    wait(r);
                  }},
          Variant{"raw-blk",
                  [&] { MPI_Allgather(part.data(), ichunk, MPI_FLOAT, out.data(), ichunk, MPI_FLOAT, comm); }},
          Variant{"ours",
                  [&] { c.all_gather(std::span<const float>(part), std::span<float>(out).first(chunk * n))->wait(); }}};
      measure("all_gather", bytes, all_gather, seconds_per_op, rank);

      std::array<Variant, 3> all_to_all = {
          Variant{"raw-nb",
                  [&] {
                    MPI_Request r;
                    MPI_Ialltoallv(data.data(), icounts.data(), displs.data(), MPI_FLOAT, out.data(), icounts.data(),
                                   displs.data(), MPI_FLOAT, comm, &r);
                    wait(r);
                  }},
          Variant{"raw-blk",
                  [&] {
                    MPI_Alltoallv(data.data(), icounts.data(), displs.data(), MPI_FLOAT, out.data(), icounts.data(),
                                  displs.data(), MPI_FLOAT, comm);
                  }},
          Variant{"ours", [&] {
                    c.all_to_all_v(std::span<const float>(data).first(chunk * n), counts,
                                   std::span<float>(out).first(chunk * n), counts)
                        ->wait();
                  }}};
      measure("all_to_all_v", bytes, all_to_all, seconds_per_op, rank);

      std::array<Variant, 3> broadcast = {
          Variant{"raw-nb",
                  [&] {
                    MPI_Request r;
                    MPI_Ibcast(data.data(), icount, MPI_FLOAT, 0, comm, &r);
                    wait(r);
                  }},
          Variant{"raw-blk", [&] { MPI_Bcast(data.data(), icount, MPI_FLOAT, 0, comm); }},
          Variant{"ours", [&] { c.broadcast(data, 0)->wait(); }}};
      measure("broadcast", bytes, broadcast, seconds_per_op, rank);

      if (size % 2 == 0) {
        std::array<Variant, 3> exchange = {Variant{"raw-nb",
                                                   [&] {
                                                     std::array<MPI_Request, 2> r;
                                                     MPI_Irecv(out.data(), icount, MPI_FLOAT, peer, 0, comm, &r[0]);
                                                     MPI_Isend(data.data(), icount, MPI_FLOAT, peer, 0, comm, &r[1]);
                                                     MPI_Wait(&r[0], MPI_STATUS_IGNORE);
                                                     MPI_Wait(&r[1], MPI_STATUS_IGNORE);
                                                   }},
                                           Variant{"raw-blk",
                                                   [&] {
                                                     MPI_Sendrecv(data.data(), icount, MPI_FLOAT, peer, 0, out.data(),
                                                                  icount, MPI_FLOAT, peer, 0, comm, MPI_STATUS_IGNORE);
                                                   }},
                                           Variant{"ours", [&] {
                                                     auto r = c.recv(out, peer, 0);
                                                     auto s = c.send(data, peer, 0);
                                                     r->wait();
                                                     s->wait();
                                                   }}};
        measure("send+recv", bytes, exchange, seconds_per_op, rank);
      }
    }
    if (rank == 0) std::printf("# %s\n", format_step_summary(comms.trace().step_summary()).c_str());
  }
  MPI_Finalize();
  return 0;
}
