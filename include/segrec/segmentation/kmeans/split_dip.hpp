// Whether a segment holds two groups: Hartigan's dip test of unimodality (Hartigan and Hartigan
// 1985) on the segment's users projected onto the axis of its own 2-means split.
//   dip(x): the largest distance between the empirical CDF of x and the closest unimodal CDF,
//   in probability units, 1 / (2 m) <= dip <= 1 / 4 for m values. sqrt(m) dip stays near 0.3-0.5
//   for samples of a unimodal law (of the uniform, the least favourable: median 0.36, largest
//   0.56 over 60 samples of 1,000 in the tests) and grows as sqrt(m) for two modes.
//   split_dip: max over the segments of the sample that hold at least kSplitDipMinUsers sampled
//   users of sqrt(m) dip(<x_i, c_1 - c_2>), c_1 and c_2 the 2-means centres of the segment's
//   sampled rows (started from the row farthest from the segment's mean and the row farthest
//   from that one). The projection and the dip do not change under a scaling of the rows, and
//   the rows are the segments' own (whitened for tied segments).
// A silhouette pick on tied segments skips a k one of whose segments is bimodal (split_dip >
// kSplitDipBimodal) when a later k' of the sweep resolves it for good: the split dip of k' and of
// every k after it is below kSplitDipResolved times k's, and the tied gap (tied_gap.hpp) rose
// from k to k' by more than kSplitGapRise per added segment. (The silhouette prefers merged groups
// that lie close: on Gaussian groups sharing one covariance it chose K / 2 to K - 1 for K groups.
// Segments of behaviour logs are often bimodal themselves, at the planted k too: up to 2.4 on
// segrec generate's; a finer fit does not resolve that for good. docs/clustering.md.)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec {

/// A segment scoring above this is bimodal (60 uniform samples of 1,000 scored 0.56 at most).
inline constexpr double kSplitDipBimodal = 1.0;
/// A later k resolves it when its figure and every later one are below this share of k's ...
inline constexpr double kSplitDipResolved = 0.5;
/// ... and the tied gap rose by more than this per added segment on the way.
inline constexpr double kSplitGapRise = 0.25;

/// Segments with fewer sampled users are not tested (the dip of a few dozen values is noise).
inline constexpr std::int64_t kSplitDipMinUsers = 40;

/// Hartigan's dip of the values x (any order; NaN-free); 0 for fewer than two distinct values.
double dip_statistic(std::vector<double> x);

/// max over segments of sqrt(m) dip of the 2-means axis projection (above). P: S x h sampled
/// rows; labels: S segment ids in [0, k). Local: the same on every rank that holds the same P.
/// NaN when no segment holds kSplitDipMinUsers sampled users.
double split_dip(const MatrixRF& P, std::span<const std::int64_t> labels, std::int64_t k);

/// Whether a later row of the sweep resolves the bimodal segment of row i for good (above).
/// rows: ascending k, split_dip and gap set (NaN values never resolve anything).
bool split_resolved_later(const std::vector<SweepRow>& rows, std::size_t i);

}  // namespace segrec
