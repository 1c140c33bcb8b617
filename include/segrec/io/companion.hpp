// Per-user companion files: a dataset with one row per user of a data set, in its order
// (the /H of projection.h5, users x dims; the /labels of segments.h5, users), beside the
// users' ids in /users/ids. Collective readers that check the shape and the user order and
// read this rank's block of rows.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/io/h5.hpp"

namespace segrec {

/// What a companion dataset must match.
struct UserRowsSpec {
  std::string path;         ///< the file (for messages)
  std::string name;         ///< its dataset: "/H", "/labels"
  std::int64_t users = -1;  ///< rows expected; -1: any
  std::int64_t cols = 0;    ///< a users x cols matrix: cols expected, -1: any >= 1; 0: unchecked
  std::string source;       ///< where the expected users come from (for messages)
  /// This rank's block of the expected user ids, checked against /users/ids (when the file
  /// has it); nullptr: unchecked.
  const std::vector<std::string>* ids = nullptr;
};

/// The shape of spec.name in `f`, checked. Throws DataError (collective: the shape is the same
/// on every rank): "'P': /H must be a users x dims matrix", "'P': /H has R rows; 'S' has N
/// users", "'P': /H has C columns, expected D".
std::vector<std::int64_t> user_rows_shape(const h5::File& f, const UserRowsSpec& spec);

/// Collective. This rank's block of /users/ids; throws DataError (collective) "'P': /users/ids
/// and /H differ in length" unless it has a row per row of spec.name.
std::vector<std::string> read_user_ids(const h5::File& f, const UserRowsSpec& spec, Block b);

/// Collective. With spec.ids, and when the file has /users/ids: check_all (kExitData) "'P'
/// lists other users, or another order, than 'S'" unless its block b equals *spec.ids.
void check_user_order(const h5::File& f, const UserRowsSpec& spec, Block b, const Comm& comm);

/// Collective. check_all (kExitData) "'P': /H row R (user 'ID') holds a non-finite value
/// (damaged file?)" when a rank's `bad_row` (local row, -1: none) is set; the lowest such rank
/// speaks.
void check_rows_finite(const UserRowsSpec& spec, Block b, std::int64_t bad_row, const Comm& comm);

/// Collective. user_rows_shape, check_user_order, then rows [b.begin, b.end) of spec.name
/// (row-major, b.size() x cols); floating-point rows must be finite (check_rows_finite).
template <class T>
std::vector<T> read_user_rows(const h5::File& f, const UserRowsSpec& spec, Block b,
                              const Comm& comm) {
  const auto shape = user_rows_shape(f, spec);
  check_user_order(f, spec, b, comm);
  std::vector<T> rows = f.read_rows<T>(spec.name, b.begin, b.size());
  if constexpr (std::is_floating_point_v<T>) {
    const std::int64_t cols = shape.size() > 1 ? shape[1] : 1;
    std::int64_t bad = -1;
    for (std::size_t i = 0; i < rows.size() && bad < 0; ++i)
      if (!std::isfinite(rows[i])) bad = static_cast<std::int64_t>(i) / cols;
    check_rows_finite(spec, b, bad, comm);
  }
  return rows;
}

/// Collective. The /labels of a segments file (read_user_rows) and its k attribute; every
/// label must lie in [0, k), or be -1 (no segment, e.g. DBSCAN noise) when
/// `allow_unsegmented`: check_all (kExitData) "'P': /labels row R (user 'ID') holds
/// segment S outside [0, k)".
std::vector<std::int32_t> read_user_labels(const h5::File& f, const UserRowsSpec& spec, Block b,
                                           const Comm& comm, std::int64_t& k,
                                           bool allow_unsegmented = false);

}  // namespace segrec
