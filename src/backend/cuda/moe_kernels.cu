// Kernels and their launchers only (see moe_kernels.cuh); host-side checking stays in moe_block.cpp.
// Each kernel transcribes the CPU reference, model/moe_block.cpp: where the CPU sums sequentially into an
// fp32 result the kernel sums in the same order; where the CPU accumulates in double the kernel does too
// (in a fixed-order tree, which changes the double result by far less than one float ulp). The _rn
// intrinsics keep nvcc from fusing a multiply and an add the CPU rounds separately.
#include <algorithm>

#include "moe_kernels.cuh"

namespace tessera::cuda::moe {
namespace {

constexpr int kRouterThreads = 128;
constexpr int kRowThreads = 256;  // power of two: the tree reductions below halve it

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __nv_bfloat16* p, int64_t i) { return __bfloat162float(p[i]); }
template <class T>
__device__ __forceinline__ T store_as(float x) {
  if constexpr (sizeof(T) == sizeof(float)) return x; else return __float2bfloat16_rn(x);
}

// One thread per token; E and K are small, and every loop is the CPU's loop.
__global__ void router_forward_kernel(float* probs, float* lse, int32_t* topk_expert, float* topk_weight,
                                      const float* logits, int64_t N, int64_t E, int64_t K, bool normalize) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= N) return;
  const float* z = logits + t * E;
  float* p = probs + t * E;
  // logsumexp: float max (std::max_element keeps the first maximum; the value is what matters), fp64 sum.
  float max = z[0];
  for (int64_t e = 1; e < E; ++e)
    if (z[e] > max) max = z[e];
  double sum = 0;
  for (int64_t e = 0; e < E; ++e) sum += exp(static_cast<double>(z[e] - max));
  lse[t] = max + static_cast<float>(log(sum));

  // cpu::softmax_rows: max from -inf with std::max, fp32 sequential sum, multiply by the reciprocal.
  float smax = -INFINITY;
  for (int64_t e = 0; e < E; ++e) smax = fmaxf(smax, z[e]);
  float ssum = 0;
  for (int64_t e = 0; e < E; ++e) {
    const float v = expf(z[e] - smax);
    p[e] = v;
    ssum = __fadd_rn(ssum, v);
  }
  const float inv = 1.0f / ssum;
  for (int64_t e = 0; e < E; ++e) p[e] = __fmul_rn(p[e], inv);

  // Top-k, largest first; a later expert must be strictly larger to win (ties to the lower index).
  int32_t* chosen = topk_expert + t * K;
  float* weight = topk_weight + t * K;
  for (int64_t k = 0; k < K; ++k) {
    int32_t best = -1;
    for (int32_t e = 0; e < static_cast<int32_t>(E); ++e) {
      bool taken = false;
      for (int64_t j = 0; j < k; ++j) taken = taken || chosen[j] == e;
      if (taken) continue;
      if (best < 0 || p[e] > p[best]) best = e;
    }
    chosen[k] = best;
    weight[k] = p[best];
  }
  if (normalize) {
    float wsum = 0;
    for (int64_t k = 0; k < K; ++k) wsum = __fadd_rn(wsum, weight[k]);
    for (int64_t k = 0; k < K; ++k) weight[k] = weight[k] / wsum;
  }
}

// Fixed-order tree over kRowThreads doubles in shared memory; thread 0 returns the total.
__device__ double block_sum(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kRowThreads / 2; stride > 0; stride /= 2) {
    if (static_cast<int>(threadIdx.x) < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();  // shared is reused by the caller's next reduction
  return total;
}

// Blocks 0..E-1: column sums of probs; block E: Σ lse² / N.
__global__ void routing_stats_kernel(double* stats, const float* probs, const float* lse, int64_t N, int64_t E) {
  __shared__ double shared[kRowThreads];
  const int64_t e = blockIdx.x;
  double partial = 0;
  if (e < E) {
    for (int64_t t = threadIdx.x; t < N; t += kRowThreads) partial += static_cast<double>(probs[t * E + e]);
  } else {
    const double n = static_cast<double>(N);
    for (int64_t t = threadIdx.x; t < N; t += kRowThreads)
      partial += static_cast<double>(lse[t]) * lse[t] / n;  // exact product, then the CPU's division
  }
  const double total = block_sum(partial, shared);
  if (threadIdx.x == 0) stats[e] = total;
}

template <class T>
__global__ void gather_rows_kernel(T* xe, const T* ln, const int32_t* assign_token, int64_t rows, int64_t H) {
  const int64_t n = rows * H;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / H, h = i - row * H;
    xe[i] = ln[static_cast<int64_t>(assign_token[row]) * H + h];
  }
}

// The token's slots ordered by assignment row. Rows are grouped by ascending expert and a token has at
// most one row per expert, so ascending rows are ascending experts: the CPU's summation order.
// Fills rows[K] (and the matching weights when `weights` is given) in shared memory.
__device__ void sorted_slots(int32_t* rows, float* weights, const int32_t* slot_assignment, const float* topk_weight,
                             int64_t t, int64_t K) {
  if (threadIdx.x == 0) {
    for (int64_t k = 0; k < K; ++k) {
      const int32_t row = slot_assignment[t * K + k];
      const float w = weights != nullptr ? topk_weight[t * K + k] : 0.0f;
      int64_t j = k;
      for (; j > 0 && rows[j - 1] > row; --j) {
        rows[j] = rows[j - 1];
        if (weights != nullptr) weights[j] = weights[j - 1];
      }
      rows[j] = row;
      if (weights != nullptr) weights[j] = w;
    }
  }
  __syncthreads();
}

// One block per token. Dynamic shared memory: K int32 rows then K float weights.
template <class T>
__global__ void combine_kernel(T* out, const T* ye, const float* topk_weight, const int32_t* slot_assignment,
                               int64_t K, int64_t H) {
  extern __shared__ int32_t smem[];
  int32_t* rows = smem;
  float* weights = reinterpret_cast<float*>(smem + K);
  const int64_t t = blockIdx.x;
  sorted_slots(rows, weights, slot_assignment, topk_weight, t, K);
  for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < K; ++j) acc = __fadd_rn(acc, __fmul_rn(weights[j], load(ye, rows[j] * H + h)));
    out[t * H + h] = store_as<T>(acc);
  }
}

// One block per token, its slots in slot order k (as the CPU).
template <class T>
__global__ void output_backward_kernel(T* d_ye, float* d_topk_weight, const T* d_out, const T* ye,
                                       const float* topk_weight, const int32_t* slot_assignment, int64_t K,
                                       int64_t H) {
  __shared__ double shared[kRowThreads];
  const int64_t t = blockIdx.x;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t row = slot_assignment[t * K + k];
    const float weight = topk_weight[t * K + k];
    double dot = 0;
    for (int64_t h = threadIdx.x; h < H; h += kRowThreads) {
      const float g = load(d_out, t * H + h);
      d_ye[row * H + h] = store_as<T>(__fmul_rn(weight, g));
      dot += static_cast<double>(g) * load(ye, row * H + h);  // the product is exact in double
    }
    const double total = block_sum(dot, shared);
    if (threadIdx.x == 0) d_topk_weight[t * K + k] = static_cast<float>(total);
  }
}

// One block per token. Dynamic shared memory: K int32 rows.
template <class T>
__global__ void scatter_back_kernel(T* d_ln, const T* d_xe, const int32_t* slot_assignment, int64_t K, int64_t H) {
  extern __shared__ int32_t rows[];
  const int64_t t = blockIdx.x;
  sorted_slots(rows, nullptr, slot_assignment, nullptr, t, K);
  for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
    float acc = 0.0f;
    for (int64_t j = 0; j < K; ++j) acc = __fadd_rn(acc, load(d_xe, rows[j] * H + h));
    d_ln[t * H + h] = store_as<T>(acc);
  }
}

struct AuxByValue {
  float v[kMaxAuxByValue];
};

// One thread per token: the CPU's loop, d(probabilities) built in place in d_logits then turned into
// d(logits).
__global__ void router_backward_kernel(float* d_logits, const float* probs, const float* lse, const float* topk_weight,
                                       const int32_t* topk_expert, const float* d_topk_weight, const AuxByValue aux,
                                       const float* aux_device, double z_coef, int64_t N, int64_t E, int64_t K,
                                       bool normalize) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= N) return;
  const float* p = probs + t * E;
  const float* dw = d_topk_weight + t * K;
  const float* weight = topk_weight + t * K;
  const int32_t* chosen = topk_expert + t * K;
  float* dp = d_logits + t * E;
  for (int64_t e = 0; e < E; ++e) dp[e] = E <= kMaxAuxByValue ? aux.v[e] : aux_device[e];
  if (normalize) {
    // w_k = p_k / S with S = Σ_j p_j over the chosen: dp_k = (dw_k − Σ_j dw_j w_j) / S.
    double sum_p = 0, dot = 0;
    for (int64_t k = 0; k < K; ++k) {
      sum_p = __dadd_rn(sum_p, static_cast<double>(p[chosen[k]]));
      dot = __dadd_rn(dot, __dmul_rn(static_cast<double>(dw[k]), static_cast<double>(weight[k])));
    }
    for (int64_t k = 0; k < K; ++k)
      dp[chosen[k]] = __fadd_rn(dp[chosen[k]], static_cast<float>(__dsub_rn(static_cast<double>(dw[k]), dot) / sum_p));
  } else {
    for (int64_t k = 0; k < K; ++k) dp[chosen[k]] = __fadd_rn(dp[chosen[k]], dw[k]);
  }
  double mean = 0;
  for (int64_t e = 0; e < E; ++e) mean = __dadd_rn(mean, __dmul_rn(static_cast<double>(p[e]), static_cast<double>(dp[e])));
  const double z = __dmul_rn(z_coef, static_cast<double>(lse[t]));
  for (int64_t e = 0; e < E; ++e) {
    const double pe = p[e];
    dp[e] = static_cast<float>(__dadd_rn(__dmul_rn(pe, __dsub_rn(static_cast<double>(dp[e]), mean)), __dmul_rn(z, pe)));
  }
}

unsigned blocks_for(int64_t n, int threads) {
  return static_cast<unsigned>(std::min<int64_t>((n + threads - 1) / threads, int64_t{1} << 30));
}

}  // namespace

cudaError_t router_forward(float* probs, float* lse, int32_t* topk_expert, float* topk_weight, const float* logits,
                           int64_t N, int64_t E, int64_t K, bool normalize, cudaStream_t stream) {
  if (N <= 0) return cudaSuccess;
  router_forward_kernel<<<blocks_for(N, kRouterThreads), kRouterThreads, 0, stream>>>(
      probs, lse, topk_expert, topk_weight, logits, N, E, K, normalize);
  return cudaGetLastError();
}

cudaError_t routing_stats(double* stats, const float* probs, const float* lse, int64_t N, int64_t E,
                          cudaStream_t stream) {
  routing_stats_kernel<<<static_cast<unsigned>(E + 1), kRowThreads, 0, stream>>>(stats, probs, lse, N, E);
  return cudaGetLastError();
}

template <class T>
cudaError_t gather_rows(T* xe, const T* ln, const int32_t* assign_token, int64_t rows, int64_t H,
                        cudaStream_t stream) {
  if (rows <= 0 || H <= 0) return cudaSuccess;
  const int threads = 256;
  gather_rows_kernel<T><<<std::min(blocks_for(rows * H, threads), 65536u), threads, 0, stream>>>(xe, ln, assign_token,
                                                                                                  rows, H);
  return cudaGetLastError();
}

template <class T>
cudaError_t combine(T* out, const T* ye, const float* topk_weight, const int32_t* slot_assignment, int64_t N,
                    int64_t K, int64_t H, cudaStream_t stream) {
  if (N <= 0) return cudaSuccess;
  const size_t shared = static_cast<size_t>(K) * (sizeof(int32_t) + sizeof(float));
  combine_kernel<T><<<static_cast<unsigned>(N), kRowThreads, shared, stream>>>(out, ye, topk_weight,
                                                                               slot_assignment, K, H);
  return cudaGetLastError();
}

template <class T>
cudaError_t output_backward(T* d_ye, float* d_topk_weight, const T* d_out, const T* ye, const float* topk_weight,
                            const int32_t* slot_assignment, int64_t N, int64_t K, int64_t H, cudaStream_t stream) {
  if (N <= 0) return cudaSuccess;
  output_backward_kernel<T><<<static_cast<unsigned>(N), kRowThreads, 0, stream>>>(d_ye, d_topk_weight, d_out, ye,
                                                                                  topk_weight, slot_assignment, K, H);
  return cudaGetLastError();
}

template <class T>
cudaError_t scatter_back(T* d_ln, const T* d_xe, const int32_t* slot_assignment, int64_t N, int64_t K, int64_t H,
                         cudaStream_t stream) {
  if (N <= 0) return cudaSuccess;
  const size_t shared = static_cast<size_t>(K) * sizeof(int32_t);
  scatter_back_kernel<T><<<static_cast<unsigned>(N), kRowThreads, shared, stream>>>(d_ln, d_xe, slot_assignment, K, H);
  return cudaGetLastError();
}

cudaError_t router_backward(float* d_logits, const float* probs, const float* lse, const float* topk_weight,
                            const int32_t* topk_expert, const float* d_topk_weight, const float* aux_grad_host,
                            const float* aux_grad_device, double z_coef, int64_t N, int64_t E, int64_t K,
                            bool normalize, cudaStream_t stream) {
  if (N <= 0) return cudaSuccess;
  AuxByValue aux{};
  if (E <= kMaxAuxByValue) std::copy(aux_grad_host, aux_grad_host + E, aux.v);
  router_backward_kernel<<<blocks_for(N, kRouterThreads), kRouterThreads, 0, stream>>>(
      d_logits, probs, lse, topk_weight, topk_expert, d_topk_weight, aux, aux_grad_device, z_coef, N, E, K,
      normalize);
  return cudaGetLastError();
}

#define TESSERA_MOE_INSTANTIATE(T)                                                                                  \
  template cudaError_t gather_rows<T>(T*, const T*, const int32_t*, int64_t, int64_t, cudaStream_t);                \
  template cudaError_t combine<T>(T*, const T*, const float*, const int32_t*, int64_t, int64_t, int64_t,            \
                                  cudaStream_t);                                                                    \
  template cudaError_t output_backward<T>(T*, float*, const T*, const T*, const float*, const int32_t*, int64_t,    \
                                          int64_t, int64_t, cudaStream_t);                                          \
  template cudaError_t scatter_back<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, cudaStream_t);
TESSERA_MOE_INSTANTIATE(float)
TESSERA_MOE_INSTANTIATE(__nv_bfloat16)
#undef TESSERA_MOE_INSTANTIATE

}  // namespace tessera::cuda::moe
