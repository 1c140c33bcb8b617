// Tied segments: K-means under the Mahalanobis distance of one within-segment covariance
// shared by all segments (`segrec cluster --shape tied`, the default on the value view).
//
// Behaviour and value statistics differ in spread and correlate within a segment (a light
// user's funnel ratios are noisy, recency is tight), so Euclidean K-means splits along the
// noisiest axes. From K-means labels, each round computes the pooled within-segment
// covariance S = (1/n) sum_u (x_u - mu_l(u)) (x_u - mu_l(u))^T over the columns with
// variance, whitens the rows by S + eps I = L L^T (z = L^-1 x), and runs Lloyd on Z from
// the whitened means; until no label changes (or kMaxTiedRounds). This is the hard-assignment
// EM of a Gaussian mixture with one tied covariance and equal weights (classification EM);
// the segments are K-means segments of Z, so every K-means figure (inertia, silhouette,
// Davies-Bouldin, gap) is taken on Z and serving assigns a new user by whitening its view row
// (view.hpp, ViewTransform::whitening) and taking the nearest centroid.
#pragma once

#include <functional>
#include <vector>

#include <cstdint>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec {

/// Rounds of whitening and Lloyd at most (each ends with a Lloyd run to convergence).
inline constexpr int kMaxTiedRounds = 20;
/// Regularisation of S: eps = kTiedRidge x mean variance of S's diagonal.
inline constexpr double kTiedRidge = 1e-6;

/// A tied clustering: the whitening and the rows it maps.
struct TiedFit {
  MatrixRD whitening;      ///< h x h, z = whitening * x; identity outside the columns with variance
  MatrixRF Z;              ///< this rank's rows whitened (n_local x h)
  int rounds = 0;          ///< whitening rounds run
  bool converged = false;  ///< the last round changed no label
  /// log det of the final labels' pooled within-segment covariance (with its ridge): the
  /// criterion of the tied classification likelihood, lower is better (restarts compare it).
  double log_det = 0;
};

/// What the tied rounds of X read whatever the labels, taken once per X (a sweep shares it
/// over its k): the columns to whiten, and the covariance that gives the whitened rows' mean
/// variance (K-means' tolerance scale on Z) without a pass over them.
struct TiedInput {
  std::vector<Eigen::Index> cols;  ///< columns whose variance is positive: those whitened
  Eigen::MatrixXd cov;             ///< Sigma: h x h, population covariance over all rows
  double n = 0;                    ///< rows over all ranks
};

/// Collective. One pass over X and one allreduce (the covariance as the gap statistic takes
/// it). cols: variance above 1e-12 x the largest (the view's unused block is all zero).
TiedInput tied_input(const MatrixRF& X, const Comm& comm);

/// Collective. log det(S + eps I) of X's pooled within-segment covariance under `labels` (k
/// segments) over in.cols: TiedFit::log_det of those labels.
double pooled_log_det(const MatrixRF& X, const TiedInput& in,
                      const std::vector<std::int32_t>& labels, std::int64_t k, const Comm& comm);

/// Local. log det(Sigma + eps I) over in.cols, eps as for the segments' covariance: the log det
/// of one segment, against which a k-segment fit's TiedFit::log_det is measured (tied_gap.hpp).
double tied_total_log_det(const TiedInput& in);

/// Local. The mean column variance of X's rows whitened (trace(W Sigma W^T) / h), without
/// a pass over them: K-means' tolerance scale on Z.
double whitened_mean_variance(const TiedInput& in, const MatrixRD& whitening);

/// Collective. Refines `res` (K-means of X, n_local x h) into tied segments: on return
/// res.labels, res.centroids (in the whitened space), res.sizes and res.inertia (of Z) are
/// the tied clustering's; res.n_iter adds the Lloyd iterations of every round.
TiedFit tied_kmeans(const MatrixRF& X, KMeansResult& res, const KMeansParams& p,
                    const KMeansModes& modes, const Comm& comm);
/// The same with X's tied_input given, so that a sweep takes it once for every k.
TiedFit tied_kmeans(const MatrixRF& X, const TiedInput& in, KMeansResult& res,
                    const KMeansParams& p, const KMeansModes& modes, const Comm& comm);

/// Collective. Tied segments from p.restarts(n, k, h) starts: restart r is K-means from
/// init_centroids(restart r) run to convergence, then tied_kmeans. The fit with the lowest
/// log_det wins (res: its clustering; res.restart_inertia: every restart's log_det). A tied
/// fit's local optimum depends on its start far more than K-means' does, and Euclidean
/// inertia does not rank tied fits, so every start is refined before they are compared.
/// The winner then takes tied_swap_refine's moves. `restart_done` is called after each
/// restart (progress reports only).
TiedFit tied_kmeans_restarts(const MatrixRF& X, const TiedInput& in, std::int64_t k,
                             KMeansResult& res, const KMeansParams& p, const KMeansModes& modes,
                             const Comm& comm, const std::function<void()>& restart_done = {});

/// Collective. Merge-split moves on a converged tied fit (tied_swaps.cpp): the pair of segments
/// with the least Ward cost on Z merges, a segment with a large within sum of squares is cut in
/// two by 2-means, then Lloyd and whitening rounds run again; the move is kept when log det
/// falls. `tries` cheapest pairs are tried after each kept move (p.swaps(n, k, h)), each with
/// up to 3 segments to split; at most k moves are kept. res.swaps and res.swap_runs count
/// them. A no-op when tries <= 0 or k < 3.
void tied_swap_refine(const MatrixRF& X, const TiedInput& in, KMeansResult& res, TiedFit& fit,
                      int tries, const KMeansParams& p, const KMeansModes& modes, const Comm& comm);

/// Local. Z = X whitening^T (rows of X whitened).
MatrixRF whiten_rows(const MatrixRF& X, const MatrixRD& whitening);
/// Local. The same into Z (resized to X's shape; its storage reused when it fits).
void whiten_rows(const MatrixRF& X, const MatrixRD& whitening, MatrixRF& Z);
/// Local. The rows C (m x h) of the whitened space mapped back: C whitening^-T.
MatrixRD unwhiten_rows(const MatrixRD& C, const MatrixRD& whitening);

}  // namespace segrec
