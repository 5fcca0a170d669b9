#pragma once
// Each subcommand registers itself on the root CLI11 app; its options live in state owned by the callback,
// so nothing is global. A command reports failure by throwing tessera::Error; main turns that into a message
// and exit code 1.

#include <CLI/CLI.hpp>

namespace tessera::apps {

// Thrown by a command that must end the process with a particular exit code that is not an error (a
// preempted training run: kPreemptedExitCode). Not a std::exception, so error handlers let it pass.
struct ExitRequest {
  int code = 0;
};

void add_config_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_version_command(CLI::App& app);
void add_grid_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_pack_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_export_command(CLI::App& app);

}  // namespace tessera::apps
