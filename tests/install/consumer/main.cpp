// Uses the installed headers and library: a serial communicator and the block partition.
#include <segrec/comm.hpp>
#include <segrec/error.hpp>

#include <cstdio>
#include <vector>

int main() {
  const segrec::Comm comm;  // serial: no MPI launch needed
  std::vector<double> v = {1.5, 2.5};
  comm.allreduce(v);
  const segrec::Block b = segrec::block_partition(10, 3, 1);
  std::printf("ranks %d sum %.1f block %lld..%lld exit-usage %d\n", comm.size(), v[0] + v[1],
              static_cast<long long>(b.begin), static_cast<long long>(b.end),
              static_cast<int>(segrec::kExitUsage));
  return 0;
}
