// GPU benchmarks for bench/gpu/check.sh, one JSON line per run:
//   --gemm-peak         the bf16 GEMM rate cuBLASLt reaches here (8192³ on random data): the MFU denominator
//   --config FILE       full training steps (forward, backward, clip, AdamW) of FILE's model on one GPU in
//                       FILE's precision, timed with CUDA events after warm-up, with the time per phase
//                       (per-layer attention, MLP/MoE, head, optimizer); every step trains on the same
//                       synthetic batch, as the PyTorch peer (torch_step.py, same config, same call) does,
//                       so both loss columns show the same thing: how fast one batch is learnt.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "../../src/backend/cuda/cuda_check.hpp"
#include "../../src/backend/cuda/device_buffer.hpp"
#include "tessera/backend/cuda/blas.hpp"
#include "tessera/backend/cuda/gpu_trainer.hpp"
#include "tessera/backend/cuda/ops.hpp"
#include "tessera/backend/cuda/phase_timer.hpp"
#include "tessera/core/config.hpp"
#include "tessera/plan/memory_model.hpp"
#include "tessera/plan/plan.hpp"
#include "tessera/train/synthetic_data.hpp"

namespace tessera::cuda {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Uniform in [-1, 1) from a fixed xorshift stream: random data (never zeros, which run faster).
std::vector<float> random_host(size_t n, uint64_t seed) {
  std::vector<float> out(n);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : out) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x = static_cast<float>(static_cast<double>(s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
  return out;
}

double used_bytes() {
  size_t free = 0, total = 0;
  TESSERA_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return static_cast<double>(total - free);
}

nlohmann::json gemm_peak(int64_t size, int repeats) {
  const int64_t n = size * size;
  DeviceBuffer<float> staging(n);
  DeviceBuffer<bf16> a(n), b(n), c(n);
  for (auto* target : {&a, &b}) {
    const auto host = random_host(static_cast<size_t>(n), target == &a ? 1 : 2);
    TESSERA_CUDA_CHECK(cudaMemcpy(staging.get(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
    TESSERA_CUDA_CHECK((convert<bf16, float>(target->get(), staging.get(), n, nullptr)));
  }
  Blas blas(nullptr);
  cudaEvent_t start, stop;
  TESSERA_CUDA_CHECK(cudaEventCreate(&start));
  TESSERA_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i < repeats + 3; ++i) {
    TESSERA_CUDA_CHECK(cudaEventRecord(start, nullptr));
    blas.gemm_nt(c.get(), a.get(), b.get(), size, size, size);
    TESSERA_CUDA_CHECK(cudaEventRecord(stop, nullptr));
    TESSERA_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    TESSERA_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    if (i >= 3) ms.push_back(t);  // the first calls pay for the heuristic and module loading
  }
  const double t = median(ms);
  return {{"kind", "gemm_peak"}, {"m", size}, {"ms", t}, {"tflops", 2.0 * static_cast<double>(size) * size * size / (t * 1e9)}};
}

nlohmann::json train_steps(const std::string& path, int steps, int warmup) {
  const Config config = load_config(path);
  const double baseline = used_bytes();
  GpuTrainer trainer(config);
  const int64_t microbatches = train::microbatches_per_step(config.train);
  cudaEvent_t start, stop;
  TESSERA_CUDA_CHECK(cudaEventCreate(&start));
  TESSERA_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  double loss_first = 0, loss_last = 0;
  int64_t tokens = 0;
  PhaseTimer timer(nullptr);
  std::vector<model::Batch> batches;
  for (int64_t m = 0; m < microbatches; ++m)
    batches.push_back(train::synthetic_batch(config.model.vocab_size, config.data.seq_length,
                                             config.train.micro_batch_size, config.train.seed, 0, m));
  for (int s = 0; s < warmup + steps; ++s) {
    if (s == warmup) trainer.set_timer(&timer);
    TESSERA_CUDA_CHECK(cudaEventRecord(start, nullptr));
    const train::StepStats stats = trainer.step(batches);
    TESSERA_CUDA_CHECK(cudaEventRecord(stop, nullptr));
    TESSERA_CUDA_CHECK(cudaEventSynchronize(stop));
    float t = 0;
    TESSERA_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    if (s == 0) loss_first = stats.loss;
    loss_last = stats.loss;
    tokens = stats.tokens;
    if (s >= warmup) ms.push_back(t), timer.collect();
    std::fprintf(stderr, "step %d: loss %.4f grad_norm %.3f %.1f ms\n", s + 1, stats.loss, stats.grad_norm, t);
  }
  // Every buffer is allocated up front, so the memory in use after the steps is the peak (plus the
  // allocator's and cuBLAS's own).
  const double peak = used_bytes() - baseline;
  plan::PlanOptions options;
  options.world_size = 1;
  options.gpu_memory_bytes = 141e9;
  const plan::Plan p = plan::make_plan(config, options);
  nlohmann::json phases = nlohmann::json::object();
  for (const auto& [name, total] : timer.totals()) phases[name] = total / std::max<size_t>(ms.size(), 1);
  const double t = median(ms);
  const double tps = static_cast<double>(tokens) / (t / 1e3);
  return {{"kind", "train_step"},
          {"model", config.model.name},
          {"precision", config.train.precision == Precision::bf16 ? "bf16" : "fp32"},
          {"params", p.total_params},
          {"tokens", tokens},
          {"step_ms", t},
          {"tokens_per_s", tps},
          {"flops_per_token", plan::model_flops_per_token(config.model, config.data.seq_length)},
          {"peak_mem_gib", peak / (1ull << 30)},
          {"plan_gib", p.stages.at(0).total_bytes() / (1ull << 30)},
          {"loss_first", loss_first},
          {"loss_last", loss_last},
          {"phases_ms", phases}};
}

}  // namespace
}  // namespace tessera::cuda

int main(int argc, char** argv) {
  CLI::App app{"tessera GPU benchmarks (one JSON line per run)"};
  bool gemm = false;
  std::string config;
  int steps = 10, warmup = 3, size = 8192;
  app.add_flag("--gemm-peak", gemm, "measure the bf16 GEMM rate");
  app.add_option("--size", size, "GEMM size for --gemm-peak");
  app.add_option("--config", config, "time training steps of this config");
  app.add_option("--steps", steps, "timed steps");
  app.add_option("--warmup", warmup, "untimed steps first");
  CLI11_PARSE(app, argc, argv);
  try {
    if (gemm) std::printf("%s\n", tessera::cuda::gemm_peak(size, 20).dump().c_str());
    if (!config.empty()) std::printf("%s\n", tessera::cuda::train_steps(config, steps, warmup).dump().c_str());
    if (!gemm && config.empty()) {
      std::fprintf(stderr, "nothing to do: give --gemm-peak and/or --config FILE\n");
      return 2;
    }
  } catch (const std::exception& e) {
    std::printf("%s\n", nlohmann::json({{"kind", config.empty() ? "gemm_peak" : "train_step"}, {"error", e.what()}}).dump().c_str());
    return 1;
  }
  return 0;
}
