// GoogleTest main for tests run under mpirun: MPI is initialised once for the
// whole binary, and only rank 0 (and ranks with failures) print results.
#include <gtest/gtest.h>

#include "segrec/core/comm.hpp"

namespace {
class QuietListener : public testing::EmptyTestEventListener {};
}  // namespace

int main(int argc, char** argv) {
  segrec::MpiEnvironment env(&argc, &argv);
  testing::InitGoogleTest(&argc, argv);
  const int rank = segrec::Comm::world().rank();
  if (rank != 0) {
    // Keep failure output of other ranks, drop their progress lines.
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    auto* def = listeners.Release(listeners.default_result_printer());
    (void)def;
    struct FailurePrinter : testing::EmptyTestEventListener {
      int rank;
      explicit FailurePrinter(int r) : rank(r) {}
      void OnTestPartResult(const testing::TestPartResult& r) override {
        if (r.failed())
          std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank, r.file_name() ? r.file_name() : "?",
                       r.line_number(), r.summary());
      }
    };
    listeners.Append(new FailurePrinter(rank));
    delete def;
  }
  int failed = RUN_ALL_TESTS();
  // Every rank's verdict decides the exit code of rank 0 as well.
  failed = segrec::Comm::world().allreduce_value(failed, segrec::Op::kMax);
  return failed;
}
