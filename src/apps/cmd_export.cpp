// `tessera export --checkpoint DIR --format hf OUT`: merge a checkpoint's per-stage weight files (any
// layout) into one Hugging Face model directory (config.json, safetensors shards with an index) that
// transformers loads.

#include <iostream>
#include <memory>

#include "commands.hpp"
#include "tessera/io/hf_model.hpp"
#include "tessera/plan/plan.hpp"
#include "tessera/train/checkpoint.hpp"

namespace tessera::apps {

void add_export_command(CLI::App& app) {
  struct Options {
    std::string checkpoint, output, format = "hf", dtype = "bf16", shard = "5GB";
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("export", "Write a checkpoint's weights as a Hugging Face model directory");
  cmd->add_option("--checkpoint", opts->checkpoint, "A checkpoint (step directory) or a checkpoint.dir (its latest)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--format", opts->format, "Output format")->capture_default_str()->check(CLI::IsMember({"hf"}));
  cmd->add_option("output", opts->output, "Directory to write")->required();
  cmd->add_option("--dtype", opts->dtype, "Stored dtype: f32, bf16 or f16")
      ->capture_default_str()
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  cmd->add_option("--max-shard-size", opts->shard, "Largest safetensors shard, e.g. 5GB")->capture_default_str();
  cmd->callback([opts] {
    const std::string path = train::resolve_checkpoint(opts->checkpoint);
    const Config config = train::checkpoint_config(path);
    model::ParameterStore store(model::parameter_specs(config.model), /*with_grads=*/false);
    train::load_checkpoint_weights(path, store);
    const DType dtype = opts->dtype == "f32" ? DType::f32 : opts->dtype == "bf16" ? DType::bf16 : DType::f16;
    io::export_hf_model(opts->output, config.model, store, dtype,
                        static_cast<uint64_t>(plan::parse_memory_size(opts->shard)));
    std::cout << path << " (" << config.model.name << ", " << store.values().size() << " parameters) -> "
              << opts->output << " as " << opts->dtype << "\n";
  });
}

}  // namespace tessera::apps
