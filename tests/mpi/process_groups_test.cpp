// Each communicator must hold exactly the ranks of the topology's group, ranked by position in it: an
// allgather of world ranks over the communicator reproduces the group list in order.

#include "tessera/dist/process_groups.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "tessera/core/error.hpp"

namespace tessera::dist {
namespace {

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

void expect_matches(const ProcessGroups& pg, const Topology& t) {
  const int me = world_rank();
  for (Group kind : all_groups()) {
    SCOPED_TRACE(fmt::format("group {} on world rank {}", group_name(kind), me));
    const MPI_Comm comm = pg.comm(kind);
    const std::vector<int>& group = t.group_of(kind, me);
    if (group.empty()) {
      EXPECT_EQ(comm, MPI_COMM_NULL);
      continue;
    }
    ASSERT_NE(comm, MPI_COMM_NULL);
    int size = 0, rank = 0;
    ASSERT_EQ(MPI_Comm_size(comm, &size), MPI_SUCCESS);
    ASSERT_EQ(MPI_Comm_rank(comm, &rank), MPI_SUCCESS);
    EXPECT_EQ(size, static_cast<int>(group.size()));
    EXPECT_EQ(rank, t.group_rank(kind, me));
    EXPECT_EQ(group[static_cast<std::size_t>(rank)], me);

    int sum = 0;
    ASSERT_EQ(MPI_Allreduce(&me, &sum, 1, MPI_INT, MPI_SUM, comm), MPI_SUCCESS);
    EXPECT_EQ(sum, std::accumulate(group.begin(), group.end(), 0));

    std::vector<int> gathered(static_cast<std::size_t>(size), -1);
    ASSERT_EQ(MPI_Allgather(&me, 1, MPI_INT, gathered.data(), 1, MPI_INT, comm), MPI_SUCCESS);
    EXPECT_EQ(gathered, group);
  }
}

struct Layout {
  const char* name;
  ParallelSizes sizes;
};

class ProcessGroupsLayouts : public ::testing::TestWithParam<Layout> {};

TEST_P(ProcessGroupsLayouts, CommunicatorsMatchTopology) {
  const Topology t = Topology::build(8, GetParam().sizes);
  const ProcessGroups pg(MPI_COMM_WORLD, t);
  expect_matches(pg, t);
}

INSTANTIATE_TEST_SUITE_P(
    Np8, ProcessGroupsLayouts,
    ::testing::Values(Layout{"tp2_pp2_dp2", {.tp = 2, .dp = 2, .pp = 2}},
                      Layout{"tp2_dp4_ep4_etp1", {.tp = 2, .ep = 4, .etp = 1, .dp = 4}},
                      Layout{"pp4_dp2", {.dp = 2, .pp = 4}},  // middle stages outside the embedding group
                      Layout{"tp8", {.tp = 8}}),
    [](const ::testing::TestParamInfo<Layout>& info) { return std::string(info.param.name); });

TEST(ProcessGroups, MoveTransfersOwnership) {
  const Topology t = Topology::build(8, {.tp = 2, .pp = 2});
  ProcessGroups first(MPI_COMM_WORLD, t);
  const MPI_Comm tp_comm = first.comm(Group::tp);
  ProcessGroups second(std::move(first));
  EXPECT_EQ(second.comm(Group::tp), tp_comm);
  EXPECT_EQ(first.comm(Group::tp), MPI_COMM_NULL);  // NOLINT(bugprone-use-after-move): moved-from is defined
  first = std::move(second);
  EXPECT_EQ(first.comm(Group::tp), tp_comm);
  expect_matches(first, t);
}

TEST(ProcessGroups, RefusesTopologyForAnotherWorldSize) {
  const Topology t = Topology::build(4, {.tp = 2});
  try {
    const ProcessGroups pg(MPI_COMM_WORLD, t);
    ADD_FAILURE() << "a 4-rank layout was accepted on 8 ranks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is for 4 ranks, but the job has 8"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tessera::dist
