// `segrec recommend` with a sequence model (model.h5 of kind "sequence").
//
// Each user (--data: the users of dataset.h5, each rank its block) or session
// (--events: read like segrec ingest; the user column is the session id, the rows are
// ordered by their timestamp column) is read as its last L events on items the model
// knows (L: the model's --max-len; events of unknown types read as the first type); the
// GRU's state after them scores every item, and the best --top items are listed,
// skipping the items of the user's events and of --exclude. CSV columns as for bag
// models (segment -1, source model); --explain adds the reason: the recent events whose
// removal lowers the item's score most (leave-one-out: the session re-read without that
// one event, the drop in the item's score), with how many events back each one was.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/sequence/model.hpp"
#include "segrec/serving/recommend.hpp"

namespace segrec {

/// Collective. `segrec recommend` for a sequence model.
RecommendSummary recommend_sequence(const RecommendParams& p, const Comm& comm);

/// One window's recommendations and, when asked, each item's leave-one-out drops.
struct SeqRecs {
  std::vector<std::int32_t> items;  ///< best first (at most n)
  std::vector<float> scores;
  /// explain: per listed item, per event of the window (oldest first), the score with
  /// the window minus the score without that event.
  std::vector<std::vector<float>> drops;
};

/// Local. Recommendations for windows of (model item, model type) events, oldest first
/// (at most the model's max_len), with their times (seq::Batch::from: the time of the event
/// before the window, NaN when none, then each event's; read when the model has a gap
/// input); `seen` items (per window, any order) and `excluded` (per model item, 1 = drop;
/// may be empty) are skipped. Ties go to the smaller item.
std::vector<SeqRecs> recommend_windows(const SeqModel& m,
                                       const std::vector<std::vector<std::int32_t>>& items,
                                       const std::vector<std::vector<std::uint8_t>>& types,
                                       const std::vector<std::vector<double>>& times,
                                       const std::vector<std::vector<std::int32_t>>& seen,
                                       const std::vector<std::uint8_t>& excluded, std::int64_t n,
                                       bool explain);

}  // namespace segrec
