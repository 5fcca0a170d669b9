#pragma once
// Each subcommand registers itself on the root CLI11 app; its options live in state owned by the callback,
// so nothing is global. A command reports failure by throwing tessera::Error; main turns that into a message
// and exit code 1.

#include <CLI/CLI.hpp>

namespace tessera::apps {

void add_config_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_version_command(CLI::App& app);
void add_grid_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_pack_command(CLI::App& app);
void add_inspect_command(CLI::App& app);

}  // namespace tessera::apps
