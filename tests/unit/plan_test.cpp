#include <gtest/gtest.h>

#include "tessera/core/config.hpp"
#include "tessera/core/error.hpp"
#include "test_support.hpp"
#include "tessera/model/parameter_spec.hpp"
#include "tessera/plan/memory_model.hpp"
#include "tessera/plan/plan.hpp"

namespace tessera::plan {
namespace {

Config preset(const std::string& name, const std::vector<std::string>& overrides = {}) {
  return load_config(std::string(TESSERA_SOURCE_DIR) + "/configs/" + name + ".yaml", overrides);
}

using testing::error_of;

// --- The formulas against their papers' own examples -------------------------------------------------

TEST(MemoryModel, ZeroPaperFigureOne) {
  // Rajbhandari et al. 2020, Figure 1: Ψ = 7.5B, Nd = 64, K = 12 → 120 GB, 31.4 GB, 16.6 GB.
  const double psi = 7.5e9;
  const StateBytes b = zero_paper_state_bytes();
  EXPECT_NEAR(psi * bytes_per_parameter(b, 0, 64) / 1e9, 120.0, 0.05);
  EXPECT_NEAR(psi * bytes_per_parameter(b, 1, 64) / 1e9, 31.4, 0.05);
  EXPECT_NEAR(psi * bytes_per_parameter(b, 2, 64) / 1e9, 16.6, 0.05);
}

TEST(MemoryModel, MegatronDistributedOptimizerBytes) {
  // Megatron-LM docs: bf16 params + fp32 grads cost 18 bytes/param, 6 + 12/d with the distributed optimizer.
  const StateBytes b = state_bytes(Precision::bf16);
  EXPECT_DOUBLE_EQ(bytes_per_parameter(b, 0, 8), 18.0);
  for (int d : {1, 2, 8, 64}) EXPECT_DOUBLE_EQ(bytes_per_parameter(b, 1, d), 6.0 + 12.0 / d);
  // fp32 params and grads: 16 bytes, 8 + 8/d distributed (the same docs' fp32 row).
  EXPECT_DOUBLE_EQ(bytes_per_parameter(state_bytes(Precision::fp32), 1, 4), 8.0 + 8.0 / 4);
  EXPECT_THROW(bytes_per_parameter(b, 3, 8), Error);
}

TEST(MemoryModel, KorthikantiActivations) {
  // GPT-3 175B (a = 96, s = 2048, h = 12288): the paper notes 5as/h = 80, far above the 34 of the rest.
  ActivationShape x{2048, 1, 12288, 96, 1, false, Recompute::none, 2};
  const double sbh = 2048.0 * 12288.0;
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(x), sbh * (34 + 80));
  x.tp = 8;
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(x), sbh * (10 + 24.0 / 8 + 80.0 / 8));
  const double tp_only = activation_bytes_per_layer(x);
  x.sequence_parallel = true;
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(x), sbh / 8 * (34 + 80));
  x.recompute = Recompute::selective;
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(x), sbh * 34 / 8);
  // The abstract's "reduces activation memory by 5x" against tensor parallelism alone.
  EXPECT_GT(tp_only / activation_bytes_per_layer(x), 5.0);
  x.sequence_parallel = false;
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(x), sbh * (10 + 24.0 / 8));
  x.recompute = Recompute::full;
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(x), 2 * sbh);
  x.bytes_per_value = 4;  // fp32 activations are twice the paper's 16-bit ones
  EXPECT_DOUBLE_EQ(activation_bytes_per_layer(x), 4 * sbh);
}

TEST(MemoryModel, PalmModelFlopsUtilisation) {
  // PaLM 540B (540.35B params, L 118, H 48, Q 256, T 2048) trained at 238.3K tokens/s on 6144 TPU v4
  // (275 TFLOP/s peak each) and the paper reports 46.2% MFU.
  const double flops = training_flops_per_token(540'350'000'000LL, 118, 48, 256, 2048);
  const double mfu = 238.3e3 * flops / (6144 * 275e12);
  EXPECT_NEAR(mfu, 0.462, 0.002);
}

// --- Parameter counts against the Hugging Face models ----------------------------------------------------

TEST(ParameterSpec, CountsMatchHuggingFaceModels) {
  // Per-layer figures written out independently of parameter_specs().
  const int64_t q8 = 4096LL * 4096, kv8 = 1024LL * 4096, mlp8 = 3LL * 4096 * 12288;
  const int64_t layer8 = 2 * q8 + 2 * kv8 + mlp8 + 2 * 128 + 2 * 4096;
  EXPECT_EQ(model::total_parameters(preset("qwen3-8b").model), 36 * layer8 + 2 * 151936LL * 4096 + 4096);
  EXPECT_EQ(model::total_parameters(preset("qwen3-8b").model), 8'190'735'360LL);  // Qwen3-8B model card: 8.2B

  EXPECT_EQ(model::total_parameters(preset("qwen2.5-7b").model), 7'615'616'512LL);  // Qwen2.5-7B: 7.61B

  const ModelConfig moe = preset("qwen3-30b-a3b").model;
  EXPECT_EQ(model::total_parameters(moe), 30'532'122'624LL);  // Qwen3-30B-A3B: 30.5B total
  // 3.3B activated: everything but the 120 experts per layer a token does not visit.
  const int64_t expert = 3LL * 2048 * 768;
  EXPECT_EQ(model::active_parameters(moe), 30'532'122'624LL - 48LL * 120 * expert);
  EXPECT_EQ(model::active_parameters(moe), 3'353'032'704LL);
}

TEST(ParameterSpec, NamesShapesAndSplits) {
  ModelConfig m = preset("qwen2.5-7b").model;
  const auto specs = model::parameter_specs(m);
  EXPECT_EQ(specs.front().hf_name, "model.embed_tokens.weight");
  EXPECT_EQ(specs.back().hf_name, "lm_head.weight");
  const auto find = [&](const std::string& name) {
    for (const auto& s : specs)
      if (s.hf_name == name) return s;
    ADD_FAILURE() << "no tensor " << name;
    return model::ParameterSpec{};
  };
  EXPECT_EQ(find("model.layers.3.self_attn.k_proj.bias").shape, (std::vector<int64_t>{512}));
  EXPECT_EQ(find("model.layers.3.self_attn.k_proj.weight").split, model::Split::kv_column);
  EXPECT_EQ(find("model.layers.27.mlp.down_proj.weight").shape, (std::vector<int64_t>{3584, 18944}));
  EXPECT_FALSE(find("model.layers.0.input_layernorm.weight").weight_decay);
  EXPECT_FALSE(find("model.layers.0.self_attn.q_proj.bias").weight_decay);
  m.tie_embeddings = true;
  EXPECT_EQ(model::parameter_specs(m).back().hf_name, "model.norm.weight");
}

// --- Pinned plans ---------------------------------------------------------------------------------------

constexpr double kGiB = 1024.0 * 1024 * 1024;

TEST(Plan, Qwen3_8B_OnEightGpusTp4Pp2) {
  const Plan p = make_plan(preset("qwen3-8b"), {8, 8, 80 * kGiB});
  ASSERT_EQ(p.stages.size(), 2u);
  EXPECT_EQ(p.topology.dp(), 1);
  const int64_t layer_share = (2 * 4096LL * 4096 + 2 * 1024LL * 4096 + 3LL * 4096 * 12288) / 4 + 256 + 8192;
  const int64_t vocab_share = 151936LL * 4096 / 4;
  EXPECT_EQ(p.stages[0].dense_params, 18 * layer_share + vocab_share);
  EXPECT_EQ(p.stages[1].dense_params, 18 * layer_share + vocab_share + 4096);
  EXPECT_EQ(p.stages[0].dense_params, 1'023'955'456);
  const double n0 = static_cast<double>(p.stages[0].dense_params);
  EXPECT_DOUBLE_EQ(p.stages[0].weight_bytes, 2 * n0);
  EXPECT_DOUBLE_EQ(p.stages[0].grad_bytes, 4 * n0);
  EXPECT_DOUBLE_EQ(p.stages[0].optimizer_bytes, 12 * n0);  // dp 1: nothing to shard over
  // Selective recompute + SP: sbh·34/t per layer, 18 layers, 2 microbatches in flight on stage 0 (1F1B).
  EXPECT_EQ(p.stages[0].in_flight_microbatches, 2);
  EXPECT_DOUBLE_EQ(p.stages[0].activation_bytes, 4096.0 * 4096 * 34 / 4 * 18 * 2);
  EXPECT_NEAR(p.stages[0].total_bytes() / kGiB, 21.95, 0.005);
  EXPECT_EQ(p.microbatches, 256);
  // 6N + 12LHQT with N = all weights but the embedding lookup.
  EXPECT_DOUBLE_EQ(p.flops_per_token, 6.0 * (8'190'735'360.0 - 151936.0 * 4096) + 12.0 * 36 * 32 * 128 * 4096);
}

TEST(Plan, Qwen3_8B_OnSixtyFourGpus) {
  const Plan p = make_plan(preset("qwen3-8b"), {64, 8, 80 * kGiB});
  EXPECT_EQ(p.topology.dp(), 8);
  EXPECT_EQ(p.microbatches, 32);
  const double n0 = static_cast<double>(p.stages[0].dense_params);
  EXPECT_DOUBLE_EQ(p.stages[0].optimizer_bytes, 12 * n0 / 8);  // ZeRO-1 over dp 8: Megatron's 6 + 12/d
  EXPECT_DOUBLE_EQ(p.stages[0].weight_bytes + p.stages[0].grad_bytes + p.stages[0].optimizer_bytes,
                   n0 * (6 + 12.0 / 8));
  EXPECT_NEAR(p.stages[0].total_bytes() / kGiB, 11.93, 0.005);
  const Plan z2 = make_plan(preset("qwen3-8b", {"parallel.zero_stage=2"}), {64, 8, 80 * kGiB});
  EXPECT_DOUBLE_EQ(z2.stages[0].grad_bytes, 4 * n0 / 8);
  // tp4 groups stay inside a node; pp groups pair ranks 32 apart, across nodes.
  EXPECT_EQ(p.topology.group_of(dist::Group::tp, 5), (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(p.topology.group_of(dist::Group::pp, 5), (std::vector<int>{5, 37}));
}

TEST(Plan, Qwen3_30B_A3B_WithEp8) {
  const Plan p = make_plan(preset("qwen3-30b-a3b"), {16, 8, 80 * kGiB});
  EXPECT_EQ(p.topology.ep(), 8);
  EXPECT_EQ(p.topology.dp(), 8);
  EXPECT_EQ(p.topology.edp(), 1);
  // 16 of 128 experts per rank, 24 layers per stage, 3 matrices of 2048 × 768 each.
  EXPECT_EQ(p.stages[0].expert_params, 24LL * 16 * 3 * 2048 * 768);
  const int64_t attention = 2 * 4096LL * 2048 + 2 * 512LL * 2048 + 2 * 128 + 2 * 2048 + 128 * 2048;
  EXPECT_EQ(p.stages[0].dense_params, 24 * attention + 151936LL * 2048);
  const double e = static_cast<double>(p.stages[0].expert_params), d = static_cast<double>(p.stages[0].dense_params);
  // Dense state shards over dp 8, expert state over edp 1.
  EXPECT_DOUBLE_EQ(p.stages[0].optimizer_bytes, 12 * d / 8 + 12 * e);
  EXPECT_NEAR(p.stages[0].total_bytes() / kGiB, 48.51, 0.005);
  // MoE folding: expert layers see ep groups of 8 contiguous ranks even though attention's dp group is 8 too.
  EXPECT_EQ(p.topology.group_of(dist::Group::ep, 9), (std::vector<int>{8, 9, 10, 11, 12, 13, 14, 15}));
}

TEST(Plan, RefusesImpossibleLayoutsWithTheReason) {
  EXPECT_NE(error_of([] { make_plan(preset("qwen3-8b"), {12, 8, 80 * kGiB}); }).find("does not divide world size 12"),
            std::string::npos);
  EXPECT_NE(error_of([] { preset("qwen3-8b", {"parallel.tp=3"}); }).find("3 does not divide num_attention_heads = 32"),
            std::string::npos);
  EXPECT_NE(error_of([] { preset("qwen2.5-7b", {"parallel.tp=7", "parallel.pp=1"}); })
                .find("num_kv_heads = 4 do not divide one another"),
            std::string::npos);
  EXPECT_NE(error_of([] { preset("tiny-dense", {"parallel.pp=8", "parallel.tp=1"}); })
                .find("8 pipeline stages but only 4 layers"),
            std::string::npos);
  EXPECT_NE(error_of([] { preset("qwen3-30b-a3b", {"parallel.ep=3"}); }).find("3 does not divide num_experts = 128"),
            std::string::npos);
  const std::string memory = error_of([] { make_plan(preset("qwen3-8b", {"parallel.tp=1", "parallel.pp=1", "parallel.sequence_parallel=false"}), {1, 8, 80 * kGiB}); });
  EXPECT_NE(memory.find("pipeline stage 0 needs"), std::string::npos) << memory;
  EXPECT_NE(memory.find("but the GPU has 80.00 GiB"), std::string::npos) << memory;
  EXPECT_NE(error_of([] { make_plan(preset("tiny-dense", {"train.global_batch_size=3", "train.micro_batch_size=1"}),
                                    {8, 8, 80 * kGiB}); })
                .find("not a multiple of micro_batch_size × dp"),
            std::string::npos);
}

TEST(Plan, UnevenAndExplicitPipelineSplits) {
  ModelConfig m;
  m.num_layers = 7;
  ParallelConfig p;
  p.pp = 3;
  EXPECT_EQ(layers_per_stage(m, p), (std::vector<int>{3, 2, 2}));
  p.pipeline_layers = {1, 3, 3};
  EXPECT_EQ(layers_per_stage(m, p), (std::vector<int>{1, 3, 3}));
}

TEST(Plan, JsonCarriesGroupsAndStages) {
  const auto j = plan_to_json(make_plan(preset("tiny-moe", {"parallel.pp=2", "parallel.ep=4", "train.global_batch_size=8"}), {8, 4, 80 * kGiB}));
  EXPECT_EQ(j["world_size"], 8);
  EXPECT_EQ(j["groups"]["ep"].size(), 2u);
  EXPECT_EQ(j["node_of_rank"][7], 1);
  EXPECT_EQ(j["stages"].size(), 2u);
}

TEST(Plan, ParsesMemorySizes) {
  EXPECT_DOUBLE_EQ(parse_memory_size("80GiB"), 80 * kGiB);
  EXPECT_DOUBLE_EQ(parse_memory_size("141 GB"), 141e9);
  EXPECT_DOUBLE_EQ(parse_memory_size("1e9"), 1e9);
  EXPECT_THROW(parse_memory_size("80 gigs"), Error);
  EXPECT_THROW(parse_memory_size("lots"), Error);
  EXPECT_THROW(parse_memory_size("-3GiB"), Error);
}

}  // namespace
}  // namespace tessera::plan
