// Input encoding: how a user's history, projection row and segment become one
// row of an mlp::Batch (shared by training and scoring).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "segrec/personalisation/mlp.hpp"

namespace segrec {

// How an interaction weight becomes an input / target value.
inline float history_value(float w, bool log_weight) {
  return log_weight ? static_cast<float>(std::log1p(std::max(w, 0.0f))) : 1.0f;
}

// What the first layer reads and how rows are built.
struct RowSpec {
  bool history = true;
  bool log_weight = false;
  std::int64_t dense_dim = 0;
  bool segments = false;
  bool bce = false;
};

// Appends one user's input row: the (item, value) pairs in `items` (already
// chosen: all items, or the fold-in), L2-normalised, then input dropout with
// rate `drop` keyed by `drop_key` (survivors scaled by 1 / (1 - drop)).
inline void add_input_row(mlp::Batch<float>& bt, const RowSpec& spec,
                          const std::vector<std::pair<std::int32_t, float>>& items, double drop,
                          std::uint64_t drop_key, const float* dense, std::int32_t segment,
                          std::uint64_t key) {
  if (spec.history) {
    double ss = 0;
    for (const auto& [i, v] : items) ss += static_cast<double>(v) * v;
    const double inv = ss > 0 ? 1.0 / std::sqrt(ss) : 0.0;
    const float scale = static_cast<float>(inv / (1.0 - drop));
    const std::uint64_t mk = mlp::splitmix64(drop_key);
    for (const auto& [i, v] : items) {
      if (drop > 0 && mlp::unit_uniform(mlp::splitmix64(mk ^ static_cast<std::uint64_t>(i))) < drop)
        continue;
      bt.in_idx.push_back(i);
      bt.in_val.push_back(v * scale);
    }
  }
  bt.in_ptr.push_back(static_cast<std::int64_t>(bt.in_idx.size()));
  if (spec.dense_dim > 0) bt.dense.insert(bt.dense.end(), dense, dense + spec.dense_dim);
  if (spec.segments) bt.segment.push_back(segment);
  bt.key.push_back(key);
  ++bt.rows;
}

inline void close_targets(mlp::Batch<float>& bt) {
  bt.tgt_ptr.push_back(static_cast<std::int64_t>(bt.tgt_idx.size()));
}

}  // namespace segrec
