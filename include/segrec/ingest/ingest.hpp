// `segrec ingest`: collect and clean behaviour events into dataset.h5.
//
// Each rank reads its own line-aligned byte range of every input file, parses
// and validates rows, and sends each user's events to the user's owner rank
// (a contiguous range of a 64-bit id hash, so the global user order (hash, id)
// is the same for any rank count). Items get one global dictionary sorted by
// id. The owner removes exact duplicates, fills missing values, applies the
// filters and builds the interaction matrix and the event log. Item attributes
// (price, name, category columns) are then decided per item by the item's
// owner rank (see item_attributes.hpp).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/io/parse.hpp"

namespace segrec {

/// --format: how event files are read.
enum class EventFormat {
  kAuto,       ///< the header (or --columns) and a detected delimiter
  kMovieLens,  ///< by file name: u.data, ratings.dat, ratings.csv
};

/// IngestParams' modes, parsed once by validate().
struct IngestModes {
  EventFormat format = EventFormat::kAuto;
};

struct IngestParams {
  std::vector<std::string> events;  ///< input files (CSV/TSV/...), at least one
  std::string out;                  ///< dataset.h5 to write
  std::string format = "auto";      ///< auto | movielens (u.data, ratings.dat, ratings.csv)
  bool no_header = false;           ///< files have no header line (needs --columns)
  std::string columns;              ///< column names for header-less files, in order
  std::string delimiter;            ///< "" = detect among , \t ; | ::  ("tab" = \t)
  std::string col_user, col_item, col_event, col_time, col_value;  ///< header name overrides
  std::string col_price, col_item_name, col_category;              ///< header name overrides
  std::string event_name;                  ///< event type for files without an event column
  std::vector<std::string> event_weights;  ///< NAME=W overrides of the default weights
  double default_event_weight = 1;         ///< weight of event types with no known weight
  std::vector<std::string> fill_values;    ///< NAME=V: value filled in where a row has none
  double min_value = -std::numeric_limits<double>::infinity();  ///< keep rows with value >= this
  double max_bad_fraction = 0.01;         ///< fail when more malformed rows than this share
  std::int64_t min_user_events = 1;       ///< drop users with fewer events (after cleaning)
  std::int64_t min_item_users = 1;        ///< drop items with fewer distinct users
  std::int64_t max_line_bytes = 1 << 20;  ///< longer lines are malformed
  int examples = 5;                       ///< malformed rows shown in the report
  /// Key of the user pseudonyms (resolved, see resolve_secret): "" = keep the ids. Otherwise
  /// every user id is replaced, as it is read, by HMAC-SHA256(key, id) (32 hex digits), and
  /// the report's examples give file:line and the reason only (no row text).
  std::string pseudonymize;

  /// Throws UsageError naming the option and the value; returns the parsed modes.
  IngestModes validate() const;
};

/// Default weight of an event type (lower-case name), or NaN when unknown:
/// view/pv/click 1, cart/add_to_cart/fav/favorite 3, purchase/buy/transaction 5,
/// rate/rating/interaction 1.
double default_event_weight(const std::string& name);

/// Collective. Reads, cleans and partitions the events; the result holds this
/// rank's users (global order) and the global report. Throws DataError for bad
/// files or too many malformed rows.
Dataset ingest(const IngestParams& p, const Comm& comm);

/// How ingest reads one event file: its layout (columns, delimiter, header) and
/// the event type of rows without one (`m`: p.validate()). Throws DataError/UsageError as
/// ingest does.
struct EventFileLayout {
  parse::Layout layout;
  std::string default_event;
};
EventFileLayout describe_event_file(const std::string& path, const IngestParams& p,
                                    const IngestModes& m);

}  // namespace segrec
