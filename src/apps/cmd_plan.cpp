#include <iostream>
#include <memory>

#include "commands.hpp"
#include "tessera/core/config.hpp"
#include "tessera/plan/plan.hpp"

namespace tessera::apps {

void add_plan_command(CLI::App& app) {
  struct Options {
    std::string file;
    std::vector<std::string> overrides;
    int world_size = 0;
    int gpus_per_node = 8;
    std::string gpu_memory = "80GiB";
    bool json = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "plan", "Print the rank grid, node placement and per-rank memory budget; refuse layouts that cannot run");
  cmd->add_option("-c,--config", opts->file, "YAML config file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--set", opts->overrides, "Override a field: section.key=value (repeatable)");
  cmd->add_option("--world-size", opts->world_size, "Number of ranks (default: tp × cp × pp × dp of the config)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gpus-per-node", opts->gpus_per_node, "GPUs per node, for placement")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--gpu-memory", opts->gpu_memory, "Memory of one GPU, e.g. 80GiB or 141GB")->capture_default_str();
  cmd->add_flag("--json", opts->json, "Print the plan as JSON");
  cmd->callback([opts] {
    const Config config = load_config(opts->file, opts->overrides);
    plan::PlanOptions options;
    options.world_size = opts->world_size;
    options.gpus_per_node = opts->gpus_per_node;
    options.gpu_memory_bytes = plan::parse_memory_size(opts->gpu_memory);
    const plan::Plan result = plan::make_plan(config, options);
    if (opts->json)
      std::cout << plan::plan_to_json(result).dump(2) << "\n";
    else
      std::cout << plan::format_plan(result);
  });
}

}  // namespace tessera::apps
