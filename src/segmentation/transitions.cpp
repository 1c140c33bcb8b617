// The transition table of `segrec cluster --previous`: shares, report sections, /previous.
#include "segrec/segmentation/transitions.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "segrec/core/json.hpp"

namespace segrec {
namespace {

constexpr std::int64_t kMaxTableK = 24;  // larger tables are left to segments.json

std::string pct(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * v);
  return buf;
}

std::string id_list(const std::vector<std::int64_t>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(v[i]);
  }
  return s.empty() ? "none" : s;
}

}  // namespace

std::vector<std::int64_t> SegmentTransitions::new_segments() const {
  std::vector<std::int64_t> out;
  for (std::int64_t b = 0; b < k_new; ++b)
    if (previous_id[b] < 0) out.push_back(b);
  return out;
}

std::vector<std::int64_t> SegmentTransitions::retired_segments() const {
  std::vector<char> kept(static_cast<std::size_t>(k_old), 0);
  for (const auto a : previous_id)
    if (a >= 0) kept[a] = 1;
  std::vector<std::int64_t> out;
  for (std::int64_t a = 0; a < k_old; ++a)
    if (!kept[a]) out.push_back(a);
  return out;
}

double SegmentTransitions::row_share(std::int64_t a, std::int64_t b) const {
  std::int64_t row = 0;
  for (std::int64_t j = 0; j < k_new; ++j) row += at(a, j);
  return row > 0 ? static_cast<double>(at(a, b)) / static_cast<double>(row)
                 : std::numeric_limits<double>::quiet_NaN();
}

double SegmentTransitions::stayed_share() const {
  std::int64_t stayed = 0;
  for (std::int64_t b = 0; b < k_new; ++b)
    if (previous_id[b] >= 0) stayed += at(previous_id[b], b);
  return common_users > 0 ? static_cast<double>(stayed) / static_cast<double>(common_users)
                          : std::numeric_limits<double>::quiet_NaN();
}

std::string SegmentTransitions::markdown() const {
  std::ostringstream os;
  os << "\n## Changes since the previous run\n\nSegment ids follow `" << previous
     << "`: " << common_users << " users are in both runs, " << pct(stayed_share())
     << " of them kept their segment; " << new_users << " new users, " << departed_users
     << " departed users. New segments: " << id_list(new_segments())
     << ". Retired segments: " << id_list(retired_segments()) << ".\n";
  std::vector<std::int64_t> renumbered;
  for (std::int64_t b = 0; b < k_new; ++b)
    if (previous_id[b] >= 0 && previous_id[b] != b) renumbered.push_back(b);
  if (!renumbered.empty()) {
    os << "\nRenumbered (old id beyond the new k):";
    for (const auto b : renumbered) os << " " << previous_id[b] << " -> " << b << ";";
    os << "\n";
  }
  if (k_old > kMaxTableK || k_new > kMaxTableK) {
    os << "\nThe transition table (" << k_old << " x " << k_new
       << ") is in segments.json (\"transitions\").\n";
    return os.str();
  }
  os << "\nWhere the users of each old segment went (rows: old segment, columns: new segment; "
        "share of the old segment's users present in both runs):\n\n| old \\ new |";
  for (std::int64_t b = 0; b < k_new; ++b) os << " " << b << " |";
  os << " users |\n|---:|";
  for (std::int64_t b = 0; b <= k_new; ++b) os << "---:|";
  os << "\n";
  for (std::int64_t a = 0; a < k_old; ++a) {
    std::int64_t row = 0;
    os << "| " << a << " |";
    for (std::int64_t b = 0; b < k_new; ++b) {
      row += at(a, b);
      os << " " << (at(a, b) > 0 ? pct(row_share(a, b)) : "") << " |";
    }
    os << " " << row << " |\n";
  }
  return os.str();
}

std::string SegmentTransitions::json() const {
  std::ostringstream os;
  auto ints = [&os](const auto& v) {
    os << "[";
    for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    os << "]";
  };
  os << "{\"previous\": " << json::str(previous) << ", \"k_old\": " << k_old
     << ", \"k_new\": " << k_new << ", \"common_users\": " << common_users
     << ", \"new_users\": " << new_users << ", \"departed_users\": " << departed_users
     << ", \"stayed_share\": " << json::num(stayed_share()) << ",\n    \"previous_id\": ";
  ints(previous_id);
  os << ", \"matched_by\": [";
  for (std::size_t i = 0; i < matched_by.size(); ++i)
    os << (i ? ", " : "") << json::str(matched_by[i]);
  os << "], \"new_segments\": ";
  ints(new_segments());
  os << ", \"retired_segments\": ";
  ints(retired_segments());
  os << ",\n    \"moved\": [";
  for (std::int64_t a = 0; a < k_old; ++a) {
    os << (a ? ", " : "");
    ints(std::vector<std::int64_t>(moved.begin() + a * k_new, moved.begin() + (a + 1) * k_new));
  }
  os << "],\n    \"shares\": [";
  for (std::int64_t a = 0; a < k_old; ++a) {
    os << (a ? ", " : "") << "[";
    for (std::int64_t b = 0; b < k_new; ++b) os << (b ? ", " : "") << json::num(row_share(a, b));
    os << "]";
  }
  os << "]}";
  return os.str();
}

void write_transitions(h5::File& f, const SegmentTransitions& t) {
  f.create_group("/previous");
  f.write_replicated<std::int64_t>("/previous/moved", t.moved, t.k_new);
  f.write_replicated<std::int32_t>("/previous/previous_id", t.previous_id);
  f.set_attr("/previous", "path", t.previous);
  f.set_attr("/previous", "k", t.k_old);
  f.set_attr("/previous", "common_users", t.common_users);
  f.set_attr("/previous", "new_users", t.new_users);
  f.set_attr("/previous", "departed_users", t.departed_users);
  f.set_attr("/", "previous", t.previous);
}

}  // namespace segrec
