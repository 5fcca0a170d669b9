#pragma once
// The hang watchdog: a background thread that ends the job when a communication operation has not
// completed `timeout` after it was posted. A rank that skips a collective, posts them in another order or
// died leaves its peers blocked in MPI forever; without this the job burns its allocation silently.
//
// On a hang the watchdog writes one line to stderr,
//   tessera: rank R: collective <op> on group <name> (ranks a,b,...) stuck for N s (...)
// and calls MPI_Abort(MPI_COMM_WORLD, Watchdog::kExitCode) so mpirun / srun take down every rank.
// kExitCode is 124, what timeout(1) uses for "timed out"; mpirun passes it on as its own exit status.
// MPI_Abort is the one MPI call made off the main thread; it is meant to work from any state (Open MPI and
// MPICH kill through their runtime), and std::_Exit backs it up should it ever return.
//
// The hot path is lock-free: begin() claims a slot of a fixed table with one compare-and-swap and end()
// frees it with one store. The thread scans the table a few times per timeout. Channels (one per
// communicator, naming its group and world ranks) are added at setup and only read when reporting.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tessera/dist/collective_trace.hpp"
#include "tessera/dist/topology.hpp"

namespace tessera::dist {

class Watchdog {
 public:
  static constexpr int kExitCode = 124;
  static constexpr std::size_t kDefaultCapacity = 1024;  // operations in flight at once on this rank

  // Receives the report line (without newline). The default prints it to stderr and aborts the job; tests
  // pass their own. The watchdog reports one hang and then stops watching.
  using HangHandler = std::function<void(const std::string& report)>;

  // `timeout` must be positive. Starts the thread.
  Watchdog(int world_rank, std::chrono::duration<double> timeout, HangHandler on_hang = {},
           std::size_t capacity = kDefaultCapacity);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // Setup: names a communicator for reports. Returns its channel number.
  int add_channel(Group group, std::vector<int> world_ranks);

  // Hot path. begin() registers an operation posted at `post_ns` (monotonic_ns()) as the `sequence`-th
  // on `channel`, and returns the ticket end() takes when it completes. Throws tessera::Error when
  // `capacity` operations are already in flight.
  using Ticket = std::uint32_t;
  Ticket begin(int channel, CollectiveOp op, std::uint64_t sequence, std::int64_t post_ns);
  void end(Ticket ticket) noexcept;

  double timeout_seconds() const { return std::chrono::duration<double>(timeout_).count(); }
  std::size_t in_flight() const;  // for tests and diagnostics: registered, not yet ended

  // The default handler: stderr, then MPI_Abort(MPI_COMM_WORLD, kExitCode).
  [[noreturn]] static void abort_job(const std::string& report);

 private:
  // A slot is free when post_ns is kFree, being written when kClaimed, otherwise in flight since post_ns.
  static constexpr std::int64_t kFree = 0;
  static constexpr std::int64_t kClaimed = -1;
  struct Slot {
    std::atomic<std::int64_t> post_ns{kFree};
    std::atomic<std::uint32_t> channel{0};
    std::atomic<std::uint32_t> op{0};
    std::atomic<std::uint64_t> sequence{0};
  };

  void run();
  // The report for the slot if it is stuck, else empty.
  std::string check(const Slot& slot, std::int64_t now_ns) const;

  const int world_rank_;
  const std::chrono::nanoseconds timeout_;
  const HangHandler on_hang_;
  std::unique_ptr<Slot[]> slots_;
  const std::size_t capacity_;
  std::atomic<std::size_t> high_water_{0};  // slots at or above it were never used: the scan stops there
  std::atomic<std::size_t> next_hint_{0};   // where begin() starts looking

  mutable std::mutex channels_mutex_;
  std::vector<std::string> channels_;  // "group dp (ranks 1,3)"

  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace tessera::dist
