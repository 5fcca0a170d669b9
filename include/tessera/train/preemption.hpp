#pragma once
// Preemption: SIGTERM (Slurm's and most schedulers' stop signal) and SIGUSR1 (Slurm's --signal=B:USR1@T
// warning) only set a flag — all a signal handler may safely do. The training loop polls it at each step
// boundary, the ranks agree (any rank's flag stops all), and the job saves a checkpoint, commits it and
// exits with kPreemptedExitCode so that a wrapper or `sbatch --requeue` starts it again.

namespace tessera::train {

// EX_TEMPFAIL from sysexits.h: "try again later".
inline constexpr int kPreemptedExitCode = 75;

// Installs the handlers (idempotent).
void install_preemption_handlers();
// Whether a preemption signal arrived in this process since the handlers were installed.
bool preemption_requested();
// The signal number that set it (0 when none), for the log.
int preemption_signal();

}  // namespace tessera::train
