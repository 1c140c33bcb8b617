#!/usr/bin/env bash
# jobs/preemptible.sbatch (2 ranks: SLURM_TEST_LAYOUT, on one node or across two) signalled mid-training (scancel --signal=USR1 --batch): train writes a
# checkpoint and exits 5, the job requeues itself, the requeued run skips the finished stages
# and resumes from the checkpoint, and the final model equals an uninterrupted run's.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/job" && cd "$WORK/job" || exit 1
cat >pre.ini <<'INI'
events = out/events.csv
out = out
seed = 11
users = 2000
items = 300
dims = 8
k = 4
hidden = 128
epochs = 40
batch-size = 100
patience = 0
checkpoint-every = 1
verbose = true  # a progress line per epoch in the job log
INI
id=$(sbatch --parsable "${LAYOUT[@]}" --time=00:15:00 "$ROOT/jobs/preemptible.sbatch" pre.ini)
[[ -n $id ]] && ok "submitted job $id" || { bad "sbatch failed"; finish; exit; }
log="segrec-preemptible-$id.out"
# Signal once training is under way (an epoch line is in the log).
end=$((SECONDS + 300))
until grep -q "train  epoch" "$log" 2>/dev/null || ((SECONDS > end)); do
  [[ $(job_field "$id" JobState) =~ ^(COMPLETED|FAILED|CANCELLED)$ ]] && break
  sleep 0.5
done
grep -q "train  epoch" "$log" 2>/dev/null && ok "training started" ||
  { bad "no training in the log: $(cat "$log")"; scancel "$id"; finish; exit; }
scancel --signal=USR1 --batch "$id" && ok "sent SIGUSR1 to the batch shell" || bad "scancel --signal"
# The job requeues itself: pending again with one restart.
end=$((SECONDS + 120))
until [[ $(job_field "$id" Restarts) == 1 ]] || ((SECONDS > end)); do sleep 0.5; done
[[ $(job_field "$id" Restarts) == 1 ]] && ok "job requeued ($(job_field "$id" JobState))" ||
  { bad "not requeued: $(job_field "$id" JobState) $(cat "$log")"; scancel "$id"; finish; exit; }
wait_state "$id" 60 PENDING RUNNING COMPLETED >/dev/null
# A requeued job waits about 2 minutes before it is eligible: release it now, but not within
# the second of the requeue (slurmd refuses a credential issued in the second its job's old
# credential was revoked: "Job credential revoked").
sleep 2
scontrol update jobid="$id" StartTime=now 2>/dev/null
wait_done "$id" 400 && ok "requeued job completed" ||
  { bad "requeued job: $(job_field "$id" JobState)"; cat "$log"; finish; exit; }
cat "$log"
grep -q "checkpoint written to" "$log" && ok "train wrote a checkpoint and stopped" || bad "no checkpoint message"
grep -q "requeueing job $id" "$log" && ok "the job requeued itself" || bad "no requeue message"
grep -q "dataset.h5 is there, skipping" "$log" && ok "finished stages skipped on restart" ||
  bad "stages not skipped"
grep -q -- "--resume" "$log" && ok "train resumed from the checkpoint" || bad "no --resume"
[[ -s out/model.h5 ]] && ok "model written" || bad "no model"
if [[ $SLURM_TEST_NODES -gt 1 ]]; then
  nodes=$(job_nodes "$id" | tr '\n' ' ')
  [[ $(wc -w <<<"$nodes") -eq 2 ]] && ok "the resumed job ran across 2 nodes: $nodes" ||
    bad "resumed job nodes: '$nodes'"
fi

# The uninterrupted run on the same data.
same_as_uninterrupted pre.ini
finish
