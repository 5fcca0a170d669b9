#pragma once
// Shared pieces of the attention kernels: sizes, the PTX wrappers (cp.async, ldmatrix, bf16 mma.sync) and
// the tile loader. Kernels and launchers only: nvcc compiles this, so no fmt/spdlog/tessera error headers.

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace tessera::cuda::attn {

using bf16 = __nv_bfloat16;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// bf16 tensor-core kernels: 64-row query and key tiles, 4 warps, each warp owning 16 rows of the tile.
constexpr int kTile = 64;
constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

// A tile is kTile rows of D bf16 in shared memory, each row padded by 8 elements (16 bytes): the row
// stride is then ≡ 16 bytes mod 128, so the 8 row addresses of every ldmatrix phase hit distinct banks.
template <int D>
struct TileShape {
  static constexpr int ld = D + 8;               // row stride in elements
  static constexpr int elems = kTile * ld;       // elements per tile
  static constexpr int bytes = elems * 2;        // bytes per tile (a multiple of 16)
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte async copy global → shared; when !valid, writes 16 zero bytes (src-size 0 reads nothing).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8×8 b16 matrices; lane L gives the row address of matrix L/8, row L%8. Without .trans lane t receives
// (row t/4, cols 2(t%4), 2(t%4)+1) of each matrix; with .trans (rows 2(t%4), 2(t%4)+1, col t/4).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
}

// c[16×8] += a[16×16] · b[16×8], bf16 inputs, fp32 accumulate. Fragments (g = lane/4, t = lane%4):
// a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..); b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g);
// c0,c1 (g, 2t..2t+1), c2,c3 (g+8, 2t..2t+1).
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as bf16x2: `lo` in the low half (the lower column index of a fragment pair).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t u;
  __builtin_memcpy(&u, &v, sizeof(u));
  return u;
}

// Lane address offsets (elements) for the three ldmatrix uses, relative to the 16×16 (A) or 16-row ×
// 16-col (B) block being loaded.
// Matrices 0..3 (= result registers 0..3) cover:
//   A, 16×16 from a row-major [m][k] tile: (m 0-7, k 0-7) (m 8-15, k 0-7) (m 0-7, k 8-15) (m 8-15, k 8-15)
//   B, from a row-major [n][k] tile, n blocks j, j+1: (n 0-7, k 0-7) (n 0-7, k 8-15) (n 8-15, k 0-7) (n 8-15, k 8-15)
//   B, from a row-major [k][n] tile (.trans), n blocks j, j+1: (k 0-7, n 0-7) (k 8-15, n 0-7) (k 0-7, n 8-15)
//      (k 8-15, n 8-15)
template <int LD>
__device__ __forceinline__ int lane_off_a(int lane) {
  const int i = lane >> 3, r = lane & 7;
  return ((i & 1) * 8 + r) * LD + (i >> 1) * 8;
}
template <int LD>
__device__ __forceinline__ int lane_off_b(int lane) {
  const int i = lane >> 3, r = lane & 7;
  return ((i >> 1) * 8 + r) * LD + (i & 1) * 8;
}
template <int LD>
__device__ __forceinline__ int lane_off_bt(int lane) {
  const int i = lane >> 3, r = lane & 7;
  return ((i & 1) * 8 + r) * LD + (i >> 1) * 8;
}

// acc[16, D] += P · B for the warp: P is a 16×64 block of fp32 accumulators (a score or score-gradient
// tile from warp_tile_abt), rounded to bf16 as the A operand; B is 64 rows × D of shared memory at `b`
// (row-major, stride LD), read transposed by ldmatrix. The shape of O += P V and every gradient product.
template <int D, int LD>
__device__ __forceinline__ void warp_tile_pb(float (&acc)[D / 8][4], const float (&p)[8][4], const bf16* b,
                                             int off_bt) {
#pragma unroll
  for (int kq = 0; kq < 4; ++kq) {
    uint32_t a[4];
    a[0] = pack_bf16(p[2 * kq][0], p[2 * kq][1]);
    a[1] = pack_bf16(p[2 * kq][2], p[2 * kq][3]);
    a[2] = pack_bf16(p[2 * kq + 1][0], p[2 * kq + 1][1]);
    a[3] = pack_bf16(p[2 * kq + 1][2], p[2 * kq + 1][3]);
#pragma unroll
    for (int nd = 0; nd < D / 8; nd += 2) {
      uint32_t bf[4];
      ldmatrix_x4_trans(bf, smem_addr(b + kq * 16 * LD + nd * 8 + off_bt));
      mma_bf16(acc[nd], a, bf[0], bf[1]);
      mma_bf16(acc[nd + 1], a, bf[2], bf[3]);
    }
  }
}

// acc = A · Bᵀ for the warp's 16×64 block: 16 rows of A at `a_rows` (row-major, stride LD, D columns) times
// the 64 rows of B at `b`, accumulated in fp32 over D in steps of 16 (the shape of every score and
// score-gradient product here).
template <int D, int LD>
__device__ __forceinline__ void warp_tile_abt(float (&acc)[8][4], const bf16* a_rows, const bf16* b, int off_a,
                                              int off_b) {
#pragma unroll
  for (int nb = 0; nb < 8; ++nb) acc[nb][0] = acc[nb][1] = acc[nb][2] = acc[nb][3] = 0.0f;
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[4];
    ldmatrix_x4(a, smem_addr(a_rows + kk * 16 + off_a));
#pragma unroll
    for (int nb = 0; nb < 8; nb += 2) {
      uint32_t bf[4];
      ldmatrix_x4(bf, smem_addr(b + nb * 8 * LD + kk * 16 + off_b));
      mma_bf16(acc[nb], a, bf[0], bf[1]);
      mma_bf16(acc[nb + 1], a, bf[2], bf[3]);
    }
  }
}

// Async load of rows [row0, row0+kTile) of a [tokens, heads, D] tensor (base at the head's first token of
// the sample, row stride `stride` elements) into a padded tile; rows ≥ len are zero-filled so that padded
// rows never carry NaN/Inf into the products.
template <int D>
__device__ __forceinline__ void load_tile_async(bf16* tile, const bf16* base, int64_t stride, int row0, int len,
                                                int tid) {
  constexpr int chunks = D / 8;  // 16-byte chunks per row
  constexpr int ld = TileShape<D>::ld;
  static_assert((kTile * chunks) % kThreads == 0);
#pragma unroll
  for (int it = 0; it < kTile * chunks / kThreads; ++it) {
    const int idx = tid + it * kThreads;
    const int r = idx / chunks, c = idx % chunks;
    const int row = row0 + r;
    const bool valid = row < len;
    const bf16* src = valid ? base + static_cast<int64_t>(row) * stride + c * 8 : base;
    cp_async16(smem_addr(tile + r * ld + c * 8), src, valid);
  }
}

}  // namespace tessera::cuda::attn
