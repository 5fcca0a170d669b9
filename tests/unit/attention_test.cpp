// The CPU attention kernel (row-blocked BLAS) against a plain double-precision reference written from the
// definition, on packed samples longer than one row block, with GQA.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "tessera/backend/cpu_ops.hpp"

namespace tessera::cpu {
namespace {

struct Case {
  std::vector<int32_t> cu;
  int64_t Hq, Hkv, D;
};

// out, and the gradients of Σ out·dout, by the textbook formulas in double.
void reference(const Case& c, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
               const std::vector<float>& dout, std::vector<double>& out, std::vector<double>& dq,
               std::vector<double>& dk, std::vector<double>& dv) {
  const int64_t N = c.cu.back(), Hq = c.Hq, Hkv = c.Hkv, D = c.D, group = Hq / Hkv;
  out.assign(static_cast<size_t>(N * Hq * D), 0);
  dq.assign(out.size(), 0);
  dk.assign(static_cast<size_t>(N * Hkv * D), 0);
  dv.assign(dk.size(), 0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (size_t s = 0; s + 1 < c.cu.size(); ++s)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t start = c.cu[s], len = c.cu[s + 1] - start, kh = h / group;
      auto Q = [&](int64_t i, int64_t d) { return static_cast<double>(q[static_cast<size_t>(((start + i) * Hq + h) * D + d)]); };
      auto K = [&](int64_t j, int64_t d) { return static_cast<double>(k[static_cast<size_t>(((start + j) * Hkv + kh) * D + d)]); };
      auto V = [&](int64_t j, int64_t d) { return static_cast<double>(v[static_cast<size_t>(((start + j) * Hkv + kh) * D + d)]); };
      for (int64_t i = 0; i < len; ++i) {
        std::vector<double> p(static_cast<size_t>(i + 1));
        double max = -1e300, sum = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += Q(i, d) * K(j, d);
          p[static_cast<size_t>(j)] = dot * scale;
          max = std::max(max, p[static_cast<size_t>(j)]);
        }
        for (auto& x : p) sum += (x = std::exp(x - max));
        for (auto& x : p) x /= sum;
        const size_t o = static_cast<size_t>(((start + i) * Hq + h) * D);
        std::vector<double> dp(p.size());
        double weighted = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) {
            out[o + static_cast<size_t>(d)] += p[static_cast<size_t>(j)] * V(j, d);
            dot += dout[o + static_cast<size_t>(d)] * V(j, d);
            dv[static_cast<size_t>(((start + j) * Hkv + kh) * D + d)] += p[static_cast<size_t>(j)] * dout[o + static_cast<size_t>(d)];
          }
          dp[static_cast<size_t>(j)] = dot;
          weighted += p[static_cast<size_t>(j)] * dot;
        }
        for (int64_t j = 0; j <= i; ++j) {
          const double ds = p[static_cast<size_t>(j)] * (dp[static_cast<size_t>(j)] - weighted) * scale;
          for (int64_t d = 0; d < D; ++d) {
            dq[o + static_cast<size_t>(d)] += ds * K(j, d);
            dk[static_cast<size_t>(((start + j) * Hkv + kh) * D + d)] += ds * Q(i, d);
          }
        }
      }
    }
}

double max_relative(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return diff / scale;
}

TEST(Attention, RowBlockedKernelMatchesTheDefinition) {
  // Samples of 1, 63, 64, 65 and 150 tokens: below, at and across the 64-row blocks.
  const Case c{{0, 1, 64, 128, 193, 343}, 4, 2, 16};
  const int64_t N = c.cu.back();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto random = [&](size_t n) {
    std::vector<float> x(n);
    for (float& e : x) e = normal(rng);
    return x;
  };
  const auto q = random(static_cast<size_t>(N * c.Hq * c.D)), k = random(static_cast<size_t>(N * c.Hkv * c.D)),
             v = random(k.size()), dout = random(q.size());
  const int64_t S = static_cast<int64_t>(c.cu.size()) - 1;
  std::vector<float> probs(static_cast<size_t>(attention_probs_size(c.cu.data(), S, c.Hq)));
  std::vector<float> out(q.size()), dq(q.size()), dk(k.size()), dv(k.size());
  attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), c.cu.data(), S, c.Hq, c.Hkv, c.D);
  attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), probs.data(), q.data(), k.data(), v.data(),
                     c.cu.data(), S, c.Hq, c.Hkv, c.D);
  std::vector<double> ro, rdq, rdk, rdv;
  reference(c, q, k, v, dout, ro, rdq, rdk, rdv);
  EXPECT_LT(max_relative(out, ro), 1e-5);
  EXPECT_LT(max_relative(dq, rdq), 1e-5);
  EXPECT_LT(max_relative(dk, rdk), 1e-5);
  EXPECT_LT(max_relative(dv, rdv), 1e-5);
}

}  // namespace
}  // namespace tessera::cpu
