// Segment transitions between two runs of `segrec cluster` (`--previous OLD`): of the users
// present in both runs (matched by user id), how many moved from old segment a to new
// segment b, and the users and segments that came and went. Rendered into the segment
// report (segments.md / .json, "transitions") and stored in segments.h5 (/previous).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "segrec/io/h5.hpp"

namespace segrec {

struct SegmentTransitions {
  std::string previous;  ///< path of the earlier segments.h5
  std::int64_t k_old = 0, k_new = 0;
  /// k_old x k_new, row-major: users in both runs with old segment a and new segment b
  /// (final ids of both runs).
  std::vector<std::int64_t> moved;
  /// k_new: the old segment each new segment continues, -1 for a new segment.
  std::vector<std::int32_t> previous_id;
  /// k_new: how it was matched: "users" (user overlap), "centroid" (centroid distance, no
  /// overlap left) or "" (a new segment).
  std::vector<std::string> matched_by;
  std::int64_t common_users = 0;    ///< users in both runs
  std::int64_t new_users = 0;       ///< users of this run only
  std::int64_t departed_users = 0;  ///< users of the earlier run only

  std::int64_t at(std::int64_t a, std::int64_t b) const { return moved[a * k_new + b]; }
  /// New ids that continue no old segment.
  std::vector<std::int64_t> new_segments() const;
  /// Old ids that no new segment continues.
  std::vector<std::int64_t> retired_segments() const;
  /// Old segment a's users (of both runs) that are in new segment b: at(a, b) / row sum
  /// (NaN when the row is empty).
  double row_share(std::int64_t a, std::int64_t b) const;
  /// Users of both runs whose new segment continues their old one, over common_users
  /// (NaN when there are none).
  double stayed_share() const;
  /// "## Changes since the previous run" section of segments.md.
  std::string markdown() const;
  /// The value of the "transitions" member of segments.json (one JSON object).
  std::string json() const;
};

/// Collective. Writes the group /previous of an open segments.h5 (see docs/hdf5-schema.md).
void write_transitions(h5::File& f, const SegmentTransitions& t);

}  // namespace segrec
