// `segrec audience`: for each requested item, the N users of a data set the model
// scores highest (targeted marketing), and where that audience comes from by segment.
//
// Each rank scores its own users (the even block of dataset.h5) on the requested
// items only: the network up to its last hidden layer, then a GEMM against the
// selected columns of the output layer (scores are the model's logits, as in
// `segrec recommend`). It keeps a local top-N per item; the candidates (k N per rank)
// are gathered and merged, ties going to the smaller global user index, so the
// audience does not depend on the rank count.
// Output: CSV item_id,rank,user_id,score,segment (rank 0, through a temporary and a
// rename), grouped by item in the order requested, and a JSON segment summary
// next to it (<out without .csv>_summary.json).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/model.hpp"
#include "segrec/serving/recommend.hpp"

namespace segrec {

struct AudienceParams {
  std::string model;       ///< model.h5 (required)
  std::string data;        ///< dataset.h5: the users to choose from (required)
  std::string projection;  ///< projection.h5 (/H); "" = computed with the model's bundle
  std::string segments;    ///< segments.h5 (/labels); "" = nearest bundle centroid
  std::string items;       ///< --items: item ids, comma-separated
  std::string items_file;  ///< --items-file: one item id per line ('#' comments skipped)
  std::string out;         ///< audience.csv (required)
  std::int64_t top = 100;  ///< users per item (>= 1)
  std::string segment;  ///< --segment "S[,S...]": only users of these segments (needs --segments)
  std::int64_t min_events = 0;  ///< only users with at least this many events on known items
  bool exclude_owned = true;    ///< leave out users whose history holds the item
  std::string pseudonymize;     ///< key (already resolved): user ids written as HMAC pseudonyms
  std::int64_t min_report_users = 50;  ///< summary: segments with fewer audience users are pooled
  std::int64_t block_users = 4096;     ///< users scored per block

  /// Throws UsageError naming the option and the value.
  void validate() const;
  /// The segments of --segment (validate() first); empty = every segment.
  std::vector<std::int32_t> segment_list() const;
  /// "<out without .csv>_summary.json".
  std::string summary_path() const;
};

/// One user of an audience.
struct AudienceMember {
  float score = 0;            ///< the model's logit for the item
  std::int32_t segment = -1;  ///< -1: unknown
  std::int64_t user = 0;      ///< global user index (dataset order)
};

/// The audience order: higher score first, ties to the smaller global user index.
inline bool audience_before(const AudienceMember& a, const AudienceMember& b) {
  return a.score != b.score ? a.score > b.score : a.user < b.user;
}

/// Who may be chosen.
struct AudienceFilter {
  std::int64_t min_events = 0;         ///< known events at least
  bool exclude_owned = true;           ///< not users who hold the item
  std::vector<std::int32_t> segments;  ///< only these segments (empty: all)
};

/// Local. For each of `items` (model item indices) the best `n` of this rank's users
/// `u` (global index u.first + row) that pass `f`, best first. `eligible` (size of
/// items) receives how many local users passed the filter for each item.
std::vector<std::vector<AudienceMember>> local_audiences(const Model& m, const ServingUsers& u,
                                                         std::span<const std::int32_t> items,
                                                         std::int64_t n, const AudienceFilter& f,
                                                         std::int64_t block_users,
                                                         std::vector<std::int64_t>& eligible);

/// Collective. The global best `n` per item from every rank's local lists (the same
/// on every rank).
std::vector<std::vector<AudienceMember>> merge_audiences(
    const std::vector<std::vector<AudienceMember>>& local, std::int64_t n, const Comm& comm);

/// Where one item's audience comes from.
struct AudienceSegmentRow {
  std::int32_t segment = -1;
  std::int64_t users = 0;       ///< audience users of the segment
  double share = 0;             ///< users / audience size
  double population_share = 0;  ///< the segment's share of all users of the data set
};
struct ItemAudience {
  std::string item;
  std::int64_t eligible = 0;                 ///< users that passed the filters
  std::int64_t size = 0;                     ///< audience size (<= --top)
  std::vector<AudienceSegmentRow> segments;  ///< segments with >= min_report_users audience users
  std::int64_t pooled_segments = 0;          ///< segments under the floor, pooled
  std::int64_t pooled_users = 0;             ///< their audience users
};
struct AudienceSummary {
  std::int64_t users = 0;                   ///< users of the data set
  std::vector<std::int64_t> segment_users;  ///< per segment (index 0: unknown, g + 1: segment g)
  std::int64_t min_report_users = 0;
  std::vector<ItemAudience> items;
  std::int64_t rows = 0;  ///< CSV rows written

  /// Plain-text table (one block per item); pooled counts under the floor are hidden.
  std::string table() const;
  std::string json() const;
};

/// Collective. `segrec audience`.
AudienceSummary run_audience(const AudienceParams& p, const Comm& comm);

}  // namespace segrec
