#include "tessera/train/preemption.hpp"

#include <csignal>

namespace tessera::train {
namespace {

// The one piece of process-wide mutable state in tessera, because POSIX delivers signals to the process:
// a handler can do nothing but store to a volatile sig_atomic_t.
volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_preemption_signal(int signal) { g_signal = signal; }

}  // namespace

void install_preemption_handlers() {
  std::signal(SIGTERM, on_preemption_signal);
  std::signal(SIGUSR1, on_preemption_signal);
}

bool preemption_requested() { return g_signal != 0; }
int preemption_signal() { return g_signal; }

}  // namespace tessera::train
