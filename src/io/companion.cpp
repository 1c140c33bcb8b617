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

}  // namespace segrec
