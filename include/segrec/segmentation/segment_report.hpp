// The segment report (segments.md + segments.json): what each segment is, for a
// marketing or product reader. Per segment: size and share; the items most
// over-represented in it (lift against the global rate, from dataset.h5); its mean
// behavioural statistics against the global mean (profiles.h5 /dense/raw); its value
// (revenue share, mean RFM values and scores, profiles.h5 /rfm); the item categories most
// over-represented in its events; and a short automatic description. Segments under a k-anonymity
// floor are counted but not described. Aggregates are reduced over all ranks; only rank 0 writes.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <ostream>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec {

/// Parameters of the segment report.
struct SegmentReportParams {
  /// --min-report-users: segments with fewer users are counted but not described (no items,
  /// statistics or description), a k-anonymity floor.
  std::int64_t min_report_users = 50;
  /// --report-items: over-represented items listed per segment.
  int top_items = 10;
  /// --min-item-users: an item is listed for a segment only when at least this many of the
  /// segment's users have it (keeps rare items with huge, noisy lifts out).
  std::int64_t min_item_users = 5;

  /// Throws UsageError naming the option and value.
  void validate() const;
};

/// An item over-represented in a segment.
struct ItemLift {
  std::string item_id;
  std::string name;        ///< display name; "" unknown
  std::int64_t users = 0;  ///< segment users with the item
  double rate = 0;         ///< users / segment size
  double global_rate = 0;  ///< users with the item / all users
  double lift = 0;         ///< rate / global_rate
};

/// A behavioural statistic of a segment against all users.
struct StatContrast {
  std::string name;
  double mean = 0;         ///< segment mean over users where it is defined
  double global_mean = 0;  ///< all users
  double z = 0;            ///< (mean - global_mean) / global standard deviation
};

/// A category over-represented in a segment's events.
struct CategoryLift {
  std::string name;
  double share = 0;         ///< segment events in the category / segment events with a category
  double global_share = 0;  ///< the same over all users
  double lift = 0;          ///< share / global_share
};

/// Value of a group of users (profiles.h5 /rfm; rfm.hpp). NaN = not available.
struct SegmentValue {
  static constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  double revenue = kNaN;                               ///< summed monetary value M
  double revenue_share = kNaN;                         ///< revenue / revenue of all users
  std::array<double, 3> mean{kNaN, kNaN, kNaN};        ///< R days, F, M over defined users
  std::array<double, 3> mean_score{kNaN, kNaN, kNaN};  ///< R, F, M scores (1..5)
};

struct SegmentSummary {
  std::int64_t id = 0;
  std::int64_t size = 0;
  double share = 0;        ///< size / all users
  bool described = false;  ///< size >= min_report_users
  std::vector<ItemLift> items;
  std::vector<StatContrast> stats;
  std::vector<CategoryLift> categories;
  SegmentValue value;  ///< revenue and revenue_share for every segment, the rest when described
  std::string description;
};

struct SegmentReport {
  std::int64_t n_users = 0, k = 0, min_report_users = 0;
  /// Users with label -1 (no segment, e.g. DBSCAN noise): counted, listed as "unsegmented",
  /// and left out of every segment's items and statistics. n_users excludes them.
  std::int64_t unsegmented = 0;
  /// Raw JSON members ("name": value) appended to the JSON object, and a paragraph for the
  /// markdown, about how the segments were made (e.g. DBSCAN's eps and k-distance curve).
  std::string method_json, method_markdown;
  double inertia = 0;
  ClusterQuality quality;
  std::vector<SegmentSummary> segments;
  bool has_rfm = false;            ///< the profiles hold RFM values
  SegmentValue overall;            ///< all users
  std::vector<std::string> notes;  ///< what is missing and why (e.g. no dataset given)
  /// Sections added by other units: markdown appended at the end, and (member name, JSON
  /// value) pairs appended to the top-level JSON object (e.g. transitions.hpp).
  std::string extra_markdown;
  std::vector<std::pair<std::string, std::string>> extra_json;
  /// Wall seconds of the stage's parts ("read", "init", ...), JSON "timings_s" when given.
  std::vector<std::pair<std::string, double>> timings;
  std::string markdown() const;
  std::string json() const;

 private:
  void value_markdown(std::ostream& os, const SegmentSummary& s) const;
  static std::string value_json(const SegmentValue& v);
};

/// This rank's dense statistics: n_local x d raw values (NaN where undefined).
struct LocalStats {
  std::vector<std::string> names;        ///< d
  MatrixRF raw;                          ///< n_local x d
  std::vector<float> rfm_values;         ///< n_local x 3 (R, F, M; NaN undefined); empty = none
  std::vector<std::uint8_t> rfm_scores;  ///< n_local x 3 (0 = not available)
};

/// Collective. Builds the report from this rank's labels (users in rank order; -1: no
/// segment) and the global sizes. `data` (same users, same order) gives item lifts; `stats` the
/// behaviour.
SegmentReport build_segment_report(std::span<const std::int32_t> labels,
                                   const std::vector<std::int64_t>& sizes, const Dataset* data,
                                   const LocalStats* stats, const SegmentReportParams& p,
                                   const Comm& comm);

/// Collective. Rank 0 writes the markdown and JSON files, each atomically (temp + rename).
void write_segment_report(const SegmentReport& report, const std::string& md_path,
                          const std::string& json_path, const Comm& comm);

/// Collective. Reads /dense/names and rows [begin, begin + ids.size()) of /dense/raw (and
/// /rfm/values, /rfm/scores when present) from profiles.h5, checking that /users/ids there match
/// `ids` (collective DataError if not).
LocalStats read_profile_stats(const std::string& path, std::int64_t n_users, std::int64_t begin,
                              const std::vector<std::string>& ids, const Comm& comm);

}  // namespace segrec
