// Host side of the deterministic embedding backward: token positions grouped by id (ascending ids,
// positions ascending inside each id), so the kernel adds each id's rows in token order.
#include <algorithm>
#include <limits>
#include <numeric>

#include "tessera/backend/cuda/ops.hpp"
#include "tessera/core/error.hpp"

namespace tessera::cuda {

EmbeddingBackwardPlan EmbeddingBackwardPlan::of(const int32_t* ids, int64_t N) {
  TESSERA_CHECK(N >= 0 && N <= std::numeric_limits<int32_t>::max(),
                "embedding backward over {} tokens: the plan indexes tokens with 32-bit integers", N);
  EmbeddingBackwardPlan plan;
  plan.sorted_tokens.resize(static_cast<size_t>(N));
  std::iota(plan.sorted_tokens.begin(), plan.sorted_tokens.end(), 0);
  for (int64_t n = 0; n < N; ++n) TESSERA_CHECK(ids[n] >= 0, "token {} has negative id {}", n, ids[n]);
  // Stable: positions of one id stay in token order.
  std::stable_sort(plan.sorted_tokens.begin(), plan.sorted_tokens.end(),
                   [ids](int32_t a, int32_t b) { return ids[a] < ids[b]; });
  for (int32_t k = 0; k < static_cast<int32_t>(N); ++k) {
    const int32_t id = ids[plan.sorted_tokens[static_cast<size_t>(k)]];
    if (plan.segment_ids.empty() || plan.segment_ids.back() != id) {
      plan.segment_ids.push_back(id);
      plan.segment_starts.push_back(k);
    }
  }
  plan.segment_starts.push_back(static_cast<int32_t>(N));
  return plan;
}

}  // namespace tessera::cuda
