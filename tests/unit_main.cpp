// GoogleTest main for the serial unit tests: the BLAS is set up as in segrec.
#include <gtest/gtest.h>

#include "segrec/core/blas.hpp"

int main(int argc, char** argv) {
  segrec::blas::configure(argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
