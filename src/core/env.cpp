#include "segrec/core/env.hpp"

#include <sched.h>

#include <charconv>
#include <cstdlib>
#include <cstring>

namespace segrec::env {

namespace {
int positive(const char* name) {
  const char* s = std::getenv(name);
  if (!s || !*s) return 0;
  int v = 0;
  const char* end = s + std::strlen(s);
  const auto r = std::from_chars(s, end, v);
  if (r.ec != std::errc() || r.ptr != end || v < 1 || v > 1024) return 0;
  return v;
}
}  // namespace

int default_threads() {
  if (const int v = positive("OMP_NUM_THREADS")) return v;
  if (const int v = positive("SLURM_CPUS_PER_TASK")) return v;
  return 1;
}

const char* default_threads_source() {
  if (positive("OMP_NUM_THREADS")) return "OMP_NUM_THREADS";
  if (positive("SLURM_CPUS_PER_TASK")) return "SLURM_CPUS_PER_TASK";
  return "default";
}

bool threads_given() { return std::strcmp(default_threads_source(), "default") != 0; }

int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return 1;
  const int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

std::string job_id() {
  const char* id = std::getenv("SLURM_JOB_ID");
  if (!id || !*id) return "";
  std::string out = id;
  if (const char* task = std::getenv("SLURM_ARRAY_TASK_ID"); task && *task)
    out += std::string("_") + task;
  return out;
}

}  // namespace segrec::env
