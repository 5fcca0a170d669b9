#include "tessera/dist/watchdog.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "tessera/core/error.hpp"

namespace tessera::dist {

namespace {

// A few looks per timeout bound how late a hang is reported (by an eighth of the timeout) at a negligible
// cost (a scan of the in-flight table); the clamp keeps tiny test timeouts from spinning.
std::chrono::nanoseconds poll_interval(std::chrono::nanoseconds timeout) {
  return std::clamp<std::chrono::nanoseconds>(timeout / 8, std::chrono::milliseconds(5), std::chrono::seconds(1));
}

}  // namespace

Watchdog::Watchdog(int world_rank, std::chrono::duration<double> timeout, HangHandler on_hang, std::size_t capacity)
    : world_rank_(world_rank),
      timeout_(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout)),
      on_hang_(on_hang ? std::move(on_hang) : HangHandler(&Watchdog::abort_job)),
      slots_(std::make_unique<Slot[]>(capacity)),
      capacity_(capacity) {
  TESSERA_CHECK(timeout_.count() > 0, "the collective timeout must be positive, got {} s", timeout.count());
  TESSERA_CHECK(capacity_ > 0, "the watchdog needs room for at least one operation in flight");
  thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    const std::lock_guard lock(stop_mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

int Watchdog::add_channel(Group group, std::vector<int> world_ranks) {
  const std::lock_guard lock(channels_mutex_);
  channels_.push_back(fmt::format("group {} (ranks {})", group_name(group), fmt::join(world_ranks, ",")));
  return static_cast<int>(channels_.size() - 1);
}

Watchdog::Ticket Watchdog::begin(int channel, CollectiveOp op, std::uint64_t sequence, std::int64_t post_ns) {
  // 0 and -1 mark free and claimed slots; a real steady-clock reading is never that small.
  post_ns = std::max<std::int64_t>(post_ns, 1);
  const std::size_t start = next_hint_.load(std::memory_order_relaxed);
  for (std::size_t k = 0; k < capacity_; ++k) {
    const std::size_t i = (start + k) % capacity_;
    Slot& slot = slots_[i];
    std::int64_t expected = kFree;
    if (slot.post_ns.load(std::memory_order_relaxed) != kFree ||
        !slot.post_ns.compare_exchange_strong(expected, kClaimed, std::memory_order_acquire))
      continue;
    slot.channel.store(static_cast<std::uint32_t>(channel), std::memory_order_relaxed);
    slot.op.store(static_cast<std::uint32_t>(op), std::memory_order_relaxed);
    slot.sequence.store(sequence, std::memory_order_relaxed);
    // Publishes the fields above to the watchdog thread, which reads post_ns with acquire first.
    slot.post_ns.store(post_ns, std::memory_order_release);
    next_hint_.store(i + 1 == capacity_ ? 0 : i + 1, std::memory_order_relaxed);
    std::size_t high = high_water_.load(std::memory_order_relaxed);
    while (high < i + 1 && !high_water_.compare_exchange_weak(high, i + 1, std::memory_order_relaxed)) {
    }
    return static_cast<Ticket>(i);
  }
  TESSERA_FAIL(
      "rank {}: more than {} communication operations in flight; wait on the Work handles of earlier "
      "ones before posting more",
      world_rank_, capacity_);
}

void Watchdog::end(Ticket ticket) noexcept {
  slots_[ticket].post_ns.store(kFree, std::memory_order_release);
  // Reusing the lowest freed slot keeps the scanned prefix short in the usual few-in-flight case.
  next_hint_.store(ticket, std::memory_order_relaxed);
}

std::size_t Watchdog::in_flight() const {
  std::size_t n = 0;
  const std::size_t high = high_water_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < high; ++i)
    if (slots_[i].post_ns.load(std::memory_order_relaxed) > 0) ++n;
  return n;
}

void Watchdog::run() {
  const std::chrono::nanoseconds poll = poll_interval(timeout_);
  std::unique_lock lock(stop_mutex_);
  while (!stop_) {
    stop_cv_.wait_for(lock, poll);
    if (stop_) break;
    const std::int64_t now = monotonic_ns();
    const std::size_t high = high_water_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < high; ++i) {
      std::string report = check(slots_[i], now);
      if (report.empty()) continue;
      // One report per job: the default handler does not return, and a test's handler has seen enough.
      lock.unlock();
      on_hang_(report);
      return;
    }
  }
}

std::string Watchdog::check(const Slot& slot, std::int64_t now_ns) const {
  const std::int64_t posted = slot.post_ns.load(std::memory_order_acquire);
  if (posted <= 0 || now_ns - posted < timeout_.count()) return {};
  const std::uint32_t channel = slot.channel.load(std::memory_order_relaxed);
  const auto op = static_cast<CollectiveOp>(slot.op.load(std::memory_order_relaxed));
  const std::uint64_t sequence = slot.sequence.load(std::memory_order_relaxed);
  // The slot may have completed and been reused while we read it; then these fields are not the stuck one's.
  std::atomic_thread_fence(std::memory_order_acquire);
  if (slot.post_ns.load(std::memory_order_relaxed) != posted) return {};

  std::string where;
  {
    const std::lock_guard lock(channels_mutex_);
    where = channel < channels_.size() ? channels_[channel] : fmt::format("channel {}", channel);
  }
  return fmt::format(
      "tessera: rank {}: collective {} on {} stuck for {:.1f} s (operation #{} this rank posted on that "
      "communicator; timeout {:g} s). Every rank of the group must post the same operations in the same "
      "order: another rank skipped this one, posted a different one, or is stuck or dead before it",
      world_rank_, collective_op_name(op), where, static_cast<double>(now_ns - posted) * 1e-9, sequence,
      timeout_seconds());
}

void Watchdog::abort_job(const std::string& report) {
  std::fprintf(stderr, "%s; aborting the job with exit code %d\n", report.c_str(), kExitCode);
  std::fflush(stderr);
  int initialized = 0, finalized = 0;
  if (MPI_Initialized(&initialized) == MPI_SUCCESS && initialized && MPI_Finalized(&finalized) == MPI_SUCCESS &&
      !finalized)
    MPI_Abort(MPI_COMM_WORLD, kExitCode);
  std::_Exit(kExitCode);  // MPI_Abort does not return; without MPI this still ends the process
}

}  // namespace tessera::dist
