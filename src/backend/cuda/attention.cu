// Flash-attention forward and backward (causal GQA over packed samples); kernels and launchers only.
//
// Grid: x = tiles of max_seqlen, y = sample, z = head; a block whose tile starts past its sample's length
// exits. Scores live on chip only. The backward is three deterministic kernels (no float atomics):
//   delta[N,Hq] = rowsum(dout ∘ out);  dK/dV per (key tile, sample, kv head), looping over the group's q
//   heads and the query tiles at or after the key tile;  dQ per (query tile, sample, q head).
//
// bf16: mma.sync m16n8k16 (fp32 accumulation), 64×64 tiles, 4 warps of 16 rows, cp.async double buffering,
// softmax statistics in fp32 in the log2 domain. float: scalar fp32, one thread per row.

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "attention_common.cuh"
#include "kernel_common.cuh"
#include "tessera/backend/cuda/attention.hpp"

namespace tessera::cuda {
namespace {

using attn::bf16;
using attn::kLn2;
using attn::kLog2e;
using attn::kThreads;
using attn::kTile;
using attn::TileShape;

// ───────────────────────────────────────── bf16 forward ─────────────────────────────────────────

template <int D>
__global__ void __launch_bounds__(kThreads) fwd_bf16_kernel(bf16* __restrict__ out, float* __restrict__ lse,
                                                           const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                           const bf16* __restrict__ v,
                                                           const int32_t* __restrict__ cu, int Hq, int Hkv,
                                                           float scale_log2) {
  using S = TileShape<D>;
  constexpr int LD = S::ld;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* Ks = Qs + S::elems;      // 2 buffers
  bf16* Vs = Ks + 2 * S::elems;  // 2 buffers

  const int sample = blockIdx.y, h = blockIdx.z;
  const int start = cu[sample], len = cu[sample + 1] - start;
  const int m_block = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);  // longest rows first
  const int m0 = m_block * kTile;
  if (m0 >= len) return;
  const int kvh = h / (Hq / Hkv);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int64_t q_stride = static_cast<int64_t>(Hq) * D, kv_stride = static_cast<int64_t>(Hkv) * D;
  const bf16* qb = q + (static_cast<int64_t>(start) * Hq + h) * D;
  const bf16* kb = k + (static_cast<int64_t>(start) * Hkv + kvh) * D;
  const bf16* vb = v + (static_cast<int64_t>(start) * Hkv + kvh) * D;

  const int n_end = min(m0 + kTile, len);  // keys [0, n_end) matter to this tile
  const int n_tiles = (n_end + kTile - 1) / kTile;

  attn::load_tile_async<D>(Qs, qb, q_stride, m0, len, tid);
  attn::load_tile_async<D>(Ks, kb, kv_stride, 0, len, tid);
  attn::load_tile_async<D>(Vs, vb, kv_stride, 0, len, tid);
  attn::cp_async_commit();

  uint32_t qf[D / 16][4];
  float o[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.0f, 0.0f};  // row_sum: this thread's part

  const int off_a = attn::lane_off_a<LD>(lane), off_b = attn::lane_off_b<LD>(lane),
            off_bt = attn::lane_off_bt<LD>(lane);
  const int row_lo = m0 + warp * 16 + g;  // this thread's rows: row_lo, row_lo + 8

  for (int t = 0; t < n_tiles; ++t) {
    const int buf = t & 1;
    if (t + 1 < n_tiles) {
      attn::load_tile_async<D>(Ks + (buf ^ 1) * S::elems, kb, kv_stride, (t + 1) * kTile, len, tid);
      attn::load_tile_async<D>(Vs + (buf ^ 1) * S::elems, vb, kv_stride, (t + 1) * kTile, len, tid);
      attn::cp_async_commit();
      attn::cp_async_wait<1>();
    } else {
      attn::cp_async_wait<0>();
    }
    __syncthreads();
    if (t == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk)
        attn::ldmatrix_x4(qf[kk], attn::smem_addr(Qs + warp * 16 * LD + kk * 16 + off_a));
    }
    const bf16* Kt = Ks + buf * S::elems;
    const bf16* Vt = Vs + buf * S::elems;

    // S = Q Kᵀ (16 rows × 64 keys per warp)
    float s[8][4];
#pragma unroll
    for (int nb = 0; nb < 8; ++nb) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int nb = 0; nb < 8; nb += 2) {
        uint32_t b[4];
        attn::ldmatrix_x4(b, attn::smem_addr(Kt + nb * 8 * LD + kk * 16 + off_b));
        attn::mma_bf16(s[nb], qf[kk], b[0], b[1]);
        attn::mma_bf16(s[nb + 1], qf[kk], b[2], b[3]);
      }
    }
    // Causal mask: only the last key tile (which starts at m0) reaches past the diagonal. Keys ≥ len lie
    // past every real row's diagonal too.
    if (t == n_tiles - 1) {
      const int n0 = t * kTile;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = n0 + nb * 8 + t4 * 2 + (e & 1), row = row_lo + (e >> 1) * 8;
          if (key > row) s[nb][e] = -INFINITY;
        }
    }
    // Online softmax in the log2 domain: x = s · scale · log2(e).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb) mx = fmaxf(mx, fmaxf(s[nb][2 * r], s[nb][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(row_max[r], mx * scale_log2);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(row_max[r] - m_use);
      float sum = 0.0f;
#pragma unroll
      for (int nb = 0; nb < 8; ++nb)
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          const float p = exp2f(s[nb][e] * scale_log2 - m_use);
          s[nb][e] = p;
          sum += p;
        }
      row_sum[r] = row_sum[r] * alpha + sum;
      row_max[r] = m_new;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) {
        o[nd][2 * r] *= alpha;
        o[nd][2 * r + 1] *= alpha;
      }
    }
    // O += P V: the S accumulators of key blocks 2kq, 2kq+1 are the A fragment of the 16-key chunk kq.
    attn::warp_tile_pb<D, LD>(o, s, Vt, off_bt);
    __syncthreads();  // everyone is done with this buffer before the next iteration refills it
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float l = row_sum[r];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    const int row = row_lo + r * 8;
    if (row < len) {
      const float inv = 1.0f / l;
      bf16* orow = out + (static_cast<int64_t>(start + row) * Hq + h) * D;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd)
        *reinterpret_cast<__nv_bfloat162*>(orow + nd * 8 + t4 * 2) =
            __floats2bfloat162_rn(o[nd][2 * r] * inv, o[nd][2 * r + 1] * inv);
      if (t4 == 0) lse[static_cast<int64_t>(start + row) * Hq + h] = (row_max[r] + log2f(l)) * kLn2;
    }
  }
}

// ───────────────────────────────────────── bf16 backward ────────────────────────────────────────

// dK, dV for 64 keys of one kv head: each warp owns 16 keys and computes, per 64-query tile,
//   Sᵀ = K Qᵀ, Pᵀ = exp(Sᵀ·scale − lse), dV += Pᵀ dO, dPᵀ = V dOᵀ, dSᵀ = Pᵀ ∘ (dPᵀ − delta), dK += dSᵀ Q
// with no exchange between warps. dK gets its `scale` once at the end.
template <int D>
__global__ void __launch_bounds__(kThreads) dkdv_bf16_kernel(bf16* __restrict__ dk, bf16* __restrict__ dv,
                                                            const bf16* __restrict__ dout,
                                                            const float* __restrict__ lse,
                                                            const float* __restrict__ delta,
                                                            const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                            const bf16* __restrict__ v,
                                                            const int32_t* __restrict__ cu, int Hq, int Hkv,
                                                            float scale, float scale_log2) {
  using S = TileShape<D>;
  constexpr int LD = S::ld;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);
  bf16* Vs = Ks + S::elems;
  bf16* Qs = Vs + S::elems;        // 2 buffers
  bf16* dOs = Qs + 2 * S::elems;   // 2 buffers
  float* lse_s = reinterpret_cast<float*>(dOs + 2 * S::elems);  // [2][kTile], ×log2(e)
  float* del_s = lse_s + 2 * kTile;                             // [2][kTile]

  const int sample = blockIdx.y, kvh = blockIdx.z;
  const int start = cu[sample], len = cu[sample + 1] - start;
  const int n0 = static_cast<int>(blockIdx.x) * kTile;  // low key tiles have the most work: launched first
  if (n0 >= len) return;
  const int group = Hq / Hkv;
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int64_t q_stride = static_cast<int64_t>(Hq) * D, kv_stride = static_cast<int64_t>(Hkv) * D;
  const int m_tiles = (len - n0 + kTile - 1) / kTile;  // query tiles start at n0, n0+64, ...
  const int iters = group * m_tiles;

  attn::load_tile_async<D>(Ks, k + (static_cast<int64_t>(start) * Hkv + kvh) * D, kv_stride, n0, len, tid);
  attn::load_tile_async<D>(Vs, v + (static_cast<int64_t>(start) * Hkv + kvh) * D, kv_stride, n0, len, tid);

  // Issues iteration it's loads (query head, query tile) into buffer `buf`.
  auto load_q = [&](int it, int buf) {
    const int h = kvh * group + it / m_tiles, m0 = n0 + (it % m_tiles) * kTile;
    const int64_t head0 = static_cast<int64_t>(start) * Hq + h;
    attn::load_tile_async<D>(Qs + buf * S::elems, q + head0 * D, q_stride, m0, len, tid);
    attn::load_tile_async<D>(dOs + buf * S::elems, dout + head0 * D, q_stride, m0, len, tid);
    if (tid < kTile) {
      const int row = m0 + tid;
      const bool valid = row < len;
      const int64_t idx = (head0 + static_cast<int64_t>(row) * Hq);
      lse_s[buf * kTile + tid] = valid ? lse[valid ? idx : 0] * kLog2e : 0.0f;
      del_s[buf * kTile + tid] = valid ? delta[valid ? idx : 0] : 0.0f;
    }
  };
  load_q(0, 0);
  attn::cp_async_commit();

  float dk_acc[D / 8][4], dv_acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk_acc[i][e] = dv_acc[i][e] = 0.0f;

  const int off_a = attn::lane_off_a<LD>(lane), off_b = attn::lane_off_b<LD>(lane),
            off_bt = attn::lane_off_bt<LD>(lane);
  const int key_lo = n0 + warp * 16 + g;  // this thread's keys: key_lo, key_lo + 8

  for (int it = 0; it < iters; ++it) {
    const int buf = it & 1;
    if (it + 1 < iters) {
      load_q(it + 1, buf ^ 1);
      attn::cp_async_commit();
      attn::cp_async_wait<1>();
    } else {
      attn::cp_async_wait<0>();
    }
    __syncthreads();
    const int m0 = n0 + (it % m_tiles) * kTile;
    const bool need_mask = m0 == n0 || m0 + kTile > len;
    const bf16* Qt = Qs + buf * S::elems;
    const bf16* dOt = dOs + buf * S::elems;
    const float* lse_t = lse_s + buf * kTile;
    const float* del_t = del_s + buf * kTile;

    // Sᵀ = K Qᵀ (16 keys × 64 queries per warp)
    float p[8][4];
    attn::warp_tile_abt<D, LD>(p, Ks + warp * 16 * LD, Qt, off_a, off_b);
    // Pᵀ; zero where key > query (causal) or the query row is padding (≥ len).
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int qc = nb * 8 + t4 * 2 + (e & 1);
        float pe = exp2f(p[nb][e] * scale_log2 - lse_t[qc]);
        if (need_mask) {
          const int qrow = m0 + qc, key = key_lo + (e >> 1) * 8;
          if (key > qrow || qrow >= len) pe = 0.0f;
        }
        p[nb][e] = pe;
      }
    // dV += Pᵀ dO
    attn::warp_tile_pb<D, LD>(dv_acc, p, dOt, off_bt);
    // dPᵀ = V dOᵀ
    float ds[8][4];
    attn::warp_tile_abt<D, LD>(ds, Vs + warp * 16 * LD, dOt, off_a, off_b);
    // dSᵀ = Pᵀ ∘ (dPᵀ − delta)
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) ds[nb][e] = p[nb][e] * (ds[nb][e] - del_t[nb * 8 + t4 * 2 + (e & 1)]);
    // dK += dSᵀ Q
    attn::warp_tile_pb<D, LD>(dk_acc, ds, Qt, off_bt);
    __syncthreads();  // this buffer is refilled by the next iteration's prefetch
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = key_lo + r * 8;
    if (key < len) {
      const int64_t off = (static_cast<int64_t>(start + key) * Hkv + kvh) * D + t4 * 2;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) {
        *reinterpret_cast<__nv_bfloat162*>(dk + off + nd * 8) =
            __floats2bfloat162_rn(dk_acc[nd][2 * r] * scale, dk_acc[nd][2 * r + 1] * scale);
        *reinterpret_cast<__nv_bfloat162*>(dv + off + nd * 8) =
            __floats2bfloat162_rn(dv_acc[nd][2 * r], dv_acc[nd][2 * r + 1]);
      }
    }
  }
}

// dQ for 64 queries of one q head: each warp owns 16 queries and loops over the key tiles up to the
// diagonal: S = Q Kᵀ, P = exp(S·scale − lse), dP = dO Vᵀ, dS = P ∘ (dP − delta), dQ += dS K; ·scale at the end.
template <int D>
__global__ void __launch_bounds__(kThreads) dq_bf16_kernel(bf16* __restrict__ dq, const bf16* __restrict__ dout,
                                                          const float* __restrict__ lse,
                                                          const float* __restrict__ delta,
                                                          const bf16* __restrict__ q, const bf16* __restrict__ k,
                                                          const bf16* __restrict__ v,
                                                          const int32_t* __restrict__ cu, int Hq, int Hkv,
                                                          float scale, float scale_log2) {
  using S = TileShape<D>;
  constexpr int LD = S::ld;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);
  bf16* dOs = Qs + S::elems;
  bf16* Ks = dOs + S::elems;      // 2 buffers
  bf16* Vs = Ks + 2 * S::elems;   // 2 buffers

  const int sample = blockIdx.y, h = blockIdx.z;
  const int start = cu[sample], len = cu[sample + 1] - start;
  const int m_block = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);  // longest rows first
  const int m0 = m_block * kTile;
  if (m0 >= len) return;
  const int kvh = h / (Hq / Hkv);
  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
  const int64_t q_stride = static_cast<int64_t>(Hq) * D, kv_stride = static_cast<int64_t>(Hkv) * D;
  const int64_t head0 = static_cast<int64_t>(start) * Hq + h;
  const bf16* kb = k + (static_cast<int64_t>(start) * Hkv + kvh) * D;
  const bf16* vb = v + (static_cast<int64_t>(start) * Hkv + kvh) * D;
  const int n_end = min(m0 + kTile, len);
  const int n_tiles = (n_end + kTile - 1) / kTile;

  attn::load_tile_async<D>(Qs, q + head0 * D, q_stride, m0, len, tid);
  attn::load_tile_async<D>(dOs, dout + head0 * D, q_stride, m0, len, tid);
  attn::load_tile_async<D>(Ks, kb, kv_stride, 0, len, tid);
  attn::load_tile_async<D>(Vs, vb, kv_stride, 0, len, tid);
  attn::cp_async_commit();

  const int row_lo = m0 + warp * 16 + g;  // this thread's rows: row_lo, row_lo + 8
  float lse_r[2], del_r[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row_lo + r * 8;
    const bool valid = row < len;
    const int64_t idx = head0 + static_cast<int64_t>(valid ? row : 0) * Hq;
    lse_r[r] = valid ? lse[idx] * kLog2e : 0.0f;
    del_r[r] = valid ? delta[idx] : 0.0f;
  }

  float dq_acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i) dq_acc[i][0] = dq_acc[i][1] = dq_acc[i][2] = dq_acc[i][3] = 0.0f;
  const int off_a = attn::lane_off_a<LD>(lane), off_b = attn::lane_off_b<LD>(lane),
            off_bt = attn::lane_off_bt<LD>(lane);

  for (int t = 0; t < n_tiles; ++t) {
    const int buf = t & 1;
    if (t + 1 < n_tiles) {
      attn::load_tile_async<D>(Ks + (buf ^ 1) * S::elems, kb, kv_stride, (t + 1) * kTile, len, tid);
      attn::load_tile_async<D>(Vs + (buf ^ 1) * S::elems, vb, kv_stride, (t + 1) * kTile, len, tid);
      attn::cp_async_commit();
      attn::cp_async_wait<1>();
    } else {
      attn::cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* Kt = Ks + buf * S::elems;
    const bf16* Vt = Vs + buf * S::elems;

    // S = Q Kᵀ
    float p[8][4];
    attn::warp_tile_abt<D, LD>(p, Qs + warp * 16 * LD, Kt, off_a, off_b);
    // P, zero above the diagonal (only the last tile, which starts at m0, reaches it).
    const bool need_mask = t == n_tiles - 1;
    const int n0 = t * kTile;
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float pe = exp2f(p[nb][e] * scale_log2 - lse_r[e >> 1]);
        if (need_mask && n0 + nb * 8 + t4 * 2 + (e & 1) > row_lo + (e >> 1) * 8) pe = 0.0f;
        p[nb][e] = pe;
      }
    // dP = dO Vᵀ
    float ds[8][4];
    attn::warp_tile_abt<D, LD>(ds, dOs + warp * 16 * LD, Vt, off_a, off_b);
    // dS = P ∘ (dP − delta); dQ += dS K
#pragma unroll
    for (int nb = 0; nb < 8; ++nb)
#pragma unroll
      for (int e = 0; e < 4; ++e) ds[nb][e] = p[nb][e] * (ds[nb][e] - del_r[e >> 1]);
    attn::warp_tile_pb<D, LD>(dq_acc, ds, Kt, off_bt);
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row_lo + r * 8;
    if (row < len) {
      bf16* drow = dq + (head0 + static_cast<int64_t>(row) * Hq) * D + t4 * 2;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd)
        *reinterpret_cast<__nv_bfloat162*>(drow + nd * 8) =
            __floats2bfloat162_rn(dq_acc[nd][2 * r] * scale, dq_acc[nd][2 * r + 1] * scale);
    }
  }
}

// ───────────────────────────────────────── fp32 kernels ─────────────────────────────────────────
// One thread per row, per-row vectors in registers (the compiler spills the larger D to local memory, which
// the L1 caches); key/query tiles staged in shared memory and read as broadcasts.

constexpr int kF32Rows = 64;  // rows (threads) per block
constexpr int kF32Tile = 32;  // staged rows per shared-memory tile

template <int D>
__global__ void __launch_bounds__(kF32Rows) fwd_f32_kernel(float* __restrict__ out, float* __restrict__ lse,
                                                          const float* __restrict__ q, const float* __restrict__ k,
                                                          const float* __restrict__ v,
                                                          const int32_t* __restrict__ cu, int Hq, int Hkv,
                                                          float scale) {
  __shared__ float Ks[kF32Tile][D], Vs[kF32Tile][D];
  const int sample = blockIdx.y, h = blockIdx.z;
  const int start = cu[sample], len = cu[sample + 1] - start;
  const int m0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * kF32Rows;
  if (m0 >= len) return;
  const int kvh = h / (Hq / Hkv), tid = threadIdx.x, row = m0 + tid;
  const bool valid = row < len;
  const float* qr_ptr = q + (static_cast<int64_t>(start + (valid ? row : 0)) * Hq + h) * D;
  float qr[D], acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    qr[d] = valid ? qr_ptr[d] : 0.0f;
    acc[d] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int n_end = min(m0 + kF32Rows, len);
  for (int n0 = 0; n0 < n_end; n0 += kF32Tile) {
    __syncthreads();
    for (int idx = tid; idx < kF32Tile * D; idx += kF32Rows) {
      const int j = idx / D, d = idx % D, key = n0 + j;
      const int64_t off = (static_cast<int64_t>(start + key) * Hkv + kvh) * D + d;
      Ks[j][d] = key < len ? k[off] : 0.0f;
      Vs[j][d] = key < len ? v[off] : 0.0f;
    }
    __syncthreads();
    const int jmax = valid ? min(kF32Tile, row - n0 + 1) : 0;  // keys n0 .. row
    for (int j = 0; j < jmax; ++j) {
      float dot = 0.0f;
#pragma unroll
      for (int d = 0; d < D; ++d) dot += qr[d] * Ks[j][d];
      const float s = dot * scale;
      if (s > m) {
        const float corr = expf(m - s);  // 0 on the first key (m = -inf)
        l = l * corr + 1.0f;
#pragma unroll
        for (int d = 0; d < D; ++d) acc[d] = acc[d] * corr + Vs[j][d];
        m = s;
      } else {
        const float p = expf(s - m);
        l += p;
#pragma unroll
        for (int d = 0; d < D; ++d) acc[d] += p * Vs[j][d];
      }
    }
  }
  if (valid) {
    const float inv = 1.0f / l;
    float* orow = out + (static_cast<int64_t>(start + row) * Hq + h) * D;
#pragma unroll
    for (int d = 0; d < D; ++d) orow[d] = acc[d] * inv;
    lse[static_cast<int64_t>(start + row) * Hq + h] = m + logf(l);
  }
}

// One thread per key of a 64-key tile; queries staged kF32Tile at a time, every q head of the group.
template <int D>
__global__ void __launch_bounds__(kF32Rows) dkdv_f32_kernel(float* __restrict__ dk, float* __restrict__ dv,
                                                           const float* __restrict__ dout,
                                                           const float* __restrict__ lse,
                                                           const float* __restrict__ delta,
                                                           const float* __restrict__ q, const float* __restrict__ k,
                                                           const float* __restrict__ v,
                                                           const int32_t* __restrict__ cu, int Hq, int Hkv,
                                                           float scale) {
  __shared__ float Qs[kF32Tile][D], dOs[kF32Tile][D], lse_s[kF32Tile], del_s[kF32Tile];
  const int sample = blockIdx.y, kvh = blockIdx.z;
  const int start = cu[sample], len = cu[sample + 1] - start;
  const int n0 = static_cast<int>(blockIdx.x) * kF32Rows;
  if (n0 >= len) return;
  const int group = Hq / Hkv, tid = threadIdx.x, key = n0 + tid;
  const bool valid = key < len;
  const int64_t kv_off = (static_cast<int64_t>(start + (valid ? key : 0)) * Hkv + kvh) * D;
  float kr[D], vr[D], dkr[D], dvr[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    kr[d] = valid ? k[kv_off + d] : 0.0f;
    vr[d] = valid ? v[kv_off + d] : 0.0f;
    dkr[d] = dvr[d] = 0.0f;
  }
  for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
    for (int m0 = n0; m0 < len; m0 += kF32Tile) {
      __syncthreads();
      for (int idx = tid; idx < kF32Tile * D; idx += kF32Rows) {
        const int i = idx / D, d = idx % D, row = m0 + i;
        const int64_t off = (static_cast<int64_t>(start + row) * Hq + h) * D + d;
        Qs[i][d] = row < len ? q[off] : 0.0f;
        dOs[i][d] = row < len ? dout[off] : 0.0f;
      }
      if (tid < kF32Tile) {
        const int row = m0 + tid;
        const int64_t off = static_cast<int64_t>(start + row) * Hq + h;
        lse_s[tid] = row < len ? lse[off] : 0.0f;
        del_s[tid] = row < len ? delta[off] : 0.0f;
      }
      __syncthreads();
      if (!valid) continue;
      const int imin = max(0, key - m0), imax = min(kF32Tile, len - m0);  // queries key .. len-1
      for (int i = imin; i < imax; ++i) {
        float dot = 0.0f, dp = 0.0f;
#pragma unroll
        for (int d = 0; d < D; ++d) {
          dot += Qs[i][d] * kr[d];
          dp += dOs[i][d] * vr[d];
        }
        const float p = expf(dot * scale - lse_s[i]);
        const float ds = p * (dp - del_s[i]);
#pragma unroll
        for (int d = 0; d < D; ++d) {
          dvr[d] += p * dOs[i][d];
          dkr[d] += ds * Qs[i][d];
        }
      }
    }
  }
  if (valid) {
#pragma unroll
    for (int d = 0; d < D; ++d) {
      dk[kv_off + d] = dkr[d] * scale;
      dv[kv_off + d] = dvr[d];
    }
  }
}

template <int D>
__global__ void __launch_bounds__(kF32Rows) dq_f32_kernel(float* __restrict__ dq, const float* __restrict__ dout,
                                                         const float* __restrict__ lse,
                                                         const float* __restrict__ delta,
                                                         const float* __restrict__ q, const float* __restrict__ k,
                                                         const float* __restrict__ v,
                                                         const int32_t* __restrict__ cu, int Hq, int Hkv,
                                                         float scale) {
  __shared__ float Ks[kF32Tile][D], Vs[kF32Tile][D];
  const int sample = blockIdx.y, h = blockIdx.z;
  const int start = cu[sample], len = cu[sample + 1] - start;
  const int m0 = (static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x)) * kF32Rows;
  if (m0 >= len) return;
  const int kvh = h / (Hq / Hkv), tid = threadIdx.x, row = m0 + tid;
  const bool valid = row < len;
  const int64_t q_off = (static_cast<int64_t>(start + (valid ? row : 0)) * Hq + h) * D;
  const int64_t stat = static_cast<int64_t>(start + (valid ? row : 0)) * Hq + h;
  const float lse_r = valid ? lse[stat] : 0.0f, del_r = valid ? delta[stat] : 0.0f;
  float qr[D], dor[D], dqr[D];
#pragma unroll
  for (int d = 0; d < D; ++d) {
    qr[d] = valid ? q[q_off + d] : 0.0f;
    dor[d] = valid ? dout[q_off + d] : 0.0f;
    dqr[d] = 0.0f;
  }
  const int n_end = min(m0 + kF32Rows, len);
  for (int n0 = 0; n0 < n_end; n0 += kF32Tile) {
    __syncthreads();
    for (int idx = tid; idx < kF32Tile * D; idx += kF32Rows) {
      const int j = idx / D, d = idx % D, key = n0 + j;
      const int64_t off = (static_cast<int64_t>(start + key) * Hkv + kvh) * D + d;
      Ks[j][d] = key < len ? k[off] : 0.0f;
      Vs[j][d] = key < len ? v[off] : 0.0f;
    }
    __syncthreads();
    const int jmax = valid ? min(kF32Tile, row - n0 + 1) : 0;
    for (int j = 0; j < jmax; ++j) {
      float dot = 0.0f, dp = 0.0f;
#pragma unroll
      for (int d = 0; d < D; ++d) {
        dot += qr[d] * Ks[j][d];
        dp += dor[d] * Vs[j][d];
      }
      const float p = expf(dot * scale - lse_r);
      const float ds = p * (dp - del_r);
#pragma unroll
      for (int d = 0; d < D; ++d) dqr[d] += ds * Ks[j][d];
    }
  }
  if (valid) {
#pragma unroll
    for (int d = 0; d < D; ++d) dq[q_off + d] = dqr[d] * scale;
  }
}

// ───────────────────────────────────────── delta ─────────────────────────────────────────

using kernel::to_f;

// delta[row] = Σ_d dout[row,d]·out[row,d] over the N·Hq rows; one warp per row, 8 rows per block.
template <class T, int D>
__global__ void __launch_bounds__(256) delta_kernel(float* __restrict__ delta, const T* __restrict__ dout,
                                                    const T* __restrict__ out, int64_t rows) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * 8 + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;  // uniform per warp
  float acc = 0.0f;
#pragma unroll
  for (int d = lane; d < D; d += 32) acc += to_f(dout[row * D + d]) * to_f(out[row * D + d]);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
  if (lane == 0) delta[row] = acc;
}

// ───────────────────────────────────────── launchers ─────────────────────────────────────────

bool valid_shape(int64_t num_samples, int64_t N, int64_t max_seqlen, int64_t Hq, int64_t Hkv, int64_t D) {
  if (D != 16 && D != 32 && D != 64 && D != 128) return false;
  if (num_samples < 0 || N < 0 || max_seqlen < 0 || Hq <= 0 || Hkv <= 0 || Hq % Hkv != 0) return false;
  if (num_samples > 65535 || Hq > 65535 || max_seqlen > (int64_t{1} << 30) || N > (int64_t{1} << 31) - 1)
    return false;
  return true;
}

// cp.async moves 16-byte chunks: every bf16 tensor must start 16-byte aligned.
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class Kernel>
cudaError_t set_smem(Kernel kernel, int bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
}

template <class T, int D>
cudaError_t forward_impl(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* cu,
                         int64_t num_samples, int64_t max_seqlen, int64_t Hq, int64_t Hkv, cudaStream_t stream) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  if constexpr (std::is_same_v<T, float>) {
    const dim3 grid(static_cast<unsigned>((max_seqlen + kF32Rows - 1) / kF32Rows),
                    static_cast<unsigned>(num_samples), static_cast<unsigned>(Hq));
    fwd_f32_kernel<D><<<grid, kF32Rows, 0, stream>>>(out, lse, q, k, v, cu, static_cast<int>(Hq),
                                                     static_cast<int>(Hkv), scale);
    return cudaGetLastError();
  } else {
    const int smem = 5 * TileShape<D>::bytes;  // Q + 2×K + 2×V
    if (const cudaError_t rc = set_smem(fwd_bf16_kernel<D>, smem); rc != cudaSuccess) return rc;
    const dim3 grid(static_cast<unsigned>((max_seqlen + kTile - 1) / kTile), static_cast<unsigned>(num_samples),
                    static_cast<unsigned>(Hq));
    fwd_bf16_kernel<D><<<grid, kThreads, smem, stream>>>(out, lse, q, k, v, cu, static_cast<int>(Hq),
                                                         static_cast<int>(Hkv), scale * kLog2e);
    return cudaGetLastError();
  }
}

template <class T, int D>
cudaError_t backward_impl(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse, const T* q,
                          const T* k, const T* v, const int32_t* cu, int64_t num_samples, int64_t N,
                          int64_t max_seqlen, int64_t Hq, int64_t Hkv, float* workspace, cudaStream_t stream) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  float* delta = workspace;
  const int64_t rows = N * Hq;
  delta_kernel<T, D><<<static_cast<unsigned>((rows + 7) / 8), 256, 0, stream>>>(delta, dout, out, rows);
  if (const cudaError_t rc = cudaGetLastError(); rc != cudaSuccess) return rc;
  const int iHq = static_cast<int>(Hq), iHkv = static_cast<int>(Hkv);
  if constexpr (std::is_same_v<T, float>) {
    const unsigned tiles = static_cast<unsigned>((max_seqlen + kF32Rows - 1) / kF32Rows);
    dkdv_f32_kernel<D><<<dim3(tiles, static_cast<unsigned>(num_samples), static_cast<unsigned>(Hkv)), kF32Rows, 0,
                         stream>>>(dk, dv, dout, lse, delta, q, k, v, cu, iHq, iHkv, scale);
    if (const cudaError_t rc = cudaGetLastError(); rc != cudaSuccess) return rc;
    dq_f32_kernel<D><<<dim3(tiles, static_cast<unsigned>(num_samples), static_cast<unsigned>(Hq)), kF32Rows, 0,
                       stream>>>(dq, dout, lse, delta, q, k, v, cu, iHq, iHkv, scale);
    return cudaGetLastError();
  } else {
    const unsigned tiles = static_cast<unsigned>((max_seqlen + kTile - 1) / kTile);
    const int smem_kv = 6 * TileShape<D>::bytes + 4 * kTile * static_cast<int>(sizeof(float));
    if (const cudaError_t rc = set_smem(dkdv_bf16_kernel<D>, smem_kv); rc != cudaSuccess) return rc;
    dkdv_bf16_kernel<D><<<dim3(tiles, static_cast<unsigned>(num_samples), static_cast<unsigned>(Hkv)), kThreads,
                          smem_kv, stream>>>(dk, dv, dout, lse, delta, q, k, v, cu, iHq, iHkv, scale,
                                             scale * kLog2e);
    if (const cudaError_t rc = cudaGetLastError(); rc != cudaSuccess) return rc;
    const int smem_q = 6 * TileShape<D>::bytes;
    if (const cudaError_t rc = set_smem(dq_bf16_kernel<D>, smem_q); rc != cudaSuccess) return rc;
    dq_bf16_kernel<D><<<dim3(tiles, static_cast<unsigned>(num_samples), static_cast<unsigned>(Hq)), kThreads, smem_q,
                        stream>>>(dq, dout, lse, delta, q, k, v, cu, iHq, iHkv, scale, scale * kLog2e);
    return cudaGetLastError();
  }
}

}  // namespace

template <class T>
cudaError_t attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, const int32_t* cu_seqlens,
                              int64_t num_samples, int64_t N, int64_t max_seqlen, int64_t Hq, int64_t Hkv, int64_t D,
                              cudaStream_t stream) {
  if (!valid_shape(num_samples, N, max_seqlen, Hq, Hkv, D)) return cudaErrorInvalidValue;
  if constexpr (!std::is_same_v<T, float>) {
    if (!aligned16(out) || !aligned16(q) || !aligned16(k) || !aligned16(v)) return cudaErrorInvalidValue;
  }
  if (num_samples == 0 || N == 0 || max_seqlen == 0) return cudaSuccess;
  switch (D) {
    case 16: return forward_impl<T, 16>(out, lse, q, k, v, cu_seqlens, num_samples, max_seqlen, Hq, Hkv, stream);
    case 32: return forward_impl<T, 32>(out, lse, q, k, v, cu_seqlens, num_samples, max_seqlen, Hq, Hkv, stream);
    case 64: return forward_impl<T, 64>(out, lse, q, k, v, cu_seqlens, num_samples, max_seqlen, Hq, Hkv, stream);
    default: return forward_impl<T, 128>(out, lse, q, k, v, cu_seqlens, num_samples, max_seqlen, Hq, Hkv, stream);
  }
}

template <class T>
cudaError_t attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse, const T* q,
                               const T* k, const T* v, const int32_t* cu_seqlens, int64_t num_samples, int64_t N,
                               int64_t max_seqlen, int64_t Hq, int64_t Hkv, int64_t D, float* workspace,
                               cudaStream_t stream) {
  if (!valid_shape(num_samples, N, max_seqlen, Hq, Hkv, D)) return cudaErrorInvalidValue;
  if constexpr (!std::is_same_v<T, float>) {
    if (!aligned16(dq) || !aligned16(dk) || !aligned16(dv) || !aligned16(dout) || !aligned16(q) || !aligned16(k) ||
        !aligned16(v))
      return cudaErrorInvalidValue;
  }
  if (num_samples == 0 || N == 0 || max_seqlen == 0) return cudaSuccess;
  switch (D) {
    case 16:
      return backward_impl<T, 16>(dq, dk, dv, dout, out, lse, q, k, v, cu_seqlens, num_samples, N, max_seqlen, Hq,
                                  Hkv, workspace, stream);
    case 32:
      return backward_impl<T, 32>(dq, dk, dv, dout, out, lse, q, k, v, cu_seqlens, num_samples, N, max_seqlen, Hq,
                                  Hkv, workspace, stream);
    case 64:
      return backward_impl<T, 64>(dq, dk, dv, dout, out, lse, q, k, v, cu_seqlens, num_samples, N, max_seqlen, Hq,
                                  Hkv, workspace, stream);
    default:
      return backward_impl<T, 128>(dq, dk, dv, dout, out, lse, q, k, v, cu_seqlens, num_samples, N, max_seqlen, Hq,
                                   Hkv, workspace, stream);
  }
}

int64_t attention_backward_workspace_floats(int64_t N, int64_t Hq, int64_t /*D*/) { return N * Hq; }

template cudaError_t attention_forward<float>(float*, float*, const float*, const float*, const float*,
                                              const int32_t*, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                              cudaStream_t);
template cudaError_t attention_forward<__nv_bfloat16>(__nv_bfloat16*, float*, const __nv_bfloat16*,
                                                      const __nv_bfloat16*, const __nv_bfloat16*, const int32_t*,
                                                      int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                                      cudaStream_t);
template cudaError_t attention_backward<float>(float*, float*, float*, const float*, const float*, const float*,
                                               const float*, const float*, const float*, const int32_t*, int64_t,
                                               int64_t, int64_t, int64_t, int64_t, int64_t, float*, cudaStream_t);
template cudaError_t attention_backward<__nv_bfloat16>(__nv_bfloat16*, __nv_bfloat16*, __nv_bfloat16*,
                                                       const __nv_bfloat16*, const __nv_bfloat16*, const float*,
                                                       const __nv_bfloat16*, const __nv_bfloat16*,
                                                       const __nv_bfloat16*, const int32_t*, int64_t, int64_t, int64_t,
                                                       int64_t, int64_t, int64_t, float*, cudaStream_t);

}  // namespace tessera::cuda
