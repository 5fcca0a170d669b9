#pragma once
// Where a GPU step's time goes: the code marks phase boundaries on a stream with CUDA events (no host
// synchronisation), and collect() afterwards adds each phase's elapsed time to per-phase totals. A phase
// runs from its mark to the next mark (or end()); the same name may recur (every layer's "attention fwd")
// and its times add up. Gaps where the device waits on the host (a synchronising copy) count towards the
// phase that contains them, which is the point: they are that phase's cost.

#include <cuda_runtime_api.h>

#include <string>
#include <utility>
#include <vector>

namespace tessera::cuda {

class PhaseTimer {
 public:
  explicit PhaseTimer(cudaStream_t stream);
  ~PhaseTimer();
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

  void mark(const char* phase);  // `phase` begins here; the previous phase ends
  void end();                    // the current phase ends
  // Waits for the recorded events, adds every phase's milliseconds to the totals, forgets the marks.
  void collect();
  // Milliseconds per phase, in the order phases were first seen, summed over every collect().
  const std::vector<std::pair<std::string, double>>& totals() const { return totals_; }

 private:
  cudaStream_t stream_;
  std::vector<cudaEvent_t> events_;  // a pool, reused across steps
  std::vector<const char*> names_;   // the phase each used event starts (nullptr: an end)
  std::vector<std::pair<std::string, double>> totals_;
};

}  // namespace tessera::cuda
