// libFuzzer target for the text layer of `segrec ingest` (include/segrec/io/parse.hpp): the
// event-line parser and the timestamp parser. Built and run by scripts/fuzz.sh.
//
// Input: the first byte picks a mode, the rest is the text.
//   mode % 4 == 0   parse_time and parse_number on the text, with their documented guarantees
//   mode % 4 == 1   split on a delimiter chosen by the second byte
//   mode % 4 >= 2   an event log: the first line is the header (delimiter detected), every
//                   other line goes through parse_row with a line limit from the second byte
// Every accepted value is checked against the contract (finite, in range, views inside the
// line or the scratch buffer); a violation aborts, which libFuzzer reports as a crash.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "segrec/core/error.hpp"
#include "segrec/io/parse.hpp"

namespace {

using namespace segrec::parse;

#define require(ok)                                                              \
  do {                                                                           \
    if (!(ok)) {                                                                 \
      std::fprintf(stderr, "contract violated at line %d: %s\n", __LINE__, #ok); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

bool inside(std::string_view v, std::string_view line, const std::string& scratch) {
  if (v.empty()) return true;
  const auto in = [&](const char* b, std::size_t n) {
    return v.data() >= b && v.data() + v.size() <= b + n;
  };
  return in(line.data(), line.size()) || in(scratch.data(), scratch.size());
}

void fuzz_time(std::string_view s) {
  double t = -1;
  if (parse_time(s, t)) require(std::isfinite(t) && t >= 0 && t <= kMaxUnixSeconds);
  double x = 0;
  if (parse_number(s, x)) require(std::isfinite(x));
}

void fuzz_split(std::string_view s, std::uint8_t sel) {
  static const char* const kDelims[] = {",", "\t", ";", "|", "::"};
  const std::string_view delim = kDelims[sel % 5];
  std::vector<std::string_view> fields;
  std::string scratch;
  if (split(s, delim, fields, scratch)) {
    require(!fields.empty());
    for (auto f : fields) require(inside(f, s, scratch));
  }
  (void)detect_delimiter(s);
  (void)valid_utf8(s);
}

void fuzz_log(std::string_view text, std::uint8_t sel) {
  std::size_t eol = text.find('\n');
  const std::string_view head = strip_line(text.substr(0, eol), true);
  Layout layout;
  std::vector<std::string_view> fields;
  std::string scratch;
  const std::string delim = detect_delimiter(head);
  if (!split(head, delim, fields, scratch)) return;
  try {
    layout = layout_from_header(fields, delim, ColumnNames{});
  } catch (const segrec::Error&) {
    return;  // no user or item column: a clear error, not a crash
  }
  const std::size_t max_line = sel % 3 == 0 ? 0 : 16 + sel;
  Row row;
  std::string why;
  while (eol != std::string_view::npos) {
    text.remove_prefix(eol + 1);
    eol = text.find('\n');
    const std::string_view line = strip_line(text.substr(0, eol), false);
    const Bad b = parse_row(line, layout, max_line, fields, scratch, row, &why);
    require(b < Bad::kCount);
    require(std::string_view(to_string(b)).size() > 0);
    if (b == Bad::kNone) {
      require(!row.user.empty() && !row.item.empty());
      require(inside(row.user, line, scratch) && inside(row.item, line, scratch) &&
              inside(row.event, line, scratch));
      if (row.has_time)
        require(std::isfinite(row.time) && row.time >= 0 && row.time <= kMaxUnixSeconds);
      if (row.has_value) require(std::isfinite(row.value));
      if (max_line) require(line.size() <= max_line);
    } else {
      require(why.size() <= 256);  // 40 quoted bytes, \xNN-escaped, plus the text
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t mode = data[0], sel = data[1];
  const std::string_view text(reinterpret_cast<const char*>(data + 2), size - 2);
  switch (mode % 4) {
    case 0:
      fuzz_time(text);
      break;
    case 1:
      fuzz_split(text, sel);
      break;
    default:
      fuzz_log(text, sel);
      break;
  }
  return 0;
}
