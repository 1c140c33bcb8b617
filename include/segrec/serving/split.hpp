// `segrec split`: train / fold-in / test files for offline evaluation, in the
// input's own format (the header and the rows are copied unchanged).
//
// Protocols (every choice keyed by --seed and the user and item ids, so the
// result does not depend on the rank count or the row order):
//   strong   (Liang et al. 2018, Mult-VAE): hold out round(holdout_share * users)
//            users (those with the smallest seeded id hash); each held-out user's
//            distinct items are ordered by a seeded (user, item) hash, the first
//            ceil((1 - test_share) * n) go to foldin.csv, the rest to test.csv.
//            Other users go to train.csv. No user is in both train and held out.
//   weak     every user: floor(test_share * n) of the distinct items (by the same
//            hash) to test.csv, the rest to train.csv; foldin.csv repeats the train
//            rows of the users that have test rows (the input to score them).
//   temporal every user's last --last-n events (by time, then file order) to
//            test.csv when the user has more than that many events; the rest as weak.
//   temporal-last (--temporal-last; input --data dataset.h5, not an event file):
//            leave-last-out for next-item evaluation, rule in leave_last_out() below.
//            Writes train.csv, valid.csv, foldin.csv, test.csv (see docs/recommend.md).
// As topn_quality.py: rows with a value under --min-value are dropped (e.g. 4 for
// MovieLens ratings) and so are users with fewer than --min-user-items distinct
// kept items; all rows of one (user, item) pair go to the same side.
// Rank 0 streams the file twice (parse, then copy); memory is about 33 bytes per
// row plus the user ids. Outputs are written under temporary names and renamed.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "segrec/core/comm.hpp"
#include "segrec/ingest/ingest.hpp"

namespace segrec {

/// --protocol: who and what is held out.
enum class SplitProtocol {
  kStrong,        ///< a share of the users: their folded-in and test items
  kWeak,          ///< every user: a share of the items in test
  kTemporal,      ///< every user: the last events in time in test
  kTemporalLast,  ///< dataset.h5: each user's last new item in test, the one before in valid
};

/// SplitParams' modes, parsed once by validate().
struct SplitModes {
  SplitProtocol protocol = SplitProtocol::kStrong;
  IngestModes input;  ///< the event file's reading modes
};

struct SplitParams {
  /// The event file (exactly one in `input.events`) and its reading options (as ingest);
  /// unused by temporal-last.
  IngestParams input;
  std::string data;                 ///< temporal-last: the dataset.h5 whose /log is split
  std::string out;                  ///< output directory (created)
  std::string protocol = "strong";  ///< strong | weak | temporal | temporal-last
  double holdout_share = 0.2;       ///< strong: share of users held out, in (0, 1)
  double test_share = 0.2;          ///< strong/weak: share of a user's items in test.csv, in (0, 1)
  std::int64_t last_n = 1;          ///< temporal: test events per user (>= 1)
  std::int64_t min_user_items = 5;  ///< drop users with fewer distinct items (>= 1)
  std::uint64_t seed = 42;          ///< keys every choice (with the user and item ids)

  /// Throws UsageError naming the option and the value; returns the parsed modes.
  SplitModes validate() const;
};

struct SplitSummary {
  std::int64_t rows = 0;       ///< data rows read
  std::int64_t bad_rows = 0;   ///< malformed rows (dropped)
  std::int64_t below_min = 0;  ///< rows under --min-value (dropped)
  std::int64_t users = 0;      ///< users kept (>= min_user_items distinct items)
  std::int64_t dropped_users = 0;
  std::int64_t heldout_users = 0;  ///< users with rows in test.csv
  std::int64_t train_rows = 0, foldin_rows = 0, test_rows = 0;
  std::int64_t valid_rows = 0;    ///< temporal-last: rows of valid.csv
  std::int64_t dropped_rows = 0;  ///< temporal-last: events after a user's test target
};

/// Leave-last-out positions in one user's time-ordered log (dataset.h5's /log order:
/// time, then item index, then event type). The user's distinct items are ordered by
/// their first event; the last of them is the test target, the one before it the
/// validation target. `test` / `valid`: positions (0-based) of the first event of
/// each; -1 for both when the user has fewer than 3 distinct items.
struct LeaveLastOut {
  std::int64_t valid = -1, test = -1;
  std::int64_t distinct = 0;  ///< distinct items of the log
};
LeaveLastOut leave_last_out(std::span<const std::int32_t> items);

/// Collective (rank 0 does the work). Writes OUT/train.csv, foldin.csv, test.csv
/// (temporal-last: every rank its users of dataset.h5, also OUT/valid.csv).
SplitSummary run_split(const SplitParams& p, const Comm& comm);

/// Collective. The temporal-last protocol (called by run_split).
SplitSummary run_split_temporal_last(const SplitParams& p, const Comm& comm);

/// Stable 64-bit hash of a string, keyed by a seed (the same on every platform).
std::uint64_t seeded_hash(std::uint64_t seed, std::string_view s);

}  // namespace segrec
