#include <cstdio>

#include "commands.hpp"
#include "tessera/core/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"tessera: train and fine-tune LLMs on clusters (mpirun / Slurm)", "tessera"};
  app.require_subcommand(1);
  tessera::apps::add_config_command(app);
  tessera::apps::add_plan_command(app);
  tessera::apps::add_grid_command(app);
  tessera::apps::add_train_command(app);
  tessera::apps::add_convert_command(app);
  tessera::apps::add_export_command(app);
  tessera::apps::add_pack_command(app);
  tessera::apps::add_inspect_command(app);
  tessera::apps::add_version_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11 prints help or the usage error; its many codes collapse to the documented 0 (help) and 2.
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const tessera::Error& e) {
    std::fprintf(stderr, "tessera: error: %s\n", e.what());
    return 1;
  } catch (const tessera::apps::ExitRequest& e) {
    return e.code;
  }
  return 0;
}
