#pragma once
// What every communication operation cost: per call, the bytes this rank had to send and receive and the
// wall time from post to completion; per step, totals per (group, operation). Pure bookkeeping, no MPI,
// so the accounting is tested without ranks.
//
// Bytes are counted by what the operation needs, not by what an algorithm happened to move, so numbers
// compare across backends, algorithms and group sizes (nccl-tests' "bus bandwidth" convention): for a
// payload of S bytes on n ranks, each rank must send and receive at least
//   all_reduce      2(n-1)/n · S   (reduce-scatter then all-gather; no algorithm moves less per rank)
//   reduce_scatter  (n-1)/n · S    (S = the whole input, all n chunks)
//   all_gather      (n-1)/n · S    (S = the whole output, all n chunks)
//   broadcast       the root sends S, every other rank receives S
//   all_to_all_v    the elements actually addressed to / received from other ranks (its own chunk is a copy)
//   send / recv     S
// The payload S is recorded separately. Fractions are rounded down to a whole byte per call.
//
// Cheap by construction: recording writes into a fixed ring of recent records and a fixed table of step
// totals, so it never allocates or locks. Not thread-safe: it is written by the thread that completes the
// operations (the one driving the communicators).

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/dtype.hpp"
#include "tessera/dist/topology.hpp"

namespace tessera::dist {

enum class CollectiveOp : std::uint8_t {
  all_reduce,
  reduce_scatter,
  all_gather,
  all_to_all_v,
  broadcast,
  send,
  recv,
  barrier,
};
inline constexpr std::size_t kCollectiveOps = static_cast<std::size_t>(CollectiveOp::barrier) + 1;
std::string_view collective_op_name(CollectiveOp);

// Monotonic nanoseconds shared by the trace and the watchdog (steady_clock).
std::int64_t monotonic_ns();

struct TrafficBytes {
  std::uint64_t payload = 0;  // S: the buffer the caller handed over
  std::uint64_t sent = 0;     // by the accounting above
  std::uint64_t received = 0;

  friend bool operator==(const TrafficBytes&, const TrafficBytes&) = default;
};

// The accounting above, for a group of `ranks` ranks and a payload of `payload` bytes.
TrafficBytes all_reduce_traffic(std::uint64_t payload, int ranks);
TrafficBytes reduce_scatter_traffic(std::uint64_t payload, int ranks);
TrafficBytes all_gather_traffic(std::uint64_t payload, int ranks);
TrafficBytes broadcast_traffic(std::uint64_t payload, bool is_root);
TrafficBytes send_traffic(std::uint64_t payload);
TrafficBytes recv_traffic(std::uint64_t payload);
// `sent_to_others` / `received_from_others`: bytes addressed to / from ranks other than this one.
TrafficBytes all_to_all_traffic(std::uint64_t payload, std::uint64_t sent_to_others,
                                std::uint64_t received_from_others);

struct CollectiveRecord {
  Group group = Group::tp;
  CollectiveOp op = CollectiveOp::barrier;
  DType dtype = DType::f32;
  int group_size = 1;
  std::uint32_t stream = 0;  // Stream::id it was posted on
  TrafficBytes bytes;
  std::int64_t post_ns = 0;      // monotonic_ns() at post
  std::int64_t complete_ns = 0;  // monotonic_ns() when completion was observed (wait/test)
  std::uint64_t step = 0;

  double seconds() const { return static_cast<double>(complete_ns - post_ns) * 1e-9; }
};

struct GroupOpTotals {
  Group group = Group::tp;
  CollectiveOp op = CollectiveOp::barrier;
  std::uint64_t calls = 0;
  std::uint64_t payload_bytes = 0;
  std::uint64_t sent_bytes = 0;
  std::uint64_t received_bytes = 0;
  // Sum of per-call wall times: overlapping calls each count in full, so this can exceed the step time.
  double seconds = 0;
  double max_seconds = 0;
};

struct StepSummary {
  std::uint64_t step = 0;
  std::vector<GroupOpTotals> totals;  // the (group, op) pairs used this step, group-major in enum order

  // One (group, op) pair; nullptr when it was not used this step.
  const GroupOpTotals* find(Group group, CollectiveOp op) const;
  // Everything on one group this step (op is meaningless in the result).
  GroupOpTotals group_total(Group group) const;
};

// A few lines for the log: per group and operation, calls, payload, bytes sent / received, time and the
// resulting bandwidth (bytes sent / time).
std::string format_step_summary(const StepSummary& summary);

class CollectiveTrace {
 public:
  // Keeps the last `recent_capacity` records (0: totals only).
  explicit CollectiveTrace(std::size_t recent_capacity = 1024);

  // Hot path: one completed operation.
  void record(const CollectiveRecord& record);

  // Starts the next step: the step totals restart from zero. Step 0 is everything before the first call
  // (setup traffic), so a loop that calls it at the top of each step numbers its steps from 1.
  void begin_step();
  std::uint64_t step() const { return step_; }
  // Totals since the last begin_step().
  StepSummary step_summary() const;

  // The kept records, oldest first.
  std::vector<CollectiveRecord> recent() const;
  std::uint64_t records_seen() const { return seen_; }

 private:
  static constexpr std::size_t kGroups = static_cast<std::size_t>(Group::etp_ep_pp) + 1;

  std::array<std::array<GroupOpTotals, kCollectiveOps>, kGroups> step_totals_{};
  std::vector<CollectiveRecord> ring_;  // sized once in the constructor
  std::uint64_t seen_ = 0;
  std::uint64_t step_ = 0;
};

}  // namespace tessera::dist
