#include "tessera/backend/cuda/phase_timer.hpp"

#include "cuda_check.hpp"

namespace tessera::cuda {

PhaseTimer::PhaseTimer(cudaStream_t stream) : stream_(stream) {}

PhaseTimer::~PhaseTimer() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);  // destructors must not throw
}

void PhaseTimer::mark(const char* phase) {
  if (names_.size() == events_.size()) {
    cudaEvent_t e = nullptr;
    TESSERA_CUDA_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
  }
  TESSERA_CUDA_CHECK(cudaEventRecord(events_[names_.size()], stream_));
  names_.push_back(phase);
}

void PhaseTimer::end() { mark(nullptr); }

void PhaseTimer::collect() {
  if (names_.empty()) return;
  TESSERA_CUDA_CHECK(cudaEventSynchronize(events_[names_.size() - 1]));
  for (size_t i = 0; i + 1 < names_.size(); ++i) {
    if (!names_[i]) continue;
    float ms = 0;
    TESSERA_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]));
    auto it = totals_.begin();
    while (it != totals_.end() && it->first != names_[i]) ++it;
    if (it == totals_.end()) it = totals_.insert(totals_.end(), {names_[i], 0.0});
    it->second += ms;
  }
  names_.clear();
}

}  // namespace tessera::cuda
