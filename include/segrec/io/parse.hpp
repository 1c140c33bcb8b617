// Text layer of `segrec ingest`: line splitting, header/column layouts and
// field parsing for delimited event logs. Pure functions, no I/O; the per-row
// path (split, parse_row) does not allocate once its buffers have grown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace segrec::parse {

/// Meaning of one column of an event log.
/// Price, name and category are optional item attributes (unit price, display name,
/// category) carried by retail logs.
enum class Field : uint8_t {
  kUser,
  kItem,
  kEvent,
  kTime,
  kValue,
  kPrice,
  kName,
  kCategory,
  kIgnore
};

/// How a file's rows map to fields.
struct Layout {
  std::string delimiter;                                        ///< ",", "\t", ";", "|" or "::"
  std::vector<Field> columns;                                   ///< one entry per column
  int user = -1, item = -1, event = -1, time = -1, value = -1;  ///< column index, -1 = absent
  int price = -1, name = -1, category = -1;                     ///< column index, -1 = absent
  bool header = true;  ///< first line of the file is a header
};

/// Column names given on the command line (--col-user etc.); empty = built-in aliases.
struct ColumnNames {
  std::string user, item, event, time, value;
  std::string price, name, category;  ///< --col-price, --col-item-name, --col-category
};

/// Strips a trailing '\n' and '\r' and, when `first_line_of_file`, a UTF-8 BOM.
std::string_view strip_line(std::string_view line, bool first_line_of_file);

/// Picks the delimiter of a header (or first) line among "::", "\t", ",", ";", "|":
/// "::" wins if it occurs outside double quotes, otherwise the candidate with the most
/// occurrences outside double quotes (ties: earlier in that list); "," if none occurs.
std::string detect_delimiter(std::string_view line);

/// Splits one stripped line into `fields` (cleared first). RFC-4180 double quotes: a
/// quoted field may hold the delimiter and doubled quotes ("" -> "); ASCII spaces around
/// a quoted field are dropped. A quote inside an unquoted field is kept literally.
/// Quoted fields with doubled quotes are unescaped into `scratch`, which is cleared and
/// grown to line.size() at most once per call, so `fields` stay valid until `scratch` is
/// modified. Returns false on an unterminated quote or text after a closing quote.
bool split(std::string_view line, std::string_view delim, std::vector<std::string_view>& fields,
           std::string& scratch);

/// Layout from header fields. Names are matched case-insensitively after trimming
/// spaces against these aliases, the earlier alias winning when several columns match:
///   user: user_id, user, userid          item: item_id, item, itemid, movieid
///   event: event, event_type, behavior, type   time: timestamp, ts, time
///   value: value, rating, dwell, quantity, qty
///   price: price, unit_price, unitprice
///   name: item_name, description, product_name, title, name
///   category: category, category_id, category_code, cat
/// A non-empty name in `names` replaces the aliases of that field. Columns not chosen
/// become kIgnore. Throws DataError naming the header and delimiter when no user or
/// item column is found, and naming both columns when two carry the same chosen name.
Layout layout_from_header(const std::vector<std::string_view>& header, std::string_view delim,
                          const ColumnNames& names);

/// Layout for header-less files from a comma-separated `--columns` spec such as
/// "user_id,item_id,category,event,timestamp". Same matching as layout_from_header;
/// unknown names become kIgnore. Throws UsageError when user or item is missing or
/// a field is named twice.
Layout layout_from_spec(std::string_view spec, std::string_view delim, const ColumnNames& names);

/// Parses a timestamp into unix seconds (UTC): "1700000000", "1700000000.25", ISO-8601
/// "2023-11-14T22:13:20" or with ' ' for 'T', optional ".fraction", optional seconds,
/// optional "Z", "+hh:mm", "-hh:mm", "+hhmm" or "+hh", or a bare date "2023-11-14".
/// Surrounding spaces are ignored. Returns false on anything else, on invalid calendar
/// fields, and on results that are non-finite, negative or after 2200-01-01T00:00:00Z.
bool parse_time(std::string_view s, double& unix_seconds);

/// Latest accepted timestamp: 2200-01-01T00:00:00Z in unix seconds.
inline constexpr double kMaxUnixSeconds = 7258118400.0;

/// Parses a finite decimal number ("12.5", "-3", "1e3", "+.5"); surrounding spaces allowed.
/// False for empty text, NaN, infinities, overflow and trailing junk.
bool parse_number(std::string_view s, double& out);

/// True when `s` is valid UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
bool valid_utf8(std::string_view s);

/// Why a row is dropped. to_string() gives the stable name used in reports.
enum class Bad : uint8_t {
  kNone,
  kFieldCount,
  kEmptyUser,
  kEmptyItem,
  kBadTime,
  kBadValue,
  kNonFinite,
  kBadUtf8,
  kTooLong,
  kBadQuote,
  kValueRange,  ///< finite, but beyond float32 (|v| > 3.4e38): stored values are float32
  kNulByte,     ///< a NUL byte anywhere in the line (ids are C strings in the outputs)
  kBadPrice,    ///< a price that is not a number
  kNegativePrice,
  kNonFinitePrice,
  kPriceRange,  ///< finite, but beyond float32: stored prices are float32
  kCount
};

/// "field count", "empty user", ..., "bad quoting", "value out of range", "NUL byte",
/// "bad price", "negative price", "non-finite price", "price out of range"; "ok" for kNone.
const char* to_string(Bad b);

/// One parsed event; the views point into the line or into `scratch`.
struct Row {
  std::string_view user, item, event;  ///< trimmed; event empty when absent
  double time = 0;                     ///< unix seconds (UTC)
  bool has_time = false;               ///< false for an absent column or empty field
  double value = 0;
  bool has_value = false;           ///< false for an absent column or empty field
  double price = 0;                 ///< unit price >= 0 (+0 for "-0")
  bool has_price = false;           ///< false for an absent column or empty field
  std::string_view name, category;  ///< trimmed; empty when absent
};

/// Parses one stripped line with `layout` into `row`. Checks, in order: length
/// (max_line_bytes, 0 = unlimited), NUL bytes, quoting (a record holding a newline, which
/// only a quoted field can, is bad quoting), field count, user, item, event, time,
/// value, price, name, category. On kNone `why` is untouched; otherwise, when non-null, it is set
/// to a short detail quoting the offending text (at most 40 bytes). `fields` and `scratch` are
/// caller-owned buffers reused across rows.
Bad parse_row(std::string_view line, const Layout& layout, std::size_t max_line_bytes,
              std::vector<std::string_view>& fields, std::string& scratch, Row& row,
              std::string* why);

/// Lower-case ASCII copy (other bytes unchanged).
std::string lower(std::string_view s);

}  // namespace segrec::parse
