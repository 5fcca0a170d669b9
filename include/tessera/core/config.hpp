#pragma once
// Typed run configuration. Each section is a plain struct whose member initialisers are the defaults; the
// schema (config_schema.hpp) binds every field to its YAML key, one-line doc and allowed range, so the
// loader, `tessera config --resolved` and docs/configuration.md are all generated from one description.

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

enum class Architecture { qwen3, qwen3_moe, qwen2, llama };
enum class Precision { bf16, fp32 };
enum class Device { cpu, cuda };
enum class Recompute { none, selective, full };
enum class LrDecay { cosine, linear, constant };
enum class LogLevel { debug, info, warn, error };

struct ModelConfig {
  std::string name = "tiny-dense";
  Architecture architecture = Architecture::qwen3;
  int64_t vocab_size = 512;
  int64_t hidden_size = 64;
  int num_layers = 2;
  int num_attention_heads = 4;
  int num_kv_heads = 2;
  int head_dim = 0;  // 0: hidden_size / num_attention_heads
  int64_t ffn_hidden_size = 128;
  int64_t max_position_embeddings = 4096;
  double rope_theta = 1e6;
  double rms_norm_eps = 1e-6;
  bool qk_norm = true;
  bool qkv_bias = false;
  bool tie_embeddings = false;
  int num_experts = 0;
  int num_experts_per_tok = 0;
  int64_t moe_ffn_hidden_size = 0;
  bool norm_topk_prob = true;
  double router_aux_loss_coef = 0.001;
  double router_z_loss_coef = 0.0;
  double init_std = 0.02;
  std::string init_from;  // a Hugging Face model directory to start from; empty: random initialisation

  bool is_moe() const { return num_experts > 0; }
  int resolved_head_dim() const {
    return head_dim > 0 ? head_dim : static_cast<int>(hidden_size / num_attention_heads);
  }
};

struct ParallelConfig {
  int tp = 1;
  int cp = 1;
  int pp = 1;
  int dp = 0;   // 0: world size / (tp * cp * pp)
  int ep = 1;
  int etp = 0;  // 0: same as tp
  std::string order = "tp-cp-ep-dp-pp";
  bool sequence_parallel = false;
  std::vector<int> pipeline_layers;  // empty: layers split evenly over pp stages
  int virtual_stages = 1;            // model chunks per pipeline stage (interleaved 1F1B when > 1)
  int zero_stage = 1;
};

struct DataConfig {
  std::vector<std::string> paths;  // empty: synthetic tokens
  std::vector<double> weights;     // empty: by rows
  std::string tokenizer;           // empty: not checked
  int64_t seq_length = 4096;
};

struct OptimConfig {
  double lr = 3e-4;
  double min_lr = 3e-5;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double clip_grad = 1.0;
  int64_t warmup_steps = 100;
  LrDecay decay = LrDecay::cosine;
  int64_t decay_steps = 0;  // 0: train.steps - warmup_steps
};

struct TrainConfig {
  int64_t steps = 1000;
  int64_t micro_batch_size = 1;
  int64_t global_batch_size = 0;  // 0: micro_batch_size * dp (one microbatch per step)
  uint64_t seed = 1234;
  Precision precision = Precision::bf16;
  Device device = Device::cpu;
  Recompute recompute = Recompute::selective;
  double peak_tflops = 989.0;
  double max_duration = 0;    // seconds of wall clock for this run; 0: no limit
  int64_t exit_interval = 0;  // stop (checkpoint, exit 75) after a step divisible by it; 0: never
};

struct CheckpointConfig {
  std::string dir;  // empty: <logging.run_dir>/checkpoints
  int64_t interval = 0;  // 0: only at the end and on preemption
  int keep_last = 3;
  bool async = false;  // interval saves written by a background thread from a snapshot
};

struct LoggingConfig {
  std::string run_dir = "runs/default";
  LogLevel level = LogLevel::info;
  int64_t interval = 1;
};

struct Config {
  ModelConfig model;
  ParallelConfig parallel;
  DataConfig data;
  OptimConfig optim;
  TrainConfig train;
  CheckpointConfig checkpoint;
  LoggingConfig logging;
};

// Reads a YAML file, applies `--set section.key=value` overrides in order, checks every value and the
// relations between them. Any problem throws tessera::Error naming the key path and the file line (or the
// override) it came from. Unknown keys are errors, with the closest known key suggested.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from YAML text; `source_name` stands in for the file name in messages.
Config parse_config(const std::string& yaml_text, const std::string& source_name,
                    const std::vector<std::string>& overrides = {});

// The full resolved configuration as YAML (every field, schema order); parses back to an equal Config.
std::string to_yaml(const Config& config, bool with_docs = false);

// Markdown reference of every field (key, type, default, allowed values, doc), for docs/configuration.md.
std::string config_reference_markdown();

std::string_view to_string(Architecture);
std::string_view to_string(Precision);
std::string_view to_string(Device);
std::string_view to_string(Recompute);

}  // namespace tessera
