#!/usr/bin/env bash
# jobs/segrec.sbatch jobs/demo.ini across nodes of the multi-node test cluster (one network
# namespace per node, TCP between them): `sbatch -N 2 --ntasks-per-node=1` with the ranks
# started by srun --mpi=pmix and by mpirun; both complete on 2 nodes, and every output equals
# that of the same job on one node (sbatch -N 1 --ntasks=2). Also: the root namespace holds the
# guard route while the cluster is up.
source "$(dirname "$0")/lib.sh"
[[ ${SLURM_LOCAL_NODES:-1} -ge 2 ]] || { echo "skipped: needs SLURM_TEST_NODES >= 2"; exit 77; }
guard_route

O=demo-out
# job NAME LAUNCHER SBATCH_OPTIONS...: the demo pipeline in $WORK/NAME; ok when it completed.
job() {
  local name=$1 launcher=$2 t0=$SECONDS id log; shift 2
  mkdir -p "$WORK/$name" && cd "$WORK/$name" || return 1
  id=$(SEGREC_LAUNCHER=$launcher sbatch --parsable "$@" --time=00:10:00 \
    "$ROOT/jobs/segrec.sbatch" "$ROOT/jobs/demo.ini")
  [[ -n $id ]] || { bad "$name: sbatch failed"; return 1; }
  log="$WORK/$name/segrec-$id.out"
  if wait_done "$id" 400; then
    ok "$name: job $id completed on $(job_field "$id" NodeList) in $((SECONDS - t0)) s"
  else
    bad "$name: job $id $(job_field "$id" JobState) $(job_field "$id" ExitCode)"; cat "$log"; return 1
  fi
  grep -q "2 rank(s)" "$log" && ok "$name: 2 ranks" || bad "$name: not 2 ranks: $(head -1 "$log")"
  JOB=$id
}

# One node: the reference.
job one auto -N 1 --ntasks=2 || { finish; exit; }
[[ $(job_nodes "$JOB" | wc -l) -eq 1 ]] && ok "one: ran on one node" || bad "one: $(job_nodes "$JOB")"

# The job NAME (just run) ran on 2 nodes, was launched as its log's PATTERN says, and wrote
# what the one-node run wrote.
two_nodes_like_one() {
  local name=$1 pattern=$2 f
  [[ $(job_nodes "$JOB" | wc -l) -eq 2 ]] && ok "$name: ran on 2 nodes" || bad "$name: $(job_nodes "$JOB")"
  grep -q "$pattern" "$WORK/$name/segrec-$JOB.out" && ok "$name: launched with $pattern" ||
    bad "$name: $pattern not used"
  same_outputs "$WORK/one/$O" "$WORK/$name/$O" dataset.h5 profiles.h5 projection.h5 segments.h5 model.h5
  for f in events.csv segments.csv recommendations.csv; do
    cmp -s "$WORK/one/$O/$f" "$WORK/$name/$O/$f" && ok "$name: $f identical" || bad "$name: $f differs"
  done
}

# Two nodes, one rank each, srun --mpi=pmix.
if srun --mpi=list 2>&1 | grep -qw pmix; then
  job srun srun -N 2 --ntasks-per-node=1 && two_nodes_like_one srun "srun --mpi=pmix"
else
  echo "note: this Slurm has no pmix plugin; srun --mpi=pmix not tested"
fi

# Two nodes, one rank each, mpirun inside the allocation (it starts its daemons through srun).
job mpirun mpirun -N 2 --ntasks-per-node=1 && two_nodes_like_one mpirun "^+ mpirun"
finish
