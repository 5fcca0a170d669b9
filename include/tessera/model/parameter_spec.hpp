#pragma once
// Every parameter tensor of a model, described once: its Hugging Face name, global shape, where it sits in
// the network (embedding, a decoder layer, the head) and how tensor and expert parallelism cut it. The
// plan counts from this list today; the parameter registry, sharding, checkpoints and HF import/export
// build on the same list, so a tensor's name and split are never restated elsewhere.

#include <cstdint>
#include <string>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/core/dtype.hpp"

namespace tessera::model {

// How tensor parallelism (tp, or etp inside experts) divides a tensor.
enum class Split {
  replicated,  // every TP rank holds the whole tensor (norms, router)
  column,      // dim 0 split: output features (q, gate/up projections and their biases)
  row,         // dim 1 split: input features (o, down projections)
  kv_column,   // dim 0 split by kv heads; replicated head-wise when tp exceeds the kv heads
  vocab,       // dim 0 split over the vocabulary (embedding, LM head)
};

enum class Placement { embedding, layer, final_norm, head };

// What a tensor is for, so layers bind their weights by role instead of by name strings or list positions.
enum class Role {
  embedding, input_norm, q_proj, q_bias, k_proj, k_bias, v_proj, v_bias, o_proj, q_norm, k_norm,
  post_attention_norm, gate_proj, up_proj, down_proj, router, final_norm, lm_head
};

struct ParameterSpec {
  std::string hf_name;
  std::vector<int64_t> shape;
  Split split = Split::replicated;
  Placement placement = Placement::layer;
  int layer = -1;   // decoder layer index, -1 outside layers
  int expert = -1;  // routed expert index, -1 for non-expert tensors
  bool weight_decay = true;  // false for norms and biases (decoupled AdamW skips them)
  Role role = Role::embedding;
  // How the tensor is stored outside training (HF files, GPU weights): bf16 unless an imported checkpoint
  // said otherwise. Training keeps fp32 master values whatever this says.
  DType dtype = DType::bf16;

  int64_t numel() const;
  bool is_expert() const { return expert >= 0; }
};

std::vector<ParameterSpec> parameter_specs(const ModelConfig& config);

// Parameters of the ModelConfig as Hugging Face counts them (the sum over parameter_specs).
int64_t total_parameters(const ModelConfig& config);

// Parameters that touch one token: experts only for the top-k routed ones.
int64_t active_parameters(const ModelConfig& config);

}  // namespace tessera::model
