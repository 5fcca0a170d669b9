// The GPU MoE block (backend/cuda/moe.hpp) against the CPU fp32 reference (model/moe_block.cpp): routing,
// the routing plan, the load-balancing statistics, the block output, d_ln and every parameter gradient;
// plus bit-identical reruns of the backward.
#include <algorithm>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include <cuda_runtime.h>  // before the support header: DeviceArray needs the typed cudaMalloc template

#include "../../src/model/decoder_layer.hpp"
#include "cuda_test_support.hpp"
#include "tessera/backend/cuda/blas.hpp"
#include "tessera/backend/cuda/moe.hpp"

namespace tessera::cuda {
namespace {

using namespace ::tessera::cuda::test;

struct Problem {
  int64_t E = 8, K = 2, H = 64, Fm = 32, N = 37;
  bool normalize = true;
  std::vector<float> router, ln, d_out;                  // [E,H], [N,H], [N,H]
  std::vector<std::vector<float>> gate, up, down;        // per expert [Fm,H], [Fm,H], [H,Fm]
  std::vector<double> aux_grad;                          // [E]
  double z_coef = 0;
};

// Router probabilities of one token in double, sorted descending.
std::vector<double> sorted_probs(const Problem& p, int64_t t) {
  std::vector<double> logits(static_cast<size_t>(p.E));
  for (int64_t e = 0; e < p.E; ++e) {
    double z = 0;
    for (int64_t h = 0; h < p.H; ++h) z += static_cast<double>(p.ln[t * p.H + h]) * p.router[e * p.H + h];
    logits[e] = z;
  }
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (auto& z : logits) sum += (z = std::exp(z - max));
  for (auto& z : logits) z /= sum;
  std::sort(logits.begin(), logits.end(), std::greater<>());
  return logits;
}

// Random weights and inputs, every value representable in T (so the CPU reference sees exactly what the
// GPU sees). Tokens whose top-(K+1) router probabilities are closer than `margin` anywhere (so that the
// choice or the order of the top k could flip on rounding noise) are redrawn: top-k choices can then be
// required to match exactly, and every other comparison covers all tokens.
template <class T>
Problem make_problem(int64_t N, bool normalize, uint64_t seed) {
  Problem p;
  p.N = N;
  p.normalize = normalize;
  const auto H = static_cast<size_t>(p.H), Fm = static_cast<size_t>(p.Fm), E = static_cast<size_t>(p.E);
  const auto scaled = [](std::vector<float> x, float s) {
    for (auto& v : x) v *= s;
    return rounded<T>(x);
  };
  // Uniform [-1,1) has variance 1/3: these scales keep logits, activations and outputs of order one.
  p.router = scaled(random_floats(E * H, seed + 1), 3.0f / std::sqrt(static_cast<float>(p.H)));
  for (size_t e = 0; e < E; ++e) {
    p.gate.push_back(scaled(random_floats(Fm * H, seed + 100 + e), 1.7f / std::sqrt(static_cast<float>(p.H))));
    p.up.push_back(scaled(random_floats(Fm * H, seed + 200 + e), 1.7f / std::sqrt(static_cast<float>(p.H))));
    p.down.push_back(scaled(random_floats(H * Fm, seed + 300 + e), 1.7f / std::sqrt(static_cast<float>(p.Fm))));
  }
  p.ln = rounded<T>(random_floats(static_cast<size_t>(N) * H, seed + 2));
  p.d_out = rounded<T>(random_floats(static_cast<size_t>(N) * H, seed + 3));
  for (size_t e = 0; e < E; ++e) p.aux_grad.push_back(0.01 * static_cast<double>(e + 1) - 0.03);
  p.z_coef = 0.02;

  const double margin = 1e-3;
  for (int64_t t = 0; t < N; ++t) {
    for (uint64_t attempt = 0;; ++attempt) {
      const std::vector<double> s = sorted_probs(p, t);
      double gap = 1;
      for (int64_t k = 0; k < p.K; ++k) gap = std::min(gap, s[k] - s[k + 1]);
      if (gap > margin) break;
      EXPECT_LT(attempt, 1000u) << "no well-separated router input for token " << t;
      if (attempt >= 1000) break;
      const std::vector<float> row = rounded<T>(random_floats(H, seed * 7919 + static_cast<uint64_t>(t) * 1000 + attempt));
      std::copy(row.begin(), row.end(), p.ln.begin() + t * p.H);
    }
  }
  return p;
}

// Everything the block computes, as floats (plan arrays as int32).
struct Result {
  std::vector<float> out, probs, lse, topk_weight, d_ln, g_router, g_gate, g_up, g_down;  // expert grads concatenated
  std::vector<int32_t> topk_expert, offsets, assign_token, slot_assignment;
  std::vector<double> selections, prob_sums;
  double z = 0;
};

Result run_cpu(Problem p) {
  namespace cpu = ::tessera::model::detail;
  cpu::Dims d;
  d.H = p.H;
  d.E = p.E;
  d.El = p.E;  // one rank holds every expert
  d.K = p.K;
  d.Fm = p.Fm;
  d.moe = true;
  d.norm_topk = p.normalize;
  const int64_t N = p.N, E = p.E, K = p.K;
  cpu::LayerActivations a;
  a.allocate(d, N, 0, false);
  cpu::LayerScratch s;
  s.allocate(d, N, 0);
  std::copy(p.ln.begin(), p.ln.end(), a.ln2.begin());

  std::vector<float> g_router(p.router.size(), 0.0f);
  std::vector<std::vector<float>> g_gate, g_up, g_down;
  cpu::LayerTensors w, g;
  w.router = p.router.data();
  g.router = g_router.data();
  for (int64_t e = 0; e < E; ++e) {
    g_gate.emplace_back(p.gate[e].size(), 0.0f);
    g_up.emplace_back(p.up[e].size(), 0.0f);
    g_down.emplace_back(p.down[e].size(), 0.0f);
  }
  for (int64_t e = 0; e < E; ++e) {
    w.expert_gate.push_back(p.gate[e].data());
    w.expert_up.push_back(p.up[e].data());
    w.expert_down.push_back(p.down[e].data());
    g.expert_gate.push_back(g_gate[e].data());
    g.expert_up.push_back(g_up[e].data());
    g.expert_down.push_back(g_down[e].data());
  }

  Result r;
  r.out.assign(static_cast<size_t>(N * p.H), 0.0f);
  cpu::moe_forward(d, w, a, s, r.out.data(), N);
  // decoder.cpp's per-layer statistics.
  r.selections.assign(static_cast<size_t>(E), 0.0);
  r.prob_sums.assign(static_cast<size_t>(E), 0.0);
  for (int64_t t = 0; t < N; ++t) {
    for (int64_t k = 0; k < K; ++k) r.selections[a.topk_expert[t * K + k]] += 1;
    for (int64_t e = 0; e < E; ++e) r.prob_sums[e] += a.router_probs[t * E + e];
    r.z += static_cast<double>(a.router_lse[t]) * a.router_lse[t] / static_cast<double>(N);
  }
  std::fill(s.d_ln.begin(), s.d_ln.end(), 0.0f);  // as mlp_backward does
  cpu::moe_backward(d, w, g, a, s, p.d_out.data(), N, p.aux_grad, p.z_coef);

  r.probs.assign(a.router_probs.begin(), a.router_probs.begin() + N * E);
  r.lse.assign(a.router_lse.begin(), a.router_lse.begin() + N);
  r.topk_weight.assign(a.topk_weight.begin(), a.topk_weight.begin() + N * K);
  r.topk_expert.assign(a.topk_expert.begin(), a.topk_expert.begin() + N * K);
  r.offsets = a.expert_offsets;
  r.assign_token.assign(a.assign_token.begin(), a.assign_token.begin() + N * K);
  r.slot_assignment.assign(a.slot_assignment.begin(), a.slot_assignment.begin() + N * K);
  r.d_ln.assign(s.d_ln.begin(), s.d_ln.begin() + N * p.H);
  r.g_router = g_router;
  for (int64_t e = 0; e < E; ++e) {
    r.g_gate.insert(r.g_gate.end(), g_gate[e].begin(), g_gate[e].end());
    r.g_up.insert(r.g_up.end(), g_up[e].begin(), g_up[e].end());
    r.g_down.insert(r.g_down.end(), g_down[e].begin(), g_down[e].end());
  }
  return r;
}

template <class U>
std::vector<U> download_raw(const U* device, size_t n) {
  std::vector<U> host(n);
  TESSERA_TEST_CUDA(cudaDeviceSynchronize());
  TESSERA_TEST_CUDA(cudaMemcpy(host.data(), device, n * sizeof(U), cudaMemcpyDeviceToHost));
  return host;
}
template <class U>
std::vector<float> download_floats(const U* device, size_t n) { return to_floats(download_raw(device, n)); }

class Stream {
 public:
  Stream() { TESSERA_TEST_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// The GPU block in T. The state is sized for more tokens than used. After the first backward the
// gradients are zeroed, d_ln poisoned and the backward repeated: `second` holds that run's d_ln and grads.
template <class T>
Result run_gpu(const Problem& p, Result* second = nullptr) {
  const int64_t N = p.N, E = p.E, K = p.K, H = p.H;
  Stream stream;
  Blas blas(stream.get());
  MoeDims dims;
  dims.H = p.H;
  dims.E = p.E;
  dims.K = p.K;
  dims.Fm = p.Fm;
  dims.normalize_topk = p.normalize;

  DeviceArray<T> router(to_type<T>(p.router)), ln(to_type<T>(p.ln)), d_out(to_type<T>(p.d_out));
  DeviceArray<float> g_router(std::vector<float>(p.router.size(), 0.0f));
  std::vector<std::unique_ptr<DeviceArray<T>>> gate, up, down;
  std::vector<std::unique_ptr<DeviceArray<float>>> g_gate, g_up, g_down;
  MoeWeights<T> w;
  MoeGrads g;
  w.router = router.get();
  g.router = g_router.get();
  for (int64_t e = 0; e < E; ++e) {
    gate.push_back(std::make_unique<DeviceArray<T>>(to_type<T>(p.gate[e])));
    up.push_back(std::make_unique<DeviceArray<T>>(to_type<T>(p.up[e])));
    down.push_back(std::make_unique<DeviceArray<T>>(to_type<T>(p.down[e])));
    g_gate.push_back(std::make_unique<DeviceArray<float>>(std::vector<float>(p.gate[e].size(), 0.0f)));
    g_up.push_back(std::make_unique<DeviceArray<float>>(std::vector<float>(p.up[e].size(), 0.0f)));
    g_down.push_back(std::make_unique<DeviceArray<float>>(std::vector<float>(p.down[e].size(), 0.0f)));
    w.gate.push_back(gate.back()->get());
    w.up.push_back(up.back()->get());
    w.down.push_back(down.back()->get());
    g.gate.push_back(g_gate.back()->get());
    g.up.push_back(g_up.back()->get());
    g.down.push_back(g_down.back()->get());
  }

  MoeState<T> state;
  state.allocate(dims, N + 11);
  MoeScratch<T> scratch;
  scratch.allocate(dims, N + 11);
  DeviceArray<T> out(static_cast<size_t>(N * H)), d_ln(static_cast<size_t>(N * H));
  out.poison();
  d_ln.poison();

  Result r;
  r.selections.assign(static_cast<size_t>(E), 0.0);
  r.prob_sums.assign(static_cast<size_t>(E), 0.0);
  r.z = moe_forward<T>(blas, w, state, out.get(), ln.get(), N, r.selections, r.prob_sums);
  moe_backward<T>(blas, w, g, state, scratch, d_ln.get(), d_out.get(), ln.get(), p.aux_grad, p.z_coef);

  r.out = to_floats(out.download());
  r.probs = download_floats(state.probs, static_cast<size_t>(N * E));
  r.lse = download_floats(state.lse, static_cast<size_t>(N));
  r.topk_weight = download_floats(state.topk_weight, static_cast<size_t>(N * K));
  r.topk_expert = download_raw(state.topk_expert, static_cast<size_t>(N * K));
  r.offsets = state.host_offsets;
  r.assign_token.assign(state.host_assign_token.begin(), state.host_assign_token.begin() + N * K);
  r.slot_assignment.assign(state.host_slot_assignment.begin(), state.host_slot_assignment.begin() + N * K);
  const auto grads = [&](Result& into) {
    into.d_ln = to_floats(d_ln.download());
    into.g_router = g_router.download();
    for (int64_t e = 0; e < E; ++e) {
      const auto a = g_gate[e]->download(), b = g_up[e]->download(), c = g_down[e]->download();
      into.g_gate.insert(into.g_gate.end(), a.begin(), a.end());
      into.g_up.insert(into.g_up.end(), b.begin(), b.end());
      into.g_down.insert(into.g_down.end(), c.begin(), c.end());
    }
  };
  grads(r);
  // The device-side plan must be the host plan that was uploaded.
  EXPECT_EQ(download_raw(state.assign_token, static_cast<size_t>(N * K)), r.assign_token);
  EXPECT_EQ(download_raw(state.slot_assignment, static_cast<size_t>(N * K)), r.slot_assignment);

  if (second != nullptr) {
    TESSERA_TEST_CUDA(cudaMemset(g_router.get(), 0, g_router.size() * sizeof(float)));
    for (int64_t e = 0; e < E; ++e) {
      TESSERA_TEST_CUDA(cudaMemset(g_gate[e]->get(), 0, g_gate[e]->size() * sizeof(float)));
      TESSERA_TEST_CUDA(cudaMemset(g_up[e]->get(), 0, g_up[e]->size() * sizeof(float)));
      TESSERA_TEST_CUDA(cudaMemset(g_down[e]->get(), 0, g_down[e]->size() * sizeof(float)));
    }
    d_ln.poison();
    moe_backward<T>(blas, w, g, state, scratch, d_ln.get(), d_out.get(), ln.get(), p.aux_grad, p.z_coef);
    grads(*second);
  }
  TESSERA_TEST_CUDA(cudaDeviceSynchronize());
  return r;
}

// Tolerances (‖got − want‖ / ‖want‖) for one comparison.
struct Tolerances {
  double router, out, d_ln, expert_grads, router_grad, prob_sums, z;
};

void expect_matches(const Result& gpu, const Result& cpu, const Tolerances& tol) {
  // Routing and the plan: exact (the inputs keep every top-k margin far above the rounding noise).
  EXPECT_EQ(gpu.topk_expert, cpu.topk_expert);
  EXPECT_EQ(gpu.offsets, cpu.offsets);
  EXPECT_EQ(gpu.assign_token, cpu.assign_token);
  EXPECT_EQ(gpu.slot_assignment, cpu.slot_assignment);
  EXPECT_EQ(gpu.selections, cpu.selections);
  EXPECT_LT(relative_error(gpu.probs, cpu.probs), tol.router);
  EXPECT_LT(relative_error(gpu.lse, cpu.lse), tol.router);
  EXPECT_LT(relative_error(gpu.topk_weight, cpu.topk_weight), tol.router);
  for (size_t e = 0; e < cpu.prob_sums.size(); ++e)
    EXPECT_NEAR(gpu.prob_sums[e], cpu.prob_sums[e], tol.prob_sums * std::abs(cpu.prob_sums[e])) << "expert " << e;
  EXPECT_NEAR(gpu.z, cpu.z, tol.z * std::abs(cpu.z));

  EXPECT_LT(relative_error(gpu.out, cpu.out), tol.out);
  EXPECT_LT(relative_error(gpu.d_ln, cpu.d_ln), tol.d_ln);
  EXPECT_LT(relative_error(gpu.g_router, cpu.g_router), tol.router_grad);
  EXPECT_LT(relative_error(gpu.g_gate, cpu.g_gate), tol.expert_grads);
  EXPECT_LT(relative_error(gpu.g_up, cpu.g_up), tol.expert_grads);
  EXPECT_LT(relative_error(gpu.g_down, cpu.g_down), tol.expert_grads);
}

// fp32: the same arithmetic as the CPU up to GEMM summation order and libm ulps.
constexpr Tolerances kFloat{1e-5, 1e-5, 1e-5, 1e-5, 1e-5, 1e-6, 1e-6};

// bf16: the CPU runs in fp32 on the same bf16-representable weights and inputs, so the differences are
// the GPU's bf16 roundings of intermediates, each ≤ kBf16Eps relative; a tolerance is the count of
// roundings on the path (with inherited ones), plus two for the propagation through the GEMMs and SwiGLU:
//  - router logits are an fp32-accumulated GEMM of identical operands (TOut = float): nothing is rounded to
//    bf16 before the softmax, so probabilities, lse, weights and the statistics stay at fp32 level (1e-5);
//  - out: ge/ue (1), he (1), ye (1), out (1) → 4 + 2;
//  - expert grads: d_ye (1), d_he (1), d_ge/d_ue (1), plus the forward's ge/ue/he (3) → 6 + 2;
//  - router grad: d_topk inherits ye (3), d_logits → bf16 (1) → 4 + 2;
//  - d_ln: the expert-grad path (6), d_xe's two accumulating GEMMs (1), the sum to tokens (1), the
//    router accumulate (1) → 9 + 2.
constexpr Tolerances kBf16{1e-5, 6 * kBf16Eps, 11 * kBf16Eps, 8 * kBf16Eps, 6 * kBf16Eps, 1e-5, 1e-5};

TEST(MoeGpu, Fp32MatchesCpu) {
  TESSERA_REQUIRE_GPU();
  const Problem p = make_problem<float>(37, true, 11);
  expect_matches(run_gpu<float>(p), run_cpu(p), kFloat);
}

TEST(MoeGpu, Fp32MatchesCpuWithoutRenormalisation) {
  TESSERA_REQUIRE_GPU();
  const Problem p = make_problem<float>(37, false, 23);
  expect_matches(run_gpu<float>(p), run_cpu(p), kFloat);
}

TEST(MoeGpu, Fp32MatchesCpuWithEmptyExperts) {
  TESSERA_REQUIRE_GPU();
  const Problem p = make_problem<float>(3, true, 37);  // 6 picks of 8 experts: at least two get no rows
  const Result cpu = run_cpu(p);
  int empty = 0;
  for (int64_t e = 0; e < p.E; ++e) empty += cpu.offsets[e + 1] == cpu.offsets[e];
  EXPECT_GE(empty, 2);
  expect_matches(run_gpu<float>(p), cpu, kFloat);
}

TEST(MoeGpu, Bf16MatchesCpu) {
  TESSERA_REQUIRE_GPU();
  const Problem p = make_problem<__nv_bfloat16>(37, true, 41);
  expect_matches(run_gpu<__nv_bfloat16>(p), run_cpu(p), kBf16);
}

TEST(MoeGpu, Bf16MatchesCpuWithoutRenormalisation) {
  TESSERA_REQUIRE_GPU();
  const Problem p = make_problem<__nv_bfloat16>(37, false, 53);
  expect_matches(run_gpu<__nv_bfloat16>(p), run_cpu(p), kBf16);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

template <class T>
void expect_deterministic(const Problem& p) {
  Result again;
  const Result first = run_gpu<T>(p, &again);
  EXPECT_TRUE(same_bits(first.d_ln, again.d_ln));
  EXPECT_TRUE(same_bits(first.g_router, again.g_router));
  EXPECT_TRUE(same_bits(first.g_gate, again.g_gate));
  EXPECT_TRUE(same_bits(first.g_up, again.g_up));
  EXPECT_TRUE(same_bits(first.g_down, again.g_down));
  // A second forward and backward from scratch gives the same bits too.
  const Result other = run_gpu<T>(p);
  EXPECT_TRUE(same_bits(first.out, other.out));
  EXPECT_TRUE(same_bits(first.probs, other.probs));
  EXPECT_TRUE(same_bits(first.d_ln, other.d_ln));
  EXPECT_TRUE(same_bits(first.g_router, other.g_router));
  EXPECT_TRUE(same_bits(first.g_gate, other.g_gate));
  EXPECT_EQ(first.prob_sums, other.prob_sums);
  EXPECT_EQ(first.z, other.z);
}

TEST(MoeGpu, BackwardIsBitIdenticalAcrossRuns) {
  TESSERA_REQUIRE_GPU();
  expect_deterministic<float>(make_problem<float>(37, true, 61));
  expect_deterministic<__nv_bfloat16>(make_problem<__nv_bfloat16>(37, true, 67));
}

}  // namespace
}  // namespace tessera::cuda
