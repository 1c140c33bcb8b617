// Distributed K-means over row-partitioned user embeddings (`segrec cluster`): the entry
// points and their results.
//
// Every rank holds a contiguous block of users (rows of the projection /H, in
// rank order); centroids are replicated. One Lloyd iteration is a local
// assignment step (distances ||x||^2 - 2 x.c + ||c||^2 in single precision,
// fused with the argmin) followed by ONE allreduce of a packed double buffer
// [k*h sums | k counts | inertia | changed labels]. With --algorithm hamerly (the default
// for k * h >= 4096) the assignment keeps Hamerly's per-user distance bounds and sends only the
// users whose bounds overlap through the kernel: the same labels, sums and collectives as
// plain Lloyd, less distance work once clusters settle. Randomness (initialisation,
// samples) is keyed by the seed and the GLOBAL user index, and every user's
// distances come from the same instruction sequence wherever the user sits, so
// labels do not depend on the rank or thread count.
//
// Units: params.hpp (options), init.hpp (initial centroids), quality.hpp (quality
// figures), output.hpp (centroid files, segments.h5 and CSV).
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <limits>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/kmeans/params.hpp"

namespace segrec {

/// Row-major float matrix (users x dims, centroids x dims).
using MatrixRF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// Row-major double matrix.
using MatrixRD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Statistics of one Lloyd iteration (global figures).
struct KMeansIteration {
  double inertia = 0;  ///< sum of squared distances to the centroids the users were assigned to
  double shift = 0;    ///< sum over centroids of the squared move of this iteration
  std::int64_t changed = 0;     ///< users whose label changed (all users in the first iteration)
  double seconds = 0;           ///< wall time of the iteration on rank 0
  std::uint64_t bytes = 0;      ///< bytes this rank sent in collectives during the iteration
  std::int64_t relocated = 0;   ///< empty clusters moved to far users in this iteration
  std::int64_t recomputed = 0;  ///< THIS rank's users compared with all centroids (local figure)
};

/// Result of one K-means run. Global figures are identical on every rank.
struct KMeansResult {
  std::int64_t k = 0;
  MatrixRD centroids;                ///< k x h
  std::vector<std::int32_t> labels;  ///< this rank's users, in [0, k)
  std::vector<std::int64_t> sizes;   ///< users per cluster (k)
  double inertia = 0;                ///< final: sum of squared distances to own centroid
  int n_iter = 0;                    ///< Lloyd iterations run
  bool converged = false;            ///< stopped by unchanged labels or the tol rule
  bool hamerly = false;              ///< the iterations kept Hamerly's bounds (--algorithm)
  int restart = 0;                   ///< restart that won (0-based)
  std::int64_t relocated = 0;        ///< empty-cluster relocations over all iterations
  double seconds = 0;  ///< wall time of the Lloyd runs (iterations and final assignment), rank 0
  double init_seconds = 0;              ///< wall time of the initialisations (all restarts), rank 0
  std::vector<double> restart_inertia;  ///< per restart: inertia when it was compared
  int swaps = 0;                        ///< merge-split moves kept (swaps.cpp)
  int swap_runs = 0;                    ///< Lloyd runs the merge-split moves took
  std::vector<KMeansIteration> iterations;
};

/// Clustering quality figures (NaN when undefined or not computed).
struct ClusterQuality {
  double silhouette = std::numeric_limits<double>::quiet_NaN();
  std::int64_t silhouette_sample = 0;  ///< users the silhouette was averaged over
  double davies_bouldin = std::numeric_limits<double>::quiet_NaN();
  double calinski_harabasz = std::numeric_limits<double>::quiet_NaN();
  double gap = std::numeric_limits<double>::quiet_NaN();     ///< gap statistic (gap.hpp)
  double gap_se = std::numeric_limits<double>::quiet_NaN();  ///< its standard error
  /// The largest sqrt(m) dip of a segment's 2-means split in the silhouette's sample
  /// (split_dip.hpp; sweeps only)
  double split_dip = std::numeric_limits<double>::quiet_NaN();
};

/// One row of a k sweep.
struct SweepRow {
  std::int64_t k = 0;
  double inertia = 0;
  int n_iter = 0;
  ClusterQuality quality;
  /// --algorithm gmm: the mixture's BIC and total log-likelihood (NaN otherwise). inertia and
  /// n_iter stay K-means' (the gap and elbow rules read the K-means curve).
  double bic = std::numeric_limits<double>::quiet_NaN();
  double log_likelihood = std::numeric_limits<double>::quiet_NaN();
  /// --shape tied: log det of the pooled within-segment covariance (TiedFit::log_det; NaN
  /// otherwise).
  double log_det = std::numeric_limits<double>::quiet_NaN();
};

/// The centroids of an earlier clustering that every k starts from (`cluster --previous`,
/// init.hpp: centroids_from_previous).
struct PreviousCentroids {
  MatrixRF centroids;               ///< k_old x h
  std::vector<std::int64_t> sizes;  ///< users per old segment (k_old)
};

/// What `cluster` produces: the chosen clustering, its quality, the sweep table.
struct ClusterRun {
  KMeansResult result;
  ClusterQuality quality;
  std::vector<SweepRow> sweep;  ///< empty unless --k was a sweep
  double init_seconds = 0;      ///< initialisation, every k and restart (rank 0)
  double lloyd_seconds = 0;     ///< Lloyd iterations, every k and restart (rank 0)
  double quality_seconds = 0;   ///< silhouette, Davies-Bouldin, Calinski-Harabasz (rank 0)
  /// --algorithm gmm: the mixture of the chosen k (result.labels are its argmax
  /// responsibilities, result.centroids its means, result.inertia the squared distances to
  /// them); gmm.fitted is false for K-means.
  GmmFit gmm;
  double gmm_seconds = 0;            ///< EM, every k (rank 0)
  Criterion pick = Criterion::kGap;  ///< the rule the sweep applied (--pick auto resolved)
  /// --shape tied (tied.hpp): the chosen k's whitening (h x h; result.centroids, inertia and
  /// quality are of the whitened rows) and its rounds; whitening is empty otherwise.
  bool tied = false;
  MatrixRD whitening;
  int tied_rounds = 0;
};

// ---- algorithms (all collective over `comm`) ---------------------------------------------
// X: this rank's rows (n_local x h, row-major); ranks hold consecutive global row blocks
// in rank order (any sizes, including empty). Entry points without `modes` take them from
// p.validate().

/// K-means with k clusters: init (or `init`, k x h, when given), Lloyd, n_init restarts.
/// Throws DataError (collective) when k exceeds the number of rows.
KMeansResult kmeans(const MatrixRF& X, std::int64_t k, const KMeansParams& p, const Comm& comm,
                    const MatrixRF* init = nullptr);

/// Lloyd iterations from the given centroids (k x h). X must already be normalised when
/// p.spherical.
KMeansResult lloyd(const MatrixRF& X, const MatrixRF& init, const KMeansParams& p,
                   const Comm& comm);

/// Full clustering stage: parses --k, runs every k of a sweep, computes quality figures
/// and picks k. `init` (from a centroid file) requires a single k equal to its rows.
/// `previous` (instead of `init`): every k starts, once, from centroids_from_previous.
ClusterRun cluster(const MatrixRF& X, const KMeansParams& p, const KMeansModes& modes,
                   const Comm& comm, const MatrixRF* init = nullptr,
                   const PreviousCentroids* previous = nullptr);
ClusterRun cluster(const MatrixRF& X, const KMeansParams& p, const Comm& comm,
                   const MatrixRF* init = nullptr);

/// Index of the sweep row that `crit` prefers (params.hpp --pick; the first row when no
/// figure is defined).
std::size_t pick_k(const std::vector<SweepRow>& rows, Criterion crit);

/// Rows of X scaled to unit L2 norm (zero rows stay zero).
MatrixRF normalize_rows(const MatrixRF& X);

/// Global per-column moments of row-partitioned X (one allreduce of 2 h + 1 doubles).
struct ColumnMoments {
  double n = 0;              ///< rows, all ranks
  std::vector<double> mean;  ///< h
  std::vector<double> var;   ///< h, population variance E[x^2] - mean^2, clamped at 0
};
/// Collective. One pass over X in row order (sums of x and x^2 in double).
ColumnMoments column_moments(const MatrixRF& X, const Comm& comm);
/// Bytes one rank sends in the per-iteration allreduce: (k*h + k + 2) * 8.
std::uint64_t lloyd_allreduce_bytes(std::int64_t k, std::int64_t h);

}  // namespace segrec
