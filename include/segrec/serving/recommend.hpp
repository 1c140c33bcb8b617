// `segrec recommend`: top-N recommendations from a trained model.
//
// Two inputs:
//  - batch (--data dataset.h5): every user of a trained run, each rank its even
//    block of users, scored in blocks. The projection and the segment of a user
//    come from --projection / --segments when given, else from the model's
//    serving bundle (profile -> project -> nearest centroid).
//  - new users (--events FILE...): read with the ingest options, each user
//    profiled with the training constants, projected, assigned to the nearest
//    centroid and scored. Items the model does not know are ignored and counted.
// Users with fewer than --min-events events on known items are "cold": they get
// the items most popular in their segment (source popular-in-segment). Items in
// a user's history, and those of --exclude, are never recommended.
// Output: one CSV (user_id,rank,item_id,score,segment,source[,reason]) written by
// all ranks in rank order, or recs.h5 when --out ends in .h5 (format
// "segrec-recommendations" 1: /users/ids, /users/segment i32, /users/source u8
// (0 model, 1 popular-in-segment), /items/ids, /recs/items i32[n_users x N]
// (model item index, -1 padding), /recs/scores f32[n_users x N]).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/ingest/ingest.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/items.hpp"
#include "segrec/personalisation/model.hpp"

namespace segrec {

struct RecommendParams {
  std::string model;       ///< model.h5 (required)
  std::string data;        ///< dataset.h5: recommend for all its users (batch)
  std::string projection;  ///< batch: projection.h5 (/H); "" = computed with the bundle
  std::string segments;    ///< batch: segments.h5 (/labels); "" = nearest bundle centroid
  /// New users: event files and their reading options (as `segrec ingest`);
  /// `events.events` empty = batch mode. `events.out` is not used.
  IngestParams events;
  std::string out;              ///< recs.csv, or recs.h5 (required)
  std::int64_t top = 10;        ///< items per user (>= 1)
  std::int64_t min_events = 3;  ///< fewer known events: popular-in-segment instead of the model
  std::string exclude;          ///< file of item ids (one per line) never recommended
  /// Add a reason column (CSV only): for model lists, the history items that raised the
  /// item's score most (leave-one-out, serving/explain.hpp), then the segment lift.
  bool explain = false;
  std::string item_info;  ///< --item-info: item attributes (io/items.hpp), names in the reasons
  std::string item_info_format = "csv";  ///< csv | movielens (u.item)
  std::int64_t block_users = 4096;       ///< users scored (and written) per block

  struct Modes {
    ItemsFormat items_format = ItemsFormat::kCsv;
  };
  /// Throws UsageError naming the option and the value.
  Modes validate() const;
  bool new_users() const { return !events.events.empty(); }
};

struct RecommendSummary {
  std::int64_t users = 0;                   ///< users given recommendations (global)
  std::int64_t rows = 0;                    ///< recommendations written
  std::int64_t cold_users = 0;              ///< users served popular-in-segment
  std::int64_t unknown_items = 0;           ///< new users: distinct items the model does not know
  std::int64_t unknown_events = 0;          ///< new users: events on those items (ignored)
  std::int64_t excluded_items = 0;          ///< items of --exclude known to the model
  std::int64_t exclude_unknown = 0;         ///< ids of --exclude the model does not know
  std::vector<std::int64_t> segment_users;  ///< users per segment (empty without segments)
  bool bundle = false;                      ///< the model's serving bundle was used
};

/// Collective. `segrec recommend`.
RecommendSummary run_recommend(const RecommendParams& p, const Comm& comm);

// ---- building blocks shared with `segrec evaluate` ------------------------------------

/// Users ready to be scored (this rank's).
struct ServingUsers {
  std::vector<std::string> ids;
  UserInputs inputs;  ///< history over the model's items; dense / segments as the model reads
  std::vector<std::int32_t> segment;       ///< -1 = no segment known
  std::vector<std::int64_t> known_events;  ///< events on items the model knows
  std::int64_t unknown_events = 0;         ///< events on other items (local)
  std::int64_t first = 0;                  ///< --data: global index of this rank's first user
  std::int64_t n_users = 0;                ///< --data: users of the data set (global)
  /// The data set's item names (its log's name column), for --explain without --item-info:
  /// ids and names only; empty when the log had none.
  ItemAttributes item_names;
  std::int64_t n_local() const { return static_cast<std::int64_t>(ids.size()); }
};

/// Local. Index of each of `from` in `to` (-1 when absent).
std::vector<std::int32_t> map_ids(const std::vector<std::string>& from,
                                  const std::vector<std::string>& to);
/// Local. Index of each of `ids` in the model's items, -1 when unknown.
std::vector<std::int32_t> map_items(const Model& m, const std::vector<std::string>& ids);

/// Local. The users of a data set that the model never saw (items matched by
/// id through `item_map`, e.g. from ingest): profile with the bundle's constants,
/// project, nearest centroid. Without a bundle the model must read the history only;
/// segments are then -1.
ServingUsers prepare_new_users(const Model& m, const Dataset& ds,
                               const std::vector<std::int32_t>& item_map);

/// Collective. This rank's even block of the users of dataset.h5 `data` (items must be the
/// model's), with the projection and segment of each user from `projection` / `segments`
/// when given, else from the model's serving bundle. `k` (segments) is replaced by the
/// segments file's when one is given.
ServingUsers prepare_data_users(const Model& m, const std::string& model_path,
                                const std::string& data, const std::string& projection,
                                const std::string& segments, const Comm& comm, std::int64_t& k);

/// How a list is made.
enum class Source : std::uint8_t { kModel = 0, kSegmentPopular = 1, kPopular = 2 };
const char* to_string(Source s);

/// Top-n lists of a block of users: rows x n, item -1 / score NaN padding.
struct RecLists {
  std::int64_t n = 0;
  std::vector<std::int32_t> items;
  std::vector<float> scores;
  std::vector<Source> source;  ///< per row
  std::int64_t rows() const { return n ? static_cast<std::int64_t>(items.size()) / n : 0; }
};

/// Training popularity from the model's serving bundle (empty without one).
struct Popularity {
  std::vector<std::int32_t> global;                ///< items, most training users first
  std::vector<std::vector<std::int32_t>> segment;  ///< per segment, most users first
  std::vector<std::int64_t> rank;                  ///< per item: 1-based rank in `global`
  bool empty() const { return global.empty(); }
  /// Ties go to the smaller item index.
  static Popularity from(const Model& m);
};

/// Local. Lists for users [r0, r1) of `u`. `how` kModel serves users with fewer
/// than `min_events` known events (min_events 0: none) from their segment's
/// popular items; kSegmentPopular / kPopular serve everybody from the training
/// popularity (needs the bundle). History and `excluded` (per model item, 1 = drop)
/// are never recommended.
RecLists recommend_rows(const Model& m, const ServingUsers& u, std::int64_t r0, std::int64_t r1,
                        std::int64_t n, Source how, std::int64_t min_events,
                        const std::vector<std::uint8_t>& excluded, const Popularity& pop);

/// The segment context of one recommendation: the item's lift in the user's segment
/// (share of the segment's training users holding it / share of all training users).
/// "" without a serving bundle.
std::string segment_context(const Model& m, std::int32_t item, std::int32_t segment);

}  // namespace segrec
