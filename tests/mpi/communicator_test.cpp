// The MPI communicator on 4 ranks: every operation against a hand-computed expectation on uneven sizes
// (7 elements per chunk), async handles waited in reverse, a send/recv ring, uneven all_to_all_v, the
// refusals (shapes, counts beyond INT_MAX), and trace byte counts equal to the accounting formulas.
// Layouts: tp2·dp2 (groups of 2), dp4 and pp4 (groups of 4). Values are small integers and halves, exact in
// float, so every comparison is exact.

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <mpi.h>
#include <sys/mman.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tessera/core/error.hpp"
#include "tessera/dist/mpi_communicator.hpp"
#include "../unit/test_support.hpp"

namespace tessera::dist {
namespace {

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

// Everything a test needs on this rank. The watchdog is on (a hang here fails in a minute, not at the ctest
// timeout) and its table must be empty whenever a test has waited on everything.
struct Grid {
  explicit Grid(const ParallelSizes& sizes, CommOptions options = {.timeout_seconds = 60})
      : topology(Topology::build(4, sizes)), groups(MPI_COMM_WORLD, topology), comms(groups, topology, me, options) {}
  ~Grid() {
    if (comms.watchdog() != nullptr) {
      EXPECT_EQ(comms.watchdog()->in_flight(), 0u);
    }
  }
  const std::vector<int>& members(Group g) const { return topology.group_of(g, me); }

  int me = world_rank();
  Topology topology;
  ProcessGroups groups;
  Communicators comms;
};

const ParallelSizes kTp2Dp2{.tp = 2, .dp = 2};
const ParallelSizes kDp4{.dp = 4};
const ParallelSizes kPp4{.pp = 4};

constexpr std::size_t kChunk = 7;

float value(int world, std::size_t i) { return 100.0f * static_cast<float>(world) + static_cast<float>(i) + 0.5f; }
std::int64_t big_value(int world, std::size_t i) {
  return (std::int64_t{world + 1} << 40) + static_cast<std::int64_t>(i);  // beyond int32 on purpose
}

using tessera::testing::error_of;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Communicator, RankSizeAndMembersFollowTheTopology) {
  Grid grid(kTp2Dp2);
  for (Group g : {Group::tp, Group::dp}) {
    SCOPED_TRACE(group_name(g));
    MpiCommunicator& c = grid.comms.mpi(g);
    EXPECT_EQ(c.group(), g);
    EXPECT_EQ(c.size(), 2);
    EXPECT_EQ(c.rank(), grid.topology.group_rank(g, grid.me));
    EXPECT_EQ(c.world_ranks(), grid.members(g));
  }
  EXPECT_EQ(grid.comms.get(Group::tp).rank(), grid.me % 2);
  EXPECT_EQ(grid.comms.get(Group::dp).rank(), grid.me / 2);
}

TEST(Communicator, AllReduceSumMaxMinOnEveryGroup) {
  Grid grid(kTp2Dp2);
  for (Group g : all_groups()) {
    if (!grid.comms.has(g)) continue;
    const std::vector<int>& members = grid.members(g);
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
      SCOPED_TRACE(fmt::format("group {} op {}", group_name(g), reduce_op_name(op)));
      std::vector<float> data(kChunk);
      for (std::size_t i = 0; i < kChunk; ++i) data[i] = value(grid.me, i);
      grid.comms.get(g).all_reduce(data, op)->wait();
      for (std::size_t i = 0; i < kChunk; ++i) {
        float want = op == ReduceOp::sum ? 0.0f : value(members[0], i);
        for (int m : members) {
          if (op == ReduceOp::sum) want += value(m, i);
          if (op == ReduceOp::max) want = std::max(want, value(m, i));
          if (op == ReduceOp::min) want = std::min(want, value(m, i));
        }
        EXPECT_EQ(data[i], want) << "element " << i;
      }
    }
  }
}

TEST(Communicator, AllReduceInt64KeepsValuesBeyondInt32) {
  Grid grid(kDp4);
  std::vector<std::int64_t> counts(kChunk);
  for (std::size_t i = 0; i < kChunk; ++i) counts[i] = big_value(grid.me, i);
  grid.comms.get(Group::dp).all_reduce(counts, ReduceOp::sum)->wait();
  for (std::size_t i = 0; i < kChunk; ++i)
    EXPECT_EQ(counts[i], (std::int64_t{1 + 2 + 3 + 4} << 40) + 4 * static_cast<std::int64_t>(i));

  std::vector<std::int64_t> flag = {grid.me == 2 ? 1 : 0, -grid.me};
  grid.comms.get(Group::dp).all_reduce(flag, ReduceOp::max)->wait();
  EXPECT_EQ(flag, (std::vector<std::int64_t>{1, 0}));
}

TEST(Communicator, ReduceScatterGivesEachRankItsReducedChunk) {
  for (const ParallelSizes& sizes : {kTp2Dp2, kDp4}) {
    Grid grid(sizes);
    for (Group g : {Group::tp, Group::dp}) {
      Communicator& c = grid.comms.get(g);
      const std::vector<int>& members = grid.members(g);
      const auto n = static_cast<std::size_t>(c.size());
      SCOPED_TRACE(fmt::format("group {} of {}", group_name(g), n));
      std::vector<float> input(n * kChunk), output(kChunk, -1.0f);
      for (std::size_t j = 0; j < input.size(); ++j) input[j] = value(grid.me, j);
      c.reduce_scatter(input, output, ReduceOp::sum)->wait();
      for (std::size_t i = 0; i < kChunk; ++i) {
        float want = 0;
        for (int m : members) want += value(m, static_cast<std::size_t>(c.rank()) * kChunk + i);
        EXPECT_EQ(output[i], want) << "element " << i;
      }
      c.reduce_scatter(input, output, ReduceOp::max)->wait();
      for (std::size_t i = 0; i < kChunk; ++i)
        EXPECT_EQ(output[i], value(*std::max_element(members.begin(), members.end()),
                                   static_cast<std::size_t>(c.rank()) * kChunk + i));
    }
  }
}

TEST(Communicator, AllGatherPutsChunksInGroupRankOrder) {
  Grid grid(kTp2Dp2);
  for (Group g : {Group::tp, Group::dp}) {
    SCOPED_TRACE(group_name(g));
    Communicator& c = grid.comms.get(g);
    const std::vector<int>& members = grid.members(g);
    std::vector<float> input(kChunk), output(2 * kChunk, -1.0f);
    std::vector<std::int64_t> input64(kChunk), output64(2 * kChunk, -1);
    for (std::size_t i = 0; i < kChunk; ++i) {
      input[i] = value(grid.me, i);
      input64[i] = big_value(grid.me, i);
    }
    auto a = c.all_gather(std::span<const float>(input), output);
    auto b = c.all_gather(std::span<const std::int64_t>(input64), output64);
    a->wait();
    b->wait();
    for (std::size_t r = 0; r < 2; ++r)
      for (std::size_t i = 0; i < kChunk; ++i) {
        EXPECT_EQ(output[r * kChunk + i], value(members[r], i));
        EXPECT_EQ(output64[r * kChunk + i], big_value(members[r], i));
      }
  }
}

TEST(Communicator, AllGatherInPlaceFromOwnChunk) {
  Grid grid(kDp4);
  Communicator& c = grid.comms.get(Group::dp);
  std::vector<float> full(4 * kChunk, -1.0f);
  const std::size_t mine = static_cast<std::size_t>(c.rank()) * kChunk;
  for (std::size_t i = 0; i < kChunk; ++i) full[mine + i] = value(grid.me, i);
  c.all_gather(std::span<const float>(full).subspan(mine, kChunk), full)->wait();
  for (std::size_t r = 0; r < 4; ++r)
    for (std::size_t i = 0; i < kChunk; ++i) EXPECT_EQ(full[r * kChunk + i], value(grid.members(Group::dp)[r], i));
}

// Elements group rank s sends to group rank d: uneven, and zero for some pairs.
std::int64_t a2a_count(int s, int d) { return (s + 2 * d) % 3 + (d == 1 ? 4 : 0); }
float a2a_value(int world_src, int d, std::int64_t k) {
  return 1000.0f * static_cast<float>(world_src) + 10.0f * static_cast<float>(d) + static_cast<float>(k);
}

TEST(Communicator, AllToAllVWithUnevenAndZeroCounts) {
  for (const ParallelSizes& sizes : {kTp2Dp2, kDp4}) {
    Grid grid(sizes);
    for (Group g : {Group::tp, Group::dp}) {
      Communicator& c = grid.comms.get(g);
      const int n = c.size(), me = c.rank();
      const std::vector<int>& members = grid.members(g);
      SCOPED_TRACE(fmt::format("group {} of {}", group_name(g), n));
      std::vector<std::int64_t> send_counts, recv_counts;
      std::vector<float> input;
      std::vector<std::int64_t> input64;
      for (int d = 0; d < n; ++d) {
        send_counts.push_back(a2a_count(me, d));
        recv_counts.push_back(a2a_count(d, me));
        for (std::int64_t k = 0; k < a2a_count(me, d); ++k) {
          input.push_back(a2a_value(grid.me, d, k));
          input64.push_back(static_cast<std::int64_t>(a2a_value(grid.me, d, k)) << 33);
        }
      }
      std::int64_t total = 0;
      for (std::int64_t x : recv_counts) total += x;
      std::vector<float> output(static_cast<std::size_t>(total), -1.0f);
      std::vector<std::int64_t> output64(static_cast<std::size_t>(total), -1);
      auto a = c.all_to_all_v(std::span<const float>(input), send_counts, output, recv_counts);
      auto b = c.all_to_all_v(std::span<const std::int64_t>(input64), send_counts, output64, recv_counts);
      b->wait();
      a->wait();
      std::size_t at = 0;
      for (int s = 0; s < n; ++s)
        for (std::int64_t k = 0; k < a2a_count(s, me); ++k, ++at) {
          const float want = a2a_value(members[static_cast<std::size_t>(s)], me, k);
          EXPECT_EQ(output[at], want) << "from group rank " << s << " element " << k;
          EXPECT_EQ(output64[at], static_cast<std::int64_t>(want) << 33);
        }
    }
  }
}

TEST(Communicator, BroadcastFromEveryRoot) {
  Grid grid(kDp4);
  Communicator& c = grid.comms.get(Group::dp);
  for (int root = 0; root < c.size(); ++root) {
    SCOPED_TRACE(fmt::format("root {}", root));
    const int root_world = grid.members(Group::dp)[static_cast<std::size_t>(root)];
    std::vector<float> data(kChunk, -1.0f);
    std::vector<std::int64_t> data64(kChunk, -1);
    if (c.rank() == root)
      for (std::size_t i = 0; i < kChunk; ++i) {
        data[i] = value(grid.me, i);
        data64[i] = big_value(grid.me, i);
      }
    auto a = c.broadcast(data, root);
    auto b = c.broadcast(data64, root);
    b->wait();
    a->wait();
    for (std::size_t i = 0; i < kChunk; ++i) {
      EXPECT_EQ(data[i], value(root_world, i));
      EXPECT_EQ(data64[i], big_value(root_world, i));
    }
  }
}

TEST(Communicator, SendRecvRingOverPipelineStages) {
  Grid grid(kPp4);
  Communicator& pp = grid.comms.get(Group::pp);
  const int n = pp.size(), next = (pp.rank() + 1) % n, prev = (pp.rank() + n - 1) % n;
  std::vector<float> out(kChunk), in(kChunk, -1.0f);
  for (std::size_t i = 0; i < kChunk; ++i) out[i] = value(grid.me, i);
  // Receives posted first, sends waited last: no rank waits on a send nobody has matched yet.
  auto r = pp.recv(in, prev, 5);
  auto s = pp.send(out, next, 5);
  r->wait();
  s->wait();
  for (std::size_t i = 0; i < kChunk; ++i)
    EXPECT_EQ(in[i], value(grid.members(Group::pp)[static_cast<std::size_t>(prev)], i));
}

TEST(Communicator, RecvOfAShorterMessageIsAnError) {
  Grid grid(kTp2Dp2);
  Communicator& tp = grid.comms.get(Group::tp);
  std::vector<float> buffer(kChunk, 1.0f);
  if (tp.rank() == 0) {
    tp.send(std::span<const float>(buffer).first(5), 1, 9)->wait();
  } else {
    auto r = tp.recv(buffer, 0, 9);
    const std::string e = error_of([&] { r->wait(); });
    EXPECT_TRUE(contains(e, "recv on group tp from group rank 0 (tag 9): the message has 5 elements, the buffer 7"))
        << e;
    EXPECT_TRUE(r->test());  // completed (with the error), not pending
  }
}

TEST(Communicator, AsyncHandlesCompleteInAnyWaitOrder) {
  Grid grid(kTp2Dp2);
  Communicator& tp = grid.comms.get(Group::tp);
  Communicator& dp = grid.comms.get(Group::dp);
  std::vector<float> a(kChunk, 1.0f), b(kChunk, 2.0f), c(kChunk, 3.0f);
  std::vector<float> gathered(2 * kChunk);
  // Two on one communicator and one on another, all in flight together, waited newest first.
  auto wa = tp.all_reduce(a, ReduceOp::sum);
  auto wb = tp.all_reduce(b, ReduceOp::max);
  auto wc = dp.all_gather(std::span<const float>(c), gathered);
  EXPECT_EQ(grid.comms.watchdog()->in_flight(), 3u);
  wc->wait();
  wb->wait();
  while (!wa->test()) {
  }
  EXPECT_TRUE(wa->test());  // idempotent after completion
  wa->wait();
  EXPECT_EQ(a, std::vector<float>(kChunk, 2.0f));
  EXPECT_EQ(b, std::vector<float>(kChunk, 2.0f));
  EXPECT_EQ(gathered, std::vector<float>(2 * kChunk, 3.0f));
}

TEST(Communicator, DroppedHandleCompletesBeforeItGoes) {
  Grid grid(kTp2Dp2);
  std::vector<float> data(kChunk, 1.0f);
  { auto dropped = grid.comms.get(Group::dp).all_reduce(data, ReduceOp::sum); }
  EXPECT_EQ(data, std::vector<float>(kChunk, 2.0f));
}

TEST(Communicator, BarrierAndStreamAreTraced) {
  Grid grid(kTp2Dp2);
  Communicator& tp = grid.comms.get(Group::tp);
  EXPECT_EQ(tp.stream(), Stream{});
  tp.set_stream(Stream{.native = nullptr, .id = 7});
  EXPECT_EQ(tp.stream().id, 7u);
  tp.barrier();
  std::vector<float> data(kChunk, 1.0f);
  tp.all_reduce(data, ReduceOp::sum)->wait();
  const auto records = grid.comms.trace().recent();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].op, CollectiveOp::barrier);
  EXPECT_EQ(records[1].op, CollectiveOp::all_reduce);
  for (const CollectiveRecord& r : records) {
    EXPECT_EQ(r.group, Group::tp);
    EXPECT_EQ(r.stream, 7u);
    EXPECT_LE(r.post_ns, r.complete_ns);
  }
}

// Per-rank bytes by the accounting of collective_trace.hpp, checked against the formulas written out here.
TEST(Communicator, TraceCountsBytesByTheFormulas) {
  for (const ParallelSizes& sizes : {kTp2Dp2, kDp4}) {
    Grid grid(sizes);
    CollectiveTrace& trace = grid.comms.trace();
    trace.begin_step();
    EXPECT_EQ(trace.step(), 1u);
    Communicator& c = grid.comms.get(Group::dp);
    const std::uint64_t n = static_cast<std::uint64_t>(c.size());
    SCOPED_TRACE(fmt::format("dp{}", n));

    std::vector<float> chunk(kChunk, 1.0f), full(n * kChunk, 1.0f), out(kChunk), gathered(n * kChunk);
    std::vector<std::int64_t> counts(3, 1);
    c.all_reduce(chunk, ReduceOp::sum)->wait();
    c.all_reduce(counts, ReduceOp::sum)->wait();
    c.reduce_scatter(full, out, ReduceOp::sum)->wait();
    c.all_gather(std::span<const float>(chunk), gathered)->wait();
    c.broadcast(chunk, 0)->wait();
    std::vector<std::int64_t> send_counts, recv_counts;
    std::int64_t send_total = 0, recv_total = 0, send_others = 0, recv_others = 0;
    for (int d = 0; d < c.size(); ++d) {
      send_counts.push_back(a2a_count(c.rank(), d));
      recv_counts.push_back(a2a_count(d, c.rank()));
      send_total += send_counts.back();
      recv_total += recv_counts.back();
      if (d != c.rank()) {
        send_others += send_counts.back();
        recv_others += recv_counts.back();
      }
    }
    std::vector<float> a2a_in(static_cast<std::size_t>(send_total)), a2a_out(static_cast<std::size_t>(recv_total));
    c.all_to_all_v(std::span<const float>(a2a_in), send_counts, a2a_out, recv_counts)->wait();
    c.barrier();

    const StepSummary s = trace.step_summary();
    EXPECT_EQ(s.step, 1u);
    const auto expect_bytes = [&](CollectiveOp op, std::uint64_t calls, std::uint64_t payload, std::uint64_t sent,
                                  std::uint64_t received) {
      SCOPED_TRACE(collective_op_name(op));
      const GroupOpTotals* t = s.find(Group::dp, op);
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->calls, calls);
      EXPECT_EQ(t->payload_bytes, payload);
      EXPECT_EQ(t->sent_bytes, sent);
      EXPECT_EQ(t->received_bytes, received);
      EXPECT_GE(t->seconds, t->max_seconds);
    };
    const std::uint64_t S = kChunk * 4, S64 = 3 * 8, F = n * kChunk * 4;
    // all_reduce: 2(n-1)/n · S per call, here 7 floats and 3 int64 (n = 2: 28 + 24; n = 4: 42 + 36)
    expect_bytes(CollectiveOp::all_reduce, 2, S + S64, 2 * (n - 1) * S / n + 2 * (n - 1) * S64 / n,
                 2 * (n - 1) * S / n + 2 * (n - 1) * S64 / n);
    // reduce_scatter and all_gather: (n-1)/n of the full buffer = (n-1) chunks
    expect_bytes(CollectiveOp::reduce_scatter, 1, F, (n - 1) * S, (n - 1) * S);
    expect_bytes(CollectiveOp::all_gather, 1, F, (n - 1) * S, (n - 1) * S);
    expect_bytes(CollectiveOp::broadcast, 1, S, c.rank() == 0 ? S : 0, c.rank() == 0 ? 0 : S);
    expect_bytes(CollectiveOp::all_to_all_v, 1, static_cast<std::uint64_t>(send_total) * 4,
                 static_cast<std::uint64_t>(send_others) * 4, static_cast<std::uint64_t>(recv_others) * 4);
    expect_bytes(CollectiveOp::barrier, 1, 0, 0, 0);
    EXPECT_EQ(s.find(Group::tp, CollectiveOp::all_reduce), nullptr);
    if (n == 2) {
      EXPECT_EQ(s.group_total(Group::dp).sent_bytes,
                28u + 24 + 28 + 28 + (c.rank() == 0 ? 28u : 0u) + static_cast<std::uint64_t>(send_others) * 4);
    }

    // Records carry dtype and group size; the next step starts from zero.
    const auto records = trace.recent();
    ASSERT_EQ(records.size(), 7u);
    EXPECT_EQ(records[1].dtype, DType::i64);
    EXPECT_EQ(records[0].group_size, c.size());
    trace.begin_step();
    EXPECT_TRUE(trace.step_summary().totals.empty());
  }
}

TEST(Communicator, PointToPointBytesAreThePayload) {
  Grid grid(kTp2Dp2);
  Communicator& tp = grid.comms.get(Group::tp);
  std::vector<float> out(kChunk, 1.0f), in(kChunk);
  const int peer = 1 - tp.rank();
  auto r = tp.recv(in, peer, 0);
  auto s = tp.send(out, peer, 0);
  r->wait();
  s->wait();
  const StepSummary sum = grid.comms.trace().step_summary();
  ASSERT_NE(sum.find(Group::tp, CollectiveOp::send), nullptr);
  ASSERT_NE(sum.find(Group::tp, CollectiveOp::recv), nullptr);
  EXPECT_EQ(sum.find(Group::tp, CollectiveOp::send)->sent_bytes, kChunk * 4);
  EXPECT_EQ(sum.find(Group::tp, CollectiveOp::send)->received_bytes, 0u);
  EXPECT_EQ(sum.find(Group::tp, CollectiveOp::recv)->received_bytes, kChunk * 4);
}

TEST(Communicator, TraceCanBeTurnedOff) {
  Grid grid(kTp2Dp2, {.timeout_seconds = 60, .trace = false});
  std::vector<float> data(kChunk, 1.0f);
  grid.comms.get(Group::tp).all_reduce(data, ReduceOp::sum)->wait();
  EXPECT_EQ(grid.comms.trace().records_seen(), 0u);
}

// Every rank makes the same mistake, so every rank refuses before posting and nobody is left waiting.
TEST(Communicator, RefusesMismatchedShapesBeforePosting) {
  Grid grid(kTp2Dp2);
  Communicator& tp = grid.comms.get(Group::tp);
  std::vector<float> a(15), b(7);
  std::vector<std::int64_t> two = {7, 8}, one = {15};
  EXPECT_TRUE(contains(error_of([&] { tp.reduce_scatter(a, b, ReduceOp::sum); }),
                       "reduce_scatter on group tp: the input of 15 elements must be 2 chunks of the output's 7"));
  EXPECT_TRUE(contains(error_of([&] {
                         tp.reduce_scatter(std::span<const float>(a).first(14), std::span<float>(a).subspan(7, 7),
                                           ReduceOp::sum);
                       }),
                       "the output overlaps the input"));
  EXPECT_TRUE(contains(error_of([&] { tp.all_gather(std::span<const float>(b), a); }),
                       "all_gather on group tp: the output of 15 elements must be 2 chunks of the input's 7"));
  EXPECT_TRUE(contains(error_of([&] { tp.all_to_all_v(std::span<const float>(a), one, b, one); }),
                       "all_to_all_v on group tp: 1 send and 1 receive counts for a group of 2 ranks"));
  EXPECT_TRUE(contains(error_of([&] { tp.all_to_all_v(std::span<const float>(a), two, b, two); }),
                       "all_to_all_v on group tp: the receive counts add up to 15 elements but the buffer holds 7"));
  const std::vector<std::int64_t> negative = {-1, 16};
  EXPECT_TRUE(contains(error_of([&] { tp.all_to_all_v(std::span<const float>(a), negative, b, two); }),
                       "send count -1 for group rank 0 is outside 0..2147483647"));
  EXPECT_TRUE(contains(error_of([&] { tp.broadcast(b, 2); }),
                       "broadcast on group tp: root 2 is not a rank of the group (0..1)"));
  EXPECT_TRUE(contains(error_of([&] { tp.send(b, 2, 0); }), "send on group tp: peer 2 is not a rank of the group"));
  EXPECT_TRUE(contains(error_of([&] { tp.recv(b, 0, -1); }), "recv on group tp: tag -1 is outside MPI's 0.."));
  EXPECT_EQ(grid.comms.trace().records_seen(), 0u);
}

// Address space without memory: pages are only reserved, never touched, so 12 GiB "buffers" cost nothing.
class HugeBuffer {
 public:
  explicit HugeBuffer(std::size_t floats) : bytes_(floats * sizeof(float)) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) data_ = static_cast<float*>(p);
  }
  ~HugeBuffer() {
    if (data_ != nullptr) munmap(data_, bytes_);
  }
  HugeBuffer(const HugeBuffer&) = delete;
  HugeBuffer& operator=(const HugeBuffer&) = delete;
  std::span<float> span() { return {data_, bytes_ / sizeof(float)}; }
  bool ok() const { return data_ != nullptr; }

 private:
  std::size_t bytes_;
  float* data_ = nullptr;
};

TEST(Communicator, RefusesCountsBeyondIntMaxInsteadOfTruncating) {
  Grid grid(kDp4);
  Communicator& dp = grid.comms.get(Group::dp);
  constexpr std::size_t kOver = std::size_t{INT_MAX} + 1;
  HugeBuffer huge(3 * (std::size_t{1} << 30) + 1);
  ASSERT_TRUE(huge.ok());
  const std::span<float> all = huge.span();
  std::vector<float> small(4);

  EXPECT_TRUE(contains(error_of([&] { dp.all_reduce(all.first(kOver), ReduceOp::sum); }),
                       "all_reduce on group dp: a buffer of 2147483648 elements is more than MPI's count limit of "
                       "2147483647 (an int)"));
  EXPECT_TRUE(contains(error_of([&] { dp.broadcast(all.first(kOver), 0); }), "more than MPI's count limit"));
  EXPECT_TRUE(contains(error_of([&] { dp.send(all.first(kOver), 0, 0); }), "more than MPI's count limit"));
  // Chunks that fit, whole buffers that do not (MPI libraries count the whole buffer in an int).
  const std::size_t quarter = std::size_t{1} << 29;
  EXPECT_TRUE(contains(
      error_of([&] { dp.reduce_scatter(all.first(4 * quarter), all.subspan(4 * quarter, quarter), ReduceOp::sum); }),
      "reduce_scatter on group dp: an input of 2147483648 elements is more than MPI's count limit"));
  EXPECT_TRUE(contains(error_of([&] { dp.all_gather(all.first(quarter), all.subspan(quarter, 4 * quarter)); }),
                       "all_gather on group dp: an output of 2147483648 elements is more than MPI's count limit"));
  // Each count fits in an int, but the chunk for group rank 2 starts at element 2^31, one past what MPI's int
  // displacement can address.
  const std::int64_t g = std::int64_t{1} << 30;
  const std::vector<std::int64_t> send_counts = {g, g, g, 1}, recv_counts = {1, 1, 1, 1};
  EXPECT_TRUE(contains(error_of([&] { dp.all_to_all_v(std::span<const float>(all), send_counts, small, recv_counts); }),
                       "the send chunk for group rank 2 starts at element 2147483648, beyond MPI's int displacements"));
  EXPECT_EQ(grid.comms.trace().records_seen(), 0u);
}

TEST(Communicators, RefuseAGroupThisRankIsNotIn) {
  Grid grid(kPp4);
  const int stage = grid.comms.get(Group::pp).rank();
  if (stage == 0 || stage == 3) {
    ASSERT_TRUE(grid.comms.has(Group::embedding));
    EXPECT_EQ(grid.comms.get(Group::embedding).size(), 2);
    std::vector<float> tied(kChunk, 1.0f);  // the tied embedding's gradient, summed over first and last stage
    grid.comms.get(Group::embedding).all_reduce(tied, ReduceOp::sum)->wait();
    EXPECT_EQ(tied, std::vector<float>(kChunk, 2.0f));
  } else {
    EXPECT_FALSE(grid.comms.has(Group::embedding));
    const std::string e = error_of([&] { grid.comms.get(Group::embedding); });
    EXPECT_TRUE(contains(e, fmt::format("rank {} belongs to no embedding group in this layout", grid.me))) << e;
  }
}

TEST(Communicators, WithoutWatchdogWhenTimeoutIsZero) {
  Grid grid(kTp2Dp2, {.timeout_seconds = 0});
  EXPECT_EQ(grid.comms.watchdog(), nullptr);
  std::vector<float> data(kChunk, 1.0f);
  grid.comms.get(Group::tp).all_reduce(data, ReduceOp::sum)->wait();
  EXPECT_EQ(data, std::vector<float>(kChunk, 2.0f));
}

}  // namespace
}  // namespace tessera::dist
