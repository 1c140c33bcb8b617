# shellcheck shell=bash
# Shared by the job scripts in jobs/ (sourced; see docs/slurm.md).
#
# Environment it reads:
#   SEGREC             the segrec executable (default: segrec on PATH, else
#                      $SLURM_SUBMIT_DIR/build/segrec)
#   SEGREC_LAUNCHER    srun | mpirun | none (default: srun --mpi=pmix inside a Slurm
#                      job when the pmix plugin is there, else mpirun)
#   SEGREC_OVERSUBSCRIBE=1   pass --oversubscribe to mpirun (more ranks than cores)
#   SEGREC_NTASKS      ranks outside Slurm (default 1)
# Functions: ini_get, segrec_bin, launch, stage_chain, segrec_pipeline.

# ini_get FILE KEY: the value of KEY in the INI file (last one wins), as segrec reads it:
# whole-line comments start with # or ;, a value may end with " # comment".
ini_get() {
  awk -v key="$2" '
    { line = $0; sub(/^[ \t]+/, "", line); sub(/[ \t\r]+$/, "", line) }
    line == "" || line ~ /^[#;\[]/ { next }
    {
      eq = index(line, "="); if (eq == 0) next
      k = substr(line, 1, eq - 1); sub(/[ \t]+$/, "", k)
      if (k != key) next
      v = substr(line, eq + 1); sub(/^[ \t]+/, "", v)
      c = index(v, " #"); if (c > 0) v = substr(v, 1, c - 1)
      sub(/[ \t]+$/, "", v); val = v; found = 1
    }
    END { if (found) print val }' "$1"
}

segrec_bin() {
  if [[ -n ${SEGREC:-} ]]; then echo "$SEGREC"
  elif command -v segrec >/dev/null 2>&1; then command -v segrec
  elif [[ -x ${SLURM_SUBMIT_DIR:-$PWD}/build/segrec ]]; then echo "${SLURM_SUBMIT_DIR:-$PWD}/build/segrec"
  else echo "segrec: executable not found (set SEGREC)" >&2; return 1
  fi
}

# The launcher prefix for this job, in the array LAUNCH.
pick_launcher() {
  local want=${SEGREC_LAUNCHER:-auto}
  if [[ $want == auto ]]; then
    want=mpirun
    if [[ -n ${SLURM_JOB_ID:-} ]] && command -v srun >/dev/null &&
       srun --mpi=list 2>&1 | grep -qw pmix; then
      want=srun
    fi
  fi
  case $want in
    srun) LAUNCH=(srun --mpi=pmix --kill-on-bad-exit=1) ;;
    mpirun)
      LAUNCH=(mpirun)
      # Inside an allocation mpirun takes the rank count from Slurm; outside, from SEGREC_NTASKS.
      [[ -z ${SLURM_JOB_ID:-} ]] && LAUNCH+=(-n "${SEGREC_NTASKS:-1}")
      [[ ${SEGREC_OVERSUBSCRIBE:-0} == 1 ]] && LAUNCH+=(--oversubscribe)
      [[ $(id -u) -eq 0 ]] && LAUNCH+=(--allow-run-as-root)
      LAUNCH+=(--bind-to none)
      ;;
    none) LAUNCH=() ;;
    *) echo "segrec job: SEGREC_LAUNCHER must be srun, mpirun or none, not '$want'" >&2; return 2 ;;
  esac
}

# launch ARGS...: runs segrec ARGS on every rank of the job, in the background, and waits
# for it; the batch shell stays able to take signals (see forward_signals).
LAUNCH_PID=
launch() {
  echo "+ ${LAUNCH[*]} $SEGREC_EXE $*"
  "${LAUNCH[@]}" "$SEGREC_EXE" "$@" &
  LAUNCH_PID=$!
  local rc
  while :; do
    wait "$LAUNCH_PID"; rc=$?
    # wait returns > 128 when a trapped signal interrupts it; the step is still running.
    kill -0 "$LAUNCH_PID" 2>/dev/null || break
  done
  LAUNCH_PID=
  return "$rc"
}

# forward_signals SIG...: the batch shell passes these signals on to the running step
# (srun and mpirun both hand them to every rank) and records the last in GOT_SIGNAL.
export GOT_SIGNAL=
forward_signals() {
  local s
  for s in "$@"; do
    # shellcheck disable=SC2064
    trap "GOT_SIGNAL=$s; echo \"segrec job: got SIG$s, passing it on\"; [[ -n \$LAUNCH_PID ]] && kill -$s \$LAUNCH_PID 2>/dev/null" "$s"
  done
}

# The stage outputs, under OUT_DIR.
stage_files() {
  DATASET=$OUT_DIR/dataset.h5
  PROFILES=$OUT_DIR/profiles.h5
  PROJECTION=$OUT_DIR/projection.h5
  SEGMENTS=$OUT_DIR/segments.h5
  MODEL=$OUT_DIR/model.h5
}

# stage_chain CONFIG: ingest -> profile -> project -> cluster -> train, every stage reading its
# options from CONFIG and its inputs/outputs from OUT_DIR. A stage whose output is there is
# skipped (outputs appear only complete: they are written under a temporary name and renamed),
# so a requeued job picks up where it stopped; train resumes from its checkpoint.
# The events file comes from the config only: --events is a repeatable option, so giving it on
# the command line as well would read the file twice.
stage_chain() {
  local cfg=$1
  stage_files
  done_or() { [[ -s $1 ]] && echo "segrec job: $(basename "$1") is there, skipping its stage"; }
  done_or "$DATASET" || launch ingest --config "$cfg" --out "$DATASET" || return
  done_or "$PROFILES" || launch profile --config "$cfg" --data "$DATASET" --out "$PROFILES" || return
  done_or "$PROJECTION" ||
    launch project --config "$cfg" --profiles "$PROFILES" --out "$PROJECTION" || return
  if [[ -n $(ini_get "$cfg" k) ]]; then
    done_or "$SEGMENTS" || launch cluster --config "$cfg" --projection "$PROJECTION" \
      --out "$SEGMENTS" --data "$DATASET" --profiles "$PROFILES" || return
  fi
  local train=(train --config "$cfg" --data "$DATASET" --out "$MODEL")
  [[ $(ini_get "$cfg" input) =~ ^(projected|both)$ ]] && train+=(--projection "$PROJECTION")
  [[ $(ini_get "$cfg" personalize) == segment-input ]] && train+=(--segments "$SEGMENTS")
  local ckpt
  ckpt=$(ini_get "$cfg" checkpoint)
  [[ -z $ckpt ]] && ckpt=$MODEL.ckpt.h5
  [[ -s $ckpt ]] && train+=(--checkpoint "$ckpt" --resume)
  done_or "$MODEL" || launch "${train[@]}"
}

# segrec_pipeline CONFIG: the whole pipeline; `segrec run` when this segrec has it, else
# the stage chain. Sets OUT_DIR (the config's `out`, else $SLURM_SUBMIT_DIR/segrec-JOBID).
segrec_pipeline() {
  local cfg=$1
  OUT_DIR=$(ini_get "$cfg" out)
  [[ -z $OUT_DIR ]] && OUT_DIR=segrec-${SLURM_JOB_ID:-$$}
  mkdir -p "$OUT_DIR"
  OUT_DIR=$(cd "$OUT_DIR" && pwd)
  # A synthetic event log for the demo configs: made when the config gives `users` (an option of
  # `segrec generate`) and its events file is missing.
  local events
  events=$(ini_get "$cfg" events)
  if [[ -n $events && ! -e $events && -n $(ini_get "$cfg" users) ]]; then
    mkdir -p "$(dirname "$events")"
    launch generate --config "$cfg" || return
  fi
  if [[ ${SEGREC_STAGES:-0} != 1 ]] && "$SEGREC_EXE" run --help >/dev/null 2>&1; then
    launch run --config "$cfg" --out "$OUT_DIR"
  else
    stage_chain "$cfg"
  fi
}

# job_setup: the executable, launcher and threads; prints what the job runs on.
job_setup() {
  SEGREC_EXE=$(segrec_bin) || exit 4
  pick_launcher || exit 2
  # One thread per core given to each rank (hybrid MPI + threads: --cpus-per-task).
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
  echo "segrec job ${SLURM_JOB_ID:-(no Slurm)}${SLURM_ARRAY_TASK_ID:+ task $SLURM_ARRAY_TASK_ID}" \
    "on ${SLURM_JOB_NODELIST:-$(hostname -s)}: ${SLURM_NTASKS:-${SEGREC_NTASKS:-1}} rank(s) x" \
    "$OMP_NUM_THREADS thread(s), restart ${SLURM_RESTART_COUNT:-0}, launcher ${LAUNCH[*]:-none}"
}
