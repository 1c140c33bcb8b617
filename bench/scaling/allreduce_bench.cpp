// Allreduce ping: time of one Comm::allreduce (double sum) per message size,
// for the alpha-beta fit of docs/scaling.md. Every rank runs the same sizes;
// rank 0 prints one JSON object per size:
//   {"ranks": P, "bytes": B, "reps": R, "median_s": t, "min_s": t, "bytes_sent_per_call": b}
// bytes_sent_per_call comes from Comm::stats() (what segrec counts per call).
//
// usage: mpirun -n P segrec_allreduce_bench [max_bytes=67108864] [budget_s=1.0]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "segrec/core/comm.hpp"

int main(int argc, char** argv) {
  segrec::MpiEnvironment env(&argc, &argv);
  const segrec::Comm comm = segrec::Comm::world();
  const std::size_t max_bytes = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : (64u << 20);
  const double budget = argc > 2 ? std::atof(argv[2]) : 1.0;
  for (std::size_t bytes = 8; bytes <= max_bytes; bytes *= 4) {
    std::vector<double> buf(bytes / sizeof(double), 1.0);
    comm.allreduce(buf);  // warm-up (connections, buffers)
    comm.barrier();
    std::vector<double> times;
    const auto start = std::chrono::steady_clock::now();
    for (int rep = 0; rep < 1000; ++rep) {
      // Every rank takes the same decision: rank 0's elapsed time is broadcast.
      double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      comm.broadcast(std::span<double>(&elapsed, 1));
      if (rep >= 5 && elapsed > budget) break;
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      comm.allreduce(buf);
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      times.push_back(comm.allreduce_value(t, segrec::Op::kMax));  // slowest rank
    }
    comm.reset_stats();
    comm.allreduce(buf);
    const auto sent = comm.stats().allreduce_bytes;
    std::sort(times.begin(), times.end());
    if (comm.is_root())
      std::printf(
          "{\"ranks\": %d, \"bytes\": %zu, \"reps\": %zu, \"median_s\": %.9g, \"min_s\": %.9g, "
          "\"bytes_sent_per_call\": %llu}\n",
          comm.size(), bytes, times.size(), times[times.size() / 2], times.front(),
          static_cast<unsigned long long>(sent));
    std::fflush(stdout);
  }
  return 0;
}
