// `tessera grid`: run under mpirun/srun to build the rank grid over the real job, split one MPI
// communicator per group, verify each against the topology with collectives, and write every rank's
// coordinates and groups to its own log file. The first thing to run on a new cluster or layout.

#include <unistd.h>

#include <array>
#include <memory>

#include "commands.hpp"
#include "tessera/core/config.hpp"
#include "tessera/core/logging.hpp"
#include "tessera/dist/mpi_check.hpp"
#include "tessera/dist/mpi_session.hpp"
#include "tessera/dist/process_groups.hpp"
#include "tessera/dist/topology.hpp"

namespace tessera::apps {
namespace {

void run_grid(const dist::MpiSession& mpi, const Config& config) {
  const dist::Topology topology = dist::Topology::build(mpi.size(), dist::parallel_sizes(config.parallel));
  const dist::Coord c = topology.coord(mpi.rank());
  const auto log = make_rank_logger(config.logging.run_dir, {mpi.rank(), c.tp, c.pp, c.dp, c.ep},
                                    config.logging.level);
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) host = {'?'};
  log->info("rank {} of {} on {}", mpi.rank(), mpi.size(), host.data());

  const dist::ProcessGroups groups(MPI_COMM_WORLD, topology);
  const auto problems = dist::verify_process_groups(MPI_COMM_WORLD, groups, topology);
  for (const auto kind : dist::all_groups()) {
    const auto& members = topology.group_of(kind, mpi.rank());
    if (!members.empty()) log->debug("{} group [{}]", dist::group_name(kind), fmt::join(members, ","));
  }
  for (const auto& p : problems) log->error("{}", p);
  int local = static_cast<int>(problems.size()), total = 0;
  TESSERA_MPI_CHECK(MPI_Allreduce(&local, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
  TESSERA_CHECK(total == 0, "{} communicator(s) disagree with the topology; see the rank logs in {}/logs", total,
                config.logging.run_dir);
  log->info("grid ok: world {} = tp {} × cp {} × pp {} × dp {} (experts: etp {} × ep {} × edp {}); "
            "{} group kinds verified; per-rank logs in {}/logs",
            mpi.size(), topology.tp(), topology.cp(), topology.pp(), topology.dp(), topology.etp(), topology.ep(),
            topology.edp(), dist::all_groups().size(), config.logging.run_dir);
  log->flush();
}

}  // namespace

void add_grid_command(CLI::App& app) {
  struct Options {
    std::string file;
    std::vector<std::string> overrides;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "grid", "Under mpirun: build and verify every group's MPI communicator, log each rank's coordinates");
  cmd->add_option("-c,--config", opts->file, "YAML config file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", opts->overrides, "Override a field: section.key=value (repeatable)");
  cmd->callback([opts] {
    const dist::MpiSession mpi(nullptr, nullptr);
    try {
      run_grid(mpi, load_config(opts->file, opts->overrides));
    } catch (const std::exception& e) {
      // Every rank fails the same way on a bad config, but a failure on one rank must not hang the rest.
      mpi.abort_job(e.what());
    }
  });
}

}  // namespace tessera::apps
