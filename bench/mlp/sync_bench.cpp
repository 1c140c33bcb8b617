// Gradient exchange on its own: milliseconds per call for a float buffer of N
// elements (default 5,222,432: the projected/20000 model of bench/mlp/run.sh),
// for each way `segrec train --grad-sync` can combine gradients, and for the MPI
// library's own MPI_Reduce_scatter (which Comm::reduce_scatter replaces).
// Median and minimum of REPS calls, the slowest rank's time per call; rank 0
// prints one JSON object per method.
//   mpirun -n P segrec_sync_bench [N] [REPS=30]
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <span>
#include <vector>

#include "segrec/core/comm.hpp"

using segrec::Comm;

int main(int argc, char** argv) {
  segrec::MpiEnvironment env(&argc, &argv);
  const Comm comm = Comm::world();
  const std::int64_t n = argc > 1 ? std::atoll(argv[1]) : 5222432;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 30;
  const int P = comm.size();
  std::vector<float> buf(static_cast<std::size_t>(n), 1.0f);
  std::vector<std::int64_t> off(static_cast<std::size_t>(P) + 1);
  for (int r = 0; r <= P; ++r) off[r] = n * r / P;
  std::vector<int> counts(static_cast<std::size_t>(P));
  for (int r = 0; r < P; ++r) counts[r] = static_cast<int>(off[r + 1] - off[r]);
  std::vector<float> mine(static_cast<std::size_t>(counts[comm.rank()]));
  const std::span<float> all(buf);
  const std::span<const std::int64_t> offsets(off);

  const auto time = [&](const char* name, const std::function<void()>& f) {
    for (int w = 0; w < 3; ++w) f();
    std::vector<double> t;
    for (int k = 0; k < reps; ++k) {
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      f();
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      t.push_back(comm.allreduce_value(s, segrec::Op::kMax));
    }
    std::sort(t.begin(), t.end());
    if (comm.is_root())
      std::printf(
          "{\"ranks\": %d, \"floats\": %lld, \"method\": \"%s\", \"median_ms\": %.3f, "
          "\"min_ms\": %.3f}\n",
          P, static_cast<long long>(n), name, 1e3 * t[t.size() / 2], 1e3 * t.front());
    std::fflush(stdout);
  };
  time("allreduce (--grad-sync allreduce)", [&] { comm.allreduce(all); });
  time("Comm::reduce_scatter (ring)", [&] { comm.reduce_scatter(all, offsets); });
  time("Comm::allgather_blocks", [&] { comm.allgather_blocks(all, offsets); });
  time("reduce_scatter + allgather (--grad-sync sharded)", [&] {
    comm.reduce_scatter(all, offsets);
    comm.allgather_blocks(all, offsets);
  });
  time("MPI_Reduce_scatter (the library's)", [&] {
    // native() points at the communicator's MPI_Comm.
    if (MPI_Reduce_scatter(buf.data(), mine.data(), counts.data(), MPI_FLOAT, MPI_SUM,
                           *static_cast<MPI_Comm*>(comm.native())) != MPI_SUCCESS)
      std::abort();
  });
  return 0;
}
