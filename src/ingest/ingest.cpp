#include "segrec/ingest/ingest.hpp"
#include "segrec/core/random.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <optional>

#include "item_attributes.hpp"
#include "segrec/core/buffer.hpp"
#include "segrec/core/fault.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/ingest/pseudonym.hpp"
#include "segrec/io/parse.hpp"
#include "segrec/io/textio.hpp"
#include "string_ids.hpp"

namespace segrec {

namespace {

using ingest_ids::Interner;
using ingest_ids::owner_of;
using ingest_ids::pack;
using ingest_ids::sort_ids;
using ingest_ids::unpack;

// ---- rows ---------------------------------------------------------------------------------

constexpr std::uint32_t kNoAttr = 0xffffffffu;  // Event::attr of a row without name/category

/// One event (32 bytes), also the wire format of the user shuffle.
struct Event {
  std::uint32_t user;  // local or owner-local user id
  std::int32_t item;   // local item id, then global item index
  double time;         // unix seconds
  float value;
  float price;         // unit price, NaN = unknown
  std::uint32_t attr;  // (name, category) pair: local id, then global index; kNoAttr = none
  std::uint16_t type;  // local, then global event-type id
  std::uint8_t has_value;
  std::uint8_t pad;
};
static_assert(sizeof(Event) == 32);

bool same_price(float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); }

// Exact duplicates: identical in every kept field (price, name and category included).
bool same_event(const Event& a, const Event& b) {
  return a.user == b.user && a.item == b.item && a.time == b.time && a.type == b.type &&
         a.has_value == b.has_value && (!a.has_value || a.value == b.value) &&
         same_price(a.price, b.price) && a.attr == b.attr;
}

bool event_less(const Event& a, const Event& b) {
  if (a.time != b.time) return a.time < b.time;
  if (a.item != b.item) return a.item < b.item;
  if (a.type != b.type) return a.type < b.type;
  if (a.has_value != b.has_value) return a.has_value < b.has_value;
  if (a.value != b.value) return a.value < b.value;
  const bool na = std::isnan(a.price), nb = std::isnan(b.price);  // unknown prices last
  if (na != nb) return nb;
  if (!na && a.price != b.price) return a.price < b.price;
  return a.attr < b.attr;
}

// Reasons a row is dropped: the parser's, then ingest's own.
constexpr int kBadParse = static_cast<int>(parse::Bad::kCount);
constexpr int kBadMissingTime = kBadParse;
constexpr int kBadIdTooLong = kBadParse + 1;
constexpr int kBadNameTooLong = kBadParse + 2;
constexpr int kBadReasons = kBadParse + 3;
constexpr std::size_t kMaxIdBytes = 256;    // user, item and category ids
constexpr std::size_t kMaxNameBytes = 512;  // item names

std::string reason_name(int r) {
  if (r == kBadMissingTime) return "missing time";
  if (r == kBadIdTooLong) return "id too long";
  if (r == kBadNameTooLong) return "name too long";
  return parse::to_string(static_cast<parse::Bad>(r));
}

struct Example {
  int file;
  std::int64_t line;  // local until the per-file line base is known
  std::string text;
};

/// How one input file is read.
struct FileSpec {
  std::string path;
  parse::Layout layout;
  std::string default_event;  // for rows without an event
};

/// File size in bytes for progress estimates (0 when unknown).
double size_or_zero(const std::string& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? 0.0 : static_cast<double>(n);
}

FileSpec describe_file(const std::string& path, const IngestParams& p, const IngestModes& m) {
  EventFileLayout l = describe_event_file(path, p, m);
  return {path, std::move(l.layout), std::move(l.default_event)};
}

// ---- the stage ----------------------------------------------------------------------------

class Ingest {
 public:
  Ingest(const IngestParams& p, const IngestModes& m, const Comm& comm)
      : p_(p), m_(m), comm_(comm) {
    if (!p.pseudonymize.empty()) pseudo_.emplace(p.pseudonymize);
  }
  Dataset run();

 private:
  void read_file(int index, const FileSpec& fs);
  std::uint16_t local_type(std::string_view name);
  void check_bad_rows();
  void merge_event_types();
  void build_item_dictionary();
  void build_attr_dictionary();
  void decide_item_attributes();
  void shuffle_users();
  void clean();
  void filter();
  Dataset assemble();

  const IngestParams& p_;
  const IngestModes m_;
  const Comm& comm_;
  std::optional<Pseudonymizer> pseudo_;  // set by --pseudonymize
  std::vector<FileSpec> files_;
  Interner users_, items_;
  Interner attrs_;  // local (name, category) pairs as "name\0category"
  bool with_price_ = false, with_name_ = false, with_category_ = false;  // some file has it
  std::vector<std::string> types_;  // local event-type names (lower case)
  BigVector<Event> rows_;
  std::vector<std::int64_t> bad_ = std::vector<std::int64_t>(kBadReasons, 0);
  std::int64_t rows_read_ = 0, below_min_ = 0;
  std::vector<Example> examples_;
  std::vector<std::int64_t> line_base_;  // per file: lines before this rank's range
  progress::Task* task_ = nullptr;       // reading progress (rank 0's share scaled by P)
  double bytes_before_ = 0;              // sizes of the files read before this one

  // After the shuffle: owner-side state.
  std::vector<std::string> item_ids_, type_names_;
  std::vector<std::int64_t> item_users_;  // distinct users per item (global)
  std::vector<double> type_weights_, type_fill_;
  std::vector<std::int64_t> type_rows_;              // rows read per global type (global)
  std::vector<std::string> attr_names_, attr_cats_;  // sorted distinct non-empty ones
  std::vector<std::int32_t> attr_name_, attr_cat_;   // per global pair: index or -1
  std::vector<double> item_price_;                   // per kept item (with_price_)
  std::vector<std::int32_t> item_name_, item_cat_;   // per kept item: index or -1
  std::vector<std::string> my_users_;                // this rank's users in global order
  std::vector<std::int64_t> user_ptr_;               // events of user u: rows_[user_ptr_[u] ..)
  IngestReport report_;
};

std::uint16_t Ingest::local_type(std::string_view name) {
  for (std::size_t i = 0; i < types_.size(); ++i) {
    const std::string& t = types_[i];
    if (t.size() == name.size() && std::equal(t.begin(), t.end(), name.begin(), [](char a, char b) {
          return a == (b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : b);
        }))
      return static_cast<std::uint16_t>(i);
  }
  if (types_.size() >= 250)
    throw DataError("more than 250 distinct event types (last: '" + std::string(name) + "')");
  types_.push_back(parse::lower(name));
  return static_cast<std::uint16_t>(types_.size() - 1);
}

void Ingest::read_file(int index, const FileSpec& fs) {
  // Records, not lines: a quoted field may hold a newline (such a record is then rejected
  // whole, as bad quoting), and the ranks' ranges start at record starts.
  const Quoting quoting{fs.layout.delimiter};
  const auto max_line = static_cast<std::size_t>(p_.max_line_bytes);
  const ByteRange range =
      line_aligned_range(fs.path, comm_.size(), comm_.rank(), quoting, max_line);
  LineReader reader(fs.path, range, max_line, std::size_t{16} << 20, quoting);
  std::vector<std::string_view> fields;
  std::string scratch, why;
  parse::Row row;
  std::string_view line;
  bool too_long = false;
  std::int64_t n_lines = 0, line_no = 0;  // lines read; first line of the current record
  int default_type = -1;  // interned on first use, so an unused default adds no type
  std::uint32_t last_user = Interner::kEmpty;
  // About 40 bytes a row in typical logs: reserve once instead of regrowing.
  rows_.reserve(rows_.size() + static_cast<std::size_t>((range.end - range.begin) / 48));
  auto bad = [&](int reason, const std::string& detail) {
    ++bad_[reason];
    // With pseudonyms the detail (which may quote a raw id) stays out of the report.
    const bool show = !detail.empty() && !pseudo_;
    if (static_cast<int>(examples_.size()) < p_.examples)
      examples_.push_back({index, line_no, reason_name(reason) + (show ? ": " + detail : "")});
  };
  const double scale = size_or_zero(fs.path) /
                       static_cast<double>(std::max<std::int64_t>(1, range.end - range.begin));
  std::string last_raw;  // raw id of last_user when pseudonymizing
  std::string attr_key;  // "name\0category" of the current row
  while (reader.next(line, too_long)) {
    line_no = n_lines + 1;
    n_lines += reader.lines();
    if ((line_no & 0xFFFF) == 0 && task_)
      task_->update(bytes_before_ + static_cast<double>(reader.consumed()) * scale,
                    {{"rows/s", static_cast<double>(rows_read_) * scale / task_->elapsed()}});
    const bool first_line = range.begin == 0 && line_no == 1;
    if (first_line && fs.layout.header) continue;
    if (too_long) {
      ++rows_read_;
      bad(static_cast<int>(parse::Bad::kTooLong),
          "line exceeds --max-line-bytes " + std::to_string(p_.max_line_bytes));
      continue;
    }
    const std::string_view text = parse::strip_line(line, first_line);
    if (text.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank line
    ++rows_read_;
    const parse::Bad b = parse::parse_row(text, fs.layout, max_line, fields, scratch, row, &why);
    if (b != parse::Bad::kNone) {
      bad(static_cast<int>(b), why);
      continue;
    }
    if (fs.layout.time >= 0 && !row.has_time) {
      bad(kBadMissingTime, "");
      continue;
    }
    if (row.user.size() > kMaxIdBytes || row.item.size() > kMaxIdBytes ||
        row.category.size() > kMaxIdBytes) {
      bad(kBadIdTooLong,
          "ids and categories are limited to " + std::to_string(kMaxIdBytes) + " bytes");
      continue;
    }
    if (row.name.size() > kMaxNameBytes) {
      bad(kBadNameTooLong, "item names are limited to " + std::to_string(kMaxNameBytes) + " bytes");
      continue;
    }
    if (p_.min_value > -std::numeric_limits<double>::infinity() &&
        (!row.has_value || row.value < p_.min_value)) {
      ++below_min_;
      continue;
    }
    Event e;
    // Logs usually hold a user's events together: skip the hash for a repeat.
    if (pseudo_) {
      if (last_user == Interner::kEmpty || last_raw != row.user) {
        last_user = users_.intern((*pseudo_)(row.user));
        last_raw.assign(row.user);
      }
      e.user = last_user;
    } else if (last_user != Interner::kEmpty && users_.str(last_user) == row.user) {
      e.user = last_user;
    } else {
      e.user = last_user = users_.intern(row.user);
    }
    e.item = static_cast<std::int32_t>(items_.intern(row.item));
    e.time = row.has_time ? row.time : 0.0;
    e.value = row.has_value ? static_cast<float>(row.value) : 0.0f;
    e.has_value = row.has_value ? 1 : 0;
    e.pad = 0;
    e.price =
        row.has_price ? static_cast<float>(row.price) : std::numeric_limits<float>::quiet_NaN();
    e.attr = kNoAttr;
    if (!row.name.empty() || !row.category.empty()) {
      attr_key.assign(row.name);
      attr_key += '\0';
      attr_key += row.category;
      e.attr = attrs_.intern(attr_key);
    }
    if (row.event.empty()) {
      if (default_type < 0) default_type = local_type(fs.default_event);
      e.type = static_cast<std::uint16_t>(default_type);
    } else {
      e.type = local_type(row.event);
    }
    rows_.push_back(e);
  }
  line_base_[index] = comm_.exscan_sum(n_lines);
  bytes_before_ += static_cast<double>(range.end - range.begin) * scale;
}

void Ingest::check_bad_rows() {
  std::vector<std::int64_t> counts = bad_;
  counts.push_back(rows_read_);
  counts.push_back(below_min_);
  comm_.allreduce(counts);
  report_.rows_read = counts[kBadReasons];
  report_.below_min_value = counts[kBadReasons + 1];
  for (int r = 0; r < kBadReasons; ++r)
    if (counts[r]) report_.bad[reason_name(r)] = counts[r];

  // The first examples in file/line order, from all ranks.
  std::string mine;
  for (const auto& e : examples_) {
    const std::int64_t line = line_base_[e.file] + e.line;
    mine += std::to_string(e.file) + "\t" + std::to_string(line) + "\t" + files_[e.file].path +
            ":" + std::to_string(line) + ": " + e.text + "\n";
  }
  std::vector<std::tuple<int, std::int64_t, std::string>> all;
  for (const auto& chunk : comm_.allgather_strings(mine)) {
    std::size_t pos = 0;
    while (pos < chunk.size()) {
      const auto nl = chunk.find('\n', pos);
      const std::string l = chunk.substr(pos, nl - pos);
      pos = nl + 1;
      const auto t1 = l.find('\t'), t2 = l.find('\t', t1 + 1);
      all.emplace_back(std::stoi(l.substr(0, t1)), std::stoll(l.substr(t1 + 1, t2 - t1 - 1)),
                       l.substr(t2 + 1));
    }
  }
  std::sort(all.begin(), all.end());
  for (const auto& [f, l, text] : all)
    if (static_cast<int>(report_.examples.size()) < p_.examples) report_.examples.push_back(text);

  std::string files;
  for (const auto& f : files_) files += (files.empty() ? "'" : ", '") + f.path + "'";
  if (report_.rows_read == 0) throw DataError("no data rows in " + files, true);
  const std::int64_t n_bad = report_.bad_total();
  if (static_cast<double>(n_bad) > p_.max_bad_fraction * static_cast<double>(report_.rows_read)) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.2f%%",
                  100.0 * static_cast<double>(n_bad) / static_cast<double>(report_.rows_read));
    throw DataError("too many malformed rows: " + std::to_string(n_bad) + " of " +
                        std::to_string(report_.rows_read) + " (" + pct +
                        ") exceed --max-bad-fraction " + std::to_string(p_.max_bad_fraction) +
                        (report_.examples.empty() ? "" : "; first: " + report_.examples.front()),
                    true);
  }
}

void Ingest::merge_event_types() {
  std::string mine;
  for (const auto& t : types_) mine += t + "\n";
  std::vector<std::string> all;
  for (const auto& chunk : comm_.allgather_strings(mine))
    for (const auto& t : split_list(chunk, '\n')) all.push_back(t);
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  type_names_ = all;

  std::vector<std::uint16_t> remap(types_.size());
  for (std::size_t i = 0; i < types_.size(); ++i)
    remap[i] = static_cast<std::uint16_t>(std::lower_bound(all.begin(), all.end(), types_[i]) -
                                          all.begin());
  type_rows_.assign(all.size(), 0);
  for (auto& e : rows_) {
    e.type = remap[e.type];
    ++type_rows_[e.type];
  }
  comm_.allreduce(type_rows_);

  // Weights: --event-weight overrides, then the defaults, then --default-event-weight.
  type_weights_.assign(all.size(), p_.default_event_weight);
  std::vector<bool> known(all.size(), false);
  for (std::size_t t = 0; t < all.size(); ++t) {
    const double w = default_event_weight(all[t]);
    if (!std::isnan(w)) {
      type_weights_[t] = w;
      known[t] = true;
    }
  }
  for (const auto& s : p_.event_weights) {
    const auto [name, w] = parse_assignment(s, "event-weight");
    const auto it = std::lower_bound(all.begin(), all.end(), parse::lower(name));
    if (it != all.end() && *it == parse::lower(name)) {
      type_weights_[it - all.begin()] = w;
      known[it - all.begin()] = true;
    }
  }
  for (std::size_t t = 0; t < all.size(); ++t)
    if (!known[t] && type_rows_[t] > 0) report_.unknown_types[all[t]] = type_rows_[t];
}

/// Collective. The distinct strings of every rank's `local`, sorted by `sort` identically on
/// every rank, and the global index of each local id (`remap`). Each distinct string goes to
/// one owner, which removes duplicates; the owners' lists are then shared.
std::vector<std::string> global_dictionary(const Interner& local, const Comm& comm,
                                           void (*sort)(std::vector<std::string>&),
                                           std::vector<std::uint32_t>& remap) {
  const int P = comm.size();
  std::vector<std::vector<char>> send(P);
  for (std::uint32_t i = 0; i < local.size(); ++i)
    pack(send[owner_of(local.hash(i), P)], local.str(i));
  const auto recv = comm.alltoallv(send);
  send.clear();
  Interner owned;
  for (const auto& buf : recv)
    unpack(buf.data(), buf.size(), [&](std::string_view s) { owned.intern(s); });
  std::vector<char> mine;
  for (std::uint32_t i = 0; i < owned.size(); ++i) pack(mine, owned.str(i));
  owned.clear();
  const std::vector<char> all = comm.allgatherv(mine);
  std::vector<std::string> ids;
  unpack(all.data(), all.size(), [&](std::string_view s) { ids.emplace_back(s); });
  sort(ids);
  Interner index;  // global id -> index (interned in sorted order)
  for (const auto& s : ids) index.intern(s);
  remap.resize(local.size());
  for (std::uint32_t i = 0; i < local.size(); ++i) remap[i] = index.find(local.str(i));
  return ids;
}

void sort_bytes(std::vector<std::string>& v) { std::sort(v.begin(), v.end()); }

void Ingest::build_item_dictionary() {
  std::vector<std::uint32_t> remap;
  item_ids_ = global_dictionary(items_, comm_, sort_ids, remap);
  for (auto& e : rows_) e.item = static_cast<std::int32_t>(remap[static_cast<std::size_t>(e.item)]);
  items_.clear();
}

void Ingest::build_attr_dictionary() {
  if (!with_name_ && !with_category_) return;
  std::vector<std::uint32_t> remap;
  // Sorted by bytes, the pairs "name\0category" are sorted by name, then category.
  const std::vector<std::string> pairs = global_dictionary(attrs_, comm_, sort_bytes, remap);
  for (auto& e : rows_)
    if (e.attr != kNoAttr) e.attr = remap[e.attr];
  attrs_.clear();
  attr_name_.assign(pairs.size(), -1);
  attr_cat_.assign(pairs.size(), -1);
  for (const auto& pr : pairs) {
    const auto z = pr.find('\0');
    if (z > 0 && (attr_names_.empty() || attr_names_.back() != pr.substr(0, z)))
      attr_names_.push_back(pr.substr(0, z));
    if (z + 1 < pr.size()) attr_cats_.push_back(pr.substr(z + 1));
  }
  sort_bytes(attr_cats_);
  attr_cats_.erase(std::unique(attr_cats_.begin(), attr_cats_.end()), attr_cats_.end());
  auto index_in = [](const std::vector<std::string>& v, std::string_view s) {
    return static_cast<std::int32_t>(std::lower_bound(v.begin(), v.end(), s) - v.begin());
  };
  for (std::size_t k = 0; k < pairs.size(); ++k) {
    const std::string_view pr = pairs[k];
    const auto z = pr.find('\0');
    if (z > 0) attr_name_[k] = index_in(attr_names_, pr.substr(0, z));
    if (z + 1 < pr.size()) attr_cat_[k] = index_in(attr_cats_, pr.substr(z + 1));
  }
}

void Ingest::decide_item_attributes() {
  using ingest_items::ItemKey;
  const auto n_items = static_cast<std::int64_t>(item_ids_.size());
  if (with_price_) {
    std::vector<ItemKey> keys;
    for (const auto& e : rows_)
      if (!std::isnan(e.price)) {
        std::uint32_t bits;  // prices are >= +0: their bits order like the prices
        std::memcpy(&bits, &e.price, sizeof bits);
        keys.push_back({e.item, bits});
      }
    item_price_ = ingest_items::median_price(std::move(keys), n_items, comm_);
  }
  auto mode = [&](const std::vector<std::int32_t>& of_pair) {
    std::vector<ItemKey> keys;
    for (const auto& e : rows_)
      if (e.attr != kNoAttr && of_pair[e.attr] >= 0)
        keys.push_back({e.item, static_cast<std::uint32_t>(of_pair[e.attr])});
    return ingest_items::most_frequent(std::move(keys), n_items, comm_);
  };
  if (with_name_) item_name_ = mode(attr_name_);
  if (with_category_) item_cat_ = mode(attr_cat_);
}

void Ingest::shuffle_users() {
  const int P = comm_.size();
  // Destination and destination-local index of every local user.
  std::vector<std::vector<char>> names(P);
  std::vector<std::uint32_t> dest_index(users_.size());
  std::vector<int> dest(users_.size());
  std::vector<std::uint32_t> n_users(P, 0);
  for (std::uint32_t u = 0; u < users_.size(); ++u) {
    dest[u] = owner_of(users_.hash(u), P);
    dest_index[u] = n_users[dest[u]]++;
    pack(names[dest[u]], users_.str(u));
  }
  const auto recv_names = comm_.alltoallv(names);
  names.clear();
  users_.clear();

  // Rows grouped by destination (counting sort), user ids made destination-local.
  std::vector<std::int64_t> counts(P, 0), recv_counts;
  for (const auto& e : rows_) ++counts[dest[e.user]];
  std::vector<std::int64_t> at(P, 0);
  for (int r = 1; r < P; ++r) at[r] = at[r - 1] + counts[r - 1];
  BigVector<Event> send(rows_.size());
  for (const auto& e : rows_) {
    Event x = e;
    x.user = dest_index[e.user];
    send[static_cast<std::size_t>(at[dest[e.user]]++)] = x;
  }
  BigVector<Event>().swap(rows_);
  rows_ = comm_.alltoallv_flat(send, counts, recv_counts);
  BigVector<Event>().swap(send);

  // Owner-side user dictionary: (source, source-local index) -> owner id.
  Interner mine;
  std::vector<std::vector<std::uint32_t>> from(P);
  for (int r = 0; r < P; ++r)
    unpack(recv_names[r].data(), recv_names[r].size(),
           [&](std::string_view s) { from[r].push_back(mine.intern(s)); });
  // Global order within this rank: by (hash, id).
  std::vector<std::uint32_t> order(mine.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return mine.hash(a) != mine.hash(b) ? mine.hash(a) < mine.hash(b) : mine.str(a) < mine.str(b);
  });
  std::vector<std::uint32_t> rank_of(mine.size());
  my_users_.resize(mine.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) {
    rank_of[order[i]] = i;
    my_users_[i] = std::string(mine.str(order[i]));
  }
  std::size_t pos = 0;
  for (int r = 0; r < P; ++r)
    for (std::int64_t i = 0; i < recv_counts[r]; ++i, ++pos)
      rows_[pos].user = rank_of[from[r][rows_[pos].user]];
}

void Ingest::clean() {
  // Group events by user (counting sort), then order each user's events and
  // drop exact duplicates.
  const std::size_t n_users = my_users_.size();
  std::vector<std::int64_t> ptr(n_users + 1, 0);
  for (const auto& e : rows_) ++ptr[e.user + 1];
  for (std::size_t u = 0; u < n_users; ++u) ptr[u + 1] += ptr[u];
  {
    BigVector<Event> grouped(rows_.size());
    std::vector<std::int64_t> at(ptr.begin(), ptr.end() - 1);
    for (const auto& e : rows_) grouped[static_cast<std::size_t>(at[e.user]++)] = e;
    rows_.swap(grouped);
  }
  std::int64_t dups = 0;
  std::size_t out = 0;
  user_ptr_.assign(n_users + 1, 0);
  for (std::size_t u = 0; u < n_users; ++u) {
    auto b = rows_.begin() + ptr[u], e = rows_.begin() + ptr[u + 1];
    std::sort(b, e, event_less);
    for (auto it = b; it != e; ++it) {
      if (it != b && same_event(*it, *(it - 1))) {
        ++dups;
        continue;
      }
      rows_[out++] = *it;
    }
    user_ptr_[u + 1] = static_cast<std::int64_t>(out);
  }
  rows_.resize(out);
  report_.duplicates = comm_.allreduce_value(dups);

  // Missing values: the --fill-value given, else the type's global mean value, else 0.
  const std::size_t T = type_names_.size();
  std::vector<double> sums(2 * T, 0.0);
  for (const auto& e : rows_)
    if (e.has_value) {
      sums[e.type] += e.value;
      sums[T + e.type] += 1;
    }
  comm_.allreduce(sums);
  type_fill_.assign(T, 0.0);
  for (std::size_t t = 0; t < T; ++t)
    if (sums[T + t] > 0) type_fill_[t] = sums[t] / sums[T + t];
  for (const auto& s : p_.fill_values) {
    const auto [name, v] = parse_assignment(s, "fill-value");
    const auto it = std::lower_bound(type_names_.begin(), type_names_.end(), parse::lower(name));
    if (it != type_names_.end() && *it == parse::lower(name))
      type_fill_[it - type_names_.begin()] = v;
  }
  std::int64_t filled = 0;
  for (auto& e : rows_)
    if (!e.has_value) {
      e.value = static_cast<float>(type_fill_[e.type]);
      ++filled;
    }
  report_.filled_values = comm_.allreduce_value(filled);
}

void Ingest::filter() {
  // Alternate the two filters until neither removes anything (a k-core).
  const std::size_t n_items = item_ids_.size();
  std::vector<char> item_ok(n_items, 1), user_ok(my_users_.size(), 1);
  std::vector<std::int64_t> item_users(n_items);
  for (int round = 0; round < 100; ++round) {
    std::fill(item_users.begin(), item_users.end(), 0);
    std::int64_t users_dropped = 0;
    std::vector<std::int32_t> seen;
    for (std::size_t u = 0; u < my_users_.size(); ++u) {
      if (!user_ok[u]) continue;
      std::int64_t n = 0;
      seen.clear();
      for (auto i = user_ptr_[u]; i < user_ptr_[u + 1]; ++i)
        if (item_ok[static_cast<std::size_t>(rows_[i].item)]) {
          ++n;
          seen.push_back(rows_[i].item);
        }
      if (n < p_.min_user_events) {
        user_ok[u] = 0;
        ++users_dropped;
        continue;
      }
      std::sort(seen.begin(), seen.end());
      seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
      for (auto it : seen) ++item_users[static_cast<std::size_t>(it)];
    }
    comm_.allreduce(item_users);
    std::int64_t items_dropped = 0;
    for (std::size_t i = 0; i < n_items; ++i)
      if (item_ok[i] && item_users[i] < p_.min_item_users) {
        item_ok[i] = 0;
        ++items_dropped;
      }
    if (comm_.allreduce_value(users_dropped) == 0 && items_dropped == 0) break;
  }

  // Compact: drop removed users, removed items and items left without users.
  std::vector<std::int32_t> new_item(n_items, -1);
  std::vector<std::string> kept_items;
  std::vector<std::int64_t> kept_users_per_item;
  std::int64_t removed_items = 0;
  for (std::size_t i = 0; i < n_items; ++i) {
    if (item_ok[i] && item_users[i] > 0) {
      new_item[i] = static_cast<std::int32_t>(kept_items.size());
      kept_items.push_back(std::move(item_ids_[i]));
      kept_users_per_item.push_back(item_users[i]);
    } else if (!item_ok[i]) {
      ++removed_items;
    }
  }
  std::size_t out = 0, nu = 0;
  std::int64_t removed_rows = 0, removed_users = 0;
  std::vector<std::int64_t> ptr(1, 0);
  for (std::size_t u = 0; u < my_users_.size(); ++u) {
    if (!user_ok[u]) {
      removed_rows += user_ptr_[u + 1] - user_ptr_[u];
      ++removed_users;
      continue;
    }
    for (auto i = user_ptr_[u]; i < user_ptr_[u + 1]; ++i) {
      Event e = rows_[i];
      if (new_item[static_cast<std::size_t>(e.item)] < 0) {
        ++removed_rows;
        continue;
      }
      e.item = new_item[static_cast<std::size_t>(e.item)];
      e.user = static_cast<std::uint32_t>(nu);
      rows_[out++] = e;
    }
    if (nu != u) my_users_[nu] = std::move(my_users_[u]);
    ++nu;
    ptr.push_back(static_cast<std::int64_t>(out));
  }
  rows_.resize(out);
  my_users_.resize(nu);
  user_ptr_ = std::move(ptr);
  item_ids_ = std::move(kept_items);
  item_users_ = std::move(kept_users_per_item);
  std::vector<std::int64_t> r = {removed_users, removed_rows};
  comm_.allreduce(r);
  report_.filtered_users = r[0];
  report_.filtered_rows = r[1];
  report_.filtered_items = removed_items;
}

Dataset Ingest::assemble() {
  Dataset ds;
  const std::size_t T = type_names_.size();
  ds.n_users = comm_.allreduce_value(static_cast<std::int64_t>(my_users_.size()));
  ds.user_begin = comm_.exscan_sum(static_cast<std::int64_t>(my_users_.size()));
  ds.user_ids = std::move(my_users_);
  ds.item_ids = std::move(item_ids_);
  ds.item_users = std::move(item_users_);
  ds.event_types = type_names_;
  ds.event_weights = type_weights_;
  ds.event_fill = type_fill_;
  if (with_price_) ds.item_price = std::move(item_price_);
  if (with_name_) {
    ds.item_names.resize(item_name_.size());
    for (std::size_t i = 0; i < item_name_.size(); ++i)
      if (item_name_[i] >= 0)
        ds.item_names[i] = attr_names_[static_cast<std::size_t>(item_name_[i])];
  }
  if (with_category_) {
    // Only the categories some item got, in their sorted order.
    std::vector<std::int32_t> used(attr_cats_.size(), -1);
    for (auto c : item_cat_)
      if (c >= 0) used[static_cast<std::size_t>(c)] = 0;
    for (std::size_t c = 0; c < used.size(); ++c)
      if (used[c] == 0) {
        used[c] = static_cast<std::int32_t>(ds.categories.size());
        ds.categories.push_back(attr_cats_[c]);
      }
    ds.item_category.resize(item_cat_.size());
    for (std::size_t i = 0; i < item_cat_.size(); ++i)
      ds.item_category[i] = item_cat_[i] < 0 ? -1 : used[static_cast<std::size_t>(item_cat_[i])];
  }

  const std::size_t n = ds.user_ids.size();
  ds.log_ptr = user_ptr_;
  ds.log_item.reserve(rows_.size());
  ds.log_type.reserve(rows_.size());
  ds.log_time.reserve(rows_.size());
  ds.log_value.reserve(rows_.size());
  if (with_price_) ds.log_price.reserve(rows_.size());
  ds.first_time.resize(n);
  ds.last_time.resize(n);
  ds.indptr.assign(1, 0);
  std::vector<std::pair<std::int32_t, std::uint16_t>> items;
  for (std::size_t u = 0; u < n; ++u) {
    const auto b = user_ptr_[u], e = user_ptr_[u + 1];
    ds.first_time[u] = rows_[b].time;
    ds.last_time[u] = rows_[e - 1].time;
    items.clear();
    for (auto i = b; i < e; ++i) {
      const Event& ev = rows_[i];
      ds.log_item.push_back(ev.item);
      ds.log_type.push_back(static_cast<std::uint8_t>(ev.type));
      ds.log_time.push_back(ev.time);
      ds.log_value.push_back(ev.value);
      if (with_price_) ds.log_price.push_back(ev.price);
      items.emplace_back(ev.item, ev.type);
    }
    std::sort(items.begin(), items.end());
    for (std::size_t i = 0; i < items.size();) {
      const std::int32_t item = items[i].first;
      const std::size_t at = ds.counts.size();
      ds.counts.resize(at + T, 0);
      double w = 0;
      for (; i < items.size() && items[i].first == item; ++i) {
        ++ds.counts[at + items[i].second];
        w += type_weights_[items[i].second];
      }
      ds.indices.push_back(item);
      ds.weights.push_back(static_cast<float>(w));
    }
    ds.indptr.push_back(static_cast<std::int64_t>(ds.indices.size()));
  }
  BigVector<Event>().swap(rows_);
  report_.rows_kept = comm_.allreduce_value(static_cast<std::int64_t>(ds.log_item.size()));
  ds.report = report_;
  return ds;
}

Dataset Ingest::run() {
  auto t = std::chrono::steady_clock::now();
  auto lap = [&](const char* what) {
    const auto now = std::chrono::steady_clock::now();
    progress::note("ingest",
                   std::string(what) + " " +
                       progress::format_duration(std::chrono::duration<double>(now - t).count()));
    if (std::getenv("SEGREC_TIMING"))
      std::fprintf(stderr, "[rank %d] ingest %-12s %.3f s\n", comm_.rank(), what,
                   std::chrono::duration<double>(now - t).count());
    t = now;
  };
  for (const auto& f : p_.events) files_.push_back(describe_file(f, p_, m_));
  for (const auto& f : files_) {
    with_price_ |= f.layout.price >= 0;
    with_name_ |= f.layout.name >= 0;
    with_category_ |= f.layout.category >= 0;
  }
  line_base_.assign(files_.size(), 0);
  double total = 0;
  for (const auto& f : files_) total += size_or_zero(f.path);
  {
    progress::Task task("ingest", "reading events", total, "B");
    task_ = &task;
    for (std::size_t i = 0; i < files_.size(); ++i) read_file(static_cast<int>(i), files_[i]);
    task.update(total);
    task_ = nullptr;
  }
  lap("read");
  fault_point("ingest.read", comm_);
  check_bad_rows();
  merge_event_types();
  lap("report");
  build_item_dictionary();
  build_attr_dictionary();
  lap("items");
  shuffle_users();
  lap("shuffle");
  clean();
  lap("clean");
  filter();
  lap("filter");
  decide_item_attributes();
  lap("attributes");
  Dataset ds = assemble();
  lap("assemble");
  return ds;
}

}  // namespace

Dataset ingest(const IngestParams& p, const Comm& comm) {
  const IngestModes m = p.validate();
  Ingest in(p, m, comm);
  return in.run();
}

}  // namespace segrec
