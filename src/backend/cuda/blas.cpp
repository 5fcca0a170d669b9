// cuBLASLt behind the row-major linear-layer calls of blas.hpp. A row-major [R, C] matrix is a column-major
// [C, R] one, so each call maps onto one column-major matmul without copies:
//   forward   out[N,OC]  = inp · W^T   →  D[OC,N] = op_T(W: C×OC) · inp(C×N)
//   dinp      dinp[N,C]  = dout · W    →  D[C,N]  = W(C×OC) · dout(OC×N)
//   dweight   dW[OC,C]  += dout^T·inp  →  D[C,OC] = inp(C×N) · op_T(dout: OC×N)
// Descriptors are cached per exact shape. The heuristic's choice (slow: about a hundred microseconds) is
// cached per shape BUCKET: MoE experts see a different row count every step, and a choice made for a
// nearby size is reused after cublasLtMatmulAlgoCheck confirms it supports the exact shape.

#include "tessera/backend/cuda/blas.hpp"

#include <cublasLt.h>

#include <cstdint>
#include <map>
#include <tuple>
#include <type_traits>

#include "cuda_check.hpp"
#include "tessera/backend/cuda/ops.hpp"

#define TESSERA_CUBLASLT_CHECK(call) TESSERA_CUBLAS_CHECK(call)

namespace tessera::cuda {
namespace {

template <class T>
constexpr cudaDataType_t data_type() {
  if constexpr (std::is_same_v<T, float>) return CUDA_R_32F;
  else return CUDA_R_16BF;
}

// The largest power of two (≤ 256) dividing the address: cuBLASLt assumes 256-byte aligned operands unless
// told otherwise, and our operands are often slices (one expert's rows) that are not.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && (a % align) != 0) align /= 2;
  return align;
}

// Everything that selects a cached plan.
using PlanKey = std::tuple<int, int, int64_t, int64_t, int64_t, int, int, int, int64_t, int64_t, int64_t, bool, bool,
                           uint32_t, uint32_t, uint32_t, uint32_t>;

// Rounds a dimension up to a bucket: powers of two up to 128, then multiples of 128.
int64_t bucket(int64_t x) {
  if (x <= 128) {
    int64_t b = 1;
    while (b < x) b *= 2;
    return b;
  }
  return (x + 127) / 128 * 128;
}

PlanKey bucketed(PlanKey key) {
  std::get<2>(key) = bucket(std::get<2>(key));
  std::get<3>(key) = bucket(std::get<3>(key));
  std::get<4>(key) = bucket(std::get<4>(key));
  return key;
}

// Exact-shape plans kept at most; past it the cache starts over (only descriptors are lost: the bucketed
// algorithm choices stay).
constexpr size_t kMaxPlans = 4096;

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    // Destruction cannot report failures usefully; the handles are plain host objects.
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
  }
};

}  // namespace

struct Blas::Impl {
  cudaStream_t stream = nullptr;
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  int64_t workspace_bytes = 0;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
  std::map<PlanKey, cublasLtMatmulAlgo_t> algos;  // by bucketed key

  ~Impl() {
    plans.clear();
    if (workspace) cudaFree(workspace);
    if (handle) cublasLtDestroy(handle);
  }

  // Column-major D[m,n] = op(A)·op(B) + beta·D (+ bias[m] when given), fp32 accumulation.
  void matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* A, cudaDataType_t type_a,
              int64_t lda, const void* B, cudaDataType_t type_b, int64_t ldb, void* D, cudaDataType_t type_d,
              int64_t ldd, float beta, const void* bias) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
      // An empty sum: D = beta·D. Only beta ∈ {0, 1} occurs here.
      TESSERA_CHECK(beta == 1.0f || beta == 0.0f, "unexpected beta {} for an empty GEMM", beta);
      if (beta == 0.0f) {
        const size_t elem = type_d == CUDA_R_32F ? 4 : 2;
        TESSERA_CUDA_CHECK(cudaMemset2DAsync(D, static_cast<size_t>(ldd) * elem, 0, static_cast<size_t>(m) * elem,
                                             static_cast<size_t>(n), stream));
      }
      return;
    }
    const PlanKey key{static_cast<int>(trans_a), static_cast<int>(trans_b), m, n, k, static_cast<int>(type_a),
                      static_cast<int>(type_b), static_cast<int>(type_d), lda, ldb, ldd, beta != 0.0f,
                      bias != nullptr, alignment_of(A), alignment_of(B), alignment_of(D),
                      bias ? alignment_of(bias) : 0u};
    auto it = plans.find(key);
    if (it == plans.end() && plans.size() >= kMaxPlans) plans.clear();
    if (it == plans.end()) it = plans.emplace(key, make_plan(key, trans_a, trans_b, m, n, k, type_a, lda, type_b,
                                                             ldb, type_d, ldd, beta, bias != nullptr))
                                .first;
    Plan& p = *it->second;
    if (bias)
      TESSERA_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    const float alpha = 1.0f;
    TESSERA_CUBLASLT_CHECK(cublasLtMatmul(handle, p.desc, &alpha, A, p.a, B, p.b, &beta, D, p.d, D, p.d, &p.algo,
                                          workspace, static_cast<size_t>(workspace_bytes), stream));
  }

  std::unique_ptr<Plan> make_plan(const PlanKey& key, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                  cudaDataType_t type_a, int64_t lda, cudaDataType_t type_b, int64_t ldb,
                                  cudaDataType_t type_d, int64_t ldd, float beta, bool with_bias) {
    auto p = std::make_unique<Plan>();
    // CUBLAS_COMPUTE_32F without the _FAST_TF32 variant: true fp32 products for the fp32 path.
    TESSERA_CUBLASLT_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    TESSERA_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
    TESSERA_CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
    if (with_bias) {
      const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
      TESSERA_CUBLASLT_CHECK(
          cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
    }
    TESSERA_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&p->a, type_a, trans_a ? k : m, trans_a ? m : k, lda));
    TESSERA_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&p->b, type_b, trans_b ? n : k, trans_b ? k : n, ldb));
    TESSERA_CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&p->d, type_d, m, n, ldd));

    const PlanKey bucket_key = bucketed(key);
    if (const auto known = algos.find(bucket_key); known != algos.end()) {
      cublasLtMatmulHeuristicResult_t check{};
      if (cublasLtMatmulAlgoCheck(handle, p->desc, p->a, p->b, p->d, p->d, &known->second, &check) ==
              CUBLAS_STATUS_SUCCESS &&
          check.workspaceSize <= static_cast<size_t>(workspace_bytes)) {
        p->algo = known->second;
        return p;
      }
    }
    cublasLtMatmulPreference_t pref = nullptr;
    TESSERA_CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = static_cast<uint64_t>(workspace_bytes);
    const uint32_t align_a = std::get<13>(key), align_b = std::get<14>(key), align_d = std::get<15>(key);
    cublasLtMatmulHeuristicResult_t result{};
    int returned = 0;
    const cublasStatus_t status = [&] {
      cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a));
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b));
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof(align_d));
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof(align_d));
      if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatmulAlgoGetHeuristic(handle, p->desc, p->a, p->b, p->d, p->d, pref, 1, &result, &returned);
      return s;
    }();
    cublasLtMatmulPreferenceDestroy(pref);
    TESSERA_CUBLASLT_CHECK(status);
    TESSERA_CHECK(returned > 0, "cuBLASLt has no algorithm for m={} n={} k={} (types {}/{}/{}, beta {})", m, n, k,
                  static_cast<int>(type_a), static_cast<int>(type_b), static_cast<int>(type_d), beta);
    p->algo = result.algo;
    algos[bucket_key] = result.algo;
    return p;
  }
};

Blas::Blas(cudaStream_t stream, int64_t workspace_bytes) : impl_(std::make_unique<Impl>()) {
  impl_->stream = stream;
  impl_->workspace_bytes = workspace_bytes;
  TESSERA_CUBLASLT_CHECK(cublasLtCreate(&impl_->handle));
  TESSERA_CUDA_CHECK(cudaMalloc(&impl_->workspace, static_cast<size_t>(workspace_bytes)));
}
Blas::~Blas() = default;

cudaStream_t Blas::stream() const { return impl_->stream; }

template <class T, class TOut>
void Blas::linear_forward(TOut* out, const T* inp, const T* weight, const T* bias, int64_t N, int64_t C, int64_t OC) {
  TESSERA_CHECK(bias == nullptr || (std::is_same_v<T, TOut>), "a bias needs the output in the input's type");
  impl_->matmul(true, false, OC, N, C, weight, data_type<T>(), C, inp, data_type<T>(), C, out, data_type<TOut>(), OC,
                0.0f, bias);
}

template <class T>
void Blas::linear_backward(T* dinp, bool accumulate, float* dweight, float* dbias, const T* dout, const T* inp,
                           const T* weight, int64_t N, int64_t C, int64_t OC) {
  if (dinp)
    impl_->matmul(false, false, C, N, OC, weight, data_type<T>(), C, dout, data_type<T>(), OC, dinp, data_type<T>(), C,
                  accumulate ? 1.0f : 0.0f, nullptr);
  if (dweight)
    impl_->matmul(false, true, C, OC, N, inp, data_type<T>(), C, dout, data_type<T>(), OC, dweight, CUDA_R_32F, C, 1.0f,
                  nullptr);
  if (dbias && N > 0) TESSERA_CUDA_CHECK(column_sums_accumulate<T>(dbias, dout, N, OC, impl_->stream));
}

void Blas::gemm_nt(__nv_bfloat16* c, const __nv_bfloat16* a, const __nv_bfloat16* b, int64_t M, int64_t N, int64_t K) {
  linear_forward<__nv_bfloat16, __nv_bfloat16>(c, a, b, nullptr, M, K, N);
}

template void Blas::linear_forward<float, float>(float*, const float*, const float*, const float*, int64_t, int64_t, int64_t);
template void Blas::linear_forward<bf16, bf16>(bf16*, const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t);
template void Blas::linear_forward<bf16, float>(float*, const bf16*, const bf16*, const bf16*, int64_t, int64_t, int64_t);
template void Blas::linear_backward<float>(float*, bool, float*, float*, const float*, const float*, const float*,
                                           int64_t, int64_t, int64_t);
template void Blas::linear_backward<bf16>(bf16*, bool, float*, float*, const bf16*, const bf16*, const bf16*, int64_t,
                                          int64_t, int64_t);

}  // namespace tessera::cuda
