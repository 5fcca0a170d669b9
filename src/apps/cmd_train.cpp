// `tessera train`: the single-process training loop on synthetic data (the reference that parallel
// layouts must reproduce). Logs every logging.interval steps: loss, lr, grad norm, tokens/s, MFU.

#include <chrono>
#include <memory>

#include "commands.hpp"
#include "tessera/core/config.hpp"
#include "tessera/core/logging.hpp"
#include "tessera/model/parameter_spec.hpp"
#include "tessera/plan/memory_model.hpp"
#include "tessera/train/packed_batches.hpp"
#include "tessera/train/synthetic_data.hpp"
#include "tessera/train/trainer.hpp"

namespace tessera::apps {

void add_train_command(CLI::App& app) {
  struct Options {
    std::string file;
    std::vector<std::string> overrides;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("train", "Train a model (one process, CPU fp32; packed HDF5 or synthetic data)");
  cmd->add_option("-c,--config", opts->file, "YAML config file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", opts->overrides, "Override a field: section.key=value (repeatable)");
  cmd->callback([opts] {
    const Config config = load_config(opts->file, opts->overrides);
    const auto log = make_rank_logger(config.logging.run_dir, {}, config.logging.level);
    train::Trainer trainer(config);
    const ModelConfig& m = config.model;
    const double flops_per_token = plan::training_flops_per_token(
        model::active_parameters(m) - m.vocab_size * m.hidden_size * (m.tie_embeddings ? 0 : 1), m.num_layers,
        m.num_attention_heads, m.resolved_head_dim(), config.data.seq_length);
    // Packed HDF5 files when data.paths names them, else learnable synthetic rows.
    const std::unique_ptr<data::Loader> loader = config.data.paths.empty() ? nullptr : train::open_training_data(config);
    log->info("training {} ({} parameters) for {} steps, {} microbatch(es) of {} × {} tokens, {}", m.name,
              trainer.parameters().values().size(), config.train.steps, train::microbatches_per_step(config.train),
              config.train.micro_batch_size, config.data.seq_length,
              loader ? fmt::format("data {} ({} rows per epoch)", fmt::join(config.data.paths, ", "),
                                   loader->rows_per_epoch())
                     : std::string("synthetic data"));
    const int64_t micro = train::microbatches_per_step(config.train);
    for (int64_t step = 1; step <= config.train.steps; ++step) {
      std::vector<model::Batch> batches;
      for (int64_t i = 0; i < micro; ++i)
        batches.push_back(loader ? train::batch_from_rows(loader->next_batch(), config.data.paths)
                                 : train::synthetic_batch(m.vocab_size, config.data.seq_length,
                                                          config.train.micro_batch_size, config.train.seed, step, i));
      const auto start = std::chrono::steady_clock::now();
      const train::StepStats s = trainer.step(batches);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (step % config.logging.interval == 0 || step == config.train.steps) {
        const double tokens_per_s = static_cast<double>(s.tokens) / seconds;
        const double tflops = tokens_per_s * flops_per_token / 1e12;
        log->info("step {:>5}/{} | loss {:.4f}{} | lr {:.3e} | grad norm {:.3f} | {:.0f} tokens/s | {:.3f} TFLOP/s "
                  "| MFU {:.2f}% of {} TFLOP/s",
                  step, config.train.steps, s.loss,
                  m.is_moe() ? fmt::format(" (ce {:.4f}, aux {:.4f})", s.ce_loss, s.aux_loss) : "", s.lr, s.grad_norm,
                  tokens_per_s, tflops, 100.0 * tflops / config.train.peak_tflops, config.train.peak_tflops);
      }
    }
    log->flush();
  });
}

}  // namespace tessera::apps
