// `tessera convert IN OUT`: read a Hugging Face model directory strictly (every tensor checked against the
// architecture in config.json) and write it back as tessera exports models — a chosen dtype, shards of a
// chosen size with an index. Exercises import and export end to end on real checkpoints.

#include <iostream>
#include <memory>

#include "commands.hpp"
#include "tessera/io/hf_model.hpp"
#include "tessera/plan/plan.hpp"

namespace tessera::apps {

void add_convert_command(CLI::App& app) {
  struct Options {
    std::string input, output, dtype = "keep", shard = "5GB";
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("convert", "Load a Hugging Face model directory and export it again");
  cmd->add_option("input", opts->input, "Hugging Face model directory")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("output", opts->output, "Directory to write")->required();
  cmd->add_option("--dtype", opts->dtype, "Stored dtype: keep (each tensor as in the input), f32, bf16 or f16")
      ->capture_default_str()
      ->check(CLI::IsMember({"keep", "f32", "bf16", "f16"}));
  cmd->add_option("--max-shard-size", opts->shard, "Largest safetensors shard, e.g. 5GB")->capture_default_str();
  cmd->callback([opts] {
    const ModelConfig config = io::read_hf_config(opts->input);
    model::ParameterStore store(model::parameter_specs(config), /*with_grads=*/false);
    io::load_hf_weights(opts->input, store);
    std::optional<DType> dtype;
    if (opts->dtype != "keep") dtype = opts->dtype == "f32" ? DType::f32 : opts->dtype == "bf16" ? DType::bf16 : DType::f16;
    const auto shard = static_cast<uint64_t>(plan::parse_memory_size(opts->shard));
    io::export_hf_model(opts->output, config, store, dtype, shard);
    std::cout << opts->input << " (" << to_string(config.architecture) << ", " << store.values().size()
              << " parameters) -> " << opts->output << " as " << opts->dtype << "\n";
  });
}

}  // namespace tessera::apps
