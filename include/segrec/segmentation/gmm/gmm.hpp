// Distributed Gaussian mixture EM over row-partitioned users (`segrec cluster --algorithm
// gmm`). Every rank holds a contiguous block of rows; parameters are replicated.
//
// Start: the M-step of the K-means labels (hard responsibilities). One iteration: a local
// E-step (log-densities through the Cholesky factor of each precision, log-sum-exp,
// responsibilities) that also accumulates the sufficient statistics of the next M-step,
// then ONE allreduce of the packed double buffer
//   [N_k (k) | sum_i r_ik x_i (k h) | scatter (full: k h h, diag: k h, tied: none) | log L],
// and the M-step on every rank. Rows are centred on the global mean first (one allreduce),
// so the scatter S_k = sum_i r_ik x_i x_i^T loses little to cancellation in
// Sigma_k = S_k / N_k - mu_k mu_k^T. Tied: Sigma = (sum_i x_i x_i^T - sum_k N_k mu_k mu_k^T)
// / n, whose first term is summed once. Every row's figures come from the same loop
// wherever it sits, so labels do not depend on the rank count.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/gmm/fit.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec {

/// Collective. EM for k components from `init_labels` (this rank's rows, in [0, k)).
/// `labels` gets this rank's argmax-responsibility labels (first component on ties); it may be
/// the vector `init_labels` views (read completely before `labels` is written). Memory: a
/// centred double copy of X (n_local x h x 8 bytes) besides X.
/// Throws DataError (collective) when a covariance is not positive definite.
GmmFit gmm_em(const MatrixRF& X, std::span<const std::int32_t> init_labels, std::int64_t k,
              const GmmOptions& o, const Comm& comm, std::vector<std::int32_t>& labels);

/// Collective. Makes a K-means result whose labels gmm_em replaced describe the mixture:
/// centroids = the means, sizes = users per label, inertia = sum of squared distances to the
/// mean of each user's label (one allreduce of k + 1 doubles).
void apply_mixture(const MatrixRF& X, const GmmFit& fit, KMeansResult& r, const Comm& comm);

/// Free parameters: k h means, k - 1 weights and the covariances (full: k h (h + 1) / 2,
/// diag: k h, tied: h (h + 1) / 2).
std::int64_t gmm_parameters(GmmCovariance c, std::int64_t k, std::int64_t h);

}  // namespace segrec
