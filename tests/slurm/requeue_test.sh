#!/usr/bin/env bash
# Real Slurm: starts a one-node cluster (munge, slurmctld, slurmd) on this machine, submits the shipped
# template slurm/train.sbatch for a 2-rank tiny run, sends its batch shell SIGUSR1 mid-run (what
# --signal=B:USR1@T does before a time limit), and checks that the job checkpoints, requeues itself,
# resumes with SLURM_RESTART_COUNT=1 and ends with the same final loss as an uninterrupted run.
#   requeue_test.sh TESSERA_BINARY SOURCE_DIR
set -euo pipefail
tessera=$1
src=$2
command -v slurmctld >/dev/null && command -v munged >/dev/null || { echo "SKIPPED: slurm-wlm/munge not installed"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIPPED: starting slurmd needs root"; exit 77; }

work=$(mktemp -d /tmp/tessera-slurm.XXXXXX)
host=$(hostname)
pids=()
cleanup() {
  local rc=$?
  [ -n "${jobid:-}" ] && scancel "$jobid" 2>/dev/null || true
  # The daemons still write their state while they shut down: wait for them to exit before removing
  # their directory, and never let the cleanup change the test's verdict.
  local daemons=()
  for f in "$work"/slurmd.pid "$work"/slurmctld.pid; do [ -f "$f" ] && daemons+=("$(cat "$f")"); done
  for pid in "${daemons[@]}"; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    local alive=0
    for pid in "${daemons[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.1
  done
  if [ $rc -ne 0 ]; then
    echo "--- job output"; cat "$work/job.out" 2>/dev/null | tail -40 || true
    echo "--- slurmctld log"; tail -20 "$work/slurmctld.log" 2>/dev/null || true
    echo "--- slurmd log"; tail -20 "$work/slurmd.log" 2>/dev/null || true
  fi
  rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work" 2>/dev/null; } || echo "note: could not remove $work"
  exit $rc
}
trap cleanup EXIT

# munge: one key for the node, the daemon started if not running.
if ! pgrep -x munged >/dev/null; then
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 400 /etc/munge/munge.key
  runuser -u munge -- munged --force 2>/dev/null || munged --force
fi

mkdir -p "$work/state" "$work/spool"
cat > "$work/slurm.conf" <<CONF
ClusterName=tessera-test
SlurmctldHost=$host
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=${TESSERA_SLURMCTLD_PORT:-16817}
SlurmdPort=${TESSERA_SLURMD_PORT:-16818}
ReturnToService=2
JobRequeue=1
MpiDefault=none
SlurmdParameters=config_overrides
NodeName=$host CPUs=8 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
export SLURM_CONF=$work/slurm.conf
slurmctld
slurmd
for _ in $(seq 60); do
  sinfo -h -o %t 2>/dev/null | grep -q idle && break
  sleep 1
done
sinfo -h -o %t | grep -q idle || { echo "the node did not come up"; exit 1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMP_NUM_THREADS=1
args=(--set train.steps=1500 --set logging.interval=50 --set data.seq_length=64)
# The uninterrupted run (one process: every layout gives the same numbers).
"$tessera" train -c "$src/configs/tiny-dense.yaml" "${args[@]}" --set "logging.run_dir=$work/reference" > "$work/reference.txt" 2>&1
want=$(grep -o 'step  1500/1500 | loss [0-9.]*' "$work/reference.txt")
[ -n "$want" ] || { cat "$work/reference.txt"; echo "the reference run logged no last step"; exit 1; }

jobid=$(TESSERA=$tessera sbatch --parsable --ntasks=2 --chdir="$work" --output="$work/job.out" \
  "$src/slurm/train.sbatch" "$src/configs/tiny-dense.yaml" "${args[@]}" --set "logging.run_dir=$work/job")
echo "submitted job $jobid"
# Signal once training is under way (a few logged steps), as --signal=B:USR1@T would.
for _ in $(seq 120); do
  grep -q 'step   200/1500' "$work/job.out" 2>/dev/null && break
  sleep 0.5
done
grep -q 'step   200/1500' "$work/job.out" || { echo "the job did not start training"; exit 1; }
scancel --signal=USR1 --batch "$jobid"
echo "sent SIGUSR1 to the batch shell"
# The job requeues itself; Slurm holds a requeued job back for a while: release it at once.
for _ in $(seq 120); do
  state=$(scontrol show job "$jobid" -o | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
  restarts=$(scontrol show job "$jobid" -o | grep -o 'Restarts=[0-9]*' | cut -d= -f2)
  [ "$state" = PENDING ] && [ "${restarts:-0}" -ge 1 ] && break
  sleep 0.5
done
[ "$state" = PENDING ] || { echo "the job was not requeued (state $state)"; exit 1; }
# slurmd revokes the old run's credential with a one-second clock and refuses a new one issued in that
# same second ("Job credential revoked"): Slurm's own requeue delay avoids this, so wait past it.
sleep 2
scontrol update JobId="$jobid" StartTime=now
for _ in $(seq 240); do
  state=$(scontrol show job "$jobid" -o | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
  [ "$state" = COMPLETED ] || [ "$state" = FAILED ] || [ "$state" = CANCELLED ] && break
  sleep 0.5
done
[ "$state" = COMPLETED ] || { echo "the job ended $state"; exit 1; }

grep -q "checkpoint of step .* committed; exiting with code 75" "$work/job.out" || { echo "no checkpoint on the signal"; exit 1; }
grep -q "resumed from .*SLURM_RESTART_COUNT=1" "$work/job.out" || { echo "the restart did not resume"; exit 1; }
got=$(grep -o 'step  1500/1500 | loss [0-9.]*' "$work/job.out" | tail -1)
[ "$got" = "$want" ] || { echo "final loss differs: requeued run '$got', uninterrupted '$want'"; exit 1; }
echo "slurm requeue: checkpointed on SIGUSR1, requeued, resumed (SLURM_RESTART_COUNT=1), final $got as uninterrupted"
