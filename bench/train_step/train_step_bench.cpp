// One training step (forward, backward, AdamW) of a modest model on the CPU fp32 backend, timed over
// several steps after a warm-up. Prints one JSON line; bench/train_step/run.sh compares it with PyTorch.
//
// usage: tessera_bench_train_step CONFIG.yaml [steps]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tessera/core/config.hpp"
#include "tessera/core/error.hpp"
#include "tessera/train/trainer.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONFIG.yaml [steps]\n", argv[0]);
    return 2;
  }
  try {
    const tessera::Config config = tessera::load_config(argv[1]);
    const int steps = argc > 2 ? std::atoi(argv[2]) : 3;
    tessera::train::Trainer trainer(config);
    // One sample per row (no packing) so PyTorch's plain causal attention sees the same batch.
    tessera::model::Batch batch;
    const int64_t seq = config.data.seq_length, rows = config.train.micro_batch_size;
    batch.cu_seqlens.push_back(0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t t = 0; t < seq; ++t) {
        batch.input_ids.push_back(static_cast<int32_t>((r * 7919 + t * 104729) % config.model.vocab_size));
        batch.position_ids.push_back(t);
      }
      batch.cu_seqlens.push_back(static_cast<int32_t>(batch.input_ids.size()));
    }
    for (size_t i = 0; i < batch.input_ids.size(); ++i)
      batch.targets.push_back((i + 1) % seq == 0 ? -1 : batch.input_ids[i + 1]);
    trainer.step({batch});  // warm-up: first-touch of buffers, thread pools
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < steps; ++i) trainer.step({batch});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / steps;
    std::printf("{\"impl\": \"tessera\", \"seconds_per_step\": %.4f, \"tokens_per_s\": %.1f, \"params\": %zu}\n", seconds,
                static_cast<double>(batch.tokens()) / seconds, trainer.parameters().values().size());
  } catch (const tessera::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
