#pragma once
// The MPI backend of Communicator, and Communicators: every communicator of this rank over the groups of a
// ProcessGroups, sharing one trace and one hang watchdog.
//
// Every operation is MPI's non-blocking form (MPI_Iallreduce, MPI_Ireduce_scatter_block, MPI_Iallgather,
// MPI_Ialltoallv, MPI_Ibcast, MPI_Isend / MPI_Irecv, MPI_Ibarrier), so a Work handle is a real MPI_Request
// completed by MPI_Wait / MPI_Test. MPI moves data only inside MPI calls, so on MPI "overlap" means the
// operation advances whenever any Work is tested or waited on; NCCL will make it truly concurrent.

#include <mpi.h>

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "tessera/dist/collective_trace.hpp"
#include "tessera/dist/communicator.hpp"
#include "tessera/dist/process_groups.hpp"
#include "tessera/dist/topology.hpp"
#include "tessera/dist/watchdog.hpp"

namespace tessera::dist {

class MpiCommunicator final : public Communicator {
 public:
  // Borrows `comm` (the owner, usually ProcessGroups, frees it and must outlive this), and records into
  // `trace` and registers with `watchdog` when they are not null (both must outlive every Work). Local:
  // makes no collective call.
  MpiCommunicator(MPI_Comm comm, Group group, CollectiveTrace* trace, Watchdog* watchdog);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Group group() const override { return group_; }
  MPI_Comm native() const { return comm_; }
  // World ranks of the group, in group-rank order.
  const std::vector<int>& world_ranks() const { return world_ranks_; }

  void set_stream(Stream stream) override { stream_ = stream; }
  Stream stream() const override { return stream_; }

  WorkPtr all_reduce(std::span<float> data, ReduceOp op) override;
  WorkPtr all_reduce(std::span<std::int64_t> data, ReduceOp op) override;
  WorkPtr reduce_scatter(std::span<const float> input, std::span<float> output, ReduceOp op) override;
  WorkPtr all_gather(std::span<const float> input, std::span<float> output) override;
  WorkPtr all_gather(std::span<const std::int64_t> input, std::span<std::int64_t> output) override;
  WorkPtr all_to_all_v(std::span<const float> input, std::span<const std::int64_t> send_counts, std::span<float> output,
                       std::span<const std::int64_t> recv_counts) override;
  WorkPtr all_to_all_v(std::span<const std::int64_t> input, std::span<const std::int64_t> send_counts,
                       std::span<std::int64_t> output, std::span<const std::int64_t> recv_counts) override;
  WorkPtr broadcast(std::span<float> data, int root) override;
  WorkPtr broadcast(std::span<std::int64_t> data, int root) override;
  WorkPtr send(std::span<const float> data, int peer, int tag) override;
  WorkPtr recv(std::span<float> data, int peer, int tag) override;
  void barrier() override;

  // The Work of this backend: an MPI_Request plus what its completion reports (defined in the .cpp).
  class PendingWork;

 private:
  template <class T>
  WorkPtr all_reduce_impl(std::span<T> data, ReduceOp op);
  template <class T>
  WorkPtr all_gather_impl(std::span<const T> input, std::span<T> output);
  template <class T>
  WorkPtr all_to_all_v_impl(std::span<const T> input, std::span<const std::int64_t> send_counts, std::span<T> output,
                            std::span<const std::int64_t> recv_counts);
  template <class T>
  WorkPtr broadcast_impl(std::span<T> data, int root);

  // MPI's int count for `count` elements, or an Error naming the operation and group.
  int checked_count(std::size_t count, CollectiveOp op, const char* what) const;
  // A Work for one operation, not yet posted; `launch` stamps the post time, registers it with the
  // watchdog and calls `post(MPI_Request*)`. Split in two so a Work can own arrays MPI reads until completion.
  std::unique_ptr<PendingWork> prepare(CollectiveOp op, DType dtype, const TrafficBytes& bytes);
  template <class PostFn>
  WorkPtr launch(std::unique_ptr<PendingWork> work, PostFn&& post);

  MPI_Comm comm_;
  Group group_;
  CollectiveTrace* trace_;
  Watchdog* watchdog_;
  int rank_ = 0;
  int size_ = 1;
  int tag_ub_ = 32767;  // MPI guarantees at least this
  int channel_ = -1;    // the watchdog's name for this communicator
  std::uint64_t posted_ = 0;
  Stream stream_;
  std::vector<int> world_ranks_;
};

struct CommOptions {
  // An operation not complete this long after its post ends the job (see watchdog.hpp); <= 0 turns the
  // watchdog off. Ten minutes, like PyTorch's NCCL default: a slow first step must not trip it.
  double timeout_seconds = 600;
  bool trace = true;                  // record every operation into trace()
  std::size_t trace_capacity = 1024;  // recent records kept
};

// This rank's communicators for every group it belongs to. Local (no collective call): the collective
// part, splitting the communicators, is ProcessGroups, which must outlive this object. Every Work must be
// complete before this object is destroyed.
class Communicators {
 public:
  // Throws tessera::Error when a communicator disagrees with the topology's group for `world_rank`.
  Communicators(const ProcessGroups& groups, const Topology& topology, int world_rank, CommOptions options = {});
  ~Communicators();
  Communicators(const Communicators&) = delete;
  Communicators& operator=(const Communicators&) = delete;

  bool has(Group group) const;
  // Throws tessera::Error when this rank is in no group of that kind (the embedding group on a middle
  // pipeline stage).
  Communicator& get(Group group);
  MpiCommunicator& mpi(Group group);

  CollectiveTrace& trace() { return *trace_; }
  Watchdog* watchdog() { return watchdog_.get(); }  // null when turned off

 private:
  static constexpr std::size_t kKinds = static_cast<std::size_t>(Group::etp_ep_pp) + 1;

  int world_rank_;
  std::unique_ptr<CollectiveTrace> trace_;
  std::unique_ptr<Watchdog> watchdog_;
  std::array<std::unique_ptr<MpiCommunicator>, kKinds> comms_;  // indexed by Group; destroyed first
};

}  // namespace tessera::dist
