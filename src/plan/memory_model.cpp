#include "tessera/plan/memory_model.hpp"

#include "tessera/core/error.hpp"
#include "tessera/model/parameter_spec.hpp"

namespace tessera::plan {

StateBytes state_bytes(Precision precision) {
  switch (precision) {
    case Precision::bf16: return {2, 4, 12};
    case Precision::fp32: return {4, 4, 8};
  }
  TESSERA_FAIL("unknown precision");
}

StateBytes zero_paper_state_bytes() { return {2, 2, 12}; }

StateBytes sharded_state_bytes(const StateBytes& b, int zero_stage, int shards) {
  TESSERA_CHECK(shards >= 1, "ZeRO shards must be ≥ 1, got {}", shards);
  TESSERA_CHECK(zero_stage >= 0 && zero_stage <= 2, "ZeRO stage {} is not supported (0, 1 or 2)", zero_stage);
  const double d = shards;
  return {b.param, zero_stage >= 2 ? b.grad / d : b.grad, zero_stage >= 1 ? b.optimizer / d : b.optimizer};
}

double bytes_per_parameter(const StateBytes& bytes, int zero_stage, int shards) {
  const StateBytes s = sharded_state_bytes(bytes, zero_stage, shards);
  return s.param + s.grad + s.optimizer;
}

double activation_bytes_per_layer(const ActivationShape& x) {
  const double s = x.seq, b = x.micro, h = x.hidden, a = x.heads, t = x.tp;
  const double sbh = s * b * h;
  const double scores = 5.0 * a * s / h;  // the attention softmax and its dropout mask, O(s^2)
  double bytes = 0;
  switch (x.recompute) {
    case Recompute::none:
      bytes = x.sequence_parallel ? sbh / t * (34.0 + scores) : sbh * (10.0 + 24.0 / t + scores / t);
      break;
    case Recompute::selective:
      bytes = x.sequence_parallel ? sbh * 34.0 / t : sbh * (10.0 + 24.0 / t);
      break;
    case Recompute::full:
      bytes = 2.0 * sbh;  // only the layer input is kept
      break;
  }
  return bytes * x.bytes_per_value / 2.0;
}

double training_flops_per_token(int64_t matmul_params, int64_t layers, int64_t heads, int64_t head_dim,
                                int64_t seq_length) {
  return 6.0 * static_cast<double>(matmul_params) +
         12.0 * static_cast<double>(layers) * static_cast<double>(heads) * static_cast<double>(head_dim) *
             static_cast<double>(seq_length);
}

double model_flops_per_token(const ModelConfig& m, int64_t seq_length) {
  const int64_t embedding = m.vocab_size * m.hidden_size;
  const int64_t matmul_params = model::active_parameters(m) - embedding + (m.tie_embeddings ? embedding : 0);
  return training_flops_per_token(matmul_params, m.num_layers, m.num_attention_heads, m.resolved_head_dim(),
                                  seq_length);
}

}  // namespace tessera::plan
