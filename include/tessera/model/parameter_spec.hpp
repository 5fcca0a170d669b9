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

// The part of a tensor one tensor-parallel rank holds: indices [begin, begin + count) of dimension `dim`,
// whose unsplit extent is `extent`. dim = -1: the whole tensor.
struct Shard {
  int dim = -1;
  int64_t begin = 0, count = 0, extent = 0;
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
  // Set on a tensor-parallel rank's copy: `shape` is then the local shard's, this says where it sits.
  Shard shard{};
  // Position in the whole model's list (parameter_specs), kept when a rank holds a subset or reorders it.
  int64_t index = -1;

  int64_t numel() const;
  // The unsplit tensor's shape (the HF shape), whatever part of it this spec describes.
  std::vector<int64_t> full_shape() const;
  bool is_sharded() const { return shard.dim >= 0; }
  bool is_expert() const { return expert >= 0; }
};

std::vector<ParameterSpec> parameter_specs(const ModelConfig& config);

// Refuses, naming the size, a tensor-parallel degree that does not divide the model: attention heads,
// kv heads (or tp a multiple of them: kv heads are then replicated), FFN widths and the vocabulary.
void check_tensor_parallel(const ModelConfig& config, int tp);
// Which part of `spec` tensor-parallel rank `rank` of `tp` holds (Megatron's split): column tensors by
// output rows, row tensors by input columns, kv tensors by kv head (tp > kv heads: the kv head its query
// heads use, replicated), vocabulary tensors by vocabulary rows; replicated tensors whole.
Shard tensor_parallel_shard(const ParameterSpec& spec, const ModelConfig& config, int rank, int tp);
// The specs of `specs` as rank `rank` of `tp` holds them (shapes cut, shard set). tp = 1 returns them as is.
std::vector<ParameterSpec> shard_specs(std::vector<ParameterSpec> specs, const ModelConfig& config, int rank, int tp);

// Refuses an expert-parallel degree that is not a divisor of the experts (or a dense model), naming both.
void check_expert_parallel(const ModelConfig& config, int ep);
// The tensors expert-parallel rank `rank` of `ep` holds: every non-expert tensor, then its experts
// [rank·E/ep, (rank+1)·E/ep), each group in the given order. Dense first, so that the part reduced over
// the data-parallel group is one contiguous prefix of the rank's flat buffer; `index` keeps each tensor's
// place in the whole model. ep = 1 returns the specs as is.
std::vector<ParameterSpec> expert_parallel_specs(const std::vector<ParameterSpec>& specs, const ModelConfig& config,
                                                 int rank, int ep);

// Parameters of the ModelConfig as Hugging Face counts them (the sum over parameter_specs).
int64_t total_parameters(const ModelConfig& config);

// Parameters that touch one token: experts only for the top-k routed ones.
int64_t active_parameters(const ModelConfig& config);

}  // namespace tessera::model
