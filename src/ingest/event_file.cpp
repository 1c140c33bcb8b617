// What ingest reads and how: its options (IngestParams::validate), the default event weights,
// and the layout of each input file (columns, delimiter, header), decided alike on every rank.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "segrec/core/params.hpp"
#include "segrec/ingest/ingest.hpp"
#include "segrec/io/parse.hpp"
#include "segrec/io/textio.hpp"

namespace segrec {

// ---- parameters ------------------------------------------------------------------------

IngestModes IngestParams::validate() const {
  require(!events.empty(), "events", "", "give at least one input file");
  require(!out.empty(), "out", out, "give the dataset file to write");
  IngestModes m;
  m.format = parse_mode<EventFormat>(
      format, {{"auto", EventFormat::kAuto}, {"movielens", EventFormat::kMovieLens}}, "format",
      "use auto or movielens");
  require(!no_header || !columns.empty(), "no-header", "true",
          "header-less files need --columns (e.g. user_id,item_id,event,timestamp)");
  require(columns.empty() || no_header, "columns", columns, "only with --no-header");
  static const std::vector<std::string> delims = {"", ",", "\t", "tab", ";", "|", "::"};
  require(std::find(delims.begin(), delims.end(), delimiter) != delims.end(), "delimiter",
          delimiter, "use one of , tab ; | ::");
  require(std::isfinite(default_event_weight) && default_event_weight >= 0, "default-event-weight",
          default_event_weight, "must be finite and >= 0");
  for (const auto& w : event_weights) {
    const auto [n, v] = parse_assignment(w, "event-weight");
    require(std::isfinite(v) && v >= 0, "event-weight", w, "weight must be finite and >= 0");
  }
  for (const auto& f : fill_values) {
    const auto [n, v] = parse_assignment(f, "fill-value");
    require(std::isfinite(v), "fill-value", f, "value must be finite");
  }
  require(!std::isnan(min_value), "min-value", min_value, "must be a number");
  require(max_bad_fraction >= 0 && max_bad_fraction <= 1, "max-bad-fraction", max_bad_fraction,
          "must be in [0, 1]");
  require(min_user_events >= 1, "min-user-events", min_user_events, "must be at least 1");
  require(min_item_users >= 1, "min-item-users", min_item_users, "must be at least 1");
  require(max_line_bytes >= 64, "max-line-bytes", max_line_bytes, "must be at least 64");
  require(examples >= 0, "examples", examples, "must be >= 0");
  return m;
}

double default_event_weight(const std::string& name) {
  static const std::pair<const char*, double> table[] = {
      {"view", 1}, {"pv", 1},       {"click", 1},      {"cart", 3}, {"add_to_cart", 3},
      {"fav", 3},  {"favorite", 3}, {"purchase", 5},   {"buy", 5},  {"transaction", 5},
      {"rate", 1}, {"rating", 1},   {"interaction", 1}};
  for (const auto& [n, w] : table)
    if (name == n) return w;
  return std::nan("");
}

// ---- input files -------------------------------------------------------------------------

namespace {
std::string base_name(const std::string& p) { return std::filesystem::path(p).filename().string(); }
}  // namespace

// Every rank computes the same answer, so errors here are collective.
EventFileLayout describe_event_file(const std::string& path, const IngestParams& p,
                                    const IngestModes& m) {
  EventFileLayout fs{{}, p.event_name.empty() ? "interaction" : parse::lower(p.event_name)};
  auto fail = [&](const std::string& msg) { throw DataError(msg, true); };
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) fail("cannot open '" + path + "': no such file");
  if (std::filesystem::is_directory(path, ec)) fail("cannot read '" + path + "': is a directory");
  // Before opening it: opening a FIFO would wait for a writer.
  if (!std::filesystem::is_regular_file(path, ec))
    fail("cannot read '" + path + "': not a regular file (a FIFO, device or socket); segrec " +
         "reads its inputs by offset, so copy it to a file first");
  std::streamsize got = 0;
  {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail("cannot open '" + path + "': permission denied");
    char sig[8] = {};
    in.read(sig, 8);
    got = in.gcount();
    const auto starts = [&](const char* magic, std::size_t n) {
      return static_cast<std::size_t>(got) >= n && std::memcmp(sig, magic, n) == 0;
    };
    if (starts("\x89HDF\r\n\x1a\n", 8))
      fail("'" + path + "' is an HDF5 file, not an event log (did you mean another command?)");
    // Compressed logs: named, with the way out.
    static constexpr struct {
      const char* magic;
      std::size_t n;
      const char* name;
      const char* tool;
    } kCompressed[] = {{"\x1f\x8b", 2, "gzip", "gunzip -k"},
                       {"\x28\xb5\x2f\xfd", 4, "zstd", "zstd -d"},
                       {"BZh", 3, "bzip2", "bunzip2 -k"},
                       {"\xfd"
                        "7zXZ",
                        5, "xz", "unxz -k"},
                       {"PK\x03\x04", 4, "zip", "unzip"}};
    for (const auto& c : kCompressed)
      if (starts(c.magic, c.n))
        fail("'" + path + "' is " + c.name + "-compressed; segrec reads plain text by offset: " +
             "decompress it first (" + c.tool + " '" + path + "')");
  }
  if (std::filesystem::file_size(path, ec) == 0)
    fail(got > 0 ? "cannot read '" + path + "': it has no fixed size (a /proc or /sys file?); " +
                       "copy it to a regular file first"
                 : "'" + path + "' is empty");

  parse::ColumnNames names{p.col_user,  p.col_item,  p.col_event,     p.col_time,
                           p.col_value, p.col_price, p.col_item_name, p.col_category};
  std::string delim = p.delimiter == "tab" ? "\t" : p.delimiter;
  bool header = !p.no_header;
  std::string spec = p.columns;
  if (m.format == EventFormat::kMovieLens) {
    const std::string b = base_name(path);
    if (b == "ratings.csv" || (b.size() > 4 && b.substr(b.size() - 4) == ".csv")) {
      delim = ",";
      header = true;
      spec.clear();
    } else if (b.size() > 4 && b.substr(b.size() - 4) == ".dat") {
      delim = "::";
      header = false;
      spec = "user_id,item_id,rating,timestamp";
    } else if (b == "u.data" || (b.size() > 5 && b.substr(b.size() - 5) == ".data")) {
      delim = "\t";
      header = false;
      spec = "user_id,item_id,rating,timestamp";
    } else {
      throw UsageError("--format movielens reads u.data, ratings.dat or ratings.csv, not '" + b +
                       "'");
    }
    if (p.event_name.empty()) fs.default_event = "rating";
  }
  bool too_long = false;
  const std::string first =
      read_first_line(path, static_cast<std::size_t>(p.max_line_bytes), &too_long);
  if (too_long && header)
    fail(path + ":1: header line longer than --max-line-bytes " + std::to_string(p.max_line_bytes));
  const std::string_view line = parse::strip_line(first, true);
  if (delim.empty()) delim = parse::detect_delimiter(line);
  try {
    if (header) {
      std::vector<std::string_view> fields;
      std::string scratch;
      if (!parse::split(line, delim, fields, scratch)) fail(path + ":1: bad quoting in header");
      fs.layout = parse::layout_from_header(fields, delim, names);
    } else {
      fs.layout = parse::layout_from_spec(spec, delim, names);
    }
  } catch (const DataError& e) {
    fail(path + ":1: " + e.what());
  }
  fs.layout.header = header;
  return fs;
}

}  // namespace segrec
