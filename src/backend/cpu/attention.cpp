// Causal GQA attention over packed samples, one (sample, head) block at a time with BLAS GEMMs on strided
// views of the [tokens, heads, head_dim] layout. Query rows go in blocks of kRowBlock; a block multiplies
// only with the keys up to its last row, so the GEMMs do about half the square plus a diagonal strip
// instead of the whole len×len square.

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tessera/backend/cpu_ops.hpp"

namespace tessera::cpu {
namespace {

// Where sample s's probability block (Hq heads × len²) starts. Recomputed per task instead of stored, so
// the step loop allocates nothing; samples per batch are few.
int64_t prob_offset(const int32_t* cu, int64_t s, int64_t Hq) {
  int64_t offset = 0;
  for (int64_t i = 0; i < s; ++i) {
    const int64_t len = cu[i + 1] - cu[i];
    offset += Hq * len * len;
  }
  return offset;
}

int to_int(int64_t v) { return static_cast<int>(v); }

constexpr int64_t kRowBlock = 64;

}  // namespace

int64_t attention_probs_size(const int32_t* cu_seqlens, int64_t num_samples, int64_t Hq) {
  return prob_offset(cu_seqlens, num_samples, Hq);
}

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v, const int32_t* cu,
                       int64_t S, int64_t Hq, int64_t Hkv, int64_t D) {
  const int64_t group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t s = 0; s < S; ++s)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t start = cu[s], len = cu[s + 1] - cu[s], kvh = h / group;
      float* p = probs + prob_offset(cu, s, Hq) + h * len * len;
      const float* qh = q + (start * Hq + h) * D;
      const float* kh = k + (start * Hkv + kvh) * D;
      const float* vh = v + (start * Hkv + kvh) * D;
      for (int64_t r0 = 0; r0 < len; r0 += kRowBlock) {
        const int64_t r1 = std::min(len, r0 + kRowBlock), rows = r1 - r0;
        float* pb = p + r0 * len;
        // P[r0:r1, 0:r1] = scale · Q[r0:r1] K[0:r1]^T, then a causal softmax per row (zero past the diagonal).
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, to_int(rows), to_int(r1), to_int(D), scale,
                    qh + r0 * Hq * D, to_int(Hq * D), kh, to_int(Hkv * D), 0.0f, pb, to_int(len));
        for (int64_t i = r0; i < r1; ++i) {
          float* row = p + i * len;
          float max = -std::numeric_limits<float>::infinity();
          for (int64_t j = 0; j <= i; ++j) max = std::max(max, row[j]);
          float sum = 0;
          for (int64_t j = 0; j <= i; ++j) {
            row[j] = std::exp(row[j] - max);
            sum += row[j];
          }
          const float inv = 1.0f / sum;
          for (int64_t j = 0; j <= i; ++j) row[j] *= inv;
          for (int64_t j = i + 1; j < len; ++j) row[j] = 0.0f;
        }
        // O[r0:r1] = P[r0:r1, 0:r1] V[0:r1]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, to_int(rows), to_int(D), to_int(r1), 1.0f, pb,
                    to_int(len), vh, to_int(Hkv * D), 0.0f, out + ((start + r0) * Hq + h) * D, to_int(Hq * D));
      }
    }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs, const float* q,
                        const float* k, const float* v, const int32_t* cu, int64_t S, int64_t Hq, int64_t Hkv,
                        int64_t D) {
  const int64_t group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t N = cu[S];
  for (int64_t i = 0; i < N * Hkv * D; ++i) dk[i] = dv[i] = 0.0f;
  // One task per (sample, kv head): the query heads sharing a kv head accumulate into the same dk/dv, so
  // they run in one task, in head order — deterministic and race-free.
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t s = 0; s < S; ++s)
    for (int64_t kvh = 0; kvh < Hkv; ++kvh) {
      const int64_t start = cu[s], len = cu[s + 1] - cu[s];
      // Per-thread dS row block (kRowBlock × len), grown to the longest sample once and reused afterwards.
      static thread_local std::vector<float> ds_block;
      if (ds_block.size() < static_cast<size_t>(kRowBlock * len)) ds_block.resize(static_cast<size_t>(kRowBlock * len));
      float* ds = ds_block.data();
      const float* kh = k + (start * Hkv + kvh) * D;
      const float* vh = v + (start * Hkv + kvh) * D;
      float* dkh = dk + (start * Hkv + kvh) * D;
      float* dvh = dv + (start * Hkv + kvh) * D;
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
        const float* p = probs + prob_offset(cu, s, Hq) + h * len * len;
        const float* doh = dout + (start * Hq + h) * D;
        const float* qh = q + (start * Hq + h) * D;
        for (int64_t r0 = 0; r0 < len; r0 += kRowBlock) {
          const int64_t r1 = std::min(len, r0 + kRowBlock), rows = r1 - r0;
          const float* pb = p + r0 * len;
          const float* dob = doh + r0 * Hq * D;
          // dV[0:r1] += P_b^T dO_b ; dP_b = dO_b V[0:r1]^T (into ds, row stride len)
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, to_int(r1), to_int(D), to_int(rows), 1.0f, pb,
                      to_int(len), dob, to_int(Hq * D), 1.0f, dvh, to_int(Hkv * D));
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, to_int(rows), to_int(r1), to_int(D), 1.0f, dob,
                      to_int(Hq * D), vh, to_int(Hkv * D), 0.0f, ds, to_int(len));
          // dS_ij = P_ij (dP_ij − Σ_j P_ij dP_ij) · scale, zero above the diagonal.
          for (int64_t i = r0; i < r1; ++i) {
            const float* prow = p + i * len;
            float* row = ds + (i - r0) * len;
            float weighted = 0;
            for (int64_t j = 0; j <= i; ++j) weighted += prow[j] * row[j];
            for (int64_t j = 0; j <= i; ++j) row[j] = prow[j] * (row[j] - weighted) * scale;
            for (int64_t j = i + 1; j < r1; ++j) row[j] = 0.0f;
          }
          // dQ_b = dS_b K[0:r1] ; dK[0:r1] += dS_b^T Q_b
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, to_int(rows), to_int(D), to_int(r1), 1.0f, ds,
                      to_int(len), kh, to_int(Hkv * D), 0.0f, dq + ((start + r0) * Hq + h) * D, to_int(Hq * D));
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, to_int(r1), to_int(D), to_int(rows), 1.0f, ds,
                      to_int(len), qh + r0 * Hq * D, to_int(Hq * D), 1.0f, dkh, to_int(Hkv * D));
        }
      }
    }
}

}  // namespace tessera::cpu
