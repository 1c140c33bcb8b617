// What segments are about: the interest and value blocks of a projection.
//
// projection.h5 /H = [interest (interest_dims) | value (value_dims)] (project.hpp): the
// interest block projects the item interactions and category shares, the value block the
// behaviour and value statistics (activity, funnel, recency, spend). A view maps a row
// h_u (1 x h) to the space K-means sees, keeping all h columns (unused ones are 0, so
// centroids keep the projection's width):
//   interest: [h_I / ||h_I|| | 0]          taste: which items, whatever the volume
//   value:    [0 | h_V]                    behaviour and value
//   combined: [h_I / ||h_I|| | w h_V]      w: the value part's total variance is
//                                          value_share / (1 - value_share) x the interest part's
//   all:      h_u                          projections without blocks
// then, for tied segments (tied.hpp), the whitening: row <- M row (M: h x h, identity outside
// the columns it whitens), so that segments.h5's centroids and every new user's row live in
// the same whitened space.
// Normalising h_I makes interest the direction of taste (the LSA convention).
//
// auto: a block with groups in it is recognised by the gap statistic (gap.hpp) at
// k_probe: gap_I of the interest view, gap_V of the value view. Blocks without groups score
// near 0 against their own Gaussian null however large their variance, which is what makes
// a fixed weighting fail (an activity axis without groups still takes K-means' splits).
// The larger gap wins; combined when the smaller is at least `combine_ratio` of the larger,
// unless (shape auto or tied) the value view's gap with tied segments is at least
// `value_over_interest` times the interest gap: then value. The first comparison is made with
// spherical segments on both blocks: a value block without the groups sought (a taste-only log)
// still holds discrete recency and price-tier levels that tied segments score highly.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <utility>

#include "segrec/core/comm.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec {

enum class ClusterView { kAuto, kInterest, kValue, kCombined, kAll };

/// "auto", "interest", "value", "combined" or "all" (the names segments.h5 stores).
const char* to_string(ClusterView v);

/// Options of the view (segrec cluster).
struct ViewParams {
  /// --view: auto | interest | value | combined.
  std::string view = "auto";
  /// --value-share: the value block's share of the combined view's variance, in (0, 1).
  double value_share = 0.5;
  /// Throws UsageError naming the option and value; returns the parsed view.
  ClusterView validate() const;
};

/// A resolved view: how rows are transformed.
struct ViewTransform {
  ClusterView view = ClusterView::kAll;  ///< interest | value | combined | all (never auto)
  std::int64_t interest_dims = 0;        ///< columns [0, interest_dims)
  std::int64_t value_dims = 0;           ///< columns [interest_dims, interest_dims + value_dims)
  bool normalise_interest = false;       ///< interest part scaled to norm 1 (zero stays zero)
  double interest_weight = 1, value_weight = 1;                    ///< 0 = block unused
  double gap_interest = std::numeric_limits<double>::quiet_NaN();  ///< auto: the evidence
  double gap_value = std::numeric_limits<double>::quiet_NaN();
  /// auto, when both blocks have groups: the value view's gap with tied segments (tied.hpp)
  double gap_value_tied = std::numeric_limits<double>::quiet_NaN();
  std::int64_t probe_k = 0;  ///< auto: k of the gaps
  MatrixRD whitening;        ///< tied segments: h x h, applied last; empty: none

  bool whitened() const { return whitening.size() > 0; }
  std::string name() const { return to_string(view); }
  /// The columns a one-block view (interest, value) can make nonzero: [first, first + count);
  /// {0, 0} for the views that use every column (combined, all).
  std::pair<std::int64_t, std::int64_t> block_columns() const {
    if (view == ClusterView::kInterest) return {0, interest_dims};
    if (view == ClusterView::kValue) return {interest_dims, value_dims};
    return {0, 0};
  }

  /// Local. Transforms rows in place (X: n x h).
  void apply(MatrixRF& X) const;
  /// Local. Transforms one row (h floats).
  void apply(float* row, std::int64_t h) const;
};

/// Collective. Resolves `view` for the rows X (n_local x h, untransformed) of a projection
/// with these blocks (interest_dims + value_dims == h; value_dims == 0 or interest_dims == 0
/// means one block). auto computes the gaps at probe_k with p's K-means options.
ViewTransform resolve_view(ClusterView view, const ViewParams& vp, const MatrixRF& X,
                           std::int64_t interest_dims, std::int64_t value_dims,
                           std::int64_t probe_k, const KMeansParams& p, const KMeansModes& modes,
                           const Comm& comm);

/// Writes the view as attributes of `group` (view, interest_dims, value_dims,
/// normalise_interest, interest_weight, value_weight, gap_interest, gap_value, gap_value_tied,
/// view_probe_k)
/// and, for tied segments, the dataset `group`/whitening (h x h doubles).
void write_view(h5::File& f, const std::string& group, const ViewTransform& v);
/// Reads them back; a group without them gives the identity view ("all").
ViewTransform read_view(const h5::File& f, const std::string& group);

/// k at which auto compares the blocks, clamped to the sweep's range. Blocks without groups
/// gain gap slowly with k (skew and discreteness), so a moderate k separates best.
inline constexpr std::int64_t kViewProbeK = 8;

/// Share of the smaller gap against the larger above which auto combines the blocks.
inline constexpr double kCombineRatio = 0.5;

/// Where auto would combine: the value view alone when its gap with tied segments is at least
/// this many times the interest gap. Measured (docs/segmentation.md): 3.7-3.9 on behaviour-only
/// logs whose price tiers give the interest block some groups, 1.2-2.7 on logs with both kinds
/// of structure, where the combined view recovered the segments and the value view alone did not.
inline constexpr double kValueOverInterest = 3;

}  // namespace segrec
