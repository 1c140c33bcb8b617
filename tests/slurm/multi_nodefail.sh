#!/usr/bin/env bash
# A node lost in the middle of training under Slurm (multi-node test cluster, 3 nodes):
# jobs/preemptible.sbatch runs train on 2 nodes (one rank each, srun --mpi=pmix or mpirun:
# SLURM_TEST_LAUNCHER), and every process of the node that is not the batch host (slurmd, step,
# rank) is killed after the first checkpoint. The job must end by itself within --stall-timeout
# + 30 s with segrec's non-zero exit code (not hang); the job (--requeue) is then requeued, runs
# on the remaining nodes, resumes from the checkpoint and ends with the model of an
# uninterrupted run. The node is brought back at the end (the cluster is shared by the tests).
source "$(dirname "$0")/lib.sh"
[[ ${SLURM_LOCAL_NODES:-1} -ge 3 ]] || { echo "skipped: needs SLURM_TEST_NODES >= 3"; exit 77; }
LAUNCHER=${SLURM_TEST_LAUNCHER:-srun}
FAULT=${SLURM_TEST_FAULT:-kill}  # kill: every process of the node; cut: its link down
if [[ $LAUNCHER == srun ]] && ! srun --mpi=list 2>&1 | grep -qw pmix; then
  echo "skipped: this Slurm has no pmix plugin"; exit 77
fi
read -r -a NODE <<<"$SLURM_LOCAL_NODE_NAMES"
STALL=20
VICTIM=
trap '[[ -n $VICTIM ]] && "$SLURM_LOCAL" node-restore "$VICTIM" >/dev/null 2>&1; [[ $FAILS -eq 0 ]] && rm -rf "$WORK"' EXIT

mkdir -p "$WORK/job" && cd "$WORK/job" || exit 1
cat >fail.ini <<INI
events = out/events.csv
out = out
seed = 13
users = 2000
items = 300
dims = 8
hidden = 64
epochs = 8
batch-size = 100
patience = 0
checkpoint-every = 1
stall-timeout = $STALL
verbose = true
INI
# The stages before train, directly (fast); the job's stage chain skips them.
mkdir -p out
for s in "generate" "ingest --out out/dataset.h5" "profile --data out/dataset.h5 --out out/profiles.h5" \
         "project --profiles out/profiles.h5 --out out/projection.h5"; do
  # shellcheck disable=SC2086
  timeout 300 "$MPIEXEC" -n 2 $MPIFLAGS "$SEGREC" $s --config fail.ini >>prep.log 2>&1 ||
    { bad "prepare ($s): $(tail -3 prep.log)"; finish; exit; }
done
ok "data prepared"

# Training slowed to ~0.15 s a step (18 steps an epoch), so the fault lands mid-training.
id=$(SEGREC_LAUNCHER=$LAUNCHER SEGREC_TEST_STEP_DELAY_MS=150 sbatch --parsable -N 2 \
  --ntasks-per-node=1 --exclude="${NODE[2]}" --time=00:10:00 \
  "$ROOT/jobs/preemptible.sbatch" fail.ini)
[[ -n $id ]] && ok "submitted job $id ($LAUNCHER)" || { bad "sbatch failed"; finish; exit; }
log="segrec-preemptible-$id.out"
end=$((SECONDS + 240))
until grep -q "train  epoch" "$log" 2>/dev/null || ((SECONDS > end)); do
  [[ $(job_field "$id" JobState) =~ ^(COMPLETED|FAILED|CANCELLED)$ ]] && break
  sleep 0.5
done
grep -q "train  epoch" "$log" 2>/dev/null && ok "training under way on $(job_field "$id" NodeList)" ||
  { bad "no training epoch in the log: $(cat "$log" 2>/dev/null)"; scancel "$id"; finish; exit; }
[[ -s out/model.h5.ckpt.h5 ]] && ok "a checkpoint is there" || bad "no checkpoint: $(ls out)"
batch=$(job_field "$id" BatchHost)
lost=$(job_nodes "$id" | grep -vx "$batch" | head -1)
VICTIM=${lost#"${NODE[0]%0}"}
[[ $VICTIM =~ ^[0-9]+$ ]] || { bad "no second node: $(job_field "$id" NodeList)"; scancel "$id"; finish; exit; }

# Kill every process of the other node (its slurmd, the job step there and the rank), or cut
# its link.
"$SLURM_LOCAL" "node-$FAULT" "$VICTIM" && ok "node-$FAULT $lost (batch host $batch)" ||
  bad "node-$FAULT"
t0=$SECONDS
limit=$((STALL + 30))
end=$((SECONDS + limit + 60))
while ((SECONDS < end)); do
  # The batch shell on node 0 has ended (the job left RUNNING, or is completing).
  [[ $(job_field "$id" JobState) != RUNNING ]] && break
  grep -q "^segrec job: exit" "$log" 2>/dev/null && break
  sleep 0.5
done
waited=$((SECONDS - t0))
state=$(job_field "$id" JobState)
code=$(job_field "$id" ExitCode)
cat "$log"
if grep -q "^segrec job: exit" "$log"; then
  rc=$(sed -n 's/^segrec job: exit \([0-9]*\),.*/\1/p' "$log" | tail -1)
  if ((waited <= limit)); then
    ok "the job ended $waited s after the fault (limit $limit s): exit $rc, state $state, ExitCode $code"
  else
    bad "the job ended $waited s after the fault, over $limit s"
  fi
  msg=$(grep -m1 "^segrec: error" "$log")
  if [[ $LAUNCHER == srun ]]; then
    # srun --kill-on-bad-exit passes on segrec's own code: 6, the stall watchdog's.
    [[ $rc -eq 6 ]] && ok "the job's exit code is segrec's: 6 (stalled)" ||
      bad "the job's exit code is $rc, want segrec's 6: ${msg:-no segrec error line}"
    grep -qE "^segrec: error.*stalled: no progress for [0-9]+ s \(--stall-timeout $STALL\)" "$log" &&
      ok "segrec named the stall: $msg" || bad "no stall message: ${msg:-none}"
  else
    # mpirun sees its daemon on the lost node go first and ends the job with its own code.
    [[ $rc -ne 0 ]] && ok "the job's exit code is the launcher's: $rc (${msg:-no segrec error line})" ||
      bad "the job exited 0 after losing a node"
  fi
else
  bad "the job did not end within $((limit + 60)) s of the fault (state $state)"
fi

# Slurm marks the node DOWN (its slurmd is gone).
end=$((SECONDS + 60))
until sinfo -h -n "$lost" -o %T | grep -qE '^down' || ((SECONDS > end)); do sleep 1; done
sinfo -h -n "$lost" -o %T | grep -qE '^down' && ok "Slurm marked $lost $(sinfo -h -n "$lost" -o %T)" ||
  bad "$lost is $(sinfo -h -n "$lost" -o %T), not down"

# The job has --requeue: Slurm requeues a job that lost a node by itself (it is pending again);
# a job that ended before Slurm saw the node go is requeued by hand. Either way it then runs on
# the remaining nodes and resumes from the checkpoint.
t0=$SECONDS
end=$((SECONDS + 60))
until [[ $(job_field "$id" JobState) =~ ^(PENDING|COMPLETED|FAILED|NODE_FAIL|CANCELLED)$ ]] ||
  ((SECONDS > end)); do sleep 0.5; done
state=$(job_field "$id" JobState)
if [[ $state == PENDING && $(job_field "$id" Restarts) -ge 1 ]]; then
  ok "Slurm requeued the job after the node failure (restart $(job_field "$id" Restarts))"
elif scontrol requeue "$id" 2>requeue.err; then
  ok "job requeued by hand (it was $state)"
else
  bad "job $id is $state and cannot be requeued: $(cat requeue.err)"
fi
end=$((SECONDS + 30))
until [[ $(job_field "$id" JobState) =~ ^(PENDING|RUNNING)$ ]] || ((SECONDS > end)); do sleep 0.5; done
scontrol update jobid="$id" ExcNodeList="$lost" 2>requeue.err || bad "update: $(cat requeue.err)"
# (a requeued job waits ~2 minutes before it is eligible; release it now, see preempt.sh)
sleep 2
scontrol update jobid="$id" StartTime=now 2>/dev/null
if wait_done "$id" 300; then
  ok "the requeued job completed in $((SECONDS - t0)) s on $(job_field "$id" NodeList)"
else
  bad "requeued job: $(job_field "$id" JobState) $(job_field "$id" ExitCode)"; tail -20 "$log"
fi
nodes=$(job_nodes "$id" | tr '\n' ' ')
[[ $(wc -w <<<"$nodes") -eq 2 && $nodes != *"$lost "* ]] &&
  ok "it ran on the remaining nodes: $nodes" || bad "requeued job nodes: '$nodes'"
grep -q -- "--resume" "$log" && ok "train resumed from the checkpoint" || bad "no --resume in the log"

# The uninterrupted run on the same data.
same_as_uninterrupted fail.ini

# The node comes back for the other tests.
"$SLURM_LOCAL" node-restore "$VICTIM" && VICTIM= && ok "$lost is back: $(sinfo -h -n "$lost" -o %T)" ||
  bad "$lost did not come back"
finish
