// NcclCommunicator on one GPU. This binary runs as one process without MPI_Init, so the GPU tests build a
// one-rank communicator from an id made in-process (the constructor that takes an NcclUniqueId); on one
// rank every collective is the identity, which still runs the whole path: NCCL's kernels, streams, events,
// completion, tracing. NCCL refuses two ranks of one communicator on the same GPU, so tests with two or more
// ranks need >= 2 GPUs (one MPI process per GPU) and do not belong here.
//
// The argument checks run on the host before anything touches CUDA or NCCL, so they are tested through
// nccl_checks for a 4-rank group without any GPU.

#include "tessera/backend/cuda/nccl_communicator.hpp"

#include <gtest/gtest.h>


#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "cuda_test_support.hpp"
#include "tessera/core/error.hpp"
#include "tessera/dist/collective_trace.hpp"
#include "tessera/dist/watchdog.hpp"

namespace tessera::cuda {
namespace {

using dist::CollectiveOp;
using dist::Group;
using dist::ReduceOp;
using test::DeviceArray;
using test::error_of;

template <class T>
std::span<const std::byte> bytes(const std::vector<T>& v, std::size_t offset = 0, std::size_t count = SIZE_MAX) {
  return std::as_bytes(std::span<const T>(v).subspan(offset, count == SIZE_MAX ? v.size() - offset : count));
}

std::vector<std::int64_t> random_ints(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int64_t> out(n);
  for (auto& x : out) x = static_cast<std::int64_t>(rng() >> 1) - (std::int64_t{1} << 61);
  return out;
}

struct DummyWork final : dist::Work {
  void wait() override {}
  bool test() override { return true; }
};

// ---- host-side argument checks (no GPU) ------------------------------------------------------------------

const nccl_checks::GroupView kGroup{Group::dp, 1, 4};

TEST(NcclChecks, ReduceScatterWantsGroupSizeChunks) {
  std::vector<float> in(8), out(2), odd(10);
  EXPECT_FALSE(nccl_checks::reduce_scatter(kGroup, bytes(in), bytes(out), sizeof(float)));
  EXPECT_NE(error_of([&] { nccl_checks::reduce_scatter(kGroup, bytes(odd), bytes(out), sizeof(float)); })
                .find("reduce_scatter on group dp: the input of 10 elements must be 4 chunks of the output's 2"),
            std::string::npos);
  std::vector<float> small(3);
  EXPECT_NE(error_of([&] { nccl_checks::reduce_scatter(kGroup, bytes(in), bytes(small), sizeof(float)); })
                .find("must be 4 chunks"),
            std::string::npos);
}

TEST(NcclChecks, ReduceScatterTakesOwnChunkInPlaceRefusesOtherOverlap) {
  std::vector<float> in(8);
  // Group rank 1's chunk is elements 2..3: NCCL's in-place form.
  EXPECT_TRUE(nccl_checks::reduce_scatter(kGroup, bytes(in), bytes(in, 2, 2), sizeof(float)));
  EXPECT_NE(error_of([&] { nccl_checks::reduce_scatter(kGroup, bytes(in), bytes(in, 1, 2), sizeof(float)); })
                .find("the output overlaps the input other than as this rank's own chunk (group rank 1)"),
            std::string::npos);
}

TEST(NcclChecks, AllGatherWantsGroupSizeChunksAndOwnChunkInPlace) {
  std::vector<std::int64_t> in(3), out(12), bad(13);
  EXPECT_FALSE(nccl_checks::all_gather(kGroup, bytes(in), bytes(out), sizeof(std::int64_t)));
  EXPECT_NE(error_of([&] { nccl_checks::all_gather(kGroup, bytes(in), bytes(bad), sizeof(std::int64_t)); })
                .find("all_gather on group dp: the output of 13 elements must be 4 chunks of the input's 3"),
            std::string::npos);
  EXPECT_TRUE(nccl_checks::all_gather(kGroup, bytes(out, 3, 3), bytes(out), sizeof(std::int64_t)));
  EXPECT_NE(error_of([&] { nccl_checks::all_gather(kGroup, bytes(out, 4, 3), bytes(out), sizeof(std::int64_t)); })
                .find("overlaps the output other than as this rank's own chunk"),
            std::string::npos);
}

TEST(NcclChecks, AllToAllVPlansOffsetsAndTraffic) {
  std::vector<float> in(10), out(6);
  const std::vector<std::int64_t> send{1, 2, 3, 4}, recv{0, 5, 1, 0};
  const auto plan = nccl_checks::all_to_all_v(kGroup, bytes(in), send, bytes(out), recv, sizeof(float));
  EXPECT_EQ(plan.send_offsets, (std::vector<std::size_t>{0, 1, 3, 6}));
  EXPECT_EQ(plan.recv_offsets, (std::vector<std::size_t>{0, 0, 5, 6}));
  // Group rank 1's own chunk (2 sent, 5 received) is a copy, not traffic.
  EXPECT_EQ(plan.sent_to_others, (1 + 3 + 4) * sizeof(float));
  EXPECT_EQ(plan.received_from_others, (0 + 1 + 0) * sizeof(float));
}

TEST(NcclChecks, AllToAllVRefusesBadCounts) {
  std::vector<float> in(10), out(6);
  const std::vector<std::int64_t> send{1, 2, 3, 4}, recv{0, 5, 1, 0};
  const auto a2a = [&](std::span<const std::int64_t> s, std::span<const std::int64_t> r,
                       std::span<const std::byte> output) {
    return error_of([&] { nccl_checks::all_to_all_v(kGroup, bytes(in), s, output, r, sizeof(float)); });
  };
  EXPECT_NE(a2a(std::span(send).first(3), recv, bytes(out)).find("3 send and 4 receive counts for a group of 4 ranks"),
            std::string::npos);
  const std::vector<std::int64_t> negative{1, 2, -3, 10};
  EXPECT_NE(a2a(negative, recv, bytes(out)).find("send count -3 for group rank 2 is negative"), std::string::npos);
  const std::vector<std::int64_t> short_sum{1, 2, 3, 3};
  EXPECT_NE(a2a(short_sum, recv, bytes(out)).find("the send counts add up to 9 elements but the buffer holds 10"),
            std::string::npos);
  // Counts near INT64_MAX must not wrap the running sum into something that looks right.
  const std::vector<std::int64_t> huge{1, INT64_MAX, INT64_MAX, 2};
  EXPECT_NE(a2a(huge, recv, bytes(out)).find("add up to more than the buffer's 10 elements"), std::string::npos);
  EXPECT_NE(a2a(send, recv, bytes(in, 4, 6)).find("the output overlaps the input"), std::string::npos);
}

TEST(NcclChecks, RootAndPeerMustBeGroupRanks) {
  EXPECT_NE(error_of([] { nccl_checks::root(kGroup, 4); }).find("broadcast on group dp: root 4 is not a rank of the group (0..3)"),
            std::string::npos);
  EXPECT_NE(error_of([] { nccl_checks::root(kGroup, -1); }).find("root -1"), std::string::npos);
  EXPECT_NE(error_of([] { nccl_checks::peer(kGroup, CollectiveOp::send, 7, 0); })
                .find("send on group dp: peer 7 is not a rank of the group (0..3)"),
            std::string::npos);
  EXPECT_NE(error_of([] { nccl_checks::peer(kGroup, CollectiveOp::recv, 0, -2); }).find("recv on group dp: tag -2 is negative"),
            std::string::npos);
  EXPECT_NO_THROW(nccl_checks::peer(kGroup, CollectiveOp::send, 3, 1 << 30));  // NCCL has no tag bound
}

TEST(NcclChecks, ConstructorRefusesBadRanksBeforeTouchingNccl) {
  const NcclUniqueId id{};  // never used: the checks come first
  EXPECT_NE(error_of([&] { NcclCommunicator(id, 2, 2, Group::tp); }).find("rank 2 is not a rank of a 2-rank NCCL communicator for group tp"),
            std::string::npos);
  EXPECT_NE(error_of([&] { NcclCommunicator(id, 0, 0, Group::tp); }).find("needs at least one rank, got 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] { NcclCommunicator(id, 2, 0, Group::tp, {}, nullptr, nullptr, {5}); })
                .find("1 world ranks given for a 2-rank NCCL communicator"),
            std::string::npos);
}

// ---- one rank on one GPU ---------------------------------------------------------------------------------

class OneRankNccl : public ::testing::Test {
 protected:
  void SetUp() override {
    TESSERA_REQUIRE_GPU();
    TESSERA_TEST_CUDA(cudaSetDevice(0));
    comm_ = std::make_unique<NcclCommunicator>(NcclCommunicator::new_unique_id(), 1, 0, Group::dp,
                                               NcclOptions{.timeout_seconds = 120}, &trace_, nullptr,
                                               std::vector<int>{3});
  }

  dist::CollectiveTrace trace_{256};
  std::unique_ptr<NcclCommunicator> comm_;
};

TEST_F(OneRankNccl, Describes) {
  EXPECT_EQ(comm_->rank(), 0);
  EXPECT_EQ(comm_->size(), 1);
  EXPECT_EQ(comm_->group(), Group::dp);
  EXPECT_EQ(comm_->world_ranks(), std::vector<int>{3});
  EXPECT_EQ(comm_->device(), 0);
  EXPECT_NE(comm_->communication_stream(), nullptr);
  EXPECT_FALSE(comm_->aborted());
  EXPECT_EQ(comm_->stream(), dist::Stream{});
}

TEST_F(OneRankNccl, AllReduceIsTheIdentity) {
  const auto x = test::random_floats(4099, 1);
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
    DeviceArray<float> d(x);
    comm_->all_reduce(std::span(d.get(), d.size()), op)->wait();
    EXPECT_EQ(d.download(), x) << dist::reduce_op_name(op);
  }
  const auto i = random_ints(1001, 2);
  DeviceArray<std::int64_t> di(i);
  comm_->all_reduce(std::span(di.get(), di.size()), ReduceOp::sum)->wait();
  EXPECT_EQ(di.download(), i);
}

TEST_F(OneRankNccl, ReduceScatterIsTheIdentity) {
  const auto x = test::random_floats(3000, 3);
  DeviceArray<float> in(x), out(x.size());
  out.poison();
  comm_->reduce_scatter(std::span<const float>(in.get(), in.size()), std::span(out.get(), out.size()), ReduceOp::sum)->wait();
  EXPECT_EQ(out.download(), x);
  // In place: the output is this rank's (only) chunk of the input.
  comm_->reduce_scatter(std::span<const float>(in.get(), in.size()), std::span(in.get(), in.size()), ReduceOp::max)->wait();
  EXPECT_EQ(in.download(), x);
}

TEST_F(OneRankNccl, AllGatherIsTheIdentity) {
  const auto x = test::random_floats(2500, 4);
  DeviceArray<float> in(x), out(x.size());
  out.poison();
  comm_->all_gather(std::span<const float>(in.get(), in.size()), std::span(out.get(), out.size()))->wait();
  EXPECT_EQ(out.download(), x);
  comm_->all_gather(std::span<const float>(out.get(), out.size()), std::span(out.get(), out.size()))->wait();
  EXPECT_EQ(out.download(), x);
  const auto i = random_ints(777, 5);
  DeviceArray<std::int64_t> iin(i), iout(i.size());
  iout.poison();
  comm_->all_gather(std::span<const std::int64_t>(iin.get(), iin.size()), std::span(iout.get(), iout.size()))->wait();
  EXPECT_EQ(iout.download(), i);
}

TEST_F(OneRankNccl, BroadcastIsTheIdentity) {
  const auto x = test::random_floats(1234, 6);
  DeviceArray<float> d(x);
  comm_->broadcast(std::span(d.get(), d.size()), 0)->wait();
  EXPECT_EQ(d.download(), x);
  const auto i = random_ints(99, 7);
  DeviceArray<std::int64_t> di(i);
  comm_->broadcast(std::span(di.get(), di.size()), 0)->wait();
  EXPECT_EQ(di.download(), i);
  EXPECT_THROW(comm_->broadcast(std::span(d.get(), d.size()), 1), Error);
}

TEST_F(OneRankNccl, AllToAllVIsTheIdentity) {
  const auto x = test::random_floats(5000, 8);
  DeviceArray<float> in(x), out(x.size());
  out.poison();
  const std::vector<std::int64_t> counts{static_cast<std::int64_t>(x.size())};
  comm_->all_to_all_v(std::span<const float>(in.get(), in.size()), counts, std::span(out.get(), out.size()), counts)->wait();
  EXPECT_EQ(out.download(), x);

  const auto i = random_ints(300, 9);
  DeviceArray<std::int64_t> iin(i), iout(i.size());
  iout.poison();
  const std::vector<std::int64_t> icounts{300};
  comm_->all_to_all_v(std::span<const std::int64_t>(iin.get(), iin.size()), icounts,
                      std::span(iout.get(), iout.size()), icounts)
      ->wait();
  EXPECT_EQ(iout.download(), i);

  // Nothing to exchange: still a Work that completes (and a trace record).
  const std::vector<std::int64_t> zero{0};
  comm_->all_to_all_v(std::span<const float>(), zero, std::span<float>(), zero)->wait();
  // The counts must cover the buffers.
  EXPECT_THROW(comm_->all_to_all_v(std::span<const float>(in.get(), in.size()), zero, std::span(out.get(), out.size()), counts),
               Error);
}

// NCCL allows a rank to send to itself when the send and the matching recv are in one group; separately
// posted, the send would wait for a recv that is queued behind it.
TEST_F(OneRankNccl, SendRecvToSelfInsideAGroup) {
  const auto x = test::random_floats(4096, 10);
  DeviceArray<float> a(x), b(x.size());
  b.poison();
  comm_->group_start();
  auto sent = comm_->send(std::span<const float>(a.get(), a.size()), 0, 7);
  auto received = comm_->recv(std::span(b.get(), b.size()), 0, 7);
  EXPECT_NE(error_of([&] { sent->wait(); }).find("call group_end() first"), std::string::npos);
  EXPECT_THROW(comm_->group_start(), Error);  // no nesting
  EXPECT_THROW(comm_->barrier(), Error);
  comm_->group_end();
  received->wait();
  sent->wait();
  EXPECT_EQ(b.download(), x);
  EXPECT_THROW(comm_->group_end(), Error);
  EXPECT_THROW(comm_->send(std::span<const float>(a.get(), a.size()), 1, 0), Error);
}

TEST_F(OneRankNccl, GroupedCollectivesLaunchTogether) {
  const auto x = test::random_floats(1000, 11), y = test::random_floats(1000, 12);
  DeviceArray<float> dx(x), dy(y), gathered(y.size());
  comm_->group_start();
  auto w1 = comm_->all_reduce(std::span(dx.get(), dx.size()), ReduceOp::sum);
  auto w2 = comm_->all_gather(std::span<const float>(dy.get(), dy.size()), std::span(gathered.get(), gathered.size()));
  comm_->group_end();
  w2->wait();
  w1->wait();
  EXPECT_EQ(dx.download(), x);
  EXPECT_EQ(gathered.download(), y);
}

TEST_F(OneRankNccl, TraceRecordsEachOperation) {
  const auto x = test::random_floats(1024, 13);
  DeviceArray<float> d(x), out(x.size());
  comm_->set_stream({nullptr, 4});
  comm_->all_reduce(std::span(d.get(), d.size()), ReduceOp::sum)->wait();
  auto w = comm_->all_gather(std::span<const float>(d.get(), d.size()), std::span(out.get(), out.size()));
  while (!w->test()) {
  }
  EXPECT_TRUE(w->test());  // again after completion: at once
  comm_->barrier();
  const auto records = trace_.recent();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].op, CollectiveOp::all_reduce);
  EXPECT_EQ(records[0].bytes.payload, 4096u);
  EXPECT_EQ(records[0].bytes.sent, 0u);  // one rank: nothing leaves it
  EXPECT_EQ(records[1].op, CollectiveOp::all_gather);
  EXPECT_EQ(records[2].op, CollectiveOp::barrier);
  for (const auto& r : records) {
    EXPECT_EQ(r.group, Group::dp);
    EXPECT_EQ(r.group_size, 1);
    EXPECT_EQ(r.stream, 4u);
    EXPECT_GT(r.post_ns, 0);
    EXPECT_LE(r.post_ns, r.complete_ns);
  }
  EXPECT_EQ(records[0].dtype, DType::f32);
  EXPECT_EQ(records[2].dtype, DType::u8);
}

TEST_F(OneRankNccl, CallerStreamAndStreamWait) {
  cudaStream_t mine = nullptr, other = nullptr;
  TESSERA_TEST_CUDA(cudaStreamCreateWithFlags(&mine, cudaStreamNonBlocking));
  TESSERA_TEST_CUDA(cudaStreamCreateWithFlags(&other, cudaStreamNonBlocking));
  const auto x = test::random_floats(1 << 20, 14);
  DeviceArray<float> in(x), out(x.size()), copy(x.size());
  out.poison();
  comm_->set_stream({mine, 9});
  auto w = comm_->all_gather(std::span<const float>(in.get(), in.size()), std::span(out.get(), out.size()));
  // `other` reads the result after the all_gather without the host waiting.
  as_nccl(*w).wait_on(other);
  TESSERA_TEST_CUDA(cudaMemcpyAsync(copy.get(), out.get(), x.size() * sizeof(float), cudaMemcpyDeviceToDevice, other));
  TESSERA_TEST_CUDA(cudaStreamSynchronize(other));
  EXPECT_EQ(copy.download(), x);
  w->wait();
  EXPECT_EQ(trace_.recent().back().stream, 9u);
  comm_->set_stream({});
  TESSERA_TEST_CUDA(cudaStreamDestroy(mine));
  TESSERA_TEST_CUDA(cudaStreamDestroy(other));
}

TEST_F(OneRankNccl, CommunicationStreamFollowsTheComputeStream) {
  cudaStream_t compute = nullptr;
  TESSERA_TEST_CUDA(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
  const std::size_t n = 16 << 20;  // 64 MB: the copy takes long enough that a missing dependency shows
  const auto fresh = test::random_floats(n, 15);
  float* pinned = nullptr;
  TESSERA_TEST_CUDA(cudaMallocHost(reinterpret_cast<void**>(&pinned), n * sizeof(float)));
  std::copy(fresh.begin(), fresh.end(), pinned);
  DeviceArray<float> in(n), out(n);
  in.poison();
  out.poison();
  TESSERA_TEST_CUDA(cudaDeviceSynchronize());
  comm_->set_compute_stream(compute);
  EXPECT_EQ(comm_->compute_stream(), compute);
  TESSERA_TEST_CUDA(cudaMemcpyAsync(in.get(), pinned, n * sizeof(float), cudaMemcpyHostToDevice, compute));
  auto w = comm_->all_gather(std::span<const float>(in.get(), n), std::span(out.get(), n));
  w->wait();
  EXPECT_EQ(out.download(), fresh);
  comm_->set_compute_stream(nullptr);
  TESSERA_TEST_CUDA(cudaStreamSynchronize(compute));
  TESSERA_TEST_CUDA(cudaFreeHost(pinned));
  TESSERA_TEST_CUDA(cudaStreamDestroy(compute));
}

TEST_F(OneRankNccl, WatchdogSeesOperationsUntilCompletion) {
  dist::Watchdog watchdog(3, std::chrono::seconds(600), [](const std::string&) {});
  auto comm = std::make_unique<NcclCommunicator>(NcclCommunicator::new_unique_id(), 1, 0, Group::tp, NcclOptions{},
                                                 &trace_, &watchdog);
  DeviceArray<float> d(test::random_floats(64, 16));
  auto w = comm->all_reduce(std::span(d.get(), d.size()), ReduceOp::sum);
  EXPECT_EQ(watchdog.in_flight(), 1u);
  w->wait();
  EXPECT_EQ(watchdog.in_flight(), 0u);
  // A dropped Work is completed by its destructor.
  comm->all_reduce(std::span(d.get(), d.size()), ReduceOp::sum);
  EXPECT_EQ(watchdog.in_flight(), 0u);
  EXPECT_THROW(as_nccl(*std::make_unique<DummyWork>()), Error);
}

// ---- timeouts (in a child process) ----------------------------------------------------------------------
// An abort leaves NCCL and the CUDA context in a state later tests should not inherit, so each timeout
// scenario runs in a re-executed child (gtest's "threadsafe" death-test style) that reports through its exit
// code and stderr. alarm() turns a hang inside NCCL into a failure instead of a stuck test run.

// Blocks the stream it is queued on until released (or 10 s pass, so an abort that waits for the stream
// cannot deadlock the test).
std::atomic<bool> g_release{false};
void CUDART_CB hold_stream(void*) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!g_release.load() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

[[noreturn]] void stuck_operation_scenario() {
  alarm(60);
  int failures = 0;
  const auto expect = [&](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "FAILED: %s\n", what);
      ++failures;
    }
  };
  try {
    TESSERA_TEST_CUDA(cudaSetDevice(0));
    dist::Watchdog watchdog(3, std::chrono::seconds(600), [](const std::string&) {});
    NcclCommunicator comm(NcclCommunicator::new_unique_id(), 1, 0, Group::ep, NcclOptions{.timeout_seconds = 1},
                          nullptr, &watchdog, {3});
    cudaStream_t compute = nullptr;
    TESSERA_TEST_CUDA(cudaStreamCreateWithFlags(&compute, cudaStreamNonBlocking));
    float* d = nullptr;
    TESSERA_TEST_CUDA(cudaMalloc(reinterpret_cast<void**>(&d), 256 * sizeof(float)));
    TESSERA_TEST_CUDA(cudaLaunchHostFunc(compute, hold_stream, nullptr));
    comm.set_compute_stream(compute);  // the communication stream waits for the held compute stream
    auto w = comm.all_reduce(std::span(d, 256), ReduceOp::sum);
    const auto start = std::chrono::steady_clock::now();
    const std::string message = error_of([&] { w->wait(); });
    const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    g_release = true;
    std::fprintf(stderr, "%s\n", message.c_str());
    expect(waited >= 0.9 && waited < 30, "the wait ends about the timeout after the post");
    expect(comm.aborted(), "the communicator is aborted");
    expect(watchdog.in_flight() == 0, "the watchdog ticket is ended");
    const std::string later = error_of([&] { comm.all_reduce(std::span(d, 256), ReduceOp::sum); });
    expect(later.find("was aborted earlier") != std::string::npos, "later operations are refused");
    expect(error_of([&] { w->wait(); }) == "no error", "the failed Work does not throw twice");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAILED: unexpected %s\n", e.what());
    ++failures;
  }
  std::fflush(stderr);
  std::_Exit(failures == 0 ? 0 : 1);
}

TEST(NcclTimeout, StuckOperationAbortsAndNamesRankGroupAndOp) {
  TESSERA_REQUIRE_GPU();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(stuck_operation_scenario(), ::testing::ExitedWithCode(0),
              "rank 3 \\(group rank 0 of 1\\): collective all_reduce on group ep \\(ranks 3\\) stuck for .* timeout 1 s");
}

// A two-rank communicator whose second rank never comes: initialisation must end at the timeout.
[[noreturn]] void lonely_init_scenario() {
  alarm(60);
  try {
    TESSERA_TEST_CUDA(cudaSetDevice(0));
    NcclCommunicator comm(NcclCommunicator::new_unique_id(), 2, 0, Group::pp, NcclOptions{.timeout_seconds = 3});
    std::fprintf(stderr, "FAILED: initialised without the second rank\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::fflush(stderr);
    std::_Exit(0);
  }
  std::fflush(stderr);
  std::_Exit(1);
}

TEST(NcclTimeout, InitialisationWithoutPeersTimesOut) {
  TESSERA_REQUIRE_GPU();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(lonely_init_scenario(), ::testing::ExitedWithCode(0),
              "rank 0 \\(group rank 0 of 2\\): initialising the NCCL communicator on group pp \\(ranks 0,1\\) not "
              "complete");
}

}  // namespace
}  // namespace tessera::cuda
