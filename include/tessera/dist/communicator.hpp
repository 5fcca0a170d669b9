#pragma once
// The communication interface the parallel layer programs against: one Communicator per process group
// (tp, dp, pp, ep, ...), every operation asynchronous behind a Work handle. MPI implements it now
// (mpi_communicator.hpp); NCCL will implement the same interface (CUDA issue), which is why it has handles
// and a stream although MPI on host memory needs neither.
//
// Rules that hold for every backend:
//  - Every rank of a group posts the same operations on that group's communicator in the same order
//    (MPI and NCCL both match collectives by post order). A rank that skips one hangs its peers; the hang
//    watchdog (watchdog.hpp) then ends the job naming the rank, group and operation.
//  - Buffers stay untouched and alive from the post until the Work completes (wait() returned, or test()
//    returned true). Destroying an incomplete Work waits for it, so a dropped handle never leaves MPI
//    writing into freed memory.
//  - Each Work completes on its own: code waits on every handle whose result it needs (on NCCL, later
//    operations on the same stream happen to finish later; do not rely on it).
//  - A Communicator and its Work handles are driven by one thread (the training loop's). The watchdog is
//    the only other thread, and it only reads its own table.
//  - Element counts above INT_MAX (MPI's int counts) are refused with an Error before anything is posted,
//    never truncated; split such a buffer into buckets.

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "tessera/dist/topology.hpp"

namespace tessera::dist {

enum class ReduceOp { sum, max, min };
std::string_view reduce_op_name(ReduceOp);

// Where an operation sits relative to the caller's other work. On NCCL `native` is a cudaStream_t: the
// collective starts after the work queued on that stream before the post, and wait() makes the stream's
// later work follow the collective. On MPI the buffers are host memory and always ready, so the stream is
// only an ordering token: it travels with each operation into the trace, and wait() blocks the host.
struct Stream {
  void* native = nullptr;  // nullptr: the backend's default stream (the host, on MPI)
  std::uint32_t id = 0;    // the caller's name for it, recorded in traces

  friend bool operator==(const Stream&, const Stream&) = default;
};

// An operation in flight. wait() blocks until it has completed (MPI: MPI_Wait); test() returns whether it
// has, without blocking (MPI: MPI_Test, which also drives MPI's progress). Both may be called again after
// completion and then return at once. A failure is thrown as tessera::Error from whichever observes it.
class Work {
 public:
  virtual ~Work();
  virtual void wait() = 0;
  virtual bool test() = 0;
};
using WorkPtr = std::unique_ptr<Work>;

class Communicator {
 public:
  virtual ~Communicator();

  virtual int rank() const = 0;  // position in the group
  virtual int size() const = 0;  // ranks in the group
  virtual Group group() const = 0;

  // The stream later operations are posted on (see Stream). Starts as the default Stream{}.
  virtual void set_stream(Stream stream) = 0;
  virtual Stream stream() const = 0;

  // In place: every rank ends with the element-wise reduction over the group.
  virtual WorkPtr all_reduce(std::span<float> data, ReduceOp op) = 0;
  virtual WorkPtr all_reduce(std::span<std::int64_t> data, ReduceOp op) = 0;

  // `input` is size() equal chunks; `output` (one chunk, not overlapping input) receives the reduction of
  // every rank's chunk number rank().
  virtual WorkPtr reduce_scatter(std::span<const float> input, std::span<float> output, ReduceOp op) = 0;

  // `output` is size() chunks of input.size() elements, in group-rank order. `input` may be this rank's own
  // chunk of `output` (in place); any other overlap is refused.
  virtual WorkPtr all_gather(std::span<const float> input, std::span<float> output) = 0;
  virtual WorkPtr all_gather(std::span<const std::int64_t> input, std::span<std::int64_t> output) = 0;

  // `input` holds send_counts[p] elements for each peer p back to back, in group-rank order; `output`
  // receives recv_counts[p] elements from each peer p the same way. Both count lists have size() entries,
  // must sum to their buffer's length and must match the peers' counts (MPI cannot check the latter).
  virtual WorkPtr all_to_all_v(std::span<const float> input, std::span<const std::int64_t> send_counts,
                               std::span<float> output, std::span<const std::int64_t> recv_counts) = 0;
  virtual WorkPtr all_to_all_v(std::span<const std::int64_t> input, std::span<const std::int64_t> send_counts,
                               std::span<std::int64_t> output, std::span<const std::int64_t> recv_counts) = 0;

  // Every rank ends with the root's `data`; `root` is a group rank.
  virtual WorkPtr broadcast(std::span<float> data, int root) = 0;
  virtual WorkPtr broadcast(std::span<std::int64_t> data, int root) = 0;

  // Point to point within the group (`peer` is a group rank). A recv must receive exactly data.size()
  // elements; a shorter message is reported as an error when the Work completes.
  virtual WorkPtr send(std::span<const float> data, int peer, int tag) = 0;
  virtual WorkPtr recv(std::span<float> data, int peer, int tag) = 0;

  // Blocks until every rank of the group has reached it (watched by the watchdog like any collective).
  virtual void barrier() = 0;
};

}  // namespace tessera::dist
