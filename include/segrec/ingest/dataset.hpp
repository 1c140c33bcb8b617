// dataset.h5: the cleaned interaction data that every later stage reads.
//
// Users are row-partitioned: a rank holds a contiguous block of global user
// indices. Items and event types are small and replicated on every rank.
// Schema (format "segrec-dataset", version 1; see docs/hdf5-schema.md):
//   /users/ids            string[n_users]
//   /users/first_time     f64[n_users]      unix seconds
//   /users/last_time      f64[n_users]
//   /items/ids            string[n_items]
//   /items/n_users        i64[n_items]      distinct users per item
//   /event_types/names    string[n_types]
//   /event_types/weights  f64[n_types]
//   /event_types/fill     f64[n_types]      value used where a row had none
//   /interactions/indptr  i64[n_users+1]    CSR over users x items
//   /interactions/indices i32[nnz]          item index, ascending within a row
//   /interactions/weights f32[nnz]          summed event weights
//   /interactions/counts  u32[nnz, n_types] events per type
//   /log/indptr           i64[n_users+1]    each user's events, by time
//   /log/item             i32[n_events]
//   /log/type             u8[n_events]
//   /log/time             f64[n_events]     unix seconds
//   /log/value            f32[n_events]     rating, dwell seconds, ... (filled)
//   /report               attributes of the ingest report
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"

namespace segrec {

/// What ingest read, kept and dropped, and why. Global figures (identical on
/// every rank after ingest).
struct IngestReport {
  std::int64_t rows_read = 0;               ///< data rows seen (header lines excluded)
  std::int64_t rows_kept = 0;               ///< events stored in the dataset
  std::int64_t duplicates = 0;              ///< exact duplicate rows removed
  std::int64_t filled_values = 0;           ///< missing values filled with the type's default
  std::int64_t below_min_value = 0;         ///< rows under --min-value
  std::int64_t filtered_users = 0;          ///< users removed by --min-user-events
  std::int64_t filtered_items = 0;          ///< items removed by --min-item-users
  std::int64_t filtered_rows = 0;           ///< events removed with them
  std::map<std::string, std::int64_t> bad;  ///< malformed rows by reason
  std::map<std::string, std::int64_t> unknown_types;  ///< event types given the default weight
  std::vector<std::string> examples;                  ///< first malformed rows, "file:line: reason"

  std::int64_t bad_total() const;
  /// A short human-readable table.
  std::string table() const;
};

/// This rank's block of a dataset.
struct Dataset {
  std::int64_t n_users = 0;           ///< global
  std::int64_t user_begin = 0;        ///< global index of the first local user
  std::vector<std::string> user_ids;  ///< local users
  std::vector<std::string> item_ids;  ///< all items
  std::vector<std::int64_t> item_users;
  std::vector<std::string> event_types;
  std::vector<double> event_weights, event_fill;

  // Interactions, local CSR: row u covers [indptr[u], indptr[u+1]), indptr[0] = 0.
  std::vector<std::int64_t> indptr;
  std::vector<std::int32_t> indices;
  std::vector<float> weights;
  std::vector<std::uint32_t> counts;  ///< nnz x n_types, row-major

  // Event log, local CSR sorted by (time, item, type).
  std::vector<std::int64_t> log_ptr;
  std::vector<std::int32_t> log_item;
  std::vector<std::uint8_t> log_type;
  std::vector<double> log_time;
  std::vector<float> log_value;
  std::vector<float> log_price;               ///< per event: unit price; NaN unknown; empty = no price column
  std::vector<double> item_price;             ///< n_items: unit price, NaN unknown; empty = none
  std::vector<std::string> item_names;        ///< n_items: display name, "" unknown; empty = none
  std::vector<std::int32_t> item_category;    ///< n_items: index into categories, -1 none; empty = none
  std::vector<std::string> categories;        ///< sorted category names

  std::vector<double> first_time, last_time;  ///< per local user
  IngestReport report;

  std::int64_t n_local() const { return static_cast<std::int64_t>(user_ids.size()); }
  std::int64_t n_items() const { return static_cast<std::int64_t>(item_ids.size()); }
  std::int64_t n_types() const { return static_cast<std::int64_t>(event_types.size()); }
};

/// Collective. Writes `ds` (each rank its block, in rank order) atomically.
void write_dataset(const std::string& path, const Dataset& ds, const Comm& comm);

/// Collective. Reads an even block of users per rank; `with_log` = false skips the event log.
Dataset read_dataset(const std::string& path, const Comm& comm, bool with_log = true);

/// Collective. Reads the report attributes of an open dataset file.
IngestReport read_report(const h5::File& f);

}  // namespace segrec
