#include <iostream>
#include <memory>

#include "commands.hpp"
#include "tessera/core/config.hpp"
#include "tessera/core/error.hpp"

namespace tessera::apps {

void add_config_command(CLI::App& app) {
  struct Options {
    std::string file;
    std::vector<std::string> overrides;
    bool resolved = false;
    bool docs = false;
    bool reference = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand("config", "Check a config file and print it resolved, or the field reference");
  cmd->add_option("-c,--config", opts->file, "YAML config file")->check(CLI::ExistingFile);
  cmd->add_option("--set", opts->overrides, "Override a field: section.key=value (repeatable)");
  cmd->add_flag("--resolved", opts->resolved, "Print every field after defaults and overrides");
  cmd->add_flag("--docs", opts->docs, "With --resolved: add each field's one-line doc as a comment");
  cmd->add_flag("--reference", opts->reference, "Print the markdown reference of every field (docs/configuration.md)");
  cmd->callback([opts] {
    if (opts->reference) {
      std::cout << config_reference_markdown();
      return;
    }
    TESSERA_CHECK(!opts->file.empty(), "tessera config needs -c FILE (or --reference)");
    const Config config = load_config(opts->file, opts->overrides);
    if (opts->resolved)
      std::cout << to_yaml(config, opts->docs);
    else
      std::cout << opts->file << ": ok\n";
  });
}

}  // namespace tessera::apps
