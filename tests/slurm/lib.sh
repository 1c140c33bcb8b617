# shellcheck shell=bash
# Shared helpers of the Slurm tests (sourced). They run jobs on the private cluster of
# scripts/slurm-local.sh in SLURM_LOCAL_DIR (started here when it is not up; CTest stops it).
# Environment from CTest: SEGREC (the executable), SLURM_LOCAL_DIR, MPIEXEC, MPIFLAGS.
# Exit 77 (skipped) when the Slurm packages are not installed.
set -uo pipefail
: "${SEGREC:?}" "${MPIEXEC:=mpirun}" "${MPIFLAGS:=--oversubscribe --allow-run-as-root --bind-to none}"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SLURM_LOCAL=$ROOT/scripts/slurm-local.sh
: "${SLURM_LOCAL_DIR:=$ROOT/build/slurm-local}"
export SEGREC SEGREC_JOBS=$ROOT/jobs
FAILS=0
PASSES=0
ok() { PASSES=$((PASSES + 1)); echo "ok   $*"; }
bad() { FAILS=$((FAILS + 1)); echo "FAIL $*"; }
finish() {
  echo "$PASSES passed, $FAILS failed"
  [[ $FAILS -eq 0 ]]
}

slurm_installed() {
  for b in slurmctld slurmd sbatch munged; do
    command -v "$b" >/dev/null 2>&1 || [[ -x /usr/sbin/$b ]] || return 1
  done
}
if ! slurm_installed; then
  echo "skipped: Slurm is not installed (scripts/setup.sh --slurm installs slurmctld slurmd" \
    "slurm-client munge)"
  exit 77
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "skipped: the private Slurm cluster needs root (munged runs as the munge user)"
  exit 77
fi
# SLURM_TEST_NODES > 1 (from CTest): a multi-node cluster, one network namespace per node;
# skipped where namespaces cannot be made. SLURM_TEST_LAYOUT: the sbatch options of a 2-rank job.
: "${SLURM_TEST_NODES:=1}"
if [[ $SLURM_TEST_NODES -gt 1 ]]; then
  : "${SLURM_TEST_LAYOUT:=-N 2 --ntasks-per-node=1}"
  if ! why=$("$SLURM_LOCAL" check-nodes 2>&1); then
    echo "skipped: a multi-node cluster cannot be made here: $why"
    exit 77
  fi
fi
: "${SLURM_TEST_LAYOUT:=--ntasks=2}"
"$SLURM_LOCAL" status "$SLURM_LOCAL_DIR" >/dev/null 2>&1 ||
  "$SLURM_LOCAL" start "$SLURM_LOCAL_DIR" --nodes "$SLURM_TEST_NODES" ||
  { echo "FAIL the private Slurm cluster did not start"; exit 1; }
eval "$("$SLURM_LOCAL" env "$SLURM_LOCAL_DIR")"
# shellcheck disable=SC2206,SC2034  # (used by the tests that source this file)
LAYOUT=($SLURM_TEST_LAYOUT)

mkdir -p "${SEGREC_TEST_TMP:-${TMPDIR:-/tmp}}"
WORK=$(mktemp -d "${SEGREC_TEST_TMP:-${TMPDIR:-/tmp}}/segrec-slurm.XXXXXX")
# Keep the work folder of a failed test for a look; remove it when all passed.
trap '[[ $FAILS -eq 0 ]] && rm -rf "$WORK"' EXIT

# job_field ID FIELD: a field of `scontrol show job` (JobState, ExitCode, Restarts, ...).
job_field() {
  scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1
}

# wait_state ID SECONDS STATE...: waits until the job is in one of the states; fails after SECONDS.
wait_state() {
  local id=$1 limit=$2; shift 2
  local end=$((SECONDS + limit)) s
  while ((SECONDS < end)); do
    s=$(job_field "$id" JobState)
    for want in "$@"; do [[ $s == "$want" ]] && return 0; done
    sleep 1
  done
  echo "job $id: state '$s' after $limit s, want $*" >&2
  scontrol show job "$id" >&2
  return 1
}

# job_nodes ID: the job's nodes, one per line (srsl-n[0-1] expanded).
job_nodes() { scontrol show hostnames "$(job_field "$1" NodeList)" 2>/dev/null; }

# guard_route: with a multi-node cluster up, the root namespace must hold the unreachable route
# for the test subnet, and a client there must fail without reaching anything.
guard_route() {
  [[ ${SLURM_LOCAL_NODES:-1} -gt 1 ]] || return 0
  local r
  r=$(ip route show type unreachable "$SLURM_LOCAL_SUBNET")
  [[ -n $r ]] && ok "guard route in the root namespace: $r" ||
    { bad "no unreachable route for $SLURM_LOCAL_SUBNET in the root namespace"; return 1; }
  # A connection from the root namespace to the controller fails at once, on this machine.
  local t0=$SECONDS out ctl=${SLURM_LOCAL_SUBNET%.0/24}.1
  if timeout 10 bash -c "exec 3<>/dev/tcp/$ctl/6817" 2>"$WORK/stray"; then
    bad "a connection from the root namespace reached the controller $ctl"
  elif grep -qi "no route to host" "$WORK/stray" && ((SECONDS - t0 < 3)); then
    ok "a connection from the root namespace to $ctl fails at once: No route to host"
  else
    bad "a stray connection did not fail with 'No route to host': $(cat "$WORK/stray")"
  fi
  # So does a Slurm client there, without the wrapper (it retries for ~9 s: not waited for).
  if out=$(timeout 3 /usr/bin/sinfo 2>&1); then
    bad "sinfo in the root namespace reached the cluster: $out"
  else
    ok "sinfo in the root namespace, without the wrapper, fails"
  fi
  [[ $(sinfo -h -N -o %N | wc -l) -eq $SLURM_LOCAL_NODES ]] &&
    ok "the client wrapper reaches the cluster ($SLURM_LOCAL_NODES nodes)" || bad "wrapper sinfo failed"
}

# wait_done ID SECONDS: waits until the job has ended; succeeds when it COMPLETED (exit 0).
wait_done() {
  wait_state "$1" "$2" COMPLETED FAILED CANCELLED TIMEOUT NODE_FAIL OUT_OF_MEMORY BOOT_FAIL DEADLINE ||
    { scancel "$1" 2>/dev/null; return 1; }
  [[ $(job_field "$1" JobState) == COMPLETED ]]
}

# digests FILE: the content digest of every dataset (provenance excluded).
digests() { "$SEGREC" inspect --digest "$1" | grep " digest " | grep -v seconds; }
# (wall times, e.g. /curves/seconds, differ between runs)

# same_as_uninterrupted INI: out/model.h5 (a run that was stopped and resumed) equals a run of
# `segrec train --config INI` on out/dataset.h5 without interruption, in full/.
same_as_uninterrupted() {
  mkdir -p full
  # shellcheck disable=SC2086
  timeout 600 "$MPIEXEC" -n 2 $MPIFLAGS "$SEGREC" train --config "$1" --data out/dataset.h5 \
    --out full/model.h5 >full/log 2>&1 || bad "uninterrupted run: $(tail -3 full/log)"
  if diff <(digests out/model.h5 | grep -E '/mlp/|/curves/(train_loss|val_ndcg)') \
          <(digests full/model.h5 | grep -E '/mlp/|/curves/(train_loss|val_ndcg)') >diff.txt; then
    ok "resumed model equals the uninterrupted run's ($(digests out/model.h5 | grep -c /mlp/) arrays)"
  else
    bad "models differ: $(head -4 diff.txt)"
  fi
}

# same_outputs DIR_A DIR_B FILE...: every dataset of each file is identical in both folders.
same_outputs() {
  local a=$1 b=$2 f; shift 2
  for f in "$@"; do
    if [[ ! -s $a/$f || ! -s $b/$f ]]; then bad "$f missing: $(ls "$a" "$b" | tr '\n' ' ')"; continue; fi
    if diff <(digests "$a/$f") <(digests "$b/$f") >"$WORK/diff"; then
      ok "$f identical ($(digests "$a/$f" | wc -l) datasets)"
    else
      bad "$f differs: $(head -4 "$WORK/diff")"
    fi
  done
}
