// The CUDA flash-attention kernels against cpu::attention_forward/backward: out, lse and dq/dk/dv for
// packed samples of ragged lengths (not multiples of the 64-row tile), GQA and plain multi-head, several head
// sizes, fp32 and bf16; outputs are poisoned (NaN) first so an element a kernel never writes fails the
// comparison; the backward is checked bit-for-bit deterministic.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

// Before cuda_test_support.hpp: its DeviceArray calls cudaMalloc(T**), the typed overload that
// cuda_runtime.h (not cuda_runtime_api.h) declares, and the call is looked up where the template is defined.
#include <cuda_runtime.h>

#include "cuda_test_support.hpp"
#include "tessera/backend/cpu_ops.hpp"
#include "tessera/backend/cuda/attention.hpp"

namespace tessera::cuda::test {
namespace {

struct Layout {
  std::vector<int32_t> cu;  // cu_seqlens
  int64_t Hq, Hkv, D;
  int64_t extra_max_seqlen = 0;  // added to the true max: blocks past every sample must exit cleanly
};

int64_t num_samples(const Layout& l) { return static_cast<int64_t>(l.cu.size()) - 1; }
int64_t tokens(const Layout& l) { return l.cu.back(); }
int64_t max_len(const Layout& l) {
  int64_t m = 0;
  for (size_t s = 0; s + 1 < l.cu.size(); ++s) m = std::max<int64_t>(m, l.cu[s + 1] - l.cu[s]);
  return m;
}

// Inputs as the kernel of type T sees them (for bf16: already rounded), in float.
struct Inputs {
  std::vector<float> q, k, v, dout;
};
template <class T>
Inputs make_inputs(const Layout& l, uint64_t seed) {
  const size_t N = static_cast<size_t>(tokens(l));
  Inputs in;
  in.q = rounded<T>(random_floats(N * l.Hq * l.D, seed + 1));
  in.k = rounded<T>(random_floats(N * l.Hkv * l.D, seed + 2));
  in.v = rounded<T>(random_floats(N * l.Hkv * l.D, seed + 3));
  in.dout = rounded<T>(random_floats(N * l.Hq * l.D, seed + 4));
  return in;
}

struct Results {
  std::vector<float> out, lse, dq, dk, dv;
};

// The CPU reference; lse from its definition, in double.
Results cpu_reference(const Layout& l, const Inputs& in) {
  const int64_t S = num_samples(l), N = tokens(l), Hq = l.Hq, Hkv = l.Hkv, D = l.D;
  Results r;
  std::vector<float> probs(static_cast<size_t>(cpu::attention_probs_size(l.cu.data(), S, Hq)));
  r.out.resize(N * Hq * D);
  cpu::attention_forward(r.out.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), l.cu.data(), S, Hq, Hkv,
                         D);
  r.dq.resize(N * Hq * D);
  r.dk.resize(N * Hkv * D);
  r.dv.resize(N * Hkv * D);
  cpu::attention_backward(r.dq.data(), r.dk.data(), r.dv.data(), in.dout.data(), probs.data(), in.q.data(),
                          in.k.data(), in.v.data(), l.cu.data(), S, Hq, Hkv, D);
  r.lse.resize(N * Hq);
  const double scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t group = Hq / Hkv;
  std::vector<double> scores;
  for (int64_t s = 0; s < S; ++s)
    for (int64_t i = l.cu[s]; i < l.cu[s + 1]; ++i)
      for (int64_t h = 0; h < Hq; ++h) {
        scores.clear();
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = l.cu[s]; j <= i; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += static_cast<double>(in.q[(i * Hq + h) * D + d]) * in.k[(j * Hkv + h / group) * D + d];
          scores.push_back(dot * scale);
          mx = std::max(mx, dot * scale);
        }
        double sum = 0;
        for (const double x : scores) sum += std::exp(x - mx);
        r.lse[i * Hq + h] = static_cast<float>(mx + std::log(sum));
      }
  return r;
}

// Forward then backward on the GPU, every output poisoned (NaN) beforehand.
template <class T>
Results gpu_run(const Layout& l, const Inputs& in) {
  const int64_t S = num_samples(l), N = tokens(l), Hq = l.Hq, Hkv = l.Hkv, D = l.D;
  const int64_t max_seqlen = max_len(l) + l.extra_max_seqlen;
  DeviceArray<int32_t> cu(l.cu);
  DeviceArray<T> q(to_type<T>(in.q)), k(to_type<T>(in.k)), v(to_type<T>(in.v)), dout(to_type<T>(in.dout));
  DeviceArray<T> out(N * Hq * D), dq(N * Hq * D), dk(N * Hkv * D), dv(N * Hkv * D);
  DeviceArray<float> lse(N * Hq), workspace(attention_backward_workspace_floats(N, Hq, D));
  out.poison();
  lse.poison();
  dq.poison();
  dk.poison();
  dv.poison();
  workspace.poison();
  TESSERA_TEST_CUDA(attention_forward<T>(out.get(), lse.get(), q.get(), k.get(), v.get(), cu.get(), S, N, max_seqlen,
                                         Hq, Hkv, D, nullptr));
  TESSERA_TEST_CUDA(attention_backward<T>(dq.get(), dk.get(), dv.get(), dout.get(), out.get(), lse.get(), q.get(),
                                          k.get(), v.get(), cu.get(), S, N, max_seqlen, Hq, Hkv, D, workspace.get(),
                                          nullptr));
  TESSERA_TEST_CUDA(cudaDeviceSynchronize());
  Results r;
  r.out = to_floats(out.download());
  r.lse = lse.download();
  r.dq = to_floats(dq.download());
  r.dk = to_floats(dk.download());
  r.dv = to_floats(dv.download());
  return r;
}

size_t count_non_finite(const std::vector<float>& x) {
  return static_cast<size_t>(std::count_if(x.begin(), x.end(), [](float f) { return !std::isfinite(f); }));
}

// Tolerances (relative_error: ‖got − want‖₂ / ‖want‖₂).
// float: the same fp32 math in another order (online softmax, other summation orders): ~1e-6 seen in
// analysis, 1e-5 allowed.
// bf16: the CPU gets the same bf16-rounded inputs, so the differences are the kernel's own roundings, each
// ≤ kBf16Eps/2 relative: out passes P → bf16 (before P·V) and the result → bf16 (≤ 1 eps together; 4 eps
// allowed). dV likewise (P, result); dK/dQ pass dS → bf16 and the result → bf16, and dS = P(dP − delta) uses
// delta from the bf16-rounded `out`, a further ≤ 1 eps through the difference: ≤ ~2 eps, 8 allowed. lse is
// fp32 arithmetic on exact bf16 products (no bf16 rounding at all), so it keeps the fp32 tolerance.
template <class T>
struct Tol;
template <>
struct Tol<float> {
  static constexpr double out = 1e-5, lse = 1e-5, grad = 1e-5;
};
template <>
struct Tol<__nv_bfloat16> {
  static constexpr double out = 4 * kBf16Eps, lse = 1e-5, grad = 8 * kBf16Eps;
};

template <class T>
void check_against_cpu(const Layout& l, uint64_t seed) {
  const Inputs in = make_inputs<T>(l, seed);
  const Results want = cpu_reference(l, in);
  const Results got = gpu_run<T>(l, in);
  EXPECT_LT(relative_error(got.out, want.out), Tol<T>::out) << "out";
  EXPECT_LT(relative_error(got.lse, want.lse), Tol<T>::lse) << "lse";
  EXPECT_LT(relative_error(got.dq, want.dq), Tol<T>::grad) << "dq";
  EXPECT_LT(relative_error(got.dk, want.dk), Tol<T>::grad) << "dk";
  EXPECT_LT(relative_error(got.dv, want.dv), Tol<T>::grad) << "dv";
}

// Packed samples of 5, 65 and 130 tokens (none a multiple of 64, one of 64 + 1) and one of 300.
const std::vector<int32_t> kPacked = {0, 5, 70, 200};
const std::vector<int32_t> kSingle = {0, 300};

template <class T>
class AttentionTest : public ::testing::Test {};
using Types = ::testing::Types<float, __nv_bfloat16>;
TYPED_TEST_SUITE(AttentionTest, Types);

TYPED_TEST(AttentionTest, PackedGqaD16) {
  TESSERA_REQUIRE_GPU();
  check_against_cpu<TypeParam>({kPacked, 4, 2, 16}, 10);
}
TYPED_TEST(AttentionTest, PackedGqaD128) {
  TESSERA_REQUIRE_GPU();
  check_against_cpu<TypeParam>({kPacked, 4, 2, 128}, 20);
}
TYPED_TEST(AttentionTest, PackedMhaD128) {
  TESSERA_REQUIRE_GPU();
  check_against_cpu<TypeParam>({kPacked, 2, 2, 128}, 30);
}
TYPED_TEST(AttentionTest, SingleGqaD128) {
  TESSERA_REQUIRE_GPU();
  check_against_cpu<TypeParam>({kSingle, 4, 2, 128}, 40);
}
TYPED_TEST(AttentionTest, SingleMhaD16) {
  TESSERA_REQUIRE_GPU();
  check_against_cpu<TypeParam>({kSingle, 2, 2, 16}, 50);
}
// The other two head sizes; a 1-token sample, an exact 64, and max_seqlen larger than any sample.
TYPED_TEST(AttentionTest, MixedLengthsD32) {
  TESSERA_REQUIRE_GPU();
  check_against_cpu<TypeParam>({{0, 64, 129, 130}, 4, 1, 32, 100}, 60);
}
TYPED_TEST(AttentionTest, MixedLengthsD64) {
  TESSERA_REQUIRE_GPU();
  check_against_cpu<TypeParam>({{0, 1, 129, 257}, 8, 2, 64, 3}, 70);
}

// Outputs start as NaN; every element of out, lse, dq, dk, dv must have been written (finite).
TYPED_TEST(AttentionTest, WritesEveryOutput) {
  TESSERA_REQUIRE_GPU();
  const Layout l{kPacked, 4, 2, 128, 64};
  const Results got = gpu_run<TypeParam>(l, make_inputs<TypeParam>(l, 80));
  EXPECT_EQ(count_non_finite(got.out), 0u);
  EXPECT_EQ(count_non_finite(got.lse), 0u);
  EXPECT_EQ(count_non_finite(got.dq), 0u);
  EXPECT_EQ(count_non_finite(got.dk), 0u);
  EXPECT_EQ(count_non_finite(got.dv), 0u);
}

// Two backward runs on the same inputs give bit-identical gradients (no atomics, fixed orders).
TYPED_TEST(AttentionTest, BackwardIsDeterministic) {
  TESSERA_REQUIRE_GPU();
  const Layout l{kPacked, 4, 2, 128};
  const Inputs in = make_inputs<TypeParam>(l, 90);
  const Results a = gpu_run<TypeParam>(l, in);
  const Results b = gpu_run<TypeParam>(l, in);
  auto same_bits = [](const std::vector<float>& x, const std::vector<float>& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  EXPECT_TRUE(same_bits(a.dq, b.dq));
  EXPECT_TRUE(same_bits(a.dk, b.dk));
  EXPECT_TRUE(same_bits(a.dv, b.dv));
  EXPECT_TRUE(same_bits(a.out, b.out));
  EXPECT_TRUE(same_bits(a.lse, b.lse));
}

// Head sizes other than 16/32/64/128 and a kv head count that does not divide Hq are refused.
TYPED_TEST(AttentionTest, RefusesUnsupportedShapes) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  DeviceArray<T> buf(1024);
  DeviceArray<float> f(1024);
  DeviceArray<int32_t> cu(std::vector<int32_t>{0, 4});
  EXPECT_EQ(attention_forward<T>(buf.get(), f.get(), buf.get(), buf.get(), buf.get(), cu.get(), 1, 4, 4, 2, 2, 48,
                                 nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(attention_forward<T>(buf.get(), f.get(), buf.get(), buf.get(), buf.get(), cu.get(), 1, 4, 4, 3, 2, 64,
                                 nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(attention_backward<T>(buf.get(), buf.get(), buf.get(), buf.get(), buf.get(), f.get(), buf.get(),
                                  buf.get(), buf.get(), cu.get(), 1, 4, 4, 2, 2, 96, f.get(), nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
}  // namespace tessera::cuda::test
