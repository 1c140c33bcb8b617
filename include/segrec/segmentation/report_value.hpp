// Value and category sections of the segment report (segment_report.hpp).
//   Revenue share of a segment = sum of its users' monetary value M / the sum over all
//   users (every segment, like its size). Mean R, F, M over the users where each is
//   defined, mean scores over the users with a score (> 0); described segments only.
//   Category lift = share of the segment's events (interaction counts) on items of the
//   category / the same share over all users; the kTopCategories highest are listed.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/segmentation/segment_report.hpp"

namespace segrec {

constexpr int kTopCategories = 5;

/// Collective (one allreduce of k x 10 sums). Fills SegmentSummary::value and `overall`.
void segment_values(std::span<const std::int32_t> labels, const LocalStats& st,
                    std::vector<SegmentSummary>& segs, SegmentValue& overall, const Comm& comm);

/// Collective (one allreduce of k x categories sums). Fills SegmentSummary::categories of
/// the described segments; nothing when `data` has no item categories.
void category_lifts(std::span<const std::int32_t> labels, const Dataset& data,
                    std::vector<SegmentSummary>& segs, const Comm& comm);

}  // namespace segrec
