// Distributed K-means over row-partitioned user embeddings (`segrec cluster`).
//
// Every rank holds a contiguous block of users (rows of the projection /H, in
// rank order); centroids are replicated. One Lloyd iteration is a local
// assignment step (distances ||x||^2 - 2 x.c + ||c||^2 in single precision,
// fused with the argmin) followed by ONE allreduce of a packed double buffer
// [k*h sums | k counts | inertia | changed labels]. With --algorithm hamerly (the default
// for k >= 16) the assignment keeps Hamerly's per-user distance bounds and sends only the
// users whose bounds overlap through the kernel: the same labels, sums and collectives as
// plain Lloyd, less distance work once clusters settle. Randomness (initialisation,
// samples) is keyed by the seed and the GLOBAL user index, and every user's
// distances come from the same instruction sequence wherever the user sits, so
// labels do not depend on the rank or thread count.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"

namespace segrec {

/// Row-major float matrix (users x dims, centroids x dims).
using MatrixRF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// Row-major double matrix.
using MatrixRD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

enum class InitMethod { kKMeansPlusPlus, kKMeansParallel, kRandom, kFile };
enum class Criterion { kSilhouette, kDaviesBouldin, kCalinskiHarabasz };

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
  /// --n-init: restarts with derived seeds; the lowest inertia wins (1 with a centroid file).
  /// 3 by default: one k-means++ start can merge two segments and split another, and
  /// restarts cost little next to profiling and projection.
  int n_init = 3;
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
  /// centroids. auto: hamerly when k >= 16, else lloyd.
  std::string algorithm = "auto";
  /// --silhouette-sample: users (chosen by a seeded hash of the global index) whose
  /// silhouette is averaged, each against ALL users; 0 disables the silhouette. Costs
  /// 2 * sample * n_users * h flops per k.
  std::int64_t silhouette_sample = 10000;
  /// --pick: criterion that chooses k in a sweep: silhouette (max), db (Davies-Bouldin, min)
  /// or ch (Calinski-Harabasz, max).
  std::string pick = "silhouette";
  /// --seed (common option): keys every random draw together with global user indices.
  std::uint64_t seed = 42;

  /// Throws UsageError naming the option and value.
  void validate() const;
  /// The k values of --k, ascending (one value unless a sweep).
  std::vector<std::int64_t> k_values() const;
  bool is_sweep() const { return k_values().size() > 1; }
  InitMethod init_method() const;
  Criterion criterion() const;
  /// Whether the Lloyd iterations for k clusters use Hamerly's bounds (--algorithm).
  bool use_hamerly(std::int64_t k) const;
  /// `threads`, or $OMP_NUM_THREADS, or $SLURM_CPUS_PER_TASK, or 1.
  int resolved_threads() const;
};

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
  int restart = 0;                   ///< restart that won (0-based)
  std::int64_t relocated = 0;        ///< empty-cluster relocations over all iterations
  double seconds = 0;  ///< wall time of the Lloyd run (iterations and final assignment), rank 0
  std::vector<KMeansIteration> iterations;
};

/// Clustering quality figures (NaN when undefined or not computed).
struct ClusterQuality {
  double silhouette = std::numeric_limits<double>::quiet_NaN();
  std::int64_t silhouette_sample = 0;  ///< users the silhouette was averaged over
  double davies_bouldin = std::numeric_limits<double>::quiet_NaN();
  double calinski_harabasz = std::numeric_limits<double>::quiet_NaN();
};

/// One row of a k sweep.
struct SweepRow {
  std::int64_t k = 0;
  double inertia = 0;
  int n_iter = 0;
  ClusterQuality quality;
};

/// What `cluster` produces: the chosen clustering, its quality, the sweep table.
struct ClusterRun {
  KMeansResult result;
  ClusterQuality quality;
  std::vector<SweepRow> sweep;  ///< empty unless --k was a sweep
};

// ---- algorithms (all collective over `comm`) ---------------------------------------------
// X: this rank's rows (n_local x h, row-major); ranks hold consecutive global row blocks
// in rank order (any sizes, including empty).

/// K-means with k clusters: init (or `init`, k x h, when given), Lloyd, n_init restarts.
/// Throws DataError (collective) when k exceeds the number of rows.
KMeansResult kmeans(const MatrixRF& X, std::int64_t k, const KMeansParams& p, const Comm& comm,
                    const MatrixRF* init = nullptr);

/// Lloyd iterations from the given centroids (k x h). X must already be normalised when
/// p.spherical.
KMeansResult lloyd(const MatrixRF& X, const MatrixRF& init, const KMeansParams& p,
                   const Comm& comm);

/// Initial centroids (k x h) by p.init (not a file) for restart `restart`.
MatrixRF init_centroids(const MatrixRF& X, std::int64_t k, const KMeansParams& p, int restart,
                        const Comm& comm);

/// Greedy weighted k-means++ (scikit-learn's variant: 2 + floor(ln k) D^2-weighted candidates
/// per pick, the one that lowers the potential most is kept). `weights`: one per local row,
/// or empty for 1. `key` seeds the draws.
MatrixRF kmeans_plus_plus(const MatrixRF& X, std::span<const double> weights, std::int64_t k,
                          std::uint64_t key, int threads, const Comm& comm);

/// Full clustering stage: parses --k, runs every k of a sweep, computes quality figures
/// and picks k. `init` (from a centroid file) requires a single k equal to its rows.
ClusterRun cluster(const MatrixRF& X, const KMeansParams& p, const Comm& comm,
                   const MatrixRF* init = nullptr);

// ---- quality figures (collective) ------------------------------------------------------

/// Mean silhouette of `sample` users (chosen by a seeded hash of the global index; all users
/// when sample >= n), each against all users; Euclidean distances. NaN when fewer than two
/// clusters are non-empty. `sample_used` receives the sample size.
double silhouette_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                        std::int64_t sample, std::uint64_t seed, int threads, const Comm& comm,
                        std::int64_t* sample_used = nullptr);
/// Davies-Bouldin index over non-empty clusters (centroids = means of the labelled users).
double davies_bouldin_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                            const Comm& comm);
/// Calinski-Harabasz index (between / within dispersion, scaled by (n - c) / (c - 1)).
double calinski_harabasz_score(const MatrixRF& X, std::span<const std::int32_t> labels,
                               std::int64_t k, const Comm& comm);

// ---- I/O --------------------------------------------------------------------------------

/// Rows of X scaled to unit L2 norm (zero rows stay zero).
MatrixRF normalize_rows(const MatrixRF& X);
/// Reads a centroid file: .h5 (dataset /centroids) or CSV. Every rank reads it; a bad file is
/// a collective DataError.
MatrixRF read_centroid_file(const std::string& path, const Comm& comm);
/// Bytes one rank sends in the per-iteration allreduce: (k*h + k + 2) * 8.
std::uint64_t lloyd_allreduce_bytes(std::int64_t k, std::int64_t h);

/// Collective. Writes segments.h5 (format kSegmentsFormat): /centroids, /labels, /sizes,
/// /users/ids, /iterations/*, /sweep/* (if any) and the root attributes.
void write_segments(const std::string& path, const ClusterRun& run,
                    const std::vector<std::string>& local_user_ids, const KMeansParams& p,
                    const std::string& projection_path, const Comm& comm);
/// Collective. Writes `user_id,segment` lines (one file, ranks in order).
void write_segments_csv(const std::string& path, const std::vector<std::string>& local_user_ids,
                        std::span<const std::int32_t> labels, const Comm& comm);

}  // namespace segrec
