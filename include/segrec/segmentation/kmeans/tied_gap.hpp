// The gap statistic of tied segments: log det of the pooled within-segment covariance in place
// of log inertia (the criterion tied fits are ranked by, tied.hpp):
//   gap(k) = mean_b [ld_k(Z_b) - ld_1(Z_b)] - [ld_k(X) - ld_1(X)]
// ld_k: log det of the pooled within-segment covariance of a k-segment tied fit (ld_1: of the
// rows' own covariance); Z_b, b < B: m = min(sample, n) standard normal rows in the d dimensions
// that are whitened, each keyed by (seed, b, global row index), so the reference is the same at
// any rank count. ld_k - ld_1 does not change under any invertible linear map of the rows, so a
// standard normal stands for every Gaussian: gap(1) = 0, gap ~ 0 for data without groups, and
// each segment that separates groups, rather than cutting one, raises the gap by log of how
// much it shrinks the determinant beyond what cutting a Gaussian does.
// Each set is fitted by K-means from one start. Tied rounds on the sets as well moved the curve
// by 0.1-0.3, made a sweep 30-45% slower and changed 6 of 82 picks of the rule below, none to
// the planted k (docs/clustering.md).
// A silhouette pick on tied segments skips a k after which the gap still rises by more than
// kTiedMergeRise within kTiedMergeWindow steps of the sweep (pick_k): such a k merges groups.
// (Each k's silhouette is taken in its own whitening, which a merge inflates along the
// direction between the merged groups, so that they look compact.)
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/kmeans/gap.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"
#include "segrec/segmentation/kmeans/tied.hpp"

namespace segrec {

/// The rise of the tied gap past k, within kTiedMergeWindow steps, that marks k as merging
/// groups: the next fits' determinant e times smaller than a Gaussian's cuts give.
inline constexpr double kTiedMergeRise = 1.0;
inline constexpr std::size_t kTiedMergeWindow = 2;

/// Whether row i of a tied sweep (rows: ascending k, gap set) merges groups (above).
bool tied_merges_groups(const std::vector<SweepRow>& rows, std::size_t i);

/// The B reference sets, kept for every k of a sweep.
struct TiedGapReference {
  std::vector<MatrixRF> rows;     ///< B sets: this rank's rows (m_local x d)
  std::vector<TiedInput> inputs;  ///< tied_input of each set
  std::vector<double> ld1;        ///< tied_total_log_det of each set
};

/// Collective. B = sets reference sets of min(sample, n) rows in d dimensions.
TiedGapReference tied_gap_reference(std::int64_t d, std::int64_t n, std::int64_t sample, int sets,
                                    std::uint64_t seed, const Comm& comm);

/// Collective. gap(k) for data whose k-segment tied fit has log det `ld_k` and whose rows have
/// `ld_1` (tied_total_log_det); each reference set is fitted by K-means from one start. `set_done`
/// is called after each set (progress reports only).
GapValue tied_gap_statistic(const TiedGapReference& ref, double ld_k, double ld_1, std::int64_t k,
                            const KMeansParams& p, const KMeansModes& modes, const Comm& comm,
                            const std::function<void()>& set_done = {});

}  // namespace segrec
