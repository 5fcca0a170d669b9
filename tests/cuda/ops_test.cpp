// The CUDA elementwise, normalisation, embedding, loss and optimizer kernels against the CPU fp32 reference
// (cpu_ops.hpp, train/optimizer.cpp) on random inputs with awkward sizes. float must match to 1e-5
// relative; bf16 runs feed the CPU the bf16-rounded inputs and allow a stated multiple of kBf16Eps. Every
// output buffer is poisoned first so an element a kernel fails to write shows up as NaN.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

// Before the support header: its DeviceArray calls cudaMalloc(T**, size), the typed overload that
// cuda_runtime.h (not cuda_runtime_api.h) declares.
#include <cuda_runtime.h>

#include "cuda_test_support.hpp"
#include "tessera/backend/cpu_ops.hpp"
#include "tessera/backend/cuda/ops.hpp"
#include "tessera/train/tree_sum.hpp"

namespace tessera::cuda {
namespace {

using namespace ::tessera::cuda::test;

constexpr double kFloatTol = 1e-5;

// float: the exact path. bf16: `multiple` roundings of kBf16Eps (each test says why).
template <class T>
double tolerance(double bf16_multiple) {
  return std::is_same_v<T, float> ? kFloatTol : bf16_multiple * kBf16Eps;
}

template <class T>
std::vector<float> download_floats(const DeviceArray<T>& d) {
  return to_floats(d.download());
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

struct TypeNames {
  template <class T>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<T, float>) return "float"; else return "bf16";
  }
};

template <class T>
class CudaOpsTyped : public ::testing::Test {};
using ComputeTypes = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaOpsTyped, ComputeTypes, TypeNames);

// ---- rmsnorm ------------------------------------------------------------------------------------------

template <class In, class W>
struct NormTypes {
  using TIn = In;
  using T = W;
};
struct NormTypeNames {
  template <class P>
  static std::string GetName(int) {
    auto name = [](auto tag) { return std::is_same_v<decltype(tag), float> ? std::string("float") : "bf16"; };
    return name(typename P::TIn{}) + "_" + name(typename P::T{});
  }
};
template <class P>
class CudaRmsNorm : public ::testing::Test {};
using NormPairs = ::testing::Types<NormTypes<float, float>, NormTypes<float, bf16>, NormTypes<bf16, bf16>>;
TYPED_TEST_SUITE(CudaRmsNorm, NormPairs, NormTypeNames);

constexpr float kEps = 1e-6f;

TYPED_TEST(CudaRmsNorm, ForwardMatchesCpu) {
  TESSERA_REQUIRE_GPU();
  using TIn = typename TypeParam::TIn;
  using T = typename TypeParam::T;
  const int64_t rows = 37, C = 129;
  const std::vector<float> x = rounded<TIn>(random_floats(rows * C, 1, -2.0f, 2.0f));
  const std::vector<float> w = rounded<T>(random_floats(C, 2, 0.5f, 1.5f));
  std::vector<float> want(rows * C), want_rstd(rows);
  cpu::rmsnorm_forward(want.data(), want_rstd.data(), x.data(), w.data(), rows, C, kEps);

  DeviceArray<TIn> d_x(to_type<TIn>(x));
  DeviceArray<T> d_w(to_type<T>(w)), d_out(rows * C);
  DeviceArray<float> d_rstd(rows);
  d_out.poison();
  d_rstd.poison();
  TESSERA_TEST_CUDA((rmsnorm_forward<TIn, T>(d_out.get(), d_rstd.get(), d_x.get(), d_w.get(), rows, C, kEps, nullptr)));
  // bf16 output: one rounding (≤ eps/2) of an fp32 result computed from the same inputs.
  EXPECT_LT(relative_error(download_floats(d_out), want), tolerance<T>(1.0));
  // rstd is fp32 from exactly representable inputs on every path.
  EXPECT_LT(relative_error(d_rstd.download(), want_rstd), kFloatTol);
}

TYPED_TEST(CudaRmsNorm, BackwardMatchesCpuAndIsDeterministic) {
  TESSERA_REQUIRE_GPU();
  using TIn = typename TypeParam::TIn;
  using T = typename TypeParam::T;
  for (const int64_t rows : {int64_t{37}, int64_t{1000}}) {  // 2 chunks of rows, then 32 (the last one short)
    SCOPED_TRACE(rows);
    const int64_t C = 129;
    const std::vector<float> x = rounded<TIn>(random_floats(rows * C, 3, -2.0f, 2.0f));
    const std::vector<float> w = rounded<T>(random_floats(C, 4, 0.5f, 1.5f));
    const std::vector<float> dy = rounded<T>(random_floats(rows * C, 5));
    const std::vector<float> dx0 = rounded<TIn>(random_floats(rows * C, 6));
    const std::vector<float> dw0 = random_floats(C, 7);
    std::vector<float> out(rows * C), rstd(rows);
    cpu::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), rows, C, kEps);
    std::vector<float> want_acc = dx0, want_fresh(rows * C, 0.0f), want_dw = dw0, unused_dw = dw0;
    cpu::rmsnorm_backward(want_acc.data(), want_dw.data(), dy.data(), x.data(), w.data(), rstd.data(), rows, C);
    cpu::rmsnorm_backward(want_fresh.data(), unused_dw.data(), dy.data(), x.data(), w.data(), rstd.data(), rows, C);

    DeviceArray<TIn> d_x(to_type<TIn>(x)), d_dx(to_type<TIn>(dx0));
    DeviceArray<T> d_w(to_type<T>(w)), d_dy(to_type<T>(dy));
    DeviceArray<float> d_rstd(rstd), d_dw(dw0), d_scratch(rmsnorm_backward_scratch_floats(rows, C));
    d_scratch.poison();
    TESSERA_TEST_CUDA((rmsnorm_backward<TIn, T>(d_dx.get(), true, d_dw.get(), d_dy.get(), d_x.get(), d_w.get(),
                                                d_rstd.get(), rows, C, d_scratch.get(), nullptr)));
    // bf16 dinp: the fp32 sum (old value + gradient) is rounded once.
    EXPECT_LT(relative_error(download_floats(d_dx), want_acc), tolerance<TIn>(1.0));
    // dweight is fp32, accumulated from exactly representable inputs on every path.
    const std::vector<float> dw_first = d_dw.download();
    EXPECT_LT(relative_error(dw_first, want_dw), kFloatTol);

    // accumulate = false overwrites (poisoned) dinp; the same dweight run again gives the same bits.
    d_dx.poison();
    d_dw.upload(dw0);
    d_scratch.poison();
    TESSERA_TEST_CUDA((rmsnorm_backward<TIn, T>(d_dx.get(), false, d_dw.get(), d_dy.get(), d_x.get(), d_w.get(),
                                                d_rstd.get(), rows, C, d_scratch.get(), nullptr)));
    EXPECT_LT(relative_error(download_floats(d_dx), want_fresh), tolerance<TIn>(1.0));
    EXPECT_TRUE(same_bits(d_dw.download(), dw_first)) << "dweight differs between two identical runs";
  }
}

TYPED_TEST(CudaOpsTyped, AddRmsNormForwardMatchesCpu) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t rows = 37, C = 129;
  const std::vector<float> x = random_floats(rows * C, 11, -2.0f, 2.0f);
  const std::vector<float> delta = rounded<T>(random_floats(rows * C, 12));
  const std::vector<float> w = rounded<T>(random_floats(C, 13, 0.5f, 1.5f));
  std::vector<float> want_sum(rows * C);
  for (size_t i = 0; i < want_sum.size(); ++i) want_sum[i] = x[i] + delta[i];
  std::vector<float> want(rows * C), want_rstd(rows), want_plain(rows * C), want_plain_rstd(rows);
  cpu::rmsnorm_forward(want.data(), want_rstd.data(), want_sum.data(), w.data(), rows, C, kEps);
  cpu::rmsnorm_forward(want_plain.data(), want_plain_rstd.data(), x.data(), w.data(), rows, C, kEps);

  DeviceArray<float> d_x(x), d_sum(rows * C), d_rstd(rows);
  DeviceArray<T> d_delta(to_type<T>(delta)), d_w(to_type<T>(w)), d_out(rows * C);
  d_sum.poison();
  d_out.poison();
  d_rstd.poison();
  TESSERA_TEST_CUDA(add_rmsnorm_forward<T>(d_sum.get(), d_out.get(), d_rstd.get(), d_x.get(), d_delta.get(),
                                           d_w.get(), rows, C, kEps, nullptr));
  // The fp32 sum is one float addition, as on the host: exact.
  EXPECT_TRUE(same_bits(d_sum.download(), want_sum));
  EXPECT_LT(relative_error(download_floats(d_out), want), tolerance<T>(1.0));  // one output rounding
  EXPECT_LT(relative_error(d_rstd.download(), want_rstd), kFloatTol);

  // No delta: sum is a copy of x, out of place and in place (sum == x).
  d_sum.poison();
  d_out.poison();
  TESSERA_TEST_CUDA(add_rmsnorm_forward<T>(d_sum.get(), d_out.get(), d_rstd.get(), d_x.get(), nullptr, d_w.get(),
                                           rows, C, kEps, nullptr));
  EXPECT_TRUE(same_bits(d_sum.download(), x));
  EXPECT_LT(relative_error(download_floats(d_out), want_plain), tolerance<T>(1.0));
  d_out.poison();
  TESSERA_TEST_CUDA(add_rmsnorm_forward<T>(d_x.get(), d_out.get(), d_rstd.get(), d_x.get(), nullptr, d_w.get(), rows,
                                           C, kEps, nullptr));
  EXPECT_TRUE(same_bits(d_x.download(), x));
  EXPECT_LT(relative_error(download_floats(d_out), want_plain), tolerance<T>(1.0));
  EXPECT_LT(relative_error(d_rstd.download(), want_plain_rstd), kFloatTol);
}

// ---- rope ---------------------------------------------------------------------------------------------

TYPED_TEST(CudaOpsTyped, RopeForwardAndBackwardMatchCpu) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 37, heads = 3, D = 34, half = D / 2;
  std::vector<int64_t> positions(N);
  for (int64_t n = 0; n < N; ++n) positions[n] = (n * 7) % 23;  // packed samples restart positions
  std::vector<float> cos(N * half), sin(N * half);
  cpu::rope_tables(cos.data(), sin.data(), positions.data(), N, D, 1e6);
  DeviceArray<float> d_cos(cos), d_sin(sin);

  const std::vector<float> x = rounded<T>(random_floats(N * heads * D, 21));
  std::vector<float> want = x;
  cpu::rope_forward(want.data(), cos.data(), sin.data(), N, heads, D);
  DeviceArray<T> d_x(to_type<T>(x));
  TESSERA_TEST_CUDA(rope_forward<T>(d_x.get(), d_cos.get(), d_sin.get(), N, heads, D, nullptr));
  // bf16: each output is rounded once from an fp32 rotation of the same inputs.
  EXPECT_LT(relative_error(download_floats(d_x), want), tolerance<T>(1.0));

  const std::vector<float> dx = rounded<T>(random_floats(N * heads * D, 22));
  std::vector<float> want_dx = dx;
  cpu::rope_backward(want_dx.data(), cos.data(), sin.data(), N, heads, D);
  DeviceArray<T> d_dx(to_type<T>(dx));
  TESSERA_TEST_CUDA(rope_backward<T>(d_dx.get(), d_cos.get(), d_sin.get(), N, heads, D, nullptr));
  EXPECT_LT(relative_error(download_floats(d_dx), want_dx), tolerance<T>(1.0));
}

// ---- swiglu -------------------------------------------------------------------------------------------

TYPED_TEST(CudaOpsTyped, SwigluForwardAndBackwardMatchCpu) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t n = 4099;
  const std::vector<float> gate = rounded<T>(random_floats(n, 31, -6.0f, 6.0f));
  const std::vector<float> up = rounded<T>(random_floats(n, 32));
  const std::vector<float> dh = rounded<T>(random_floats(n, 33));
  std::vector<float> want_h(n), want_dgate(n), want_dup(n);
  cpu::swiglu_forward(want_h.data(), gate.data(), up.data(), n);
  cpu::swiglu_backward(want_dgate.data(), want_dup.data(), dh.data(), gate.data(), up.data(), n);

  DeviceArray<T> d_gate(to_type<T>(gate)), d_up(to_type<T>(up)), d_dh(to_type<T>(dh));
  DeviceArray<T> d_h(n), d_dgate(n), d_dup(n);
  d_h.poison();
  d_dgate.poison();
  d_dup.poison();
  TESSERA_TEST_CUDA(swiglu_forward<T>(d_h.get(), d_gate.get(), d_up.get(), n, nullptr));
  TESSERA_TEST_CUDA(swiglu_backward<T>(d_dgate.get(), d_dup.get(), d_dh.get(), d_gate.get(), d_up.get(), n, nullptr));
  // bf16: every output is one rounding of an fp32 value computed from the same inputs.
  EXPECT_LT(relative_error(download_floats(d_h), want_h), tolerance<T>(1.0));
  EXPECT_LT(relative_error(download_floats(d_dgate), want_dgate), tolerance<T>(1.0));
  EXPECT_LT(relative_error(download_floats(d_dup), want_dup), tolerance<T>(1.0));
}

// ---- embedding ----------------------------------------------------------------------------------------

TEST(CudaEmbeddingPlan, GroupsPositionsByIdInTokenOrder) {
  // Host code only: runs without a GPU.
  const std::vector<int32_t> ids = {5, 2, 5, 0, 2, 5, 9};
  const EmbeddingBackwardPlan plan = EmbeddingBackwardPlan::of(ids.data(), static_cast<int64_t>(ids.size()));
  EXPECT_EQ(plan.sorted_tokens, (std::vector<int32_t>{3, 1, 4, 0, 2, 5, 6}));
  EXPECT_EQ(plan.segment_ids, (std::vector<int32_t>{0, 2, 5, 9}));
  EXPECT_EQ(plan.segment_starts, (std::vector<int32_t>{0, 1, 3, 6, 7}));

  const EmbeddingBackwardPlan empty = EmbeddingBackwardPlan::of(nullptr, 0);
  EXPECT_TRUE(empty.sorted_tokens.empty());
  EXPECT_TRUE(empty.segment_ids.empty());
  EXPECT_EQ(empty.segment_starts, (std::vector<int32_t>{0}));

  const std::vector<int32_t> bad = {1, -1};
  EXPECT_THROW(EmbeddingBackwardPlan::of(bad.data(), 2), Error);
}

TYPED_TEST(CudaOpsTyped, EmbeddingForwardAndBackwardMatchCpuBitForBit) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t V = 50, C = 129, N = 37;
  std::vector<int32_t> ids(N);
  for (int64_t n = 0; n < N; ++n) ids[n] = static_cast<int32_t>((n * n * 7 + 3) % 13 * 3);  // repeats, gaps
  const std::vector<float> table = rounded<T>(random_floats(V * C, 41));
  std::vector<float> want(N * C);
  cpu::embedding_forward(want.data(), ids.data(), table.data(), N, C);
  DeviceArray<int32_t> d_ids(ids);
  DeviceArray<T> d_table(to_type<T>(table));
  DeviceArray<float> d_out(N * C);
  d_out.poison();
  TESSERA_TEST_CUDA(embedding_forward<T>(d_out.get(), d_ids.get(), d_table.get(), N, C, nullptr));
  EXPECT_TRUE(same_bits(d_out.download(), want));  // a copy (bf16 → fp32 is exact)

  // The backward is fp32 whatever T is: each dtable element adds its tokens' rows in token order, as the
  // CPU does, so the result matches it bit for bit (and so also run to run).
  const std::vector<float> dout = random_floats(N * C, 42);
  const std::vector<float> dtable0 = random_floats(V * C, 43);
  std::vector<float> want_dtable = dtable0;
  cpu::embedding_backward(want_dtable.data(), dout.data(), ids.data(), N, C);
  const EmbeddingBackwardPlan plan = EmbeddingBackwardPlan::of(ids.data(), N);
  DeviceArray<int32_t> d_sorted(plan.sorted_tokens), d_starts(plan.segment_starts), d_seg_ids(plan.segment_ids);
  DeviceArray<float> d_dout(dout), d_dtable(dtable0);
  const auto segments = static_cast<int64_t>(plan.segment_ids.size());
  TESSERA_TEST_CUDA(embedding_backward(d_dtable.get(), d_dout.get(), d_sorted.get(), d_starts.get(), d_seg_ids.get(),
                                       segments, C, nullptr));
  const std::vector<float> first = d_dtable.download();
  EXPECT_TRUE(same_bits(first, want_dtable));
  EXPECT_LT(relative_error(first, want_dtable), kFloatTol);  // names the size of any difference
  d_dtable.upload(dtable0);
  TESSERA_TEST_CUDA(embedding_backward(d_dtable.get(), d_dout.get(), d_sorted.get(), d_starts.get(), d_seg_ids.get(),
                                       segments, C, nullptr));
  EXPECT_TRUE(same_bits(d_dtable.download(), first)) << "embedding backward differs between two identical runs";
}

// ---- cross entropy ------------------------------------------------------------------------------------

struct CeStats {
  std::vector<float> max, sum, target;
};

template <class T>
CeStats shard_stats(const std::vector<float>& logits, const std::vector<int32_t>& targets, int64_t N, int64_t V,
                    int64_t vocab_start) {
  DeviceArray<T> d_logits(to_type<T>(logits));
  DeviceArray<int32_t> d_targets(targets);
  DeviceArray<float> d_max(N), d_sum(N), d_target(N);
  d_max.poison();
  d_sum.poison();
  d_target.poison();
  TESSERA_TEST_CUDA(cross_entropy_stats<T>(d_max.get(), d_sum.get(), d_target.get(), d_logits.get(), d_targets.get(),
                                           N, V, vocab_start, nullptr));
  return {d_max.download(), d_sum.download(), d_target.download()};
}

std::vector<float> ce_losses(const CeStats& s, const std::vector<int32_t>& targets) {
  const auto N = static_cast<int64_t>(targets.size());
  DeviceArray<float> d_max(s.max), d_sum(s.sum), d_target(s.target), d_losses(N);
  DeviceArray<int32_t> d_targets(targets);
  d_losses.poison();
  TESSERA_TEST_CUDA(cross_entropy_loss(d_losses.get(), d_max.get(), d_sum.get(), d_target.get(), d_targets.get(), N,
                                       nullptr));
  return d_losses.download();
}

template <class T>
std::vector<float> ce_grad(const std::vector<float>& logits, const CeStats& s, const std::vector<int32_t>& targets,
                           int64_t V, int64_t vocab_start, float scale, bool in_place) {
  const auto N = static_cast<int64_t>(targets.size());
  DeviceArray<T> d_logits(to_type<T>(logits)), d_dlogits(N * V);
  DeviceArray<float> d_max(s.max), d_sum(s.sum);
  DeviceArray<int32_t> d_targets(targets);
  d_dlogits.poison();
  T* out = in_place ? d_logits.get() : d_dlogits.get();
  TESSERA_TEST_CUDA(cross_entropy_grad<T>(out, d_logits.get(), d_max.get(), d_sum.get(), d_targets.get(), N, V,
                                          vocab_start, scale, nullptr));
  return download_floats(in_place ? d_logits : d_dlogits);
}

TYPED_TEST(CudaOpsTyped, CrossEntropyMatchesCpuOnOneAndTwoShards) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t N = 23, V = 1000, split = 437;
  const std::vector<float> logits = rounded<T>(random_floats(N * V, 51, -4.0f, 4.0f));
  std::vector<int32_t> targets(N);
  int64_t counted = 0;
  for (int64_t n = 0; n < N; ++n) {
    targets[n] = n % 5 == 2 ? -100 : static_cast<int32_t>((n * 389 + 17) % V);  // some on each side of split
    counted += targets[n] >= 0;
  }
  const float scale = 1.0f / static_cast<float>(counted);
  std::vector<float> want_dlogits(N * V);
  std::vector<double> want_losses_d(N);
  cpu::cross_entropy_forward_backward(want_dlogits.data(), want_losses_d.data(), logits.data(), targets.data(), N, V,
                                      scale);
  const std::vector<float> want_losses(want_losses_d.begin(), want_losses_d.end());

  // One shard: the statistics are final. Losses are fp32 arithmetic on exactly representable inputs.
  const CeStats one = shard_stats<T>(logits, targets, N, V, 0);
  const std::vector<float> losses = ce_losses(one, targets);
  EXPECT_LT(relative_error(losses, want_losses), kFloatTol);
  for (int64_t n = 0; n < N; ++n)
    if (targets[n] < 0) {
      EXPECT_EQ(losses[n], 0.0f) << "ignored row " << n;
    }
  // bf16 dlogits: one rounding of an fp32 value computed from the same inputs.
  for (const bool in_place : {false, true}) {
    SCOPED_TRACE(in_place ? "in place" : "out of place");
    const std::vector<float> dlogits = ce_grad<T>(logits, one, targets, V, 0, scale, in_place);
    EXPECT_LT(relative_error(dlogits, want_dlogits), tolerance<T>(1.0));
    for (int64_t n = 0; n < N; ++n) {
      if (targets[n] < 0) {
        for (int64_t v = 0; v < V; ++v) ASSERT_EQ(dlogits[n * V + v], 0.0f) << "ignored row " << n << " col " << v;
      }
    }
  }

  // Two shards [0, split) and [split, V), each with its own contiguous [N, V_local] logits.
  std::vector<float> left(N * split), right(N * (V - split));
  for (int64_t n = 0; n < N; ++n) {
    std::copy_n(logits.begin() + n * V, split, left.begin() + n * split);
    std::copy_n(logits.begin() + n * V + split, V - split, right.begin() + n * (V - split));
  }
  const CeStats a = shard_stats<T>(left, targets, N, split, 0);
  const CeStats b = shard_stats<T>(right, targets, N, V - split, split);
  // What the all-reduces compute: the max, then the sums rescaled to it, then the target logits (one shard
  // holds each target, the other contributes 0).
  CeStats both{std::vector<float>(N), std::vector<float>(N), std::vector<float>(N)};
  for (int64_t n = 0; n < N; ++n) {
    const float m = std::max(a.max[n], b.max[n]);
    both.max[n] = m;
    both.sum[n] = a.sum[n] * std::exp(a.max[n] - m) + b.sum[n] * std::exp(b.max[n] - m);
    both.target[n] = a.target[n] + b.target[n];
    if (targets[n] < 0) {
      EXPECT_EQ(a.target[n], 0.0f);
      EXPECT_EQ(b.target[n], 0.0f);
    } else {
      EXPECT_EQ(targets[n] < split ? b.target[n] : a.target[n], 0.0f) << "row " << n;
    }
  }
  const std::vector<float> sharded_losses = ce_losses(both, targets);
  EXPECT_LT(relative_error(sharded_losses, losses), kFloatTol);
  EXPECT_LT(relative_error(sharded_losses, want_losses), kFloatTol);
  const std::vector<float> dleft = ce_grad<T>(left, both, targets, split, 0, scale, false);
  const std::vector<float> dright = ce_grad<T>(right, both, targets, V - split, split, scale, true);
  std::vector<float> dlogits(N * V);
  for (int64_t n = 0; n < N; ++n) {
    std::copy_n(dleft.begin() + n * split, split, dlogits.begin() + n * V);
    std::copy_n(dright.begin() + n * (V - split), V - split, dlogits.begin() + n * V + split);
  }
  EXPECT_LT(relative_error(dlogits, want_dlogits), tolerance<T>(1.0));
}

// ---- AdamW --------------------------------------------------------------------------------------------

TYPED_TEST(CudaOpsTyped, AdamWMatchesTheCpuOptimizerFormula) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t n = 1037;
  std::vector<float> p = random_floats(n, 61), m(n, 0.0f), v(n, 0.0f);
  DeviceArray<float> d_p(p), d_m(m), d_v(v), d_g(n);
  DeviceArray<T> d_compute(n);
  const double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, wd = 0.1;
  for (int step = 1; step <= 3; ++step) {
    SCOPED_TRACE(step);
    const std::vector<float> grad = random_floats(n, 70 + step);
    const float lr = 1e-3f * static_cast<float>(step), grad_scale = step == 2 ? 0.7f : 1.0f;
    AdamWArgs args;
    args.lr = lr;
    args.beta1 = static_cast<float>(beta1);
    args.beta2 = static_cast<float>(beta2);
    args.eps = static_cast<float>(eps);
    args.weight_decay = static_cast<float>(wd);
    args.bias_correction1 = static_cast<float>(1.0 - std::pow(beta1, step));
    args.bias_correction2 = static_cast<float>(1.0 - std::pow(beta2, step));
    args.grad_scale = grad_scale;
    d_g.upload(grad);
    d_compute.poison();
    TESSERA_TEST_CUDA(adamw_update<T>(d_p.get(), d_compute.get(), d_g.get(), d_m.get(), d_v.get(), n, args, nullptr));

    // train/optimizer.cpp, transcribed (clipping scales the gradients in place first).
    const double bias1 = 1.0 - std::pow(beta1, step), bias2_sqrt = std::sqrt(1.0 - std::pow(beta2, step));
    const auto step_size = static_cast<float>(static_cast<double>(lr) / bias1);
    const auto decay = static_cast<float>(1.0 - static_cast<double>(lr) * wd);
    const auto fb1 = static_cast<float>(beta1), fb2 = static_cast<float>(beta2), feps = static_cast<float>(eps);
    const auto bias2 = static_cast<float>(bias2_sqrt);
    for (int64_t i = 0; i < n; ++i) {
      const float g = grad[i] * grad_scale;
      p[i] *= decay;
      m[i] = fb1 * m[i] + (1.0f - fb1) * g;
      v[i] = fb2 * v[i] + (1.0f - fb2) * g * g;
      p[i] -= step_size * m[i] / (std::sqrt(v[i]) / bias2 + feps);
    }
    const std::vector<float> got_p = d_p.download();
    EXPECT_LT(relative_error(got_p, p), kFloatTol);
    EXPECT_LT(relative_error(d_m.download(), m), kFloatTol);
    EXPECT_LT(relative_error(d_v.download(), v), kFloatTol);
    // The compute copy is the updated master weight converted to T (exactly, for float; RNE for bf16).
    EXPECT_TRUE(same_bits(d_compute.download(), to_type<T>(got_p)));
  }
  // No compute copy: the same update of the master weights.
  const std::vector<float> grad = random_floats(n, 80);
  AdamWArgs args;
  args.lr = 1e-3f;
  DeviceArray<float> d_p2(p), d_m2(m), d_v2(v), d_p3(p), d_m3(m), d_v3(v);
  d_g.upload(grad);
  TESSERA_TEST_CUDA(adamw_update<T>(d_p2.get(), nullptr, d_g.get(), d_m2.get(), d_v2.get(), n, args, nullptr));
  TESSERA_TEST_CUDA(adamw_update<T>(d_p3.get(), d_compute.get(), d_g.get(), d_m3.get(), d_v3.get(), n, args, nullptr));
  EXPECT_TRUE(same_bits(d_p2.download(), d_p3.download()));
}

TEST(CudaOps, SumSquaresBlocksMatchesTheCpuNormBlocks) {
  TESSERA_REQUIRE_GPU();
  const auto block = static_cast<int64_t>(train::kNormBlock);
  const int64_t n = 3 * block + 123;
  const std::vector<float> x = random_floats(n, 91, -3.0f, 3.0f);
  const std::vector<double> want = train::block_square_sums(x);
  DeviceArray<float> d_x(x);
  DeviceArray<double> d_partials(want.size());
  d_partials.poison();
  TESSERA_TEST_CUDA(sum_squares_blocks(d_partials.get(), d_x.get(), n, block, nullptr));
  const std::vector<double> got = d_partials.download();
  ASSERT_EQ(got.size(), want.size());
  for (size_t b = 0; b < got.size(); ++b) EXPECT_NEAR(got[b], want[b], 1e-12 * want[b]) << "block " << b;
  // Another block size, against a direct sum; and run to run the same bits.
  const int64_t small = 1000, blocks = (n + small - 1) / small;
  DeviceArray<double> d_small(blocks);
  d_small.poison();
  TESSERA_TEST_CUDA(sum_squares_blocks(d_small.get(), d_x.get(), n, small, nullptr));
  const std::vector<double> first = d_small.download();
  for (int64_t b = 0; b < blocks; ++b) {
    double s = 0;
    for (int64_t i = b * small; i < std::min(n, (b + 1) * small); ++i) s += static_cast<double>(x[i]) * x[i];
    EXPECT_NEAR(first[b], s, 1e-12 * s) << "block " << b;
  }
  d_small.poison();
  TESSERA_TEST_CUDA(sum_squares_blocks(d_small.get(), d_x.get(), n, small, nullptr));
  EXPECT_TRUE(same_bits(d_small.download(), first));
}

// ---- convert, add, column sums ------------------------------------------------------------------------

template <class TOut, class TIn>
void check_convert(const std::vector<float>& values) {
  const std::vector<TIn> in = to_type<TIn>(values);
  const std::vector<TOut> want = to_type<TOut>(to_floats(in));  // the host's conversion is RNE too
  DeviceArray<TIn> d_in(in);
  DeviceArray<TOut> d_out(in.size());
  d_out.poison();
  TESSERA_TEST_CUDA((convert<TOut, TIn>(d_out.get(), d_in.get(), static_cast<int64_t>(in.size()), nullptr)));
  EXPECT_TRUE(same_bits(d_out.download(), want));
}

TEST(CudaOps, ConvertAllPairsExactly) {
  TESSERA_REQUIRE_GPU();
  const std::vector<float> values = random_floats(1037, 101, -100.0f, 100.0f);
  check_convert<float, float>(values);
  check_convert<bf16, float>(values);
  check_convert<float, bf16>(values);
  check_convert<bf16, bf16>(values);
}

TYPED_TEST(CudaOpsTyped, AddInplaceAndColumnSums) {
  TESSERA_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t n = 1037;
  const std::vector<float> x = random_floats(n, 111), delta = rounded<T>(random_floats(n, 112));
  std::vector<float> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = x[i] + delta[i];
  DeviceArray<float> d_x(x);
  DeviceArray<T> d_delta(to_type<T>(delta));
  TESSERA_TEST_CUDA(add_inplace<T>(d_x.get(), d_delta.get(), n, nullptr));
  EXPECT_TRUE(same_bits(d_x.download(), want));  // one float addition, as on the host

  for (const int64_t rows : {int64_t{37}, int64_t{1003}}) {  // fewer rows than lanes × 8 and an uneven split
    SCOPED_TRACE(rows);
    const int64_t cols = 129;
    const std::vector<float> in = rounded<T>(random_floats(rows * cols, 113));
    const std::vector<float> out0 = random_floats(cols, 114);
    std::vector<float> want_sums(cols);
    for (int64_t c = 0; c < cols; ++c) {
      double s = 0;
      for (int64_t r = 0; r < rows; ++r) s += in[r * cols + c];
      want_sums[c] = out0[c] + static_cast<float>(s);
    }
    DeviceArray<T> d_in(to_type<T>(in));
    DeviceArray<float> d_out(out0);
    TESSERA_TEST_CUDA(column_sums_accumulate<T>(d_out.get(), d_in.get(), rows, cols, nullptr));
    const std::vector<float> first = d_out.download();
    // fp32 accumulation of exactly representable inputs, on every path.
    EXPECT_LT(relative_error(first, want_sums), kFloatTol);
    d_out.upload(out0);
    TESSERA_TEST_CUDA(column_sums_accumulate<T>(d_out.get(), d_in.get(), rows, cols, nullptr));
    EXPECT_TRUE(same_bits(d_out.download(), first)) << "column sums differ between two identical runs";
  }
}

}  // namespace
}  // namespace tessera::cuda
