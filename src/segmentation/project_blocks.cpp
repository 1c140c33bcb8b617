// The projection in two blocks (project_blocks.hpp).
#include "segrec/segmentation/project_blocks.hpp"

#include <algorithm>

#include "segrec/segmentation/profile.hpp"

namespace segrec {

std::int64_t value_block_dims(std::int64_t dims, std::int64_t value_dims, std::int64_t d_value) {
  const std::int64_t v = value_dims >= 0 ? value_dims : std::max<std::int64_t>(1, dims / 4);
  return std::max<std::int64_t>(0, std::min({v, d_value, dims - 1}));
}

std::int64_t projected_features(const FeatureBlock& X, const std::vector<std::uint8_t>& dense_block,
                                std::int64_t value_dims) {
  std::int64_t interest = X.n_sparse, value = 0;
  for (std::int64_t j = 0; j < X.n_dense; ++j) {
    interest += dense_block[j] == kBlockInterest ? 1 : 0;
    value += dense_block[j] == kBlockValue ? 1 : 0;
  }
  if (value_dims == 0 || value == 0 || interest == 0) return X.n_features();
  return interest + value;
}

namespace {

// Columns `cols` of the dense part: n_local x cols.size(), row-major.
std::vector<float> dense_columns(const FeatureBlock& X, const std::vector<std::int64_t>& cols) {
  const std::int64_t w = static_cast<std::int64_t>(cols.size());
  std::vector<float> out(static_cast<std::size_t>(X.n_local * w));
  for (std::int64_t i = 0; i < X.n_local; ++i)
    for (std::int64_t c = 0; c < w; ++c) out[i * w + c] = X.dense[i * X.n_dense + cols[c]];
  return out;
}

}  // namespace

BlockFit fit_blocks(const FeatureBlock& X, const std::vector<std::uint8_t>& dense_block,
                    std::int64_t dims, std::int64_t value_dims, const BlockFitter& fit) {
  std::vector<std::int64_t> icols, vcols;         // dense column indices of each block
  for (std::int64_t j = 0; j < X.n_dense; ++j) {  // descriptive columns: in neither block
    if (dense_block[j] == kBlockInterest) icols.push_back(j);
    if (dense_block[j] == kBlockValue) vcols.push_back(j);
  }
  BlockFit out;
  const std::int64_t dv = static_cast<std::int64_t>(vcols.size());
  const std::int64_t n_interest = X.n_sparse + static_cast<std::int64_t>(icols.size());
  std::int64_t nv = value_block_dims(dims, value_dims, dv);
  // More dims than the interest block has features: the value block takes the rest.
  if (nv > 0) nv = std::min(dv, std::max(nv, dims - n_interest));
  if (nv == 0 || n_interest == 0) {
    out.model = fit(X, dims);
    out.interest_dims = out.model.components.cols();
    return out;
  }
  const std::vector<float> idense = dense_columns(X, icols), vdense = dense_columns(X, vcols);
  FeatureBlock XI = X;
  XI.n_dense = static_cast<std::int64_t>(icols.size());
  XI.dense = idense;
  const std::vector<std::int64_t> empty_ptr(static_cast<std::size_t>(X.n_local + 1), 0);
  FeatureBlock XV;
  XV.n_users = X.n_users;
  XV.n_local = X.n_local;
  XV.n_sparse = 0;
  XV.n_dense = static_cast<std::int64_t>(vcols.size());
  XV.indptr = empty_ptr;
  XV.dense = vdense;
  const ProjectionModel mi = fit(XI, dims - nv);
  const ProjectionModel mv = fit(XV, nv);
  const std::int64_t hi = mi.components.cols(), hv = mv.components.cols(), H = hi + hv;
  const std::int64_t D = X.n_features(), ns = X.n_sparse;

  ProjectionModel& m = out.model;
  m.method = mi.method;
  m.components = Eigen::MatrixXd::Zero(D, H);
  m.mean = Eigen::VectorXd::Zero(D);
  // Rows of the interest block: the sparse features, then its dense columns.
  m.components.topLeftCorner(ns, hi) = mi.components.topRows(ns);
  m.mean.head(ns) = mi.mean.head(ns);
  for (std::size_t c = 0; c < icols.size(); ++c) {
    m.components.row(ns + icols[c]).head(hi) = mi.components.row(ns + static_cast<std::int64_t>(c));
    m.mean[ns + icols[c]] = mi.mean[ns + static_cast<std::int64_t>(c)];
  }
  for (std::size_t c = 0; c < vcols.size(); ++c) {
    m.components.row(ns + vcols[c]).tail(hv) = mv.components.row(static_cast<std::int64_t>(c));
    m.mean[ns + vcols[c]] = mv.mean[static_cast<std::int64_t>(c)];
  }
  m.total_variance = mi.total_variance + mv.total_variance;
  m.singular_values.resize(H);
  m.singular_values << mi.singular_values, mv.singular_values;
  // Ratios of the whole profile variance.
  m.explained_variance_ratio.resize(H);
  for (std::int64_t c = 0; c < H; ++c) {
    const double s = m.singular_values[c];
    m.explained_variance_ratio[c] = m.total_variance > 0 ? s * s / m.total_variance : 0.0;
  }
  m.warnings = mi.warnings;
  m.warnings.insert(m.warnings.end(), mv.warnings.begin(), mv.warnings.end());
  m.stats = mi.stats;
  m.stats.total_bytes += mv.stats.total_bytes;
  out.interest_dims = hi;
  out.value_dims = hv;
  return out;
}

}  // namespace segrec
