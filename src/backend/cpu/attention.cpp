#include <cmath>
#include <limits>
#include <vector>

#include "tessera/backend/cpu_ops.hpp"

namespace tessera::cpu {
namespace {

// Offsets of each sample's probability block (Hq heads × len²), so any (sample, head) pair is independent.
std::vector<int64_t> prob_offsets(const int32_t* cu, int64_t S, int64_t Hq) {
  std::vector<int64_t> offsets(static_cast<size_t>(S) + 1, 0);
  for (int64_t s = 0; s < S; ++s) {
    const int64_t len = cu[s + 1] - cu[s];
    offsets[s + 1] = offsets[s] + Hq * len * len;
  }
  return offsets;
}

}  // namespace

int64_t attention_probs_size(const int32_t* cu_seqlens, int64_t num_samples, int64_t Hq) {
  return prob_offsets(cu_seqlens, num_samples, Hq).back();
}

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       const int32_t* cu, int64_t S, int64_t Hq, int64_t Hkv, int64_t D) {
  const std::vector<int64_t> offsets = prob_offsets(cu, S, Hq);
  const int64_t group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
#pragma omp parallel
  {
    std::vector<float> row;  // scores of one query when probs are not kept
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t h = 0; h < Hq; ++h) {
        const int64_t start = cu[s], len = cu[s + 1] - cu[s], kvh = h / group;
        for (int64_t i = 0; i < len; ++i) {
          float* p;
          if (probs != nullptr) {
            p = probs + offsets[s] + (h * len + i) * len;
          } else {
            row.resize(static_cast<size_t>(len));
            p = row.data();
          }
          const float* qi = q + ((start + i) * Hq + h) * D;
          float max = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j <= i; ++j) {
            const float* kj = k + ((start + j) * Hkv + kvh) * D;
            float dot = 0;
            for (int64_t d = 0; d < D; ++d) dot += qi[d] * kj[d];
            p[j] = dot * scale;
            max = std::max(max, p[j]);
          }
          float sum = 0;
          for (int64_t j = 0; j <= i; ++j) {
            p[j] = std::exp(p[j] - max);
            sum += p[j];
          }
          const float inv = 1.0f / sum;
          for (int64_t j = 0; j <= i; ++j) p[j] *= inv;
          for (int64_t j = i + 1; j < len; ++j) p[j] = 0.0f;
          float* o = out + ((start + i) * Hq + h) * D;
          for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
          for (int64_t j = 0; j <= i; ++j) {
            const float* vj = v + ((start + j) * Hkv + kvh) * D;
            for (int64_t d = 0; d < D; ++d) o[d] += p[j] * vj[d];
          }
        }
      }
  }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs, const float* q,
                        const float* k, const float* v, const int32_t* cu, int64_t S, int64_t Hq, int64_t Hkv,
                        int64_t D) {
  const std::vector<int64_t> offsets = prob_offsets(cu, S, Hq);
  const int64_t group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t N = cu[S];
  for (int64_t i = 0; i < N * Hkv * D; ++i) dk[i] = dv[i] = 0.0f;
  // One task per (sample, kv head): the query heads sharing a kv head accumulate into the same dk/dv, so
  // they run in one task, in head order — deterministic and race-free.
#pragma omp parallel
  {
    std::vector<float> dp;
#pragma omp for collapse(2) schedule(dynamic)
    for (int64_t s = 0; s < S; ++s)
      for (int64_t kvh = 0; kvh < Hkv; ++kvh) {
        const int64_t start = cu[s], len = cu[s + 1] - cu[s];
        dp.resize(static_cast<size_t>(len));
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
          for (int64_t i = 0; i < len; ++i) {
            const float* p = probs + offsets[s] + (h * len + i) * len;
            const float* doi = dout + ((start + i) * Hq + h) * D;
            const float* qi = q + ((start + i) * Hq + h) * D;
            float* dqi = dq + ((start + i) * Hq + h) * D;
            // dP_ij = dO_i · V_j ; dV_j += P_ij dO_i
            float weighted = 0;
            for (int64_t j = 0; j <= i; ++j) {
              const float* vj = v + ((start + j) * Hkv + kvh) * D;
              float* dvj = dv + ((start + j) * Hkv + kvh) * D;
              float dot = 0;
              for (int64_t d = 0; d < D; ++d) {
                dot += doi[d] * vj[d];
                dvj[d] += p[j] * doi[d];
              }
              dp[j] = dot;
              weighted += p[j] * dot;
            }
            // dS_ij = P_ij (dP_ij − Σ_j P_ij dP_ij); dQ_i = scale Σ_j dS_ij K_j; dK_j += scale dS_ij Q_i
            for (int64_t d = 0; d < D; ++d) dqi[d] = 0.0f;
            for (int64_t j = 0; j <= i; ++j) {
              const float ds = p[j] * (dp[j] - weighted) * scale;
              const float* kj = k + ((start + j) * Hkv + kvh) * D;
              float* dkj = dk + ((start + j) * Hkv + kvh) * D;
              for (int64_t d = 0; d < D; ++d) {
                dqi[d] += ds * kj[d];
                dkj[d] += ds * qi[d];
              }
            }
          }
      }
  }
}

}  // namespace tessera::cpu
