#pragma once
// The NCCL backend of dist::Communicator: the same operations, argument checks, trace records and hang
// handling as MpiCommunicator, on DEVICE memory, enqueued on CUDA streams.
//
// Creation. One NcclCommunicator per process group, built collectively by the group's ranks: create()
// takes the group's MPI communicator (group rank 0 calls ncclGetUniqueId, MPI_Bcast hands it to the others,
// every rank calls ncclCommInitRankConfig); the constructor takes the id, nranks and rank directly (a single
// process, tests, or any other way of sharing the id). The NCCL communicator is bound to the CUDA device
// current at construction: call select_device() (device.hpp) first. NCCL refuses two ranks of one
// communicator on the same GPU, so a group of n ranks needs n GPUs.
//
// Streams. set_stream(Stream{native = a cudaStream_t}) posts later operations on that stream: they start
// after the work queued on it before the post, and nothing else is recorded. Stream{} (native == nullptr,
// the default) posts on a communication stream this communicator owns: each operation first makes that
// stream wait on an event recorded on the compute stream (set_compute_stream(); initially the legacy default
// stream), so it still starts after the compute work queued before the post, and it overlaps the compute
// work queued after it. To post on the legacy default stream itself pass Stream{cudaStreamLegacy}.
//
// Completion. Every operation records a CUDA event on its stream. Work::wait() blocks the host until the
// event has completed; Work::test() asks without blocking; NcclWork::wait_on(stream) makes a stream wait for
// it without blocking the host (cudaStreamWaitEvent), e.g. the compute stream before it reads the result
// of an operation on the communication stream. Buffers must stay alive and untouched until completion, as on
// MPI. The trace's time for an operation is measured host-side, from the post to the moment wait() or
// test() observed completion (it includes queueing behind earlier stream work and the host's polling lag).
//
// Hangs. The communicator is non-blocking (ncclConfig_t::blocking = 0) so it can be aborted. While the host
// waits (wait(), test(), barrier(), initialisation, destruction) it polls the event and
// ncclCommGetAsyncError; an operation not complete `timeout_seconds` after its post, or an asynchronous
// NCCL error (a peer died, a network failure), makes it call ncclCommAbort and throw tessera::Error naming
// the world rank, group and operation. After that every operation on the communicator throws: NCCL cannot
// resume an aborted communicator, so the job should end (rethrow to main, or the Watchdog's default). The
// optional Watchdog is the backstop for operations nobody waits on, exactly as on MPI (it ends the job);
// give it a longer timeout than `timeout_seconds` so that the recoverable error above is what a waiting
// rank sees first.
//
// Differences from MPI, by NCCL's design:
//  - Counts are size_t: no INT_MAX limit. Negative all_to_all_v counts and mismatched sizes are refused.
//  - reduce_scatter and all_gather accept this rank's own chunk in place (NCCL's in-place forms); any
//    other overlap is refused.
//  - send/recv match by post order between a pair of ranks; the tag is only checked to be >= 0 and is not
//    matched against the peer's. A recv whose sender sends a different count is undefined (NCCL cannot
//    detect it): sizes must match. A send completes only when the peer's recv runs: two ranks that each send
//    to the other before receiving deadlock unless both post the pair inside group_start() / group_end().
//  - Zero-element operations (and zero-count all_to_all_v pairs) are not handed to NCCL at all; since every
//    rank sees the same count the skip is symmetric.

#include <mpi.h>

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tessera/dist/collective_trace.hpp"
#include "tessera/dist/communicator.hpp"
#include "tessera/dist/topology.hpp"
#include "tessera/dist/watchdog.hpp"

namespace tessera::cuda {

// ncclUniqueId's bytes (NCCL_UNIQUE_ID_BYTES), kept opaque so this header does not need nccl.h.
struct NcclUniqueId {
  std::array<char, 128> bytes{};
};

struct NcclOptions {
  // A waited-on operation not complete this long after its post aborts the communicator and throws; also
  // bounds initialisation and destruction. <= 0 waits forever (asynchronous NCCL errors still throw).
  // Ten minutes like PyTorch's NCCL default and CommOptions: a slow first step must not trip it.
  double timeout_seconds = 600;
};

// The Work of this backend.
class NcclWork : public dist::Work {
 public:
  // Makes `stream`'s later work wait for this operation without blocking the host. Does not count as
  // completion for the trace or the watchdog: wait() or test() still has to observe it.
  virtual void wait_on(cudaStream_t stream) = 0;
};

// The NcclWork behind a Work an NcclCommunicator returned; throws tessera::Error for any other Work.
NcclWork& as_nccl(dist::Work& work);

class NcclCommunicator final : public dist::Communicator {
 public:
  // Collective over `comm` (every rank of it calls this at the same point): rank 0 makes the id, MPI_Bcast
  // shares it, each rank initialises on its current device. World ranks come from MPI. `trace` and
  // `watchdog` (optional) must outlive every Work.
  static std::unique_ptr<NcclCommunicator> create(MPI_Comm comm, dist::Group group, NcclOptions options = {},
                                                  dist::CollectiveTrace* trace = nullptr,
                                                  dist::Watchdog* watchdog = nullptr);

  // A fresh id (ncclGetUniqueId) for the constructor below; rank 0 makes it and shares it with the others.
  static NcclUniqueId new_unique_id();

  // Collective over the `nranks` processes that call it with the same `id`, this one as `rank`. Needs no
  // MPI. `world_ranks` (group-rank order) only names the ranks in reports; empty means 0..nranks-1.
  // Refuses a bad rank/nranks before touching CUDA or NCCL.
  NcclCommunicator(const NcclUniqueId& id, int nranks, int rank, dist::Group group, NcclOptions options = {},
                   dist::CollectiveTrace* trace = nullptr, dist::Watchdog* watchdog = nullptr,
                   std::vector<int> world_ranks = {});
  // Finalises the NCCL communicator (bounded by the timeout; aborted past it). Work still alive keeps the
  // NCCL communicator alive until it is destroyed, but should be complete before this, as on MPI.
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override;
  int size() const override;
  dist::Group group() const override;
  const std::vector<int>& world_ranks() const;
  int device() const;                       // the CUDA device it is bound to
  cudaStream_t communication_stream() const;  // the stream Stream{} posts on
  bool aborted() const;                     // after a timeout or an asynchronous error

  void set_stream(dist::Stream stream) override { stream_ = stream; }
  dist::Stream stream() const override { return stream_; }
  // The stream operations on the communication stream wait for (see the top of this file). Default: the
  // legacy default stream (nullptr). Ignored while set_stream() names a stream.
  void set_compute_stream(cudaStream_t stream) { compute_stream_ = stream; }
  cudaStream_t compute_stream() const { return compute_stream_; }

  // Fuses every operation posted until group_end() into one NCCL group (ncclGroupStart / ncclGroupEnd):
  // how a rank sends to and receives from the same peer, or itself, without deadlocking. The Works posted
  // inside are launched by group_end(); waiting on one before that throws. Not nestable; no barrier inside.
  void group_start();
  void group_end();

  dist::WorkPtr all_reduce(std::span<float> data, dist::ReduceOp op) override;
  dist::WorkPtr all_reduce(std::span<std::int64_t> data, dist::ReduceOp op) override;
  dist::WorkPtr reduce_scatter(std::span<const float> input, std::span<float> output, dist::ReduceOp op) override;
  dist::WorkPtr all_gather(std::span<const float> input, std::span<float> output) override;
  dist::WorkPtr all_gather(std::span<const std::int64_t> input, std::span<std::int64_t> output) override;
  dist::WorkPtr all_to_all_v(std::span<const float> input, std::span<const std::int64_t> send_counts,
                             std::span<float> output, std::span<const std::int64_t> recv_counts) override;
  dist::WorkPtr all_to_all_v(std::span<const std::int64_t> input, std::span<const std::int64_t> send_counts,
                             std::span<std::int64_t> output, std::span<const std::int64_t> recv_counts) override;
  dist::WorkPtr broadcast(std::span<float> data, int root) override;
  dist::WorkPtr broadcast(std::span<std::int64_t> data, int root) override;
  dist::WorkPtr send(std::span<const float> data, int peer, int tag) override;
  dist::WorkPtr recv(std::span<float> data, int peer, int tag) override;
  // A one-element all_reduce on the current stream, waited on by the host.
  void barrier() override;

  struct State;        // the NCCL communicator, streams and events; shared with live Works (in the .cpp)
  class PendingWork;   // the NcclWork (in the .cpp)

 private:
  template <class T>
  dist::WorkPtr all_reduce_impl(std::span<T> data, dist::ReduceOp op);
  template <class T>
  dist::WorkPtr all_gather_impl(std::span<const T> input, std::span<T> output);
  template <class T>
  dist::WorkPtr all_to_all_v_impl(std::span<const T> input, std::span<const std::int64_t> send_counts,
                                  std::span<T> output, std::span<const std::int64_t> recv_counts);
  template <class T>
  dist::WorkPtr broadcast_impl(std::span<T> data, int root);
  template <class EnqueueFn>
  dist::WorkPtr launch(dist::CollectiveOp op, DType dtype, const dist::TrafficBytes& bytes, EnqueueFn&& enqueue);

  std::shared_ptr<State> state_;
  dist::Stream stream_;
  cudaStream_t compute_stream_ = nullptr;
};

// The host-side argument checks every operation runs before touching CUDA or NCCL, exposed so that tests
// can exercise them for any group size without GPUs. Each throws tessera::Error naming the operation and
// group; pointers are compared, never dereferenced.
namespace nccl_checks {

struct GroupView {
  dist::Group group = dist::Group::dp;
  int rank = 0;
  int size = 1;
};

// Returns whether the output is this rank's own chunk of the input (NCCL's in-place form).
bool reduce_scatter(const GroupView& g, std::span<const std::byte> input, std::span<const std::byte> output,
                    std::size_t element_size);
// Returns whether the input is this rank's own chunk of the output (NCCL's in-place form).
bool all_gather(const GroupView& g, std::span<const std::byte> input, std::span<const std::byte> output,
                std::size_t element_size);

// Element offsets of each peer's chunk, and the elements addressed to / received from other ranks.
struct AllToAllPlan {
  std::vector<std::size_t> send_offsets, recv_offsets;
  std::uint64_t sent_to_others = 0, received_from_others = 0;
};
AllToAllPlan all_to_all_v(const GroupView& g, std::span<const std::byte> input,
                          std::span<const std::int64_t> send_counts, std::span<const std::byte> output,
                          std::span<const std::int64_t> recv_counts, std::size_t element_size);

void root(const GroupView& g, int root);                              // broadcast
void peer(const GroupView& g, dist::CollectiveOp op, int peer, int tag);  // send / recv

}  // namespace nccl_checks

}  // namespace tessera::cuda
