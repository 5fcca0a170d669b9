#pragma once
// Internal to the decoder: one layer's weights, gradients and saved activations, and the forward/backward
// of its two halves (attention, then the dense or MoE MLP). All buffers are sized once for the largest
// microbatch, so the step loop allocates nothing — except expert-parallel exchanges, whose sizes depend
// on where other ranks' tokens are routed.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/core/error.hpp"
#include "tessera/model/batch.hpp"
#include "tessera/model/parameter_store.hpp"
#include "tessera/model/expert_parallel.hpp"
#include "tessera/model/tensor_parallel.hpp"

namespace tessera::model::detail {

// A layer's sizes as this rank computes it: under tensor parallelism Hq, Hkv, F and Fm are the rank's
// shares (H, E, K stay whole) and `tp` sums the row-parallel partial outputs and input gradients.
struct Dims {
  int64_t H = 0, Hq = 0, Hkv = 0, D = 0, F = 0;  // hidden, heads, kv heads, head dim, dense ffn
  int64_t E = 0, K = 0, Fm = 0;                  // experts, top-k, expert ffn
  float eps = 1e-6f;
  bool qk_norm = false, qkv_bias = false, moe = false, norm_topk = true;
  double rope_theta = 1e6;
  TensorParallel* tp = nullptr;  // null: one rank holds the whole layer
  // Sequence parallelism (tp > 1): between the column- and row-parallel regions each rank holds only its
  // rows [first_row(N), first_row(N) + rows(N)) of the token-major activations (norms, residual adds).
  // Packed rows are not padded, so N need not divide by tp: ranks take chunks of ⌈N/tp⌉ rows in order
  // (the last ones fewer, possibly none), and the gathered buffers hold tp whole chunks, the rows past N
  // being padding that no computation reads.
  bool sp = false;
  // Expert parallelism: this rank holds experts [e0, e0 + El) and exchanges routed tokens over `ep`.
  ExpertParallel* ep = nullptr;
  int64_t e0 = 0, El = 0;

  static Dims of(const ModelConfig& m, TensorParallel* tp = nullptr, ExpertParallel* ep = nullptr,
                 bool sequence_parallel = false);

  int64_t chunk_rows(int64_t N) const { return sp ? (N + tp->size() - 1) / tp->size() : N; }
  int64_t first_row(int64_t N) const { return sp ? sequence_parallel_first_row(N, tp->rank(), tp->size()) : 0; }
  int64_t rows(int64_t N) const { return sp ? sequence_parallel_rows(N, tp->rank(), tp->size()) : N; }
  // Rows a buffer that is gathered or reduce-scattered over tp must hold: tp whole chunks.
  int64_t padded_rows(int64_t N) const { return sp ? chunk_rows(N) * tp->size() : N; }
};

// Sums n values over the tensor-parallel group (nothing without one).
inline void tp_sum(const Dims& d, float* data, int64_t n) {
  if (d.tp != nullptr && d.tp->size() > 1) d.tp->sum({data, static_cast<size_t>(n)});
}

// A row-parallel output: `partial` [N, H] holds this rank's partial sums; `out` receives the whole sum of
// this rank's rows — a reduce-scatter under sequence parallelism, else an all-reduce in place (callers
// pass out == partial). Under sp `partial` holds padded_rows(N) rows (the padding zeroed here) and `out`
// chunk_rows(N).
inline void reduce_rows(const Dims& d, float* partial, float* out, int64_t N) {
  if (!d.sp) {
    TESSERA_CHECK(out == partial, "without sequence parallelism a row-parallel output is summed in place");
    tp_sum(d, partial, N * d.H);
    return;
  }
  std::fill(partial + N * d.H, partial + d.padded_rows(N) * d.H, 0.0f);
  d.tp->reduce_scatter({partial, static_cast<size_t>(d.padded_rows(N) * d.H)},
                       {out, static_cast<size_t>(d.chunk_rows(N) * d.H)});
}

// Sequence parallelism: the whole [N, H] from every rank's rows, this rank's already at its place in `full`
// (which holds padded_rows(N) rows).
inline void gather_rows(const Dims& d, float* full, int64_t N) {
  if (d.sp) d.tp->all_gather({full, static_cast<size_t>(d.padded_rows(N) * d.H)});
}

// Pointers into the ParameterStore for one layer; the same struct holds values (const use) or grads.
struct LayerTensors {
  float *input_norm = nullptr, *q = nullptr, *q_bias = nullptr, *k = nullptr, *k_bias = nullptr, *v = nullptr,
        *v_bias = nullptr, *o = nullptr, *q_norm = nullptr, *k_norm = nullptr, *post_norm = nullptr;
  float *gate = nullptr, *up = nullptr, *down = nullptr, *router = nullptr;
  std::vector<float*> expert_gate, expert_up, expert_down;

  // Binds by role; `grads` picks the gradient buffer instead of the values.
  static LayerTensors bind(ParameterStore& store, const Dims& d, int layer, bool grads);
};

// What one layer's forward keeps for its backward.
struct LayerActivations {
  std::vector<float> ln1, rstd1, q, k, v, q_rstd, k_rstd, q_rot, k_rot, probs, attn, x_mid, ln2, rstd2;
  std::vector<float> gate, up, h;                       // dense MLP
  std::vector<float> router_probs, topk_weight;         // MoE: [N,E], [N,K]
  std::vector<float> router_lse;                        // [N] logsumexp of the router logits (z-loss)
  std::vector<int32_t> topk_expert, slot_assignment;    // [N,K] expert and assignment row of each slot
  std::vector<int32_t> expert_offsets, assign_token;    // [E+1], [N·K] rows grouped by expert, tokens in order
  std::vector<int32_t> expert_fill;                     // [E] counting-sort cursor
  std::vector<float> xe, ge, ue, he, ye;                // MoE per-assignment rows
  // Expert parallelism: values sent to / received from each peer, rows per (peer, local expert) received,
  // the received rows regrouped by local expert (ep_offsets over them; ep_order[i] = the received row at
  // expert-major position i), and those rows' expert activations.
  std::vector<int64_t> ep_send_values, ep_recv_values, ep_expert_rows;
  std::vector<int32_t> ep_offsets, ep_order;
  std::vector<float> xr, gr, ur, hr, yr;

  void allocate(const Dims& d, int64_t max_tokens, int64_t max_probs, bool keep_probs);
};

// Scratch shared by all layers (one layer's forward or backward at a time).
struct LayerScratch {
  std::vector<float> d_ln, d_q, d_k, d_v, d_attn, d_gate, d_up, d_h, d_router, d_topk;
  std::vector<float> d_xe, d_ge, d_ue, d_he, d_ye, rope_cos, rope_sin, probs;
  // Expert parallelism: the received rows' expert activation gradients and input/output gradients, and
  // the rows of an exchange as they travel.
  std::vector<float> ep_transfer, d_yr, d_xr, ep_rows;
  std::vector<float> rows, local_rows;  // [N, H] and this rank's [N / tp, H]: sequence-parallel transfers
  void allocate(const Dims& d, int64_t max_tokens, int64_t max_probs);
};

// transformers' load_balancing_loss_func over `layers` × `tokens` routing decisions:
// E · Σ_e (selections_e / T) · (Σ_t prob_te / T), T = layers · tokens.
double load_balancing_loss(const std::vector<double>& expert_selections, const std::vector<double>& expert_prob_sums,
                           int64_t layers, int64_t tokens);
// d(aux_scale · that loss)/d(prob_te), the same for every token: aux_scale · E · selections_e / T².
void load_balancing_grad(std::vector<double>& aux_grad, const std::vector<double>& expert_selections,
                         int64_t layers, int64_t tokens, double aux_scale);

// x_mid = x_in + Attention(RMSNorm(x_in)). The softmax goes to a.probs when the activations keep it, else
// to probs_scratch (selective recompute rebuilds it in the backward).
// Under sequence parallelism x_in and x_mid are this rank's rows; `rows_scratch` holds [N, H].
void attention_forward(const Dims& d, const LayerTensors& w, LayerActivations& a, const float* x_in,
                       const Batch& batch, const float* rope_cos, const float* rope_sin, float* probs_scratch,
                       float* rows_scratch);
// d_x (in: gradient w.r.t. x_mid; out: w.r.t. x_in). Recomputes the softmax into scratch when not kept.
void attention_backward(const Dims& d, const LayerTensors& w, const LayerTensors& g, LayerActivations& a,
                        LayerScratch& s, float* d_x, const float* x_in, const Batch& batch);

// x_out = x_mid + MLP(RMSNorm(x_mid)) for the dense SwiGLU or the MoE block.
void mlp_forward(const Dims& d, const LayerTensors& w, LayerActivations& a, LayerScratch& s, float* x_out,
                 int64_t N);
// aux_grad[E] (MoE only): d(aux_scale · aux)/d(router probability of expert e), the same for every token;
// z_coef: d(z_scale · z)/d(lse_t) = z_coef · lse_t for this layer's tokens.
void mlp_backward(const Dims& d, const LayerTensors& w, const LayerTensors& g, LayerActivations& a,
                  LayerScratch& s, float* d_x, int64_t N, const std::vector<double>& aux_grad, double z_coef);

// The MoE branch on a.ln2: writes the block output to out[N,H]; the backward adds d(ln2) into s.d_ln.
void moe_forward(const Dims& d, const LayerTensors& w, LayerActivations& a, LayerScratch& s, float* out, int64_t N);
void moe_backward(const Dims& d, const LayerTensors& w, const LayerTensors& g, LayerActivations& a,
                  LayerScratch& s, const float* d_out, int64_t N, const std::vector<double>& aux_grad, double z_coef);

struct VocabParallelScratch {
  std::vector<float> max;
  std::vector<double> sums;
};
// cpu::cross_entropy_forward_backward over logits split by vocabulary: this rank holds columns
// [v0, v0 + Vl) of each token's row (and writes only those of dlogits, which may be null or alias
// logits). Every rank returns the same Σ loss, in token order.
double vocab_parallel_cross_entropy(TensorParallel& tp, float* dlogits, double* losses, const float* logits,
                                    const int32_t* targets, int64_t N, int64_t Vl, int64_t v0, float scale,
                                    VocabParallelScratch& scratch);

}  // namespace tessera::model::detail
