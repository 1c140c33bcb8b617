#include "segrec/core/blas.hpp"

#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <string>

#include "segrec/core/env.hpp"

#ifdef SEGREC_HAVE_OPENBLAS
extern "C" {
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char* openblas_get_corename(void);
char* openblas_get_config(void);
}
#endif

namespace segrec::blas {

#ifdef SEGREC_HAVE_OPENBLAS
namespace {

// The kernel that suits this CPU, from the flags in /proc/cpuinfo: "" when unknown.
std::string kernel_for_cpu() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    const auto has = [&](const char* f) {
      return (" " + line + " ").find(std::string(" ") + f + " ") != std::string::npos;
    };
    if (has("avx512f")) return "SkylakeX";
    if (has("avx2")) return "Haswell";
    return "";
  }
  return "";
}

// Kernels OpenBLAS falls back to on CPUs it does not know.
bool generic_kernel(std::string core) {
  for (auto& c : core) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return core == "prescott" || core == "core2" || core == "katmai" || core == "coppermine" ||
         core == "northwood" || core == "banias" || core == "atom" || core == "nehalem" ||
         core == "unknown";
}

}  // namespace
#endif

void configure(char** argv) {
#ifdef SEGREC_HAVE_OPENBLAS
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr && std::getenv("SEGREC_BLAS_REEXEC") == nullptr) {
    const char* core = openblas_get_corename();
    const std::string want = kernel_for_cpu();
    if (core != nullptr && generic_kernel(core) && !want.empty() && argv != nullptr) {
      ::setenv("OPENBLAS_CORETYPE", want.c_str(), 1);
      ::setenv("SEGREC_BLAS_REEXEC", "1", 1);  // at most once
      ::execv("/proc/self/exe", argv);
      // execv failed: carry on with the generic kernel.
    }
  }
  // The rank's threads (OMP_NUM_THREADS, else SLURM_CPUS_PER_TASK, else 1), unless the BLAS
  // is told otherwise.
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr)
    openblas_set_num_threads(env::default_threads());
#else
  (void)argv;
#endif
}

int threads() {
#ifdef SEGREC_HAVE_OPENBLAS
  return openblas_get_num_threads();
#else
  return 1;
#endif
}

int node_share(int affinity_cpus, int node_ranks) {
  return node_ranks > 0 && affinity_cpus > node_ranks ? affinity_cpus / node_ranks : 1;
}

NodeThreads::NodeThreads(int node_ranks) {
#ifdef SEGREC_HAVE_OPENBLAS
  saved_ = threads_ = openblas_get_num_threads();
  const bool given = std::getenv("OPENBLAS_NUM_THREADS") != nullptr || env::threads_given();
  if (!given) {
    threads_ = node_share(env::affinity_cpus(), node_ranks);
    if (threads_ != saved_) openblas_set_num_threads(threads_);
  }
#else
  (void)node_ranks;
#endif
}

NodeThreads::~NodeThreads() {
#ifdef SEGREC_HAVE_OPENBLAS
  if (threads_ != saved_) openblas_set_num_threads(saved_);
#endif
}

std::string describe() {
#ifdef SEGREC_HAVE_OPENBLAS
  const int t = openblas_get_num_threads();
  std::string config = openblas_get_config();
  const auto space = config.find(' ', config.find(' ') + 1);  // "OpenBLAS 0.3.21 ..."
  if (space != std::string::npos) config.resize(space);
  return config + " (kernel " + openblas_get_corename() + ", " + std::to_string(t) +
         (t == 1 ? " thread)" : " threads)");
#else
  return "none (Eigen's own kernels)";
#endif
}

}  // namespace segrec::blas
