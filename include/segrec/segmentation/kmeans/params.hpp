// Parameters of `segrec cluster` (K-means) and the modes validate() parses from them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "segrec/segmentation/gmm/fit.hpp"

namespace segrec {

enum class InitMethod { kKMeansPlusPlus, kKMeansParallel, kRandom, kFile };
enum class Criterion { kAuto, kGap, kSilhouette, kDaviesBouldin, kCalinskiHarabasz, kElbow, kBic };
/// Shape of a segment K-means assumes: spheres (Euclidean distance) or one shared ellipsoid
/// (tied.hpp: Mahalanobis distance under the pooled within-segment covariance).
enum class ClusterShape { kAuto, kSpherical, kTied };
/// The --pick name of a rule ("auto", "gap", "silhouette", "db", "ch", "elbow", "bic").
const char* criterion_name(Criterion c);
enum class KMeansKernel { kAuto, kFused, kGemm };
enum class KMeansAlgorithm { kAuto, kLloyd, kHamerly };

/// The mode options of KMeansParams, parsed once by validate().
struct KMeansModes {
  InitMethod init = InitMethod::kKMeansPlusPlus;       ///< --init
  KMeansKernel kernel = KMeansKernel::kAuto;           ///< --kernel
  KMeansAlgorithm algorithm = KMeansAlgorithm::kAuto;  ///< --algorithm
  Criterion pick = Criterion::kAuto;                   ///< --pick
  ClusterShape shape = ClusterShape::kAuto;            ///< --shape
  /// Resolved by the cluster stage from `shape` and the view: refine every k's K-means into
  /// tied (Mahalanobis) segments (tied.hpp).
  bool tied = false;
  /// The rule a sweep applies: `pick`, where auto is gap for spherical segments and
  /// silhouette (in the whitened space) for tied ones.
  Criterion resolved_pick() const {
    if (pick != Criterion::kAuto) return pick;
    return tied ? Criterion::kSilhouette : Criterion::kGap;
  }
  /// --algorithm gmm: K-means, then a Gaussian mixture fitted by EM from its labels
  /// (gmm/gmm.hpp); labels are the argmax responsibilities, centroids the means.
  bool gmm = false;
  GmmOptions gmm_options;  ///< --covariance, --reg-covar, --gmm-tol, --gmm-max-iter
  /// Whether the Lloyd iterations for k clusters of h dims use Hamerly's bounds. auto: when
  /// k * h >= 4096; below, a plain iteration costs less than keeping the bounds (measured:
  /// docs/clustering.md).
  bool use_hamerly(std::int64_t k, std::int64_t h) const {
    return algorithm == KMeansAlgorithm::kHamerly ||
           (algorithm == KMeansAlgorithm::kAuto && k * h >= 4096);
  }
};

/// Parameters of `segrec cluster`.
struct KMeansParams {
  /// --k: number of segments K, or a sweep FROM:TO[:STEP] (e.g. 4:64:4) that clusters
  /// every k and keeps the one `pick` prefers. Required.
  std::string k;
  /// --init: k-means++ (greedy, 2 + ln k candidates per pick), k-means|| (Bahmani et al.),
  /// random (k distinct users), or a centroid file (.csv: one row of h numbers per centroid,
  /// optional header; .h5: dataset /centroids, e.g. an earlier segments.h5).
  std::string init = "k-means++";
  /// --init-rounds: sampling rounds of k-means||.
  int init_rounds = 5;
  /// --oversampling-factor: k-means|| expected points drawn per round; 0 means 2k.
  double oversampling_factor = 0;
  /// --n-init: restarts with derived seeds; the lowest inertia wins (1 with a centroid file;
  /// tied segments: the lowest log det of the pooled covariance, tied.hpp).
  /// 0 (default): auto, 3 while n_users * k * h <= 1e8 (a restart then costs well under a
  /// second; on small sets one k-means++ start can merge two segments and split another),
  /// else 1 (measured on large sets: restarts changed the inertia by under 0.01% at up to 3x
  /// the time; docs/clustering.md).
  int n_init = 0;
  /// --restart-iters: with n_init > 1, every restart runs this many Lloyd iterations, then
  /// only the one with the lowest inertia goes on (to max_iter iterations in all), with the
  /// same labels and centroids as had it run alone. 0: every restart runs to the end.
  /// 10 by default: restarts then cost their initialisation and 10 iterations each, not a
  /// whole run each (docs/clustering.md has the measured inertia).
  int restart_iters = 10;
  /// --swap-tries: after the restarts, moves (swaps.cpp) from the pair of segments whose merge
  /// costs the least inertia: the pair cut anew in two by 2-means on its users, then the pair
  /// merged into one while the segment with the largest within sum of squares is cut in two
  /// by 2-means; Lloyd runs again after each (screened: 3 x restart_iters iterations, then on
  /// only when already lower), and the result is kept when the inertia falls by more than 1e-6
  /// of itself. This many pairs (the next cheapest) are tried after each kept move before
  /// stopping. A restart ends at the optimum nearest its start; such moves let it leave one
  /// where two planted segments share a centroid while another is split in two, or where two
  /// centroids cut two planted segments across. -1 (default): 5 while users * k * dims <= 1e8
  /// (as the restarts), else 0; 0: off. Never with --previous or a centroid file. Tied segments
  /// take their own moves, ranked by log det (tied.hpp, tied_swap_refine), as many.
  int swap_tries = -1;
  /// --max-iter: Lloyd iterations at most.
  int max_iter = 300;
  /// --tol: stop when the total squared centroid shift of an iteration is at most
  /// tol * (mean per-feature variance of the data), scikit-learn's rule; an iteration in
  /// which no label changes always stops. 0 stops only on unchanged labels or max-iter.
  double tol = 1e-4;
  /// --spherical: cosine k-means (rows and centroids L2-normalised; zero rows stay zero).
  bool spherical = false;
  /// --threads: threads per rank for the assignment step; 0 means $OMP_NUM_THREADS, else
  /// $SLURM_CPUS_PER_TASK, else 1 (env::default_threads).
  /// Results do not depend on it.
  int threads = 0;
  /// --kernel: assignment kernel. fused: distances and argmin in AVX-512 registers, rows read
  /// in place (builds with AVX-512 only); gemm: blocked Eigen GEMM, then argmin; auto: fused
  /// when built with AVX-512. Labels agree except at ties closer than float rounding.
  std::string kernel = "auto";
  /// --algorithm: lloyd (every user against every centroid each iteration) or hamerly (exact
  /// Lloyd with Hamerly's triangle-inequality bounds: per user an upper bound on the distance
  /// to its centroid and a lower bound on the others; only users whose bounds overlap are
  /// compared with all centroids). Both give the same labels every iteration and the same
  /// centroids. auto: hamerly when k * h >= 4096 (e.g. k >= 128 at h = 32), else lloyd.
  std::string algorithm = "auto";
  /// --covariance (with --algorithm gmm): tied (default: one full covariance shared by all
  /// components; on planted behaviour logs it recovered the groups best and is the most
  /// robust to discrete statistics), full (one per component) or diag.
  std::string covariance = "tied";
  /// --reg-covar: added to every variance of the mixture, times the mean feature variance of
  /// the data (so independent of the projection's scale).
  double reg_covar = 1e-6;
  /// --gmm-tol: EM stops when the mean log-likelihood per user changes by less.
  double gmm_tol = 1e-4;
  /// --gmm-max-iter: EM iterations (M-steps) at most.
  int gmm_max_iter = 200;
  /// --silhouette-sample: users (chosen by a seeded hash of the global index) whose
  /// silhouette is averaged, each against the other sampled users (scikit-learn's
  /// silhouette_score(sample_size=...)); the exact silhouette when sample >= n_users; 0
  /// disables it. Costs 2 * sample^2 * h flops per k, split over the ranks.
  std::int64_t silhouette_sample = 10000;
  /// --pick: rule that chooses k in a sweep: gap (the knee of the gap statistic's curve
  /// against a Gaussian null with the data's covariance; gap.hpp), silhouette (max), db
  /// (Davies-Bouldin, min), ch (Calinski-Harabasz, max) or elbow (the k farthest below the straight
  /// line from the first to the last point of the normalised inertia curve). docs/clustering.md
  /// compares them on planted data. bic (with --algorithm gmm): the lowest Bayesian
  /// information criterion of the mixture. auto: gap, or silhouette for tied segments (on
  /// planted behaviour logs the gap curve of tied segments rises unevenly past the planted k
  /// while the silhouette peaks at it: docs/clustering.md). For tied segments the gap is that
  /// of log det (tied_gap.hpp), and the silhouette skips a k after which that gap still rises
  /// steeply (a k whose segments merge groups; tied_merges_groups), or one of whose segments is
  /// bimodal along its 2-means axis until a later k resolves it for good (split_dip.hpp).
  std::string pick = "auto";
  /// --shape: spherical (K-means' Euclidean segments), tied (segments sharing one
  /// within-segment covariance: Mahalanobis K-means, tied.hpp) or auto (tied on the value
  /// view, whose statistics differ in spread and correlate within a segment; spherical on
  /// the interest and combined views, whose rows are normalised directions).
  std::string shape = "auto";
  /// --gap-references: Gaussian reference sets B of the gap statistic (>= 2).
  int gap_references = 3;
  /// --gap-sample: rows m of each reference set (min(m, users)); the data are clustered
  /// whole. Costs B K-means runs on m rows per k.
  std::int64_t gap_sample = 20000;
  /// Not an option: the stage name of the Lloyd iterations' progress events ("kmeans"; the
  /// gap statistic's reference runs and the view's probes report under their own names).
  std::string progress_stage = "kmeans";
  /// --seed (common option): keys every random draw together with global user indices.
  std::uint64_t seed = 42;

  /// Checks every option and returns the parsed modes. Throws UsageError naming the option
  /// and value.
  KMeansModes validate() const;
  /// The k values of --k, ascending (one value unless a sweep).
  std::vector<std::int64_t> k_values() const;
  bool is_sweep() const { return k_values().size() > 1; }
  /// Whether the Lloyd iterations for k clusters use Hamerly's bounds (--algorithm; throws
  /// UsageError on a bad value, as validate() does).
  bool use_hamerly(std::int64_t k, std::int64_t h) const;
  /// Restarts for n users, k clusters, h dims: n_init, or the auto rule when it is 0.
  int restarts(std::int64_t n, std::int64_t k, std::int64_t h) const {
    if (n_init > 0) return n_init;
    return static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(h) <= 1e8 ? 3 : 1;
  }
  /// Merge-split tries for n users, k clusters, h dims: swap_tries, or the auto rule when it
  /// is -1; 0 below 3 clusters (a move needs a pair to merge and a third segment to split).
  int swaps(std::int64_t n, std::int64_t k, std::int64_t h) const {
    if (k < 3) return 0;
    if (swap_tries >= 0) return swap_tries;
    return static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(h) <= 1e8 ? 5 : 0;
  }
  /// `threads`, or $OMP_NUM_THREADS, or $SLURM_CPUS_PER_TASK, or 1.
  int resolved_threads() const;
};

}  // namespace segrec
