// Checks shared by the data-parallel training tests: weights against a single-process run,
// per-epoch curves, and every rank holding the same model.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/train/trainer.hpp"

namespace segrec::testing_ranks {

/// ||a - b|| / ||b||.
inline double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (std::size_t k = 0; k < std::min(a.size(), b.size()); ++k) {
    num += (static_cast<double>(a[k]) - b[k]) * (static_cast<double>(a[k]) - b[k]);
    den += static_cast<double>(b[k]) * b[k];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

/// The first `n` epochs' training loss (relative 1e-4) and, when `validated`, validation
/// NDCG (1e-3) of a distributed run against a single-process one.
inline void expect_curves_match(const std::vector<EpochStats>& par,
                                const std::vector<EpochStats>& serial, std::size_t n,
                                bool validated = true) {
  ASSERT_GE(par.size(), n);
  ASSERT_GE(serial.size(), n);
  for (std::size_t e = 0; e < n; ++e) {
    EXPECT_NEAR(par[e].train_loss, serial[e].train_loss, 1e-4 * std::abs(serial[e].train_loss));
    if (validated) {
      EXPECT_NEAR(par[e].val_ndcg, serial[e].val_ndcg, 1e-3);
    }
  }
}

/// Every rank holds bitwise the same parameters (collective).
inline void expect_same_on_every_rank(const Comm& world, const std::vector<float>& params) {
  const auto h = static_cast<std::uint64_t>(std::hash<std::string>{}(
      std::string(reinterpret_cast<const char*>(params.data()), params.size() * sizeof(float))));
  EXPECT_EQ(world.allreduce_value(h, Op::kMax), world.allreduce_value(h, Op::kMin));
}

}  // namespace segrec::testing_ranks
