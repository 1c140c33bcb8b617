// The BLAS behind Eigen's dense products. With SEGREC_BLAS (the default build)
// Eigen hands float and double matrix products to OpenBLAS (EIGEN_USE_BLAS);
// without it Eigen's own kernels run. See docs/performance.md.
#pragma once

#include <string>

namespace segrec::blas {

/// Called once at start-up, before MPI_Init, with main's argv.
/// - As many BLAS threads per rank as the rank's threads (env::default_threads():
///   $OMP_NUM_THREADS, else $SLURM_CPUS_PER_TASK, else 1: one rank per core by default)
///   unless $OPENBLAS_NUM_THREADS says otherwise.
/// - When OpenBLAS did not recognise the CPU and fell back to a generic kernel
///   although the CPU has AVX-512 or AVX2, the process re-executes itself once
///   with $OPENBLAS_CORETYPE set to the matching kernel (SkylakeX or Haswell).
/// A no-op in builds without SEGREC_BLAS.
void configure(char** argv);

/// The BLAS threads now (1 without SEGREC_BLAS).
int threads();

/// BLAS threads for a rank's share of its node: its affinity CPUs over the ranks on the node
/// (node_ranks), at least 1.
int node_share(int affinity_cpus, int node_ranks);

/// While it lives, the BLAS runs node_share(env::affinity_cpus(), node_ranks) threads, unless
/// the threads were given ($OPENBLAS_NUM_THREADS, $OMP_NUM_THREADS or $SLURM_CPUS_PER_TASK:
/// then configure()'s count stays). For the few stages that are one large factorisation
/// (EASE): a rank alone on its node uses the node's cores there, as numpy would. Restores
/// the previous count.
class NodeThreads {
 public:
  explicit NodeThreads(int node_ranks);
  ~NodeThreads();
  NodeThreads(const NodeThreads&) = delete;
  NodeThreads& operator=(const NodeThreads&) = delete;
  /// The BLAS threads while this object lives.
  int threads() const { return threads_; }

 private:
  int saved_ = 1, threads_ = 1;
};

/// "OpenBLAS 0.3.21 (kernel Zen, 1 thread)" or "none (Eigen's own kernels)".
std::string describe();

}  // namespace segrec::blas
