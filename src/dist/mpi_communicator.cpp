#include "tessera/dist/mpi_communicator.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <array>
#include <climits>
#include <cstdint>
#include <exception>
#include <string>
#include <utility>

#include "tessera/core/error.hpp"
#include "tessera/dist/mpi_check.hpp"

namespace tessera::dist {

Work::~Work() = default;
Communicator::~Communicator() = default;

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "?";
}

namespace {

template <class T>
struct Element;
template <>
struct Element<float> {
  static MPI_Datatype mpi() { return MPI_FLOAT; }
  static constexpr DType dtype = DType::f32;
};
template <>
struct Element<std::int64_t> {
  static MPI_Datatype mpi() { return MPI_INT64_T; }
  static constexpr DType dtype = DType::i64;
};

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return MPI_SUM;
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::min: return MPI_MIN;
  }
  TESSERA_FAIL("unknown reduce op {}", static_cast<int>(op));
}

template <class T>
std::uint64_t bytes_of(std::size_t count) {
  return static_cast<std::uint64_t>(count) * sizeof(T);
}

// Whether two buffers share memory. MPI forbids aliased send and receive buffers except through MPI_IN_PLACE.
template <class A, class B>
bool overlaps(std::span<A> a, std::span<B> b) {
  if (a.empty() || b.empty()) return false;
  const auto a0 = reinterpret_cast<std::uintptr_t>(a.data()), b0 = reinterpret_cast<std::uintptr_t>(b.data());
  return a0 < b0 + b.size_bytes() && b0 < a0 + a.size_bytes();
}

}  // namespace

// An MPI_Request and what its completion reports: the watchdog ticket to end, the trace record to write,
// and for a receive the count to check. Completion is observed once, by wait() or a successful test().
class MpiCommunicator::PendingWork final : public Work {
 public:
  PendingWork(CollectiveTrace* trace, Watchdog* watchdog, const CollectiveRecord& record)
      : trace_(trace), watchdog_(watchdog), record_(record) {}

  ~PendingWork() override {
    if (done_) return;
    // MPI forbids freeing an incomplete collective request, and the buffers may be freed right after this:
    // the only safe thing is to complete it. A destructor must not throw, so a failure is only logged.
    try {
      wait();
    } catch (const std::exception& e) {
      spdlog::error("completing a dropped {} on group {}: {}", collective_op_name(record_.op),
                    group_name(record_.group), e.what());
    }
  }

  void wait() override {
    if (done_) return;
    MPI_Status status{};
    const int rc = MPI_Wait(&request_, expected_count_ >= 0 ? &status : MPI_STATUS_IGNORE);
    finish(rc, status);
  }

  bool test() override {
    if (done_) return true;
    MPI_Status status{};
    int flag = 0;
    const int rc = MPI_Test(&request_, &flag, expected_count_ >= 0 ? &status : MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && !flag) return false;
    finish(rc, status);
    return true;
  }

  MPI_Request* request() { return &request_; }
  CollectiveRecord& record() { return record_; }

  // A receive checks the message it got was as long as its buffer.
  void expect_count(int count, MPI_Datatype type, int peer, int tag) {
    expected_count_ = count;
    type_ = type;
    peer_ = peer;
    tag_ = tag;
  }

  // MPI reads the counts and displacements of MPI_Ialltoallv until completion, so they live here: inline
  // for groups up to kInlineRanks (no second allocation per call), on the heap beyond.
  int* counts_buffer(std::size_t ranks) {
    if (ranks <= kInlineRanks) return inline_counts_.data();
    counts_ = std::make_unique<int[]>(4 * ranks);
    return counts_.get();
  }

  // Posted: from now on the watchdog watches it.
  void started(Watchdog::Ticket ticket) {
    ticket_ = ticket;
    done_ = false;
  }

 private:
  void finish(int rc, const MPI_Status& status) {
    done_ = true;
    if (watchdog_) watchdog_->end(ticket_);
    const std::string_view op = collective_op_name(record_.op), group = group_name(record_.group);
    if (rc != MPI_SUCCESS)
      detail::throw_mpi_error(fmt::format("completing {} on group {}", op, group).c_str(), rc, __FILE__, __LINE__);
    if (expected_count_ >= 0) {
      int got = 0;
      TESSERA_MPI_CHECK(MPI_Get_count(&status, type_, &got));
      TESSERA_CHECK(got == expected_count_,
                    "recv on group {} from group rank {} (tag {}): the message has {} elements, the buffer {}; "
                    "send and recv sizes must match",
                    group, peer_, tag_, got, expected_count_);
    }
    if (trace_) {
      record_.complete_ns = monotonic_ns();
      trace_->record(record_);
    }
  }

  CollectiveTrace* trace_;
  Watchdog* watchdog_;
  CollectiveRecord record_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  Watchdog::Ticket ticket_ = 0;
  bool done_ = true;  // nothing to complete until started()
  int expected_count_ = -1;
  MPI_Datatype type_ = MPI_DATATYPE_NULL;
  int peer_ = -1, tag_ = -1;
  static constexpr std::size_t kInlineRanks = 8;
  std::array<int, 4 * kInlineRanks> inline_counts_;
  std::unique_ptr<int[]> counts_;
};

MpiCommunicator::MpiCommunicator(MPI_Comm comm, Group group, CollectiveTrace* trace, Watchdog* watchdog)
    : comm_(comm), group_(group), trace_(trace), watchdog_(watchdog) {
  TESSERA_CHECK(comm != MPI_COMM_NULL, "no {} communicator on this rank (MPI_COMM_NULL)", group_name(group));
  TESSERA_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  TESSERA_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  // MPI attaches the tag bound to the world communicator; it holds for every communicator.
  void* tag_ub = nullptr;
  int found = 0;
  TESSERA_MPI_CHECK(MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &found));
  if (found && tag_ub != nullptr) tag_ub_ = *static_cast<int*>(tag_ub);

  // World ranks, for the watchdog's report and for checking the communicator against the topology.
  MPI_Group mine = MPI_GROUP_NULL, world = MPI_GROUP_NULL;
  TESSERA_MPI_CHECK(MPI_Comm_group(comm_, &mine));
  TESSERA_MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world));
  std::vector<int> local(static_cast<std::size_t>(size_));
  for (int i = 0; i < size_; ++i) local[static_cast<std::size_t>(i)] = i;
  world_ranks_.resize(local.size());
  const int rc = MPI_Group_translate_ranks(mine, size_, local.data(), world, world_ranks_.data());
  MPI_Group_free(&mine);
  MPI_Group_free(&world);
  TESSERA_MPI_CHECK(rc);

  if (watchdog_) channel_ = watchdog_->add_channel(group_, world_ranks_);
}

MpiCommunicator::~MpiCommunicator() = default;

int MpiCommunicator::checked_count(std::size_t count, CollectiveOp op, const char* what) const {
  TESSERA_CHECK(count <= static_cast<std::size_t>(INT_MAX),
                "{} on group {}: {} of {} elements is more than MPI's count limit of {} (an int); split the "
                "buffer into buckets of at most that many elements",
                collective_op_name(op), group_name(group_), what, count, INT_MAX);
  return static_cast<int>(count);
}

std::unique_ptr<MpiCommunicator::PendingWork> MpiCommunicator::prepare(CollectiveOp op, DType dtype,
                                                                       const TrafficBytes& bytes) {
  CollectiveRecord record;
  record.group = group_;
  record.op = op;
  record.dtype = dtype;
  record.group_size = size_;
  record.stream = stream_.id;
  record.bytes = bytes;
  // The Work exists before the post so that nothing can fail between posting and owning the request.
  return std::make_unique<PendingWork>(trace_, watchdog_, record);
}

template <class PostFn>
WorkPtr MpiCommunicator::launch(std::unique_ptr<PendingWork> work, PostFn&& post) {
  CollectiveRecord& record = work->record();
  // A clock read is a fifth of a small operation's bookkeeping: skipped when nobody looks at the time.
  record.post_ns = trace_ != nullptr || watchdog_ != nullptr ? monotonic_ns() : 0;
  ++posted_;
  const Watchdog::Ticket ticket = watchdog_ ? watchdog_->begin(channel_, record.op, posted_, record.post_ns) : 0;
  const int rc = post(work->request());
  if (rc != MPI_SUCCESS) {
    if (watchdog_) watchdog_->end(ticket);
    detail::throw_mpi_error(
        fmt::format("posting {} on group {}", collective_op_name(record.op), group_name(group_)).c_str(), rc, __FILE__,
        __LINE__);
  }
  work->started(ticket);
  return work;
}

template <class T>
WorkPtr MpiCommunicator::all_reduce_impl(std::span<T> data, ReduceOp op) {
  const int count = checked_count(data.size(), CollectiveOp::all_reduce, "a buffer");
  const MPI_Op mop = mpi_op(op);
  auto work = prepare(CollectiveOp::all_reduce, Element<T>::dtype, all_reduce_traffic(bytes_of<T>(data.size()), size_));
  return launch(std::move(work), [&](MPI_Request* request) {
    return MPI_Iallreduce(MPI_IN_PLACE, data.data(), count, Element<T>::mpi(), mop, comm_, request);
  });
}

WorkPtr MpiCommunicator::all_reduce(std::span<float> data, ReduceOp op) { return all_reduce_impl(data, op); }
WorkPtr MpiCommunicator::all_reduce(std::span<std::int64_t> data, ReduceOp op) { return all_reduce_impl(data, op); }

WorkPtr MpiCommunicator::reduce_scatter(std::span<const float> input, std::span<float> output, ReduceOp op) {
  const int count = checked_count(output.size(), CollectiveOp::reduce_scatter, "an output chunk");
  // MPI implementations count the whole input in an int internally (Open MPI's libnbc does), so it must fit.
  checked_count(input.size(), CollectiveOp::reduce_scatter, "an input");
  TESSERA_CHECK(input.size() / static_cast<std::size_t>(size_) == output.size() &&
                    input.size() % static_cast<std::size_t>(size_) == 0,
                "reduce_scatter on group {}: the input of {} elements must be {} chunks of the output's {}",
                group_name(group_), input.size(), size_, output.size());
  TESSERA_CHECK(!overlaps(input, output),
                "reduce_scatter on group {}: the output overlaps the input; MPI cannot reduce into its own input "
                "chunk, so give the output its own buffer",
                group_name(group_));
  const MPI_Op mop = mpi_op(op);
  auto work =
      prepare(CollectiveOp::reduce_scatter, DType::f32, reduce_scatter_traffic(bytes_of<float>(input.size()), size_));
  return launch(std::move(work), [&](MPI_Request* request) {
    return MPI_Ireduce_scatter_block(input.data(), output.data(), count, MPI_FLOAT, mop, comm_, request);
  });
}

template <class T>
WorkPtr MpiCommunicator::all_gather_impl(std::span<const T> input, std::span<T> output) {
  const int count = checked_count(input.size(), CollectiveOp::all_gather, "an input chunk");
  checked_count(output.size(), CollectiveOp::all_gather, "an output");  // see reduce_scatter
  TESSERA_CHECK(output.size() / static_cast<std::size_t>(size_) == input.size() &&
                    output.size() % static_cast<std::size_t>(size_) == 0,
                "all_gather on group {}: the output of {} elements must be {} chunks of the input's {}",
                group_name(group_), output.size(), size_, input.size());
  // Gathering a shard that already sits in its place in the full buffer (ZeRO parameters) is MPI_IN_PLACE.
  const bool in_place =
      !input.empty() && input.data() == output.data() + static_cast<std::size_t>(rank_) * input.size();
  TESSERA_CHECK(in_place || !overlaps(input, output),
                "all_gather on group {}: the input overlaps the output other than as this rank's own chunk (group "
                "rank {})",
                group_name(group_), rank_);
  auto work =
      prepare(CollectiveOp::all_gather, Element<T>::dtype, all_gather_traffic(bytes_of<T>(output.size()), size_));
  return launch(std::move(work), [&](MPI_Request* request) {
    return MPI_Iallgather(in_place ? MPI_IN_PLACE : input.data(), count, Element<T>::mpi(), output.data(), count,
                          Element<T>::mpi(), comm_, request);
  });
}

WorkPtr MpiCommunicator::all_gather(std::span<const float> input, std::span<float> output) {
  return all_gather_impl(input, output);
}
WorkPtr MpiCommunicator::all_gather(std::span<const std::int64_t> input, std::span<std::int64_t> output) {
  return all_gather_impl(input, output);
}

template <class T>
WorkPtr MpiCommunicator::all_to_all_v_impl(std::span<const T> input, std::span<const std::int64_t> send_counts,
                                           std::span<T> output, std::span<const std::int64_t> recv_counts) {
  const auto n = static_cast<std::size_t>(size_);
  const std::string_view group = group_name(group_);
  TESSERA_CHECK(send_counts.size() == n && recv_counts.size() == n,
                "all_to_all_v on group {}: {} send and {} receive counts for a group of {} ranks", group,
                send_counts.size(), recv_counts.size(), n);
  TESSERA_CHECK(!overlaps(input, output), "all_to_all_v on group {}: the output overlaps the input", group);

  auto work = prepare(CollectiveOp::all_to_all_v, Element<T>::dtype, {});
  // send counts, send displacements, receive counts, receive displacements
  int* const arrays = work->counts_buffer(n);
  const auto fill = [&](std::span<const std::int64_t> counts, int* out_counts, int* out_displs, std::size_t buffer,
                        const char* side) {
    std::int64_t offset = 0, to_others = 0;
    for (std::size_t p = 0; p < n; ++p) {
      TESSERA_CHECK(counts[p] >= 0 && counts[p] <= INT_MAX,
                    "all_to_all_v on group {}: {} count {} for group rank {} is outside 0..{} (MPI's int counts)",
                    group, side, counts[p], p, INT_MAX);
      // MPI addresses each peer's chunk by an int displacement too, so the offset must fit as well.
      TESSERA_CHECK(offset <= INT_MAX,
                    "all_to_all_v on group {}: the {} chunk for group rank {} starts at element {}, beyond MPI's int "
                    "displacements ({}); split the exchange",
                    group, side, p, offset, INT_MAX);
      out_counts[p] = static_cast<int>(counts[p]);
      out_displs[p] = static_cast<int>(offset);
      offset += counts[p];
      if (p != static_cast<std::size_t>(rank_)) to_others += counts[p];
    }
    TESSERA_CHECK(static_cast<std::uint64_t>(offset) == buffer,
                  "all_to_all_v on group {}: the {} counts add up to {} elements but the buffer holds {}", group, side,
                  offset, buffer);
    return bytes_of<T>(static_cast<std::size_t>(to_others));
  };
  const std::uint64_t sent = fill(send_counts, arrays, arrays + n, input.size(), "send");
  const std::uint64_t received = fill(recv_counts, arrays + 2 * n, arrays + 3 * n, output.size(), "receive");
  work->record().bytes = all_to_all_traffic(bytes_of<T>(input.size()), sent, received);
  return launch(std::move(work), [&](MPI_Request* request) {
    return MPI_Ialltoallv(input.data(), arrays, arrays + n, Element<T>::mpi(), output.data(), arrays + 2 * n,
                          arrays + 3 * n, Element<T>::mpi(), comm_, request);
  });
}

WorkPtr MpiCommunicator::all_to_all_v(std::span<const float> input, std::span<const std::int64_t> send_counts,
                                      std::span<float> output, std::span<const std::int64_t> recv_counts) {
  return all_to_all_v_impl(input, send_counts, output, recv_counts);
}
WorkPtr MpiCommunicator::all_to_all_v(std::span<const std::int64_t> input, std::span<const std::int64_t> send_counts,
                                      std::span<std::int64_t> output, std::span<const std::int64_t> recv_counts) {
  return all_to_all_v_impl(input, send_counts, output, recv_counts);
}

template <class T>
WorkPtr MpiCommunicator::broadcast_impl(std::span<T> data, int root) {
  const int count = checked_count(data.size(), CollectiveOp::broadcast, "a buffer");
  TESSERA_CHECK(root >= 0 && root < size_, "broadcast on group {}: root {} is not a rank of the group (0..{})",
                group_name(group_), root, size_ - 1);
  auto work =
      prepare(CollectiveOp::broadcast, Element<T>::dtype, broadcast_traffic(bytes_of<T>(data.size()), root == rank_));
  return launch(std::move(work), [&](MPI_Request* request) {
    return MPI_Ibcast(data.data(), count, Element<T>::mpi(), root, comm_, request);
  });
}

WorkPtr MpiCommunicator::broadcast(std::span<float> data, int root) { return broadcast_impl(data, root); }
WorkPtr MpiCommunicator::broadcast(std::span<std::int64_t> data, int root) { return broadcast_impl(data, root); }

WorkPtr MpiCommunicator::send(std::span<const float> data, int peer, int tag) {
  const int count = checked_count(data.size(), CollectiveOp::send, "a buffer");
  TESSERA_CHECK(peer >= 0 && peer < size_, "send on group {}: peer {} is not a rank of the group (0..{})",
                group_name(group_), peer, size_ - 1);
  TESSERA_CHECK(tag >= 0 && tag <= tag_ub_, "send on group {}: tag {} is outside MPI's 0..{}", group_name(group_), tag,
                tag_ub_);
  auto work = prepare(CollectiveOp::send, DType::f32, send_traffic(bytes_of<float>(data.size())));
  return launch(std::move(work), [&](MPI_Request* request) {
    return MPI_Isend(data.data(), count, MPI_FLOAT, peer, tag, comm_, request);
  });
}

WorkPtr MpiCommunicator::recv(std::span<float> data, int peer, int tag) {
  const int count = checked_count(data.size(), CollectiveOp::recv, "a buffer");
  TESSERA_CHECK(peer >= 0 && peer < size_, "recv on group {}: peer {} is not a rank of the group (0..{})",
                group_name(group_), peer, size_ - 1);
  TESSERA_CHECK(tag >= 0 && tag <= tag_ub_, "recv on group {}: tag {} is outside MPI's 0..{}", group_name(group_), tag,
                tag_ub_);
  auto work = prepare(CollectiveOp::recv, DType::f32, recv_traffic(bytes_of<float>(data.size())));
  work->expect_count(count, MPI_FLOAT, peer, tag);
  return launch(std::move(work), [&](MPI_Request* request) {
    return MPI_Irecv(data.data(), count, MPI_FLOAT, peer, tag, comm_, request);
  });
}

void MpiCommunicator::barrier() {
  // Non-blocking underneath so the watchdog sees a barrier that never ends like any other operation.
  launch(prepare(CollectiveOp::barrier, DType::u8, {}), [&](MPI_Request* request) {
    return MPI_Ibarrier(comm_, request);
  })->wait();
}

Communicators::Communicators(const ProcessGroups& groups, const Topology& topology, int world_rank, CommOptions options)
    : world_rank_(world_rank), trace_(std::make_unique<CollectiveTrace>(options.trace_capacity)) {
  if (options.timeout_seconds > 0)
    watchdog_ = std::make_unique<Watchdog>(world_rank, std::chrono::duration<double>(options.timeout_seconds));
  CollectiveTrace* const trace = options.trace ? trace_.get() : nullptr;
  for (Group kind : all_groups()) {
    const MPI_Comm comm = groups.comm(kind);
    const std::vector<int>& expected = topology.group_of(kind, world_rank);
    if (comm == MPI_COMM_NULL) {
      TESSERA_CHECK(expected.empty(), "rank {}: no {} communicator, but the topology puts it in group [{}]", world_rank,
                    group_name(kind), fmt::join(expected, ","));
      continue;
    }
    auto& slot = comms_[static_cast<std::size_t>(kind)];
    slot = std::make_unique<MpiCommunicator>(comm, kind, trace, watchdog_.get());
    TESSERA_CHECK(slot->world_ranks() == expected,
                  "rank {}: the {} communicator holds world ranks [{}], the topology says [{}]; build ProcessGroups "
                  "and Communicators from the same topology",
                  world_rank, group_name(kind), fmt::join(slot->world_ranks(), ","), fmt::join(expected, ","));
  }
}

Communicators::~Communicators() = default;

bool Communicators::has(Group group) const { return comms_.at(static_cast<std::size_t>(group)) != nullptr; }

Communicator& Communicators::get(Group group) { return mpi(group); }

MpiCommunicator& Communicators::mpi(Group group) {
  const auto& comm = comms_.at(static_cast<std::size_t>(group));
  TESSERA_CHECK(
      comm != nullptr, "rank {} belongs to no {} group in this layout{}", world_rank_, group_name(group),
      group == Group::embedding ? " (the embedding group holds only the first and last pipeline stages)" : "");
  return *comm;
}

}  // namespace tessera::dist
