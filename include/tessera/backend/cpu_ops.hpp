#pragma once
// The CPU fp32 reference ops: each has a forward and the backward the model needs, on raw row-major
// buffers (llm.c style). GEMMs go through OpenBLAS; elementwise and attention loops are OpenMP-parallel.
// Backward functions ACCUMULATE into parameter gradients (+=) so that microbatches add up, and overwrite
// or accumulate into input gradients as each function states.
//
// Shapes: N tokens (all rows of a batch, flattened), C input features, OC output features. Linear weights
// are [OC, C] as in Hugging Face (y = x W^T + b).

#include <cstdint>
#include <span>

namespace tessera::cpu {

// out[N,OC] = inp[N,C] · W[OC,C]^T (+ bias[OC]); bias may be null.
void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t N, int64_t C,
                    int64_t OC);
// dinp[N,C] += dout · W (dinp may be null); dweight[OC,C] += dout^T · inp; dbias[OC] += Σ_n dout (may be null).
void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t N, int64_t C, int64_t OC);

// RMSNorm over the last dimension of rows of width C: out = x / sqrt(mean(x^2) + eps) * w.
// rstd[rows] receives 1/sqrt(mean(x^2)+eps) for the backward.
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int64_t rows, int64_t C,
                     float eps);
// dinp[rows,C] += ...; dweight[C] += ...
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                      const float* rstd, int64_t rows, int64_t C);

// Rotary tables as Hugging Face computes them in fp32: inv_freq[i] = 1 / theta^(2i/D), angle = pos·inv_freq,
// cos/sin[N, D/2] per token from its position id.
void rope_tables(float* cos, float* sin, const int64_t* position_ids, int64_t N, int64_t head_dim, double theta);
// In place on x[N, heads, D] (rotate-half convention: pairs (i, i + D/2)). backward applies the inverse.
void rope_forward(float* x, const float* cos, const float* sin, int64_t N, int64_t heads, int64_t head_dim);
void rope_backward(float* dx, const float* cos, const float* sin, int64_t N, int64_t heads, int64_t head_dim);

// Causal grouped-query attention over packed samples: cu_seqlens[S+1] gives each sample's token range; a
// token attends only to earlier tokens of its own sample. q[N,Hq,D], k/v[N,Hkv,D], out[N,Hq,D].
// probs (required) receives the softmax rows for the backward: for each sample s and head h a
// len_s × len_s block, packed at offsets attention_probs_offset(cu_seqlens, s) * Hq.
void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       const int32_t* cu_seqlens, int64_t num_samples, int64_t Hq, int64_t Hkv, int64_t D);
// dq/dk/dv are overwritten. probs as written by the forward (or recomputed by it: selective recompute).
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs, const float* q,
                        const float* k, const float* v, const int32_t* cu_seqlens, int64_t num_samples, int64_t Hq,
                        int64_t Hkv, int64_t D);
// Floats the probs buffer needs: Hq · Σ_s len_s².
int64_t attention_probs_size(const int32_t* cu_seqlens, int64_t num_samples, int64_t Hq);

// h[N,F] = silu(gate) * up. backward: dgate, dup overwritten.
void swiglu_forward(float* h, const float* gate, const float* up, int64_t n);
void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up, int64_t n);

// out[N,C] = table[ids[n]]; backward adds rows of dout into dtable in token order (deterministic).
// A vocabulary-parallel shard passes its rows [first_row, first_row + rows) of the whole table: tokens
// outside them embed as zeros and add nothing (rows < 0: the whole table).
void embedding_forward(float* out, const int32_t* ids, const float* table, int64_t N, int64_t C,
                       int64_t first_row = 0, int64_t rows = -1);
void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t N, int64_t C,
                        int64_t first_row = 0, int64_t rows = -1);

// Softmax cross-entropy against targets; target < 0 is ignored. losses[N] receives each token's loss (0 when
// ignored); returns their sum in token order. dlogits (may be null) is overwritten with
// scale · (softmax − onehot) for counted tokens, 0 elsewhere.
double cross_entropy_forward_backward(float* dlogits, double* losses, const float* logits, const int32_t* targets,
                                      int64_t N, int64_t V, float scale);

// In-place softmax of rows of width V.
void softmax_rows(float* x, int64_t rows, int64_t V);

}  // namespace tessera::cpu
