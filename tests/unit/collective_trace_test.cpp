// The MPI-free parts of the communication layer: the byte accounting of collective_trace.hpp, per-step
// totals and the ring of recent records, and the hang watchdog with a test handler in place of MPI_Abort.

#include "tessera/dist/collective_trace.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "tessera/core/error.hpp"
#include "tessera/dist/watchdog.hpp"
#include "test_support.hpp"

namespace tessera::dist {
namespace {

using tessera::testing::error_of;

TEST(CollectiveTraffic, AllReduceIsTwiceTheReduceScatterShare) {
  EXPECT_EQ(all_reduce_traffic(28, 2), (TrafficBytes{28, 28, 28}));      // 2·1/2·S
  EXPECT_EQ(all_reduce_traffic(12, 4), (TrafficBytes{12, 18, 18}));      // 2·3/4·S
  EXPECT_EQ(all_reduce_traffic(100, 3), (TrafficBytes{100, 133, 133}));  // 133.3 rounded down
  EXPECT_EQ(all_reduce_traffic(64, 1), (TrafficBytes{64, 0, 0}));        // alone: nothing moves
  // No overflow on huge payloads: 2^62 · 14/8.
  const std::uint64_t huge = std::uint64_t{1} << 62;
  EXPECT_EQ(all_reduce_traffic(huge, 8).sent, (std::uint64_t{1} << 59) * 14);
}

TEST(CollectiveTraffic, ScatterAndGatherMoveAllButOwnChunk) {
  EXPECT_EQ(reduce_scatter_traffic(112, 4), (TrafficBytes{112, 84, 84}));
  EXPECT_EQ(all_gather_traffic(56, 2), (TrafficBytes{56, 28, 28}));
  EXPECT_EQ(all_gather_traffic(56, 1), (TrafficBytes{56, 0, 0}));
}

TEST(CollectiveTraffic, BroadcastPointToPointAndAllToAll) {
  EXPECT_EQ(broadcast_traffic(40, true), (TrafficBytes{40, 40, 0}));
  EXPECT_EQ(broadcast_traffic(40, false), (TrafficBytes{40, 0, 40}));
  EXPECT_EQ(send_traffic(8), (TrafficBytes{8, 8, 0}));
  EXPECT_EQ(recv_traffic(8), (TrafficBytes{8, 0, 8}));
  EXPECT_EQ(all_to_all_traffic(100, 60, 70), (TrafficBytes{100, 60, 70}));
}

CollectiveRecord record_of(Group g, CollectiveOp op, TrafficBytes bytes, std::int64_t post, std::int64_t done) {
  CollectiveRecord r;
  r.group = g;
  r.op = op;
  r.bytes = bytes;
  r.post_ns = post;
  r.complete_ns = done;
  return r;
}

TEST(CollectiveTrace, SumsPerGroupAndOpWithinAStep) {
  CollectiveTrace trace;
  EXPECT_EQ(trace.step(), 0u);
  trace.record(record_of(Group::dp, CollectiveOp::all_reduce, {100, 100, 100}, 0, 2'000'000));
  trace.record(record_of(Group::dp, CollectiveOp::all_reduce, {50, 50, 50}, 10, 1'000'010));
  trace.record(record_of(Group::tp, CollectiveOp::all_gather, {80, 40, 40}, 0, 500'000));
  trace.record(record_of(Group::dp, CollectiveOp::reduce_scatter, {80, 60, 60}, 0, 1'000'000));

  StepSummary s = trace.step_summary();
  EXPECT_EQ(s.step, 0u);
  ASSERT_EQ(s.totals.size(), 3u);
  // Group-major in enum order (tp before dp), ops in enum order within a group.
  EXPECT_EQ(s.totals[0].group, Group::tp);
  EXPECT_EQ(s.totals[1].op, CollectiveOp::all_reduce);
  EXPECT_EQ(s.totals[2].op, CollectiveOp::reduce_scatter);
  const GroupOpTotals* ar = s.find(Group::dp, CollectiveOp::all_reduce);
  ASSERT_NE(ar, nullptr);
  EXPECT_EQ(ar->calls, 2u);
  EXPECT_EQ(ar->payload_bytes, 150u);
  EXPECT_EQ(ar->sent_bytes, 150u);
  EXPECT_EQ(ar->received_bytes, 150u);
  EXPECT_DOUBLE_EQ(ar->seconds, 0.003);
  EXPECT_DOUBLE_EQ(ar->max_seconds, 0.002);
  EXPECT_EQ(s.find(Group::ep, CollectiveOp::all_to_all_v), nullptr);
  const GroupOpTotals dp = s.group_total(Group::dp);
  EXPECT_EQ(dp.calls, 3u);
  EXPECT_EQ(dp.sent_bytes, 210u);

  const std::string text = format_step_summary(s);
  EXPECT_NE(text.find("step 0 communication:"), std::string::npos) << text;
  EXPECT_NE(text.find("reduce_scatter"), std::string::npos) << text;
  EXPECT_NE(text.find("2 calls"), std::string::npos) << text;

  trace.begin_step();
  EXPECT_EQ(trace.step(), 1u);
  s = trace.step_summary();
  EXPECT_EQ(s.step, 1u);
  EXPECT_TRUE(s.totals.empty());
  EXPECT_NE(format_step_summary(s).find("none"), std::string::npos);
  trace.record(record_of(Group::dp, CollectiveOp::all_reduce, {4, 4, 4}, 0, 1));
  EXPECT_EQ(trace.step_summary().find(Group::dp, CollectiveOp::all_reduce)->calls, 1u);
}

TEST(CollectiveTrace, KeepsTheLastRecordsOldestFirst) {
  CollectiveTrace trace(3);
  for (std::int64_t i = 0; i < 5; ++i) {
    trace.record(record_of(Group::tp, CollectiveOp::send, {}, i, i + 1));
    if (i == 3) trace.begin_step();
  }
  EXPECT_EQ(trace.records_seen(), 5u);
  const auto kept = trace.recent();
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].post_ns, 2);
  EXPECT_EQ(kept[2].post_ns, 4);
  EXPECT_EQ(kept[1].step, 0u);
  EXPECT_EQ(kept[2].step, 1u);  // stamped with the step it completed in

  CollectiveTrace totals_only(0);
  totals_only.record(record_of(Group::tp, CollectiveOp::send, {8, 8, 0}, 0, 1));
  EXPECT_TRUE(totals_only.recent().empty());
  EXPECT_EQ(totals_only.step_summary().totals.size(), 1u);
}

// Collects the watchdog's report instead of aborting.
struct Reports {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> lines;

  Watchdog::HangHandler handler() {
    return [this](const std::string& line) {
      const std::lock_guard lock(mutex);
      lines.push_back(line);
      cv.notify_all();
    };
  }
  bool wait_for_one(std::chrono::milliseconds limit) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, limit, [&] { return !lines.empty(); });
  }
};

TEST(Watchdog, ReportsAStuckOperationWithRankGroupAndOp) {
  Reports reports;
  Watchdog dog(3, std::chrono::milliseconds(50), reports.handler());
  const int tp = dog.add_channel(Group::tp, {2, 3});
  const int dp = dog.add_channel(Group::dp, {1, 3});
  const auto quick = dog.begin(tp, CollectiveOp::all_gather, 1, monotonic_ns());
  dog.end(quick);
  const auto start = std::chrono::steady_clock::now();
  dog.begin(dp, CollectiveOp::all_reduce, 12, monotonic_ns());
  ASSERT_TRUE(reports.wait_for_one(std::chrono::seconds(5)));
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(waited, 0.045);
  EXPECT_LT(waited, 2.0);
  const std::lock_guard lock(reports.mutex);
  ASSERT_EQ(reports.lines.size(), 1u);
  const std::string& line = reports.lines[0];
  EXPECT_EQ(line.rfind("tessera: rank 3: collective all_reduce on group dp (ranks 1,3) stuck for ", 0), 0u) << line;
  EXPECT_NE(line.find("operation #12"), std::string::npos) << line;
  EXPECT_NE(line.find("timeout 0.05 s"), std::string::npos) << line;
}

TEST(Watchdog, QuietWhileOperationsCompleteInTime) {
  Reports reports;
  Watchdog dog(0, std::chrono::milliseconds(200), reports.handler());
  const int ch = dog.add_channel(Group::tp, {0, 1});
  for (int i = 0; i < 1000; ++i) {
    const auto a = dog.begin(ch, CollectiveOp::all_reduce, 2 * static_cast<std::uint64_t>(i), monotonic_ns());
    const auto b = dog.begin(ch, CollectiveOp::broadcast, 2 * static_cast<std::uint64_t>(i) + 1, monotonic_ns());
    EXPECT_EQ(dog.in_flight(), 2u);
    dog.end(b);
    dog.end(a);
  }
  EXPECT_EQ(dog.in_flight(), 0u);
  EXPECT_FALSE(reports.wait_for_one(std::chrono::milliseconds(300)));
}

TEST(Watchdog, RefusesMoreOperationsInFlightThanItsTable) {
  Reports reports;
  Watchdog dog(5, std::chrono::seconds(60), reports.handler(), 2);
  const int ch = dog.add_channel(Group::ep, {4, 5});
  const auto a = dog.begin(ch, CollectiveOp::all_to_all_v, 1, monotonic_ns());
  const auto b = dog.begin(ch, CollectiveOp::all_to_all_v, 2, monotonic_ns());
  EXPECT_NE(error_of([&] {
              dog.begin(ch, CollectiveOp::all_to_all_v, 3, monotonic_ns());
            }).find("rank 5: more than 2 communication operations in flight"),
            std::string::npos);
  dog.end(a);
  const auto c = dog.begin(ch, CollectiveOp::all_to_all_v, 3, monotonic_ns());  // a freed slot is reused
  EXPECT_EQ(c, a);
  dog.end(b);
  dog.end(c);
}

TEST(Watchdog, RefusesANonPositiveTimeout) {
  EXPECT_NE(error_of([] { Watchdog dog(0, std::chrono::seconds(0)); }).find("must be positive"), std::string::npos);
}

}  // namespace
}  // namespace tessera::dist
