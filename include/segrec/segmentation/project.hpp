// `segrec project`: reduce profiles x_u (n_items + d features) to H dimensions.
//
// pca (default): distributed randomized SVD (Halko, Martinsson & Tropp 2011,
// algorithm 4.4) of the mean-centred feature matrix Xc = X - 1 mu^T, without
// ever forming Xc (the sparse part stays sparse):
//   Xc M   = X M - 1 (mu^T M)            local, rows of this rank
//   Xc^T Y = X^T Y - mu (1^T Y)          local product + ONE allreduce of a
//                                        (D + 1) x k block (last row: 1^T Y)
// with D features, k = H + oversampling (rounded up to whole SIMD vectors, at
// most D). The random test matrix is keyed by (seed, feature index), so the
// result does not depend on the rank count. Steps:
//   Y = Xc Omega;  q times { Z = orth(Xc^T Y); Y = Xc Z };
//   Q = CholeskyQR2(Y) (allreduced k x k Gram matrices; shifted when ill-conditioned);
//   B^T = Xc^T Q (D x k, replicated);  B^T = U S V^T (small SVD, on every rank);
//   W = U[:, :H] with each column's largest-|.| loading made positive.
// The D-side blocks (replicated, D x k) are orthonormalised with Householder QR.
// Big products run in float (or double); Gram matrices, means, variances and all
// reductions across ranks are in double.
// random: very sparse random projection (Li, Hastie & Church 2006): W = R / sqrt(H),
// R_jc = +-sqrt(s) with probability 1/(2s) each, else 0, s = sqrt(D), drawn per feature.
//
// projection.h5 (format "segrec-projection", version 1):
//   /users/ids string[n_users]   /W f32[D x H]   /mean f64[D]   /singular_values f64[H]
//   /explained_variance_ratio f64[H]   /H f32[n_users x H] (h_u = W^T (x_u - mean))
//   attributes: method, dims, oversampling, power_iterations, profiles, precision,
//   total_variance, seed, interest_dims, value_dims (/H = [interest | value] columns,
//   project_blocks.hpp)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "segrec/core/comm.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"

namespace segrec {

enum class ProjectionMethod { kPca, kRandom };
enum class ProjectionPrecision { kFloat, kDouble };

/// The mode options of ProjectParams, parsed once by validate().
struct ProjectModes {
  ProjectionMethod method = ProjectionMethod::kPca;             ///< --method
  ProjectionPrecision precision = ProjectionPrecision::kFloat;  ///< --precision
};

struct ProjectParams {
  std::string profiles;  ///< profiles.h5 to read (required)
  std::string out;       ///< projection.h5 to write (required)
  /// Output dimensions H (>= 1). More than the number of features is clamped to it
  /// with a warning: a projection cannot have more independent directions.
  std::int64_t dims = 32;
  /// Dimensions of the value block (project_blocks.hpp), within `dims`; -1 = automatic:
  /// min(value statistics, max(1, dims / 4)); 0 = one block over all features.
  std::int64_t value_dims = -1;
  std::string method = "pca";         ///< pca | random
  std::int64_t oversampling = 10;     ///< pca: extra random directions p (>= 0)
  std::int64_t power_iterations = 2;  ///< pca: subspace iterations q (>= 0)
  std::string precision = "float";    ///< float | double: scalar of the big products
  std::uint64_t seed = 42;            ///< keys the random matrices (with the feature index)

  /// Checks every option and returns the parsed modes. Throws UsageError naming the
  /// offending option and value.
  ProjectModes validate() const;
};

/// This rank's rows of a feature matrix X = [S | F] (views, not owned):
/// S sparse CSR n_local x n_sparse (float), F dense n_local x n_dense (row-major float).
struct FeatureBlock {
  std::int64_t n_users = 0;  ///< global rows
  std::int64_t n_local = 0;
  std::int64_t n_sparse = 0, n_dense = 0;
  std::span<const std::int64_t> indptr;  ///< n_local + 1, indptr[0] = 0
  std::span<const std::int32_t> indices;
  std::span<const float> values;
  std::span<const float> dense;  ///< n_local x n_dense

  std::int64_t n_features() const { return n_sparse + n_dense; }
};

struct PcaOptions {
  std::int64_t dims = 32;
  std::int64_t oversampling = 10;
  std::int64_t power_iterations = 2;
  std::uint64_t seed = 42;
  bool double_precision = false;  ///< products in double instead of float
};

/// Communication and work of one run (this rank).
struct PcaStats {
  std::int64_t block = 0;            ///< k: columns of the random blocks
  std::int64_t x_products = 0;       ///< products Xc M
  std::int64_t xt_products = 0;      ///< products Xc^T Y (one allreduce each)
  std::int64_t gram_allreduces = 0;  ///< CholeskyQR passes
  std::int64_t shifted = 0;          ///< passes that needed a shift
  std::uint64_t xt_pass_bytes = 0;   ///< bytes sent by the allreduce of one Xc^T Y pass
  std::uint64_t total_bytes = 0;     ///< allreduce bytes of the whole run
};

struct ProjectionModel {
  std::string method;                        ///< "pca" | "random"
  Eigen::MatrixXd components;                ///< W: D x H, columns = directions
  Eigen::VectorXd mean;                      ///< D
  Eigen::VectorXd singular_values;           ///< H: ||Xc w|| / ||w||
  Eigen::VectorXd explained_variance_ratio;  ///< H: ||Xc w||^2 / (||w||^2 ||Xc||_F^2)
  double total_variance = 0;                 ///< ||Xc||_F^2 (sum of squares of the centred data)
  std::vector<std::string> warnings;         ///< e.g. dims clamped (run_project also says it at once)
  PcaStats stats;
};

/// Collective. Randomized PCA of the centred X (see the file comment).
ProjectionModel randomized_pca(const FeatureBlock& X, const PcaOptions& o, const Comm& comm);

/// Collective. Very sparse random projection to `dims` dimensions (centred like pca).
ProjectionModel random_projection(const FeatureBlock& X, std::int64_t dims, std::uint64_t seed,
                                  const Comm& comm);

/// Local. h_u = W^T (x_u - mean) for this rank's rows: n_local x H, row-major.
std::vector<float> project_rows(const FeatureBlock& X, const ProjectionModel& m);

/// Local. CholeskyQR of a tall-skinny block distributed by rows (Y: n_local x k,
/// row-major), in place: one pass = Gram (k x k, allreduced in double), Cholesky,
/// Y <- Y R^{-1}. Two passes (CholeskyQR2), plus one when a Gram matrix is too
/// ill-conditioned and had to be shifted. Zero columns stay zero. Collective.
/// Returns the number of shifted passes.
template <class T>
int cholesky_qr2(Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>& Y,
                 const Comm& comm, PcaStats* stats = nullptr);

struct ProjectSummary {
  std::int64_t users = 0, features = 0, dims = 0;
  std::int64_t interest_dims = 0, value_dims = 0;  ///< the blocks of /H (project_blocks.hpp)
  ProjectionModel model;
  /// Wall seconds (rank 0): reading profiles, fitting W, projecting the users, writing.
  double read_s = 0, fit_s = 0, project_s = 0, write_s = 0;
};

/// Collective. `segrec project`: read profiles, fit, project, write projection.h5.
ProjectSummary run_project(const ProjectParams& p, const Comm& comm);

}  // namespace segrec
