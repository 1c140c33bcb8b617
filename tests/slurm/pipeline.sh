#!/usr/bin/env bash
# sbatch jobs/segrec.sbatch jobs/demo.ini on 2 tasks: the job completes, and every output
# equals that of the same stages run directly under `mpirun -n 2`.
source "$(dirname "$0")/lib.sh"

# The job, submitted from its own folder (the config's relative paths land there).
mkdir -p "$WORK/job" && cd "$WORK/job" || exit 1
id=$(sbatch --parsable --ntasks=2 --time=00:10:00 "$ROOT/jobs/segrec.sbatch" "$ROOT/jobs/demo.ini")
[[ -n $id ]] && ok "submitted job $id" || { bad "sbatch failed"; finish; exit; }
if wait_done "$id" 400; then ok "job $id completed"; else bad "job $id: $(job_field "$id" JobState)"; fi
log="$WORK/job/segrec-$id.out"
cat "$log"
grep -q "2 rank(s)" "$log" && ok "the job ran 2 ranks" || bad "not 2 ranks"
if srun --mpi=list 2>&1 | grep -qw pmix; then
  grep -q "srun --mpi=pmix" "$log" && ok "launched with srun --mpi=pmix" || bad "srun --mpi=pmix not used"
fi

# The same pipeline directly under mpirun -n 2, from the same config.
mkdir -p "$WORK/direct" && cd "$WORK/direct" || exit 1
O=demo-out
run() {
  echo "+ segrec $*"
  # shellcheck disable=SC2086
  timeout 300 "$MPIEXEC" -n 2 $MPIFLAGS "$SEGREC" "$@" --config "$ROOT/jobs/demo.ini" >>direct.log 2>&1 ||
    { bad "direct $1 failed: $(tail -3 direct.log)"; finish; exit; }
}
mkdir -p $O
run generate
run run
cmp -s "$WORK/job/$O/events.csv" "$O/events.csv" && ok "events.csv identical" || bad "events.csv differs"
same_outputs "$WORK/job/$O" "$O" dataset.h5 profiles.h5 projection.h5 segments.h5 model.h5
cmp -s "$WORK/job/$O/segments.csv" "$O/segments.csv" && ok "segments.csv identical" ||
  bad "segments.csv differs"
cmp -s "$WORK/job/$O/recommendations.csv" "$O/recommendations.csv" &&
  ok "recommendations.csv identical" || bad "recommendations.csv differs"
finish
