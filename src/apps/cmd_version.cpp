#include <iostream>

#include "commands.hpp"
#ifdef TESSERA_HAVE_CUDA
#include "tessera/backend/cuda_probe.hpp"
#endif

namespace tessera::apps {

void add_version_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("version", "Print the build and what the CUDA backend sees on this machine");
  cmd->callback([] {
    std::cout << "tessera " << TESSERA_VERSION << "\n";
#ifdef TESSERA_HAVE_CUDA
    const cuda::ProbeReport r = cuda::probe();
    std::cout << "cuda backend: built (runtime " << r.runtime_version << ", NCCL " << r.nccl_version << ")\n";
    if (r.device_count > 0)
      std::cout << "devices: " << r.device_count << " (" << r.device_name << "), driver " << r.driver_version << "\n";
    else
      std::cout << "devices: none (" << r.why_no_device << ")\n";
#else
    std::cout << "cuda backend: not built (configure with TESSERA_CUDA=ON and the CUDA toolkit)\n";
#endif
  });
}

}  // namespace tessera::apps
