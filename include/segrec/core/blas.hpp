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

/// "OpenBLAS 0.3.21 (kernel Zen, 1 thread)" or "none (Eigen's own kernels)".
std::string describe();

}  // namespace segrec::blas
