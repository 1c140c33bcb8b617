// Training data: this rank's block of users (interactions, projection rows,
// segment labels), read from dataset.h5 and the per-user files, and checked.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/train/params.hpp"

namespace segrec {

/// This rank's block of users, in memory.
struct TrainData {
  std::int64_t n_users = 0;     ///< global
  std::int64_t user_begin = 0;  ///< global index of the first local user
  std::vector<std::string> item_ids;
  // Interactions, local CSR n_local x n_items: summed event weights.
  std::vector<std::int64_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<float> weights;
  std::int64_t dense_dim = 0;          ///< width of `dense`
  std::vector<float> dense;            ///< n_local x dense_dim, row-major (the projection h_u)
  std::int64_t n_segments = 0;         ///< k
  std::vector<std::int32_t> segments;  ///< n_local labels in [0, k)

  std::vector<std::string> user_ids;  ///< n_local (needed by --test-items)

  std::int64_t n_local() const { return static_cast<std::int64_t>(indptr.size()) - 1; }
  std::int64_t n_items() const { return static_cast<std::int64_t>(item_ids.size()); }
};

/// Collective. Reads this rank's block of dataset.h5 and, as the options ask,
/// projection.h5 (/H) and segments.h5 (/labels); checks that they match.
/// Validates the options first (TrainParams::validate()).
TrainData load_train_data(const TrainParams& p, const Comm& comm);

/// Collective. Checks the in-memory data against the options: throws DataError.
void check_data(const TrainParams& p, const TrainModes& modes, const TrainData& d,
                const Comm& comm);

}  // namespace segrec
