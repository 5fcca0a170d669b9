#pragma once
// `tessera plan`: everything about a run that follows from the config and the world size before any
// device is touched — the rank grid, node placement, parameters and a memory budget per rank, FLOPs per
// token — and the refusal, with its reason, of layouts that cannot run.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "tessera/core/config.hpp"
#include "tessera/dist/topology.hpp"

namespace tessera::plan {

struct PlanOptions {
  int world_size = 0;  // 0: tp * cp * pp * max(dp, 1)
  int gpus_per_node = 8;
  double gpu_memory_bytes = 80.0 * (1ull << 30);
};

// One pipeline stage's figures; every rank of a stage holds the same amounts (TP and EP shards are equal).
struct StageBudget {
  int stage = 0;
  int first_layer = 0;
  int num_layers = 0;
  int64_t dense_params = 0;    // this rank's share of non-expert parameters
  int64_t expert_params = 0;   // this rank's share of routed-expert parameters
  int in_flight_microbatches = 0;  // 1F1B: stage s holds min(pp - s, microbatches) forward activations
  double weight_bytes = 0;
  double grad_bytes = 0;
  double optimizer_bytes = 0;
  double activation_bytes = 0;
  double total_bytes() const { return weight_bytes + grad_bytes + optimizer_bytes + activation_bytes; }
};

struct Plan {
  Config config;
  dist::Topology topology;
  PlanOptions options;
  int64_t total_params = 0;
  int64_t active_params = 0;
  int64_t microbatches = 0;      // per optimizer step on one data-parallel rank
  int64_t global_batch_rows = 0;
  double flops_per_token = 0;
  std::vector<StageBudget> stages;
};

// Builds the plan or throws tessera::Error with the reason the layout cannot run.
Plan make_plan(const Config& config, const PlanOptions& options);

// Layer counts per pipeline stage: parallel.pipeline_layers, or an even split whose remainder goes to the
// earliest stages (the last stage also carries the LM head); with virtual stages, the sum over the stage's
// chunks.
std::vector<int> layers_per_stage(const ModelConfig& model, const ParallelConfig& parallel);
// Decoder layers per virtual stage (pp × virtual_stages of them; virtual stage c·pp + s is chunk c of
// stage s): pipeline_layers when given, else an even split with the remainder on the first ones.
std::vector<int> layers_per_virtual_stage(const ModelConfig& model, const ParallelConfig& parallel);

std::string format_plan(const Plan& plan);
nlohmann::json plan_to_json(const Plan& plan);

// "80GiB", "141 GB", "512MiB", "1e9" (bytes) → bytes; throws on anything else.
double parse_memory_size(const std::string& text);

}  // namespace tessera::plan
