#include "segrec/io/companion.hpp"

#include "segrec/core/error.hpp"

namespace segrec {

std::vector<std::int64_t> user_rows_shape(const h5::File& f, const UserRowsSpec& spec) {
  const auto s = f.shape(spec.name);
  const std::string where = "'" + spec.path + "': " + spec.name;
  if (spec.cols != 0 && (s.size() != 2 || s[1] < 1))
    throw DataError(where + " must be a users x dims matrix", true);
  if (spec.users >= 0 && s[0] != spec.users)
    throw DataError(where + " has " + std::to_string(s[0]) + " rows; '" + spec.source + "' has " +
                        std::to_string(spec.users) + " users",
                    true);
  if (spec.cols > 0 && s[1] != spec.cols)
    throw DataError(
        where + " has " + std::to_string(s[1]) + " columns, expected " + std::to_string(spec.cols),
        true);
  return s;
}

std::vector<std::string> read_user_ids(const h5::File& f, const UserRowsSpec& spec, Block b) {
  if (f.shape("/users/ids")[0] != f.shape(spec.name)[0])
    throw DataError("'" + spec.path + "': /users/ids and " + spec.name + " differ in length", true);
  return f.read_strings("/users/ids", b.begin, b.size());
}

void check_user_order(const h5::File& f, const UserRowsSpec& spec, Block b, const Comm& comm) {
  if (spec.ids == nullptr || !f.exists("/users/ids")) return;
  const auto ids = f.read_strings("/users/ids", b.begin, b.size());
  comm.check_all(*spec.ids == ids ? ""
                                  : "'" + spec.path + "' lists other users, or another order, " +
                                        "than '" + spec.source + "'",
                 kExitData);
}

namespace {

std::string row_name(const UserRowsSpec& spec, Block b, std::int64_t row) {
  std::string s = "'" + spec.path + "': " + spec.name + " row " + std::to_string(b.begin + row);
  if (spec.ids && row < std::ssize(*spec.ids))
    s += " (user '" + (*spec.ids)[static_cast<std::size_t>(row)] + "')";
  return s;
}

}  // namespace

void check_rows_finite(const UserRowsSpec& spec, Block b, std::int64_t bad_row, const Comm& comm) {
  comm.check_all(
      bad_row < 0 ? "" : row_name(spec, b, bad_row) + " holds a non-finite value (damaged file?)",
      kExitData);
}

std::vector<std::int32_t> read_user_labels(const h5::File& f, const UserRowsSpec& spec, Block b,
                                           const Comm& comm, std::int64_t& k,
                                           bool allow_unsegmented) {
  k = f.attr_int("/", "k");
  auto labels = read_user_rows<std::int32_t>(f, spec, b, comm);
  std::string err;
  for (std::size_t r = 0; r < labels.size() && err.empty(); ++r)
    if ((labels[r] < 0 || labels[r] >= k) && !(allow_unsegmented && labels[r] == -1))
      err = row_name(spec, b, static_cast<std::int64_t>(r)) + " holds segment " +
            std::to_string(labels[r]) + " outside [0, " + std::to_string(k) + ")" +
            (allow_unsegmented ? " (or -1: no segment)"
             : labels[r] == -1 ? " (-1 is a user in no segment, e.g. DBSCAN noise; this "
                                 "needs a segment for every user)"
                               : "");
  comm.check_all(err, kExitData);
  return labels;
}

}  // namespace segrec
