// The projection in two blocks: interest and value (view.hpp says what they are for).
//
// The profile's features split into the interest block (the sparse item part and the
// `category_share:` columns) and the value block (the dense statistics of block 1: volume,
// funnel, mean values, recency, price tier; profile.hpp). Descriptive columns (block 2,
// statistics that restate the value block's) are in neither: their rows of W are 0.
// Each block gets its own PCA (or random projection):
//   H = [ X_I W_I  (interest_dims) | X_V W_V  (value_dims) ]
// so a block with a large but group-free variance (e.g. an activity axis) cannot take the
// other block's components. W (D x H) is block-diagonal up to the row order of the
// features, so h_u = W^T (x_u - mean) still holds for new users.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/project.hpp"

namespace segrec {

/// Dimensions of the value block: `value_dims` when >= 0, else min(d_value, max(1, dims / 4));
/// at most d_value and at most dims - 1 (the interest block keeps one at least).
std::int64_t value_block_dims(std::int64_t dims, std::int64_t value_dims, std::int64_t d_value);

/// Features fit_blocks projects: all of X's with one block (value_dims 0, or no value or
/// no interest columns), else all but the descriptive columns. `dims` is clamped to it.
std::int64_t projected_features(const FeatureBlock& X, const std::vector<std::uint8_t>& dense_block,
                                std::int64_t value_dims);

/// How a projection was fitted.
struct BlockFit {
  ProjectionModel model;  ///< W over all D features (block-diagonal), mean, figures
  std::int64_t interest_dims = 0, value_dims = 0;
};

/// Fits one block: (its features, its dims) -> model (randomized_pca or random_projection).
using BlockFitter = std::function<ProjectionModel(const FeatureBlock&, std::int64_t)>;

/// Collective. Fits both blocks of X (`dense_block`: ProfileModel::dense_block, 0 = the
/// column goes with the items, 1 = value, 2 = neither), `dims` in total (value_block_dims). Without
/// value columns, or with value_dims 0, one block holds everything (value_dims = 0 in the result).
BlockFit fit_blocks(const FeatureBlock& X, const std::vector<std::uint8_t>& dense_block,
                    std::int64_t dims, std::int64_t value_dims, const BlockFitter& fit);

}  // namespace segrec
