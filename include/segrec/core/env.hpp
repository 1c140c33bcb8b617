// Environment variables the program honours (see docs/cli.md, "Environment").
#pragma once

#include <string>

namespace segrec::env {

/// Threads per rank when no --threads is given: $OMP_NUM_THREADS, else
/// $SLURM_CPUS_PER_TASK (Slurm's --cpus-per-task), else 1. Values outside
/// [1, 1024] or not integers are ignored.
int default_threads();
/// Which variable default_threads() took its value from: "OMP_NUM_THREADS",
/// "SLURM_CPUS_PER_TASK" or "default".
const char* default_threads_source();

/// Whether a variable gives the threads per rank ($OMP_NUM_THREADS or $SLURM_CPUS_PER_TASK):
/// default_threads_source() is not "default".
bool threads_given();

/// The CPUs this process may run on (its affinity mask: what mpirun's binding or Slurm's
/// task affinity left it), at least 1.
int affinity_cpus();

/// The batch job this process runs in: $SLURM_JOB_ID, with "_<task>" appended for an
/// array task ($SLURM_ARRAY_TASK_ID); "" outside Slurm.
std::string job_id();

}  // namespace segrec::env
