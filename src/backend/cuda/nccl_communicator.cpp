#include "tessera/backend/cuda/nccl_communicator.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <limits>
#include <numeric>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "cuda_check.hpp"
#include "tessera/core/error.hpp"
#include "tessera/dist/mpi_check.hpp"

namespace tessera::cuda {

using dist::CollectiveOp;
using dist::CollectiveRecord;
using dist::Group;
using dist::ReduceOp;
using dist::TrafficBytes;
using dist::Watchdog;
using dist::WorkPtr;

static_assert(sizeof(ncclUniqueId) == sizeof(NcclUniqueId::bytes), "ncclUniqueId changed size");

namespace {

template <class T>
struct Element;
template <>
struct Element<float> {
  static constexpr ncclDataType_t nccl = ncclFloat32;
  static constexpr DType dtype = DType::f32;
};
template <>
struct Element<std::int64_t> {
  static constexpr ncclDataType_t nccl = ncclInt64;
  static constexpr DType dtype = DType::i64;
};

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  TESSERA_FAIL("unknown reduce op {}", static_cast<int>(op));
}

template <class T>
std::uint64_t bytes_of(std::size_t count) {
  return static_cast<std::uint64_t>(count) * sizeof(T);
}

bool overlaps(std::span<const std::byte> a, std::span<const std::byte> b) {
  if (a.empty() || b.empty()) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.data()), b0 = reinterpret_cast<std::uintptr_t>(b.data());
  return a0 < b0 + b.size() && b0 < a0 + a.size();
}

bool ok_or_in_progress(ncclResult_t rc) { return rc == ncclSuccess || rc == ncclInProgress; }

std::int64_t deadline_after(std::int64_t start_ns, double timeout_s) {
  if (timeout_s <= 0) return std::numeric_limits<std::int64_t>::max();
  return start_ns + static_cast<std::int64_t>(timeout_s * 1e9);
}

// Polling: yield for about the first millisecond (small collectives finish in microseconds), then sleep in
// short steps so a long wait does not burn a core.
class Backoff {
 public:
  void pause() {
    if (++rounds_ < 1000)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }

 private:
  int rounds_ = 0;
};

// Makes `device` current for a scope (NCCL binds a communicator, its streams and events to one device).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    int current = 0;
    TESSERA_CUDA_CHECK(cudaGetDevice(&current));
    if (current != device) {
      TESSERA_CUDA_CHECK(cudaSetDevice(device));
      previous_ = current;
    }
  }
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace

// ---- host-side checks -----------------------------------------------------------------------------------

namespace nccl_checks {

bool reduce_scatter(const GroupView& g, std::span<const std::byte> input, std::span<const std::byte> output,
                    std::size_t element_size) {
  const std::size_t in = input.size() / element_size, out = output.size() / element_size;
  const auto n = static_cast<std::size_t>(g.size);
  TESSERA_CHECK(in / n == out && in % n == 0,
                "reduce_scatter on group {}: the input of {} elements must be {} chunks of the output's {}",
                dist::group_name(g.group), in, g.size, out);
  const bool in_place = !output.empty() && output.data() == input.data() + static_cast<std::size_t>(g.rank) * output.size();
  TESSERA_CHECK(in_place || !overlaps(input, output),
                "reduce_scatter on group {}: the output overlaps the input other than as this rank's own chunk "
                "(group rank {})",
                dist::group_name(g.group), g.rank);
  return in_place;
}

bool all_gather(const GroupView& g, std::span<const std::byte> input, std::span<const std::byte> output,
                std::size_t element_size) {
  const std::size_t in = input.size() / element_size, out = output.size() / element_size;
  const auto n = static_cast<std::size_t>(g.size);
  TESSERA_CHECK(out / n == in && out % n == 0,
                "all_gather on group {}: the output of {} elements must be {} chunks of the input's {}",
                dist::group_name(g.group), out, g.size, in);
  const bool in_place = !input.empty() && input.data() == output.data() + static_cast<std::size_t>(g.rank) * input.size();
  TESSERA_CHECK(in_place || !overlaps(input, output),
                "all_gather on group {}: the input overlaps the output other than as this rank's own chunk (group "
                "rank {})",
                dist::group_name(g.group), g.rank);
  return in_place;
}

AllToAllPlan all_to_all_v(const GroupView& g, std::span<const std::byte> input,
                          std::span<const std::int64_t> send_counts, std::span<const std::byte> output,
                          std::span<const std::int64_t> recv_counts, std::size_t element_size) {
  const auto n = static_cast<std::size_t>(g.size);
  const std::string_view group = dist::group_name(g.group);
  TESSERA_CHECK(send_counts.size() == n && recv_counts.size() == n,
                "all_to_all_v on group {}: {} send and {} receive counts for a group of {} ranks", group,
                send_counts.size(), recv_counts.size(), n);
  TESSERA_CHECK(!overlaps(input, output), "all_to_all_v on group {}: the output overlaps the input", group);
  AllToAllPlan plan;
  const auto fill = [&](std::span<const std::int64_t> counts, std::vector<std::size_t>& offsets, std::size_t buffer,
                        const char* side) {
    offsets.resize(n);
    std::size_t offset = 0;
    std::uint64_t to_others = 0;
    for (std::size_t p = 0; p < n; ++p) {
      TESSERA_CHECK(counts[p] >= 0, "all_to_all_v on group {}: {} count {} for group rank {} is negative", group,
                    side, counts[p], p);
      const auto count = static_cast<std::uint64_t>(counts[p]);
      // Compared before adding, so absurd counts cannot overflow the sum.
      TESSERA_CHECK(count <= buffer - offset,
                    "all_to_all_v on group {}: the {} counts up to group rank {} add up to more than the buffer's {} "
                    "elements",
                    group, side, p, buffer);
      offsets[p] = offset;
      offset += static_cast<std::size_t>(count);
      if (p != static_cast<std::size_t>(g.rank)) to_others += count;
    }
    TESSERA_CHECK(offset == buffer, "all_to_all_v on group {}: the {} counts add up to {} elements but the buffer holds {}",
                  group, side, offset, buffer);
    return to_others * element_size;
  };
  plan.sent_to_others = fill(send_counts, plan.send_offsets, input.size() / element_size, "send");
  plan.received_from_others = fill(recv_counts, plan.recv_offsets, output.size() / element_size, "receive");
  return plan;
}

void root(const GroupView& g, int root) {
  TESSERA_CHECK(root >= 0 && root < g.size, "broadcast on group {}: root {} is not a rank of the group (0..{})",
                dist::group_name(g.group), root, g.size - 1);
}

void peer(const GroupView& g, CollectiveOp op, int peer, int tag) {
  TESSERA_CHECK(peer >= 0 && peer < g.size, "{} on group {}: peer {} is not a rank of the group (0..{})",
                dist::collective_op_name(op), dist::group_name(g.group), peer, g.size - 1);
  TESSERA_CHECK(tag >= 0, "{} on group {}: tag {} is negative", dist::collective_op_name(op),
                dist::group_name(g.group), tag);
}

}  // namespace nccl_checks

// ---- shared state ---------------------------------------------------------------------------------------

// Everything a Work needs after its post: the NCCL communicator (so a Work outliving the NcclCommunicator
// stays safe), the event pool, the abort state and the open group.
struct NcclCommunicator::State {
  ncclComm_t comm = nullptr;
  int device = 0;
  Group group = Group::dp;
  int rank = 0;
  int size = 1;
  std::vector<int> world_ranks;
  double timeout_s = 600;
  dist::CollectiveTrace* trace = nullptr;
  Watchdog* watchdog = nullptr;
  int channel = -1;
  std::uint64_t posted = 0;
  cudaStream_t comm_stream = nullptr;
  cudaEvent_t ready = nullptr;  // recorded on the compute stream, waited on by comm_stream
  float* barrier_buffer = nullptr;
  std::vector<cudaEvent_t> free_events;
  std::string abort_reason;  // non-empty once aborted
  bool in_group = false;
  std::vector<PendingWork*> group_members;  // posted since group_start(), launched by group_end()

  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  ~State() {
    try {
      DeviceGuard guard(device);
      if (comm != nullptr) finalize();
      for (cudaEvent_t e : free_events) cudaEventDestroy(e);
      if (ready) cudaEventDestroy(ready);
      if (comm_stream) cudaStreamDestroy(comm_stream);
      if (barrier_buffer) cudaFree(barrier_buffer);
    } catch (const std::exception& e) {
      spdlog::error("destroying the NCCL communicator of group {}: {}", dist::group_name(group), e.what());
    }
  }

  // ncclCommFinalize completes what is in flight; on a non-blocking communicator it returns ncclInProgress
  // and is polled to the end, within the timeout, before ncclCommDestroy. Never throws.
  void finalize() noexcept {
    ncclResult_t rc = ncclCommFinalize(comm);
    const std::int64_t deadline = deadline_after(dist::monotonic_ns(), timeout_s);
    Backoff backoff;
    while (rc == ncclInProgress && dist::monotonic_ns() < deadline) {
      backoff.pause();
      if (ncclCommGetAsyncError(comm, &rc) != ncclSuccess) rc = ncclInternalError;
    }
    if (rc == ncclSuccess) {
      ncclCommDestroy(comm);
    } else {
      spdlog::error("{}: finalising the NCCL communicator of {} failed or timed out ({}); aborting it", where(),
                    label(), rc == ncclInProgress ? "timeout" : ncclGetErrorString(rc));
      ncclCommAbort(comm);
    }
    comm = nullptr;
  }

  // "rank 5 (group rank 1 of 2)": the world rank first, as the watchdog reports it.
  std::string where() const {
    return fmt::format("rank {} (group rank {} of {})", world_ranks.at(static_cast<std::size_t>(rank)), rank, size);
  }
  // "group dp (ranks 1,5)"
  std::string label() const {
    return fmt::format("group {} (ranks {})", dist::group_name(group), fmt::join(world_ranks, ","));
  }

  void check_usable(std::string_view what) const {
    TESSERA_CHECK(abort_reason.empty(),
                  "{}: {} on {}: the NCCL communicator was aborted earlier ({}); NCCL cannot resume it, so end the job",
                  where(), what, label(), abort_reason);
  }

  // Aborts the communicator once (ncclCommAbort also stops its kernels) and throws `message`.
  [[noreturn]] void abort_and_throw(const std::string& message) {
    if (abort_reason.empty()) {
      abort_reason = message;
      if (comm != nullptr) {
        const ncclResult_t rc = ncclCommAbort(comm);
        if (!ok_or_in_progress(rc)) spdlog::error("ncclCommAbort on {}: {}", label(), ncclGetErrorString(rc));
        comm = nullptr;
      }
    }
    TESSERA_FAIL("{}; the NCCL communicator was aborted and every later operation on it fails", message);
  }

  // An asynchronous error (a peer died, a network failure), as a message; empty while all is well.
  std::string async_error(std::string_view what) const {
    if (comm == nullptr) return {};
    ncclResult_t state = ncclSuccess;
    const ncclResult_t rc = ncclCommGetAsyncError(comm, &state);
    if (rc != ncclSuccess) state = rc;
    if (ok_or_in_progress(state)) return {};
    return fmt::format("{}: {} on {} failed: {} ({})", where(), what, label(), ncclGetErrorString(state),
                       ncclGetLastError(comm));
  }

  std::string timeout_message(std::string_view what, std::int64_t began_ns, std::uint64_t sequence) const {
    const double waited = static_cast<double>(dist::monotonic_ns() - began_ns) * 1e-9;
    if (sequence == 0)  // initialisation or group_end
      return fmt::format(
          "tessera: {}: {} on {} not complete {:.1f} s after it began (timeout {:g} s). Every rank of the group "
          "must reach it at the same point (with the same unique id, for initialisation): another rank did not, "
          "or is stuck or dead before it",
          where(), what, label(), waited, timeout_s);
    return fmt::format(
        "tessera: {}: collective {} on {} stuck for {:.1f} s (operation #{} this rank posted on that communicator; "
        "timeout {:g} s). Every rank of the group must post the same operations in the same order: another rank "
        "skipped this one, posted a different one, or is stuck or dead before it",
        where(), what, label(), waited, sequence, timeout_s);
  }

  // Waits out ncclInProgress, which a non-blocking communicator returns while it initialises or enqueues in
  // the background; the stream may be used only after that. Any error aborts the communicator and throws.
  void settle(ncclResult_t rc, std::string_view what, std::int64_t began_ns, std::uint64_t sequence = 0) {
    if (rc != ncclSuccess && rc != ncclInProgress)
      abort_and_throw(fmt::format("{}: {} on {} failed: {} ({})", where(), what, label(), ncclGetErrorString(rc),
                                  comm ? ncclGetLastError(comm) : ""));
    const std::int64_t deadline = deadline_after(began_ns, timeout_s);
    Backoff backoff;
    while (rc == ncclInProgress) {
      ncclResult_t state = ncclSuccess;
      const ncclResult_t q = ncclCommGetAsyncError(comm, &state);
      rc = q != ncclSuccess ? q : state;
      if (rc == ncclSuccess) return;
      if (rc != ncclInProgress)
        abort_and_throw(fmt::format("{}: {} on {} failed: {} ({})", where(), what, label(), ncclGetErrorString(rc),
                                    ncclGetLastError(comm)));
      if (dist::monotonic_ns() >= deadline) abort_and_throw(timeout_message(what, began_ns, sequence));
      backoff.pause();
    }
  }

  cudaEvent_t take_event() {
    if (!free_events.empty()) {
      cudaEvent_t e = free_events.back();
      free_events.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    TESSERA_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  }
  void give_event(cudaEvent_t e) { free_events.push_back(e); }
};

// ---- Work -----------------------------------------------------------------------------------------------

class NcclCommunicator::PendingWork final : public NcclWork {
 public:
  PendingWork(std::shared_ptr<State> state, const CollectiveRecord& record)
      : state_(std::move(state)), record_(record), event_(state_->take_event()) {}

  ~PendingWork() override {
    if (phase_ == Phase::grouped) {
      auto& members = state_->group_members;
      members.erase(std::remove(members.begin(), members.end(), this), members.end());
      close();
      spdlog::error("{}: a {} posted inside group_start() on {} was dropped before group_end(); NCCL still runs it "
                    "then, so its buffers must stay alive until group_end()",
                    state_->where(), name(), state_->label());
    } else if (phase_ == Phase::launched) {
      // As on MPI: the buffers may be freed right after this, so the only safe thing is to complete it.
      try {
        wait();
      } catch (const std::exception& e) {
        spdlog::error("completing a dropped {} on {}: {}", name(), state_->label(), e.what());
      }
    }
    try {
      DeviceGuard guard(state_->device);
      state_->give_event(event_);
    } catch (const std::exception&) {
      cudaEventDestroy(event_);
    }
  }

  void wait() override {
    if (done_once()) return;
    const std::int64_t deadline = deadline_after(record_.post_ns, state_->timeout_s);
    Backoff backoff;
    while (!poll(deadline)) backoff.pause();
  }

  bool test() override {
    if (done_once()) return true;
    return poll(deadline_after(record_.post_ns, state_->timeout_s));
  }

  void wait_on(cudaStream_t stream) override {
    if (phase_ == Phase::done) return;
    require_launched("wait_on");
    TESSERA_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0));
  }

  CollectiveRecord& record() { return record_; }

  // Posted: from now on the watchdog watches it and close() ends the ticket.
  void posted(cudaStream_t stream, Watchdog::Ticket ticket, std::uint64_t sequence) {
    stream_ = stream;
    ticket_ = ticket;
    sequence_ = sequence;
    phase_ = Phase::enqueuing;
  }
  // Enqueued inside an open group: launched by group_end().
  void grouped() { phase_ = Phase::grouped; }
  // The operation is on the stream: record its completion event after it.
  void launched() {
    TESSERA_CUDA_CHECK(cudaEventRecord(event_, stream_));
    phase_ = Phase::launched;
  }
  // Failed before completion (a failed post or group): no trace record; `error` is thrown by the next
  // wait() / test(), if non-empty.
  void fail(std::string error) {
    close();
    error_ = std::move(error);
  }
  // Ends the watchdog ticket and marks it done. Idempotent.
  void close() noexcept {
    if (phase_ == Phase::done) return;
    if (phase_ != Phase::created && state_->watchdog) state_->watchdog->end(ticket_);
    phase_ = Phase::done;
  }

 private:
  enum class Phase { created, enqueuing, grouped, launched, done };

  std::string_view name() const { return dist::collective_op_name(record_.op); }

  // True when already complete; throws an error left by fail() once.
  bool done_once() {
    if (!error_.empty()) {
      const std::string error = std::move(error_);
      error_.clear();
      TESSERA_FAIL("{}", error);
    }
    if (phase_ == Phase::done) return true;
    require_launched("wait");
    return false;
  }

  void require_launched(const char* what) const {
    TESSERA_CHECK(phase_ != Phase::grouped,
                  "{}: {} on a {} posted inside group_start() on {}: call group_end() first (the group launches it)",
                  state_->where(), what, name(), state_->label());
  }

  // One look: the event, then NCCL's asynchronous error, then the deadline. True once complete.
  bool poll(std::int64_t deadline) {
    State& s = *state_;
    if (!s.abort_reason.empty()) {
      close();
      TESSERA_FAIL("{}: {} on {}: the NCCL communicator was aborted before it completed ({})", s.where(), name(),
                   s.label(), s.abort_reason);
    }
    const cudaError_t q = cudaEventQuery(event_);
    if (q == cudaSuccess) {
      finish();
      return true;
    }
    if (q != cudaErrorNotReady) {
      close();
      TESSERA_FAIL("{}: waiting for {} on {}: {} ({})", s.where(), name(), s.label(), cudaGetErrorString(q),
                   cudaGetErrorName(q));
    }
    if (std::string error = s.async_error(name()); !error.empty()) {
      close();
      s.abort_and_throw(error);
    }
    if (dist::monotonic_ns() >= deadline) {
      close();
      s.abort_and_throw(s.timeout_message(name(), record_.post_ns, sequence_));
    }
    return false;
  }

  void finish() {
    close();
    if (state_->trace) {
      record_.complete_ns = dist::monotonic_ns();
      state_->trace->record(record_);
    }
  }

  std::shared_ptr<State> state_;
  CollectiveRecord record_;
  cudaEvent_t event_ = nullptr;
  cudaStream_t stream_ = nullptr;
  Watchdog::Ticket ticket_ = 0;
  std::uint64_t sequence_ = 0;
  Phase phase_ = Phase::created;
  std::string error_;
};

NcclWork& as_nccl(dist::Work& work) {
  auto* nccl = dynamic_cast<NcclWork*>(&work);
  TESSERA_CHECK(nccl != nullptr, "this Work did not come from an NcclCommunicator");
  return *nccl;
}

// ---- construction ---------------------------------------------------------------------------------------

NcclUniqueId NcclCommunicator::new_unique_id() {
  ncclUniqueId id;
  TESSERA_NCCL_CHECK(ncclGetUniqueId(&id));
  NcclUniqueId out;
  std::memcpy(out.bytes.data(), &id, sizeof id);
  return out;
}

std::unique_ptr<NcclCommunicator> NcclCommunicator::create(MPI_Comm comm, Group group, NcclOptions options,
                                                           dist::CollectiveTrace* trace, Watchdog* watchdog) {
  TESSERA_CHECK(comm != MPI_COMM_NULL, "no {} communicator on this rank (MPI_COMM_NULL)", dist::group_name(group));
  int rank = 0, size = 1;
  TESSERA_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  TESSERA_MPI_CHECK(MPI_Comm_size(comm, &size));

  // World ranks, for reports (as MpiCommunicator finds them).
  MPI_Group mine = MPI_GROUP_NULL, world = MPI_GROUP_NULL;
  TESSERA_MPI_CHECK(MPI_Comm_group(comm, &mine));
  TESSERA_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world));
  std::vector<int> local(static_cast<std::size_t>(size)), world_ranks(static_cast<std::size_t>(size));
  std::iota(local.begin(), local.end(), 0);
  const int rc = MPI_Group_translate_ranks(mine, size, local.data(), world, world_ranks.data());
  MPI_Group_free(&mine);
  MPI_Group_free(&world);
  TESSERA_MPI_CHECK(rc);

  // Rank 0 makes the id; a failure there is broadcast too (first byte 0) so the other ranks throw instead of
  // waiting forever in MPI_Bcast.
  std::array<char, 1 + sizeof(NcclUniqueId::bytes)> message{};
  std::string failure;
  if (rank == 0) {
    try {
      const NcclUniqueId id = new_unique_id();
      message[0] = 1;
      std::memcpy(message.data() + 1, id.bytes.data(), id.bytes.size());
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  TESSERA_MPI_CHECK(MPI_Bcast(message.data(), static_cast<int>(message.size()), MPI_BYTE, 0, comm));
  TESSERA_CHECK(failure.empty(), "group {} rank 0: making the NCCL unique id: {}", dist::group_name(group), failure);
  TESSERA_CHECK(message[0] == 1, "group {}: its rank 0 (world rank {}) failed to make the NCCL unique id",
                dist::group_name(group), world_ranks.front());
  NcclUniqueId id;
  std::memcpy(id.bytes.data(), message.data() + 1, id.bytes.size());
  return std::make_unique<NcclCommunicator>(id, size, rank, group, options, trace, watchdog, std::move(world_ranks));
}

NcclCommunicator::NcclCommunicator(const NcclUniqueId& id, int nranks, int rank, Group group, NcclOptions options,
                                   dist::CollectiveTrace* trace, Watchdog* watchdog, std::vector<int> world_ranks) {
  TESSERA_CHECK(nranks >= 1, "an NCCL communicator for group {} needs at least one rank, got {}",
                dist::group_name(group), nranks);
  TESSERA_CHECK(rank >= 0 && rank < nranks, "rank {} is not a rank of a {}-rank NCCL communicator for group {}", rank,
                nranks, dist::group_name(group));
  TESSERA_CHECK(world_ranks.empty() || world_ranks.size() == static_cast<std::size_t>(nranks),
                "{} world ranks given for a {}-rank NCCL communicator for group {}", world_ranks.size(), nranks,
                dist::group_name(group));
  auto s = std::make_shared<State>();
  s->group = group;
  s->rank = rank;
  s->size = nranks;
  s->timeout_s = options.timeout_seconds;
  s->trace = trace;
  s->watchdog = watchdog;
  if (world_ranks.empty()) {
    world_ranks.resize(static_cast<std::size_t>(nranks));
    std::iota(world_ranks.begin(), world_ranks.end(), 0);
  }
  s->world_ranks = std::move(world_ranks);
  TESSERA_CUDA_CHECK(cudaGetDevice(&s->device));

  ncclUniqueId nccl_id;
  std::memcpy(&nccl_id, id.bytes.data(), sizeof nccl_id);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // non-blocking: every wait is ours to bound, and ncclCommAbort can end a stuck one
  const std::int64_t began = dist::monotonic_ns();
  const ncclResult_t rc = ncclCommInitRankConfig(&s->comm, nranks, nccl_id, rank, &config);
  s->settle(rc, "initialising the NCCL communicator", began);

  TESSERA_CUDA_CHECK(cudaStreamCreateWithFlags(&s->comm_stream, cudaStreamNonBlocking));
  TESSERA_CUDA_CHECK(cudaEventCreateWithFlags(&s->ready, cudaEventDisableTiming));
  TESSERA_CUDA_CHECK(cudaMalloc(&s->barrier_buffer, sizeof(float)));
  TESSERA_CUDA_CHECK(cudaMemset(s->barrier_buffer, 0, sizeof(float)));
  if (watchdog) s->channel = watchdog->add_channel(group, s->world_ranks);
  state_ = std::move(s);
}

NcclCommunicator::~NcclCommunicator() {
  if (state_->in_group) {
    spdlog::error("{}: the NCCL communicator of {} was destroyed inside group_start() without group_end()",
                  state_->where(), state_->label());
    ncclGroupEnd();
    state_->in_group = false;
    for (PendingWork* work : std::exchange(state_->group_members, {})) work->fail("its group was never ended");
  }
}

int NcclCommunicator::rank() const { return state_->rank; }
int NcclCommunicator::size() const { return state_->size; }
Group NcclCommunicator::group() const { return state_->group; }
const std::vector<int>& NcclCommunicator::world_ranks() const { return state_->world_ranks; }
int NcclCommunicator::device() const { return state_->device; }
cudaStream_t NcclCommunicator::communication_stream() const { return state_->comm_stream; }
bool NcclCommunicator::aborted() const { return !state_->abort_reason.empty(); }

// ---- posting --------------------------------------------------------------------------------------------

template <class EnqueueFn>
WorkPtr NcclCommunicator::launch(CollectiveOp op, DType dtype, const TrafficBytes& bytes, EnqueueFn&& enqueue) {
  State& s = *state_;
  s.check_usable(dist::collective_op_name(op));
  DeviceGuard guard(s.device);
  CollectiveRecord record;
  record.group = s.group;
  record.op = op;
  record.dtype = dtype;
  record.group_size = s.size;
  record.stream = stream_.id;
  record.bytes = bytes;
  // The Work (and its event) exists before the post so that nothing can fail between posting and owning it.
  auto work = std::make_unique<PendingWork>(state_, record);

  cudaStream_t stream = static_cast<cudaStream_t>(stream_.native);
  if (stream == nullptr) {
    // The communication stream starts this operation after the compute work queued so far.
    stream = s.comm_stream;
    TESSERA_CUDA_CHECK(cudaEventRecord(s.ready, compute_stream_));
    TESSERA_CUDA_CHECK(cudaStreamWaitEvent(s.comm_stream, s.ready, 0));
  }
  // Always stamped (unlike MPI's optional clock read): the timeout counts from it.
  const std::int64_t post_ns = dist::monotonic_ns();
  work->record().post_ns = post_ns;
  ++s.posted;
  const Watchdog::Ticket ticket = s.watchdog ? s.watchdog->begin(s.channel, op, s.posted, post_ns) : 0;
  work->posted(stream, ticket, s.posted);
  try {
    const ncclResult_t rc = enqueue(stream);
    if (s.in_group) {
      // Inside a group NCCL only queues the call; ncclGroupEnd() reports what went wrong.
      if (!ok_or_in_progress(rc))
        s.abort_and_throw(fmt::format("{}: {} on {} (inside group_start()) failed: {}", s.where(),
                                      dist::collective_op_name(op), s.label(), ncclGetErrorString(rc)));
      work->grouped();
      s.group_members.push_back(work.get());
    } else {
      s.settle(rc, dist::collective_op_name(op), post_ns, s.posted);
      work->launched();
    }
  } catch (...) {
    work->close();
    throw;
  }
  return work;
}

void NcclCommunicator::group_start() {
  State& s = *state_;
  s.check_usable("group_start");
  TESSERA_CHECK(!s.in_group, "{}: group_start() on {} inside an open group; groups do not nest", s.where(),
                s.label());
  TESSERA_NCCL_CHECK(ncclGroupStart());
  s.in_group = true;
}

void NcclCommunicator::group_end() {
  State& s = *state_;
  TESSERA_CHECK(s.in_group, "{}: group_end() on {} without group_start()", s.where(), s.label());
  s.in_group = false;
  std::vector<PendingWork*> members = std::exchange(s.group_members, {});
  DeviceGuard guard(s.device);
  // Bounds the launch only; each Work's own timeout still counts from its post.
  const std::int64_t began = dist::monotonic_ns();
  std::size_t launched = 0;
  try {
    s.settle(ncclGroupEnd(), "group_end", began);
    for (PendingWork* work : members) {
      work->launched();
      ++launched;
    }
  } catch (const std::exception& e) {
    for (std::size_t i = launched; i < members.size(); ++i) members[i]->fail(e.what());
    throw;
  }
}

template <class T>
WorkPtr NcclCommunicator::all_reduce_impl(std::span<T> data, ReduceOp op) {
  const ncclRedOp_t nop = nccl_op(op);
  return launch(CollectiveOp::all_reduce, Element<T>::dtype, dist::all_reduce_traffic(bytes_of<T>(data.size()), size()),
                [&](cudaStream_t stream) {
                  if (data.empty()) return ncclSuccess;
                  return ncclAllReduce(data.data(), data.data(), data.size(), Element<T>::nccl, nop, state_->comm,
                                       stream);
                });
}

WorkPtr NcclCommunicator::all_reduce(std::span<float> data, ReduceOp op) { return all_reduce_impl(data, op); }
WorkPtr NcclCommunicator::all_reduce(std::span<std::int64_t> data, ReduceOp op) { return all_reduce_impl(data, op); }

WorkPtr NcclCommunicator::reduce_scatter(std::span<const float> input, std::span<float> output, ReduceOp op) {
  const nccl_checks::GroupView g{group(), rank(), size()};
  nccl_checks::reduce_scatter(g, std::as_bytes(input), std::as_bytes(output), sizeof(float));
  const ncclRedOp_t nop = nccl_op(op);
  return launch(CollectiveOp::reduce_scatter, DType::f32,
                dist::reduce_scatter_traffic(bytes_of<float>(input.size()), size()), [&](cudaStream_t stream) {
                  if (output.empty()) return ncclSuccess;
                  return ncclReduceScatter(input.data(), output.data(), output.size(), ncclFloat32, nop, state_->comm,
                                           stream);
                });
}

template <class T>
WorkPtr NcclCommunicator::all_gather_impl(std::span<const T> input, std::span<T> output) {
  const nccl_checks::GroupView g{group(), rank(), size()};
  nccl_checks::all_gather(g, std::as_bytes(input), std::as_bytes(output), sizeof(T));
  return launch(CollectiveOp::all_gather, Element<T>::dtype, dist::all_gather_traffic(bytes_of<T>(output.size()), size()),
                [&](cudaStream_t stream) {
                  if (input.empty()) return ncclSuccess;
                  return ncclAllGather(input.data(), output.data(), input.size(), Element<T>::nccl, state_->comm,
                                       stream);
                });
}

WorkPtr NcclCommunicator::all_gather(std::span<const float> input, std::span<float> output) {
  return all_gather_impl(input, output);
}
WorkPtr NcclCommunicator::all_gather(std::span<const std::int64_t> input, std::span<std::int64_t> output) {
  return all_gather_impl(input, output);
}

template <class T>
WorkPtr NcclCommunicator::all_to_all_v_impl(std::span<const T> input, std::span<const std::int64_t> send_counts,
                                            std::span<T> output, std::span<const std::int64_t> recv_counts) {
  const nccl_checks::GroupView g{group(), rank(), size()};
  const nccl_checks::AllToAllPlan plan = nccl_checks::all_to_all_v(g, std::as_bytes(input), send_counts,
                                                                   std::as_bytes(output), recv_counts, sizeof(T));
  return launch(CollectiveOp::all_to_all_v, Element<T>::dtype,
                dist::all_to_all_traffic(bytes_of<T>(input.size()), plan.sent_to_others, plan.received_from_others),
                [&](cudaStream_t stream) {
                  // One group of point-to-point calls (NCCL has no all-to-all-v); zero-count pairs are skipped on
                  // both sides, since the peer's receive count is this rank's send count.
                  ncclResult_t first_error = ncclGroupStart();
                  if (!ok_or_in_progress(first_error)) return first_error;
                  for (int p = 0; p < size(); ++p) {
                    const auto i = static_cast<std::size_t>(p);
                    ncclResult_t rc = ncclSuccess;
                    if (send_counts[i] > 0)
                      rc = ncclSend(input.data() + plan.send_offsets[i], static_cast<std::size_t>(send_counts[i]),
                                    Element<T>::nccl, p, state_->comm, stream);
                    if (ok_or_in_progress(rc) && recv_counts[i] > 0)
                      rc = ncclRecv(output.data() + plan.recv_offsets[i], static_cast<std::size_t>(recv_counts[i]),
                                    Element<T>::nccl, p, state_->comm, stream);
                    if (!ok_or_in_progress(rc) && ok_or_in_progress(first_error)) first_error = rc;
                  }
                  const ncclResult_t end = ncclGroupEnd();
                  return ok_or_in_progress(first_error) ? end : first_error;
                });
}

WorkPtr NcclCommunicator::all_to_all_v(std::span<const float> input, std::span<const std::int64_t> send_counts,
                                       std::span<float> output, std::span<const std::int64_t> recv_counts) {
  return all_to_all_v_impl(input, send_counts, output, recv_counts);
}
WorkPtr NcclCommunicator::all_to_all_v(std::span<const std::int64_t> input, std::span<const std::int64_t> send_counts,
                                       std::span<std::int64_t> output, std::span<const std::int64_t> recv_counts) {
  return all_to_all_v_impl(input, send_counts, output, recv_counts);
}

template <class T>
WorkPtr NcclCommunicator::broadcast_impl(std::span<T> data, int root) {
  nccl_checks::root({group(), rank(), size()}, root);
  return launch(CollectiveOp::broadcast, Element<T>::dtype,
                dist::broadcast_traffic(bytes_of<T>(data.size()), root == rank()), [&](cudaStream_t stream) {
                  if (data.empty()) return ncclSuccess;
                  return ncclBroadcast(data.data(), data.data(), data.size(), Element<T>::nccl, root, state_->comm,
                                       stream);
                });
}

WorkPtr NcclCommunicator::broadcast(std::span<float> data, int root) { return broadcast_impl(data, root); }
WorkPtr NcclCommunicator::broadcast(std::span<std::int64_t> data, int root) { return broadcast_impl(data, root); }

WorkPtr NcclCommunicator::send(std::span<const float> data, int peer, int tag) {
  nccl_checks::peer({group(), rank(), size()}, CollectiveOp::send, peer, tag);
  return launch(CollectiveOp::send, DType::f32, dist::send_traffic(bytes_of<float>(data.size())),
                [&](cudaStream_t stream) {
                  if (data.empty()) return ncclSuccess;
                  return ncclSend(data.data(), data.size(), ncclFloat32, peer, state_->comm, stream);
                });
}

WorkPtr NcclCommunicator::recv(std::span<float> data, int peer, int tag) {
  nccl_checks::peer({group(), rank(), size()}, CollectiveOp::recv, peer, tag);
  return launch(CollectiveOp::recv, DType::f32, dist::recv_traffic(bytes_of<float>(data.size())),
                [&](cudaStream_t stream) {
                  if (data.empty()) return ncclSuccess;
                  return ncclRecv(data.data(), data.size(), ncclFloat32, peer, state_->comm, stream);
                });
}

void NcclCommunicator::barrier() {
  TESSERA_CHECK(!state_->in_group, "{}: barrier() on {} inside group_start(); end the group first",
                state_->where(), state_->label());
  launch(CollectiveOp::barrier, DType::u8, {}, [&](cudaStream_t stream) {
    return ncclAllReduce(state_->barrier_buffer, state_->barrier_buffer, 1, ncclFloat32, ncclSum, state_->comm, stream);
  })->wait();
}

}  // namespace tessera::cuda
