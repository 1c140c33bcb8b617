#include "segrec/io/parse.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>

#include "segrec/core/error.hpp"

namespace segrec::parse {
namespace {

constexpr std::size_t kQuoteLimit = 40;  // bytes of offending text quoted in `why`

bool is_digit(char c) { return c >= '0' && c <= '9'; }

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string_view trim_spaces(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && s[b] == ' ') ++b;
  while (e > b && s[e - 1] == ' ') --e;
  return s.substr(b, e - b);
}

// Spaces and tabs, for header names and --columns entries.
std::string_view trim_blank(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

// `s` in single quotes for messages: at most `limit` bytes (cut on a UTF-8 boundary,
// "..." appended), control bytes and, in invalid UTF-8, all bytes >= 0x80 as \xHH.
std::string quoted(std::string_view s, std::size_t limit = kQuoteLimit) {
  bool cut = false;
  if (s.size() > limit) {
    std::size_t n = limit;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    s = s.substr(0, n);
    cut = true;
  }
  const bool escape_high = !valid_utf8(s);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7F || (c >= 0x80 && escape_high)) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += ch;
    }
  }
  if (cut) out += "...";
  out += '\'';
  return out;
}

// ---- column names ------------------------------------------------------------------

constexpr int kNumFields = 8;  // kUser..kCategory

struct FieldInfo {
  const char* name;                    // "user", as in messages
  const char* option;                  // "user" for --col-user
  std::array<const char*, 6> aliases;  // lower case, best first; nullptr-terminated
  const char* expected;                // alias list as shown in messages
};

// Aliases added after the first release come last, so a header that matched before
// keeps its meaning.
constexpr std::array<FieldInfo, kNumFields> kFields = {{
    {"user", "user", {"user_id", "user", "userid", nullptr}, "user_id, user, userId"},
    {"item", "item", {"item_id", "item", "itemid", "movieid"}, "item_id, item, itemId, movieId"},
    {"event",
     "event",
     {"event", "event_type", "behavior", "type"},
     "event, event_type, behavior, type"},
    {"time", "time", {"timestamp", "ts", "time", nullptr}, "timestamp, ts, time"},
    {"value",
     "value",
     {"value", "rating", "dwell", "quantity", "qty"},
     "value, rating, dwell, quantity, qty"},
    {"price", "price", {"price", "unit_price", "unitprice"}, "price, unit_price, UnitPrice"},
    {"item name",
     "item-name",
     {"item_name", "description", "product_name", "title", "name"},
     "item_name, description, product_name, title, name"},
    {"category",
     "category",
     {"category", "category_id", "category_code", "cat"},
     "category, category_id, category_code, cat"},
}};

const std::string& override_of(const ColumnNames& names, int f) {
  switch (f) {
    case 0:
      return names.user;
    case 1:
      return names.item;
    case 2:
      return names.event;
    case 3:
      return names.time;
    case 4:
      return names.value;
    case 5:
      return names.price;
    case 6:
      return names.name;
    default:
      return names.category;
  }
}

struct Match {
  Field field = Field::kIgnore;
  int rank = 0;  // 0 = best (override or first alias)
};

// Field a column name stands for. Overrides take precedence over the aliases of
// other fields; an overridden field ignores its own aliases.
Match classify(std::string_view raw, const ColumnNames& names) {
  const std::string_view name = trim_blank(raw);
  for (int f = 0; f < kNumFields; ++f) {
    const std::string& o = override_of(names, f);
    if (!o.empty() && iequals(name, trim_blank(o))) return {static_cast<Field>(f), 0};
  }
  for (int f = 0; f < kNumFields; ++f) {
    if (!override_of(names, f).empty()) continue;
    const auto& aliases = kFields[f].aliases;
    for (int r = 0; r < static_cast<int>(aliases.size()) && aliases[r]; ++r)
      if (iequals(name, aliases[r])) return {static_cast<Field>(f), r};
  }
  return {};
}

std::string expected_text(const ColumnNames& names, int f) {
  const std::string& o = override_of(names, f);
  if (!o.empty()) return quoted(trim_blank(o)) + " (--col-" + kFields[f].option + ")";
  return std::string("one of ") + kFields[f].expected + " or --col-" + kFields[f].option;
}

std::string delim_text(std::string_view delim) {
  std::string out = "'";
  for (char c : delim) out += (c == '\t') ? std::string("\\t") : std::string(1, c);
  return out + "'";
}

void set_index(Layout& l, Field f, int col) {
  switch (f) {
    case Field::kUser:
      l.user = col;
      break;
    case Field::kItem:
      l.item = col;
      break;
    case Field::kEvent:
      l.event = col;
      break;
    case Field::kTime:
      l.time = col;
      break;
    case Field::kValue:
      l.value = col;
      break;
    case Field::kPrice:
      l.price = col;
      break;
    case Field::kName:
      l.name = col;
      break;
    case Field::kCategory:
      l.category = col;
      break;
    case Field::kIgnore:
      break;
  }
}

int index_of(const Layout& l, Field f) {
  switch (f) {
    case Field::kUser:
      return l.user;
    case Field::kItem:
      return l.item;
    case Field::kEvent:
      return l.event;
    case Field::kTime:
      return l.time;
    case Field::kValue:
      return l.value;
    case Field::kPrice:
      return l.price;
    case Field::kName:
      return l.name;
    case Field::kCategory:
      return l.category;
    case Field::kIgnore:
      break;
  }
  return -1;
}

// ---- numbers and times -------------------------------------------------------------

enum class NumStatus : uint8_t { kOk, kJunk, kNonFinite };

NumStatus number_status(std::string_view s, double& out) {
  s = trim_spaces(s);
  if (s.empty()) return NumStatus::kJunk;
  if (s[0] == '+' && s.size() > 1 && (is_digit(s[1]) || s[1] == '.')) s.remove_prefix(1);
  double v = 0;
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (ptr != end) return NumStatus::kJunk;
  if (ec == std::errc::result_out_of_range) {
    // Underflow ("1e-400") reads as zero; overflow ("1e400") is not finite.
    const std::size_t e = s.find_first_of("eE");
    if (e == std::string_view::npos || e + 1 >= s.size() || s[e + 1] != '-')
      return NumStatus::kNonFinite;
    out = s[0] == '-' ? -0.0 : 0.0;
    return NumStatus::kOk;
  }
  if (ec != std::errc()) return NumStatus::kJunk;
  if (!std::isfinite(v)) return NumStatus::kNonFinite;
  out = v;
  return NumStatus::kOk;
}

enum class TimeStatus : uint8_t { kOk, kSyntax, kRange };

// Days since 1970-01-01 of a proleptic Gregorian date (m 1-12, d 1-31).
constexpr int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;                                   // [0, 399]
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;  // [0, 365]
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           // [0, 146096]
  return era * 146097 + doe - 719468;
}
static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(days_from_civil(2000, 3, 1) == 11017);

int days_in_month(int y, int m) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) return 29;
  return kDays[m - 1];
}

// Reads exactly `n` digits at s[i]; advances i.
bool digits(std::string_view s, std::size_t& i, int n, int& out) {
  if (i + static_cast<std::size_t>(n) > s.size()) return false;
  int v = 0;
  for (int k = 0; k < n; ++k) {
    const char c = s[i + static_cast<std::size_t>(k)];
    if (!is_digit(c)) return false;
    v = v * 10 + (c - '0');
  }
  i += static_cast<std::size_t>(n);
  out = v;
  return true;
}

TimeStatus range_checked(double t, double& out) {
  if (!(t >= 0 && t <= kMaxUnixSeconds)) return TimeStatus::kRange;
  out = t + 0.0;  // -0 -> +0
  return TimeStatus::kOk;
}

// YYYY-MM-DD[(T| )hh:mm[:ss][.frac]][Z|(+|-)hh[[:]mm]]
TimeStatus iso_time(std::string_view s, double& out) {
  std::size_t i = 0;
  int y = 0, mo = 0, d = 0;
  if (!digits(s, i, 4, y) || s[i++] != '-' || !digits(s, i, 2, mo) || i >= s.size() ||
      s[i++] != '-' || !digits(s, i, 2, d))
    return TimeStatus::kSyntax;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return TimeStatus::kSyntax;
  double secs = 0, frac = 0;
  int64_t offset = 0;  // seconds east of UTC
  const std::size_t n = s.size();
  if (i < n) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return TimeStatus::kSyntax;
    ++i;
    int hh, mm, ss = 0;
    if (!digits(s, i, 2, hh) || i >= n || s[i++] != ':' || !digits(s, i, 2, mm))
      return TimeStatus::kSyntax;
    if (i < n && s[i] == ':') {
      ++i;
      if (!digits(s, i, 2, ss)) return TimeStatus::kSyntax;
      if (i < n && (s[i] == '.' || s[i] == ',')) {
        ++i;
        const std::size_t b = i;
        double scale = 0.1;
        while (i < n && is_digit(s[i])) {
          frac += (s[i] - '0') * scale;
          scale *= 0.1;
          ++i;
        }
        if (i == b) return TimeStatus::kSyntax;
      }
    }
    if (hh > 23 || mm > 59 || ss > 60) return TimeStatus::kSyntax;
    secs = hh * 3600.0 + mm * 60.0 + ss;
    if (i < n) {
      if (s[i] == 'Z' || s[i] == 'z') {
        ++i;
      } else if (s[i] == '+' || s[i] == '-') {
        const int sign = s[i++] == '+' ? 1 : -1;
        int oh, om = 0;
        if (!digits(s, i, 2, oh)) return TimeStatus::kSyntax;
        if (i < n) {
          if (s[i] == ':') ++i;
          if (!digits(s, i, 2, om)) return TimeStatus::kSyntax;
        }
        if (oh > 23 || om > 59) return TimeStatus::kSyntax;
        offset = sign * (oh * 3600 + om * 60);
      }
      if (i != n) return TimeStatus::kSyntax;
    }
  }
  const int64_t whole = days_from_civil(y, mo, d) * 86400 - offset;
  return range_checked(static_cast<double>(whole) + secs + frac, out);
}

// [-]digits[.digits] unix seconds.
TimeStatus unix_time(std::string_view s, double& out) {
  std::size_t i = 0;
  const bool neg = s[0] == '-';
  if (neg) ++i;
  const std::size_t b = i;
  uint64_t v = 0;
  while (i < s.size() && is_digit(s[i])) {
    if (i - b < 18) v = v * 10 + static_cast<uint64_t>(s[i] - '0');
    ++i;
  }
  const std::size_t int_digits = i - b;
  if (i == s.size()) {  // integer: exact fast path
    if (int_digits == 0) return TimeStatus::kSyntax;
    if (neg && v != 0) return TimeStatus::kRange;
    if (int_digits > 11) return TimeStatus::kRange;
    return range_checked(static_cast<double>(v), out);
  }
  if (s[i] != '.') return TimeStatus::kSyntax;
  ++i;
  const std::size_t fb = i;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i != s.size() || int_digits + (i - fb) == 0) return TimeStatus::kSyntax;
  double t = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), t);
  if (ec != std::errc() || ptr != s.data() + s.size()) return TimeStatus::kRange;
  return range_checked(t, out);
}

TimeStatus time_status(std::string_view s, double& out) {
  s = trim_spaces(s);
  if (s.empty()) return TimeStatus::kSyntax;
  if (s.size() >= 10 && s[4] == '-' && is_digit(s[0])) return iso_time(s, out);
  return unix_time(s, out);
}

}  // namespace

// ---- public API --------------------------------------------------------------------

std::string_view strip_line(std::string_view line, bool first_line_of_file) {
  if (first_line_of_file && line.size() >= 3 && line.substr(0, 3) == "\xEF\xBB\xBF")
    line.remove_prefix(3);
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

std::string detect_delimiter(std::string_view line) {
  static constexpr std::array<char, 4> kSingle = {'\t', ',', ';', '|'};
  std::array<std::size_t, 4> count{};
  bool in_quotes = false, double_colon = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '"') {
      in_quotes = !in_quotes;
    } else if (!in_quotes) {
      if (c == ':' && i + 1 < line.size() && line[i + 1] == ':') double_colon = true;
      for (std::size_t k = 0; k < kSingle.size(); ++k) count[k] += c == kSingle[k];
    }
  }
  if (double_colon) return "::";
  std::size_t best = 0;
  for (std::size_t k = 1; k < kSingle.size(); ++k)
    if (count[k] > count[best]) best = k;
  return count[best] == 0 ? std::string(",") : std::string(1, kSingle[best]);
}

bool split(std::string_view line, std::string_view delim, std::vector<std::string_view>& fields,
           std::string& scratch) {
  fields.clear();
  scratch.clear();
  if (delim.empty()) {
    fields.push_back(line);
    return true;
  }
  // Unescaped text never exceeds the line, so `scratch` cannot reallocate below and
  // views into it stay valid.
  if (scratch.capacity() < line.size()) scratch.reserve(line.size());
  const char* const base = line.data();
  const std::size_t n = line.size();
  const std::size_t dn = delim.size();
  const char d0 = delim[0];
  const bool skip_spaces = d0 != ' ';
  auto delim_at = [&](std::size_t i) {
    return i + dn <= n && base[i] == d0 && (dn == 1 || line.compare(i, dn, delim) == 0);
  };

  std::size_t pos = 0;
  for (;;) {
    std::size_t q = pos;
    if (skip_spaces)
      while (q < n && base[q] == ' ') ++q;
    if (q < n && base[q] == '"') {
      const std::size_t start = q + 1;
      std::size_t seg = start, i = start;
      const std::size_t scratch_start = scratch.size();
      bool escaped = false;
      std::size_t close;
      for (;;) {
        const void* hit = std::memchr(base + i, '"', n - i);
        if (!hit) return false;  // unterminated
        const std::size_t k = static_cast<std::size_t>(static_cast<const char*>(hit) - base);
        if (k + 1 < n && base[k + 1] == '"') {  // "" -> "
          scratch.append(base + seg, k + 1 - seg);
          escaped = true;
          seg = i = k + 2;
          continue;
        }
        close = k;
        break;
      }
      if (escaped) {
        scratch.append(base + seg, close - seg);
        fields.emplace_back(scratch.data() + scratch_start, scratch.size() - scratch_start);
      } else {
        fields.emplace_back(base + start, close - start);
      }
      pos = close + 1;
      if (skip_spaces)
        while (pos < n && base[pos] == ' ') ++pos;
      if (pos == n) return true;
      if (!delim_at(pos)) return false;  // text after closing quote
      pos += dn;
      continue;
    }
    std::size_t k;
    if (dn == 1) {
      const void* hit = std::memchr(base + pos, d0, n - pos);
      k = hit ? static_cast<std::size_t>(static_cast<const char*>(hit) - base) : n;
    } else {
      k = line.find(delim, pos);
      if (k == std::string_view::npos) k = n;
    }
    fields.emplace_back(base + pos, k - pos);
    if (k == n) return true;
    pos = k + dn;
  }
}

Layout layout_from_header(const std::vector<std::string_view>& header, std::string_view delim,
                          const ColumnNames& names) {
  Layout l;
  l.delimiter = std::string(delim);
  l.header = true;
  l.columns.assign(header.size(), Field::kIgnore);
  std::array<int, kNumFields> best_col, best_rank;
  best_col.fill(-1);
  best_rank.fill(1 << 30);
  for (std::size_t c = 0; c < header.size(); ++c) {
    const Match m = classify(header[c], names);
    if (m.field == Field::kIgnore) continue;
    const auto f = static_cast<std::size_t>(m.field);
    if (m.rank == best_rank[f])
      throw DataError("the header names the " + std::string(kFields[f].name) +
                      " column twice: " + quoted(header[static_cast<std::size_t>(best_col[f])]) +
                      " (column " + std::to_string(best_col[f] + 1) + ") and " + quoted(header[c]) +
                      " (column " + std::to_string(c + 1) + ")");
    if (m.rank < best_rank[f]) {
      best_rank[f] = m.rank;
      best_col[f] = static_cast<int>(c);
    }
  }
  for (int f = 0; f < kNumFields; ++f) {
    if (best_col[f] < 0) continue;
    l.columns[static_cast<std::size_t>(best_col[f])] = static_cast<Field>(f);
    set_index(l, static_cast<Field>(f), best_col[f]);
  }
  for (int f : {0, 1}) {
    if (best_col[f] >= 0) continue;
    std::string text;
    for (std::size_t c = 0; c < header.size(); ++c) {
      if (c) text += delim;
      text += header[c];
    }
    throw DataError(std::string("no ") + kFields[f].name + " column in header " +
                    quoted(text, 200) + " (delimiter " + delim_text(delim) + "); expected " +
                    expected_text(names, f));
  }
  return l;
}

Layout layout_from_spec(std::string_view spec, std::string_view delim, const ColumnNames& names) {
  Layout l;
  l.delimiter = std::string(delim);
  l.header = false;
  std::size_t pos = 0;
  for (;;) {
    std::size_t k = spec.find(',', pos);
    if (k == std::string_view::npos) k = spec.size();
    const std::string_view name = trim_blank(spec.substr(pos, k - pos));
    const Field f = classify(name, names).field;
    const int col = static_cast<int>(l.columns.size());
    l.columns.push_back(f);
    if (f != Field::kIgnore) {
      const int prev = index_of(l, f);
      if (prev >= 0)
        throw UsageError("--columns " + quoted(spec, 200) + " names the " +
                         kFields[static_cast<std::size_t>(f)].name + " field twice (columns " +
                         std::to_string(prev + 1) + " and " + std::to_string(col + 1) + ")");
      set_index(l, f, col);
    }
    if (k == spec.size()) break;
    pos = k + 1;
  }
  for (int f : {0, 1}) {
    if ((f == 0 ? l.user : l.item) >= 0) continue;
    throw UsageError("--columns " + quoted(spec, 200) + " has no " + kFields[f].name +
                     " column; expected " + expected_text(names, f));
  }
  return l;
}

bool parse_time(std::string_view s, double& unix_seconds) {
  return time_status(s, unix_seconds) == TimeStatus::kOk;
}

bool parse_number(std::string_view s, double& out) {
  return number_status(s, out) == NumStatus::kOk;
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) {  // ASCII fast path, 8 bytes at a time
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    auto cont = [&](std::size_t j, unsigned lo = 0x80, unsigned hi = 0xBF) {
      return j < n && p[j] >= lo && p[j] <= hi;
    };
    if (c < 0xC2) return false;  // stray continuation or overlong 2-byte
    if (c < 0xE0) {
      if (!cont(i + 1)) return false;
      i += 2;
    } else if (c < 0xF0) {
      const unsigned lo = c == 0xE0 ? 0xA0 : 0x80;  // overlong
      const unsigned hi = c == 0xED ? 0x9F : 0xBF;  // surrogates
      if (!cont(i + 1, lo, hi) || !cont(i + 2)) return false;
      i += 3;
    } else if (c < 0xF5) {
      const unsigned lo = c == 0xF0 ? 0x90 : 0x80;  // overlong
      const unsigned hi = c == 0xF4 ? 0x8F : 0xBF;  // > U+10FFFF
      if (!cont(i + 1, lo, hi) || !cont(i + 2) || !cont(i + 3)) return false;
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

const char* to_string(Bad b) {
  switch (b) {
    case Bad::kNone:
      return "ok";
    case Bad::kFieldCount:
      return "field count";
    case Bad::kEmptyUser:
      return "empty user";
    case Bad::kEmptyItem:
      return "empty item";
    case Bad::kBadTime:
      return "bad time";
    case Bad::kBadValue:
      return "bad value";
    case Bad::kNonFinite:
      return "non-finite value";
    case Bad::kBadUtf8:
      return "invalid UTF-8";
    case Bad::kTooLong:
      return "line too long";
    case Bad::kBadQuote:
      return "bad quoting";
    case Bad::kValueRange:
      return "value out of range";
    case Bad::kNulByte:
      return "NUL byte";
    case Bad::kBadPrice:
      return "bad price";
    case Bad::kNegativePrice:
      return "negative price";
    case Bad::kNonFinitePrice:
      return "non-finite price";
    case Bad::kPriceRange:
      return "price out of range";
    case Bad::kCount:
      break;
  }
  return "unknown";
}

Bad parse_row(std::string_view line, const Layout& layout, std::size_t max_line_bytes,
              std::vector<std::string_view>& fields, std::string& scratch, Row& row,
              std::string* why) {
  auto fail = [why](Bad b, auto&&... parts) {
    if (why) {
      why->clear();
      (why->append(parts), ...);
    }
    return b;
  };
  if (max_line_bytes != 0 && line.size() > max_line_bytes)
    return fail(Bad::kTooLong, "line of ", std::to_string(line.size()), " bytes exceeds limit of ",
                std::to_string(max_line_bytes));
  if (const auto nul = line.find('\0'); nul != std::string_view::npos)
    return fail(Bad::kNulByte, "NUL byte at column ", std::to_string(nul + 1));
  if (line.find('\n') != std::string_view::npos)
    return fail(Bad::kBadQuote, "newline inside a quoted field in ", quoted(line));
  if (!split(line, layout.delimiter, fields, scratch))
    return fail(Bad::kBadQuote, "unterminated quote or text after closing quote in ", quoted(line));
  if (fields.size() != layout.columns.size())
    return fail(Bad::kFieldCount, "expected ", std::to_string(layout.columns.size()),
                " fields, found ", std::to_string(fields.size()));

  row.user = trim_spaces(fields[static_cast<std::size_t>(layout.user)]);
  if (row.user.empty()) return fail(Bad::kEmptyUser, "user field is empty");
  if (!valid_utf8(row.user))
    return fail(Bad::kBadUtf8, "user ", quoted(row.user), " is not valid UTF-8");
  row.item = trim_spaces(fields[static_cast<std::size_t>(layout.item)]);
  if (row.item.empty()) return fail(Bad::kEmptyItem, "item field is empty");
  if (!valid_utf8(row.item))
    return fail(Bad::kBadUtf8, "item ", quoted(row.item), " is not valid UTF-8");
  row.event = {};
  if (layout.event >= 0) {
    row.event = trim_spaces(fields[static_cast<std::size_t>(layout.event)]);
    if (!valid_utf8(row.event))
      return fail(Bad::kBadUtf8, "event ", quoted(row.event), " is not valid UTF-8");
  }

  row.has_time = false;
  row.time = 0;
  if (layout.time >= 0) {
    const std::string_view t = trim_spaces(fields[static_cast<std::size_t>(layout.time)]);
    if (!t.empty()) {
      switch (time_status(t, row.time)) {
        case TimeStatus::kOk:
          row.has_time = true;
          break;
        case TimeStatus::kSyntax:
          return fail(Bad::kBadTime, "time ", quoted(t),
                      " is not unix seconds or a valid ISO-8601 date");
        case TimeStatus::kRange:
          return fail(Bad::kBadTime, "time ", quoted(t), " is negative or absurd");
      }
    }
  }

  row.has_value = false;
  row.value = 0;
  if (layout.value >= 0) {
    const std::string_view v = trim_spaces(fields[static_cast<std::size_t>(layout.value)]);
    if (!v.empty()) {
      switch (number_status(v, row.value)) {
        case NumStatus::kOk:
          if (std::fabs(row.value) > std::numeric_limits<float>::max())
            return fail(Bad::kValueRange, "value ", quoted(v), " is beyond float32 (3.4e38)");
          row.has_value = true;
          break;
        case NumStatus::kJunk:
          return fail(Bad::kBadValue, "value ", quoted(v), " is not a number");
        case NumStatus::kNonFinite:
          return fail(Bad::kNonFinite, "value ", quoted(v), " is not finite");
      }
    }
  }

  row.has_price = false;
  row.price = 0;
  if (layout.price >= 0) {
    const std::string_view v = trim_spaces(fields[static_cast<std::size_t>(layout.price)]);
    if (!v.empty()) {
      switch (number_status(v, row.price)) {
        case NumStatus::kOk:
          if (row.price < 0) return fail(Bad::kNegativePrice, "price ", quoted(v), " is negative");
          if (row.price > std::numeric_limits<float>::max())
            return fail(Bad::kPriceRange, "price ", quoted(v), " is beyond float32 (3.4e38)");
          row.price += 0.0;  // -0 -> +0
          row.has_price = true;
          break;
        case NumStatus::kJunk:
          return fail(Bad::kBadPrice, "price ", quoted(v), " is not a number");
        case NumStatus::kNonFinite:
          return fail(Bad::kNonFinitePrice, "price ", quoted(v), " is not finite");
      }
    }
  }
  row.name = {};
  if (layout.name >= 0) {
    row.name = trim_spaces(fields[static_cast<std::size_t>(layout.name)]);
    if (!valid_utf8(row.name))
      return fail(Bad::kBadUtf8, "item name ", quoted(row.name), " is not valid UTF-8");
  }
  row.category = {};
  if (layout.category >= 0) {
    row.category = trim_spaces(fields[static_cast<std::size_t>(layout.category)]);
    if (!valid_utf8(row.category))
      return fail(Bad::kBadUtf8, "category ", quoted(row.category), " is not valid UTF-8");
  }
  return Bad::kNone;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

}  // namespace segrec::parse
