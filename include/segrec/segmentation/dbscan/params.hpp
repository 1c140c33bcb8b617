// Parameters of `segrec cluster --algorithm dbscan` and the clustering method chosen by
// --algorithm (K-means or DBSCAN), both parsed once by validate().
#pragma once

#include <cstdint>
#include <string>

namespace segrec {

/// What `segrec cluster` runs: K-means (--algorithm auto, lloyd or hamerly) or DBSCAN
/// (--algorithm dbscan).
enum class ClusterMethod { kKMeans, kDbscan };

/// Parses --algorithm into the method; throws UsageError "invalid value 'V' for
/// --algorithm: use auto, lloyd, hamerly or dbscan" on anything else.
ClusterMethod parse_cluster_method(const std::string& algorithm);

/// The options of DbscanParams, parsed once by validate().
struct DbscanModes {
  bool auto_eps = false;  ///< --eps auto: eps from the knee of the k-distance curve
  double eps = 0;         ///< the radius when given (> 0); 0 with auto_eps
};

/// Parameters of `segrec cluster --algorithm dbscan` (scikit-learn's DBSCAN semantics).
struct DbscanParams {
  /// --eps: neighbourhood radius (Euclidean, in projection units), > 0; or "auto": the knee
  /// of the sorted k-distance curve of a sample of users (k = min_samples). Required.
  std::string eps;
  /// --min-samples: a user is a core user when at least this many users (itself included)
  /// lie within eps. scikit-learn's default, 5.
  std::int64_t min_samples = 5;
  /// --kdist-sample: users (chosen by a hash of seed and global index) whose k-distance
  /// makes the curve for --eps auto (written to the report JSON). 0 disables the curve
  /// (then --eps auto is an error).
  std::int64_t kdist_sample = 2000;
  /// --threads: threads per rank (0: $OMP_NUM_THREADS, else $SLURM_CPUS_PER_TASK, else 1).
  /// Results do not depend on it.
  int threads = 0;
  /// --seed (common option): keys the k-distance sample with global user indices.
  std::uint64_t seed = 42;

  /// Checks every option and returns the parsed modes. Throws UsageError naming the option
  /// and value.
  DbscanModes validate() const;
  /// `threads`, or $OMP_NUM_THREADS, or $SLURM_CPUS_PER_TASK, or 1.
  int resolved_threads() const;
};

}  // namespace segrec
