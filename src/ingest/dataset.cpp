#include "segrec/ingest/dataset.hpp"

#include <cmath>

#include "segrec/core/fault.hpp"

#include <iomanip>
#include <numeric>
#include <sstream>

namespace segrec {

std::int64_t IngestReport::bad_total() const {
  std::int64_t n = 0;
  for (const auto& [k, v] : bad) n += v;
  return n;
}

std::string IngestReport::table() const {
  std::ostringstream os;
  auto line = [&](const std::string& what, std::int64_t n) {
    os << "  " << std::left << std::setw(34) << what << std::right << std::setw(14) << n;
    if (rows_read > 0)
      os << std::setw(9) << std::fixed << std::setprecision(2)
         << 100.0 * static_cast<double>(n) / static_cast<double>(rows_read) << " %";
    os << "\n";
  };
  os << "ingest report\n";
  line("rows read", rows_read);
  for (const auto& [reason, n] : bad) line("dropped: " + reason, n);
  line("dropped: exact duplicates", duplicates);
  if (below_min_value) line("dropped: value below --min-value", below_min_value);
  if (filtered_rows) line("dropped: user/item filters", filtered_rows);
  line("rows kept", rows_kept);
  if (filled_values) line("missing values filled", filled_values);
  if (filtered_users) os << "  users removed by --min-user-events: " << filtered_users << "\n";
  if (filtered_items) os << "  items removed by --min-item-users: " << filtered_items << "\n";
  for (const auto& [type, n] : unknown_types)
    os << "  unknown event type '" << type << "' (" << n << " rows) got the default weight\n";
  for (const auto& e : examples) os << "  e.g. " << e << "\n";
  return os.str();
}

namespace {

template <class T>
void write_local(h5::File& f, const std::string& name, const std::vector<T>& v,
                 std::int64_t cols = 0) {
  f.write_rows<T>(name, std::span<const T>(v), cols);
}

template <class T>
void write_all(h5::File& f, const std::string& name, const std::vector<T>& v) {
  f.write_replicated<T>(name, std::span<const T>(v));
}

// Global CSR pointer: this rank's rows shifted by the entries before it; the
// last rank also writes the final end.
void write_indptr(h5::File& f, const std::string& name, const std::vector<std::int64_t>& local,
                  const Comm& comm) {
  const std::int64_t n_local = static_cast<std::int64_t>(local.size()) - 1;
  const std::int64_t base = comm.exscan_sum(local.back());
  std::vector<std::int64_t> out(local.begin(), local.end() - 1);
  for (auto& x : out) x += base;
  if (comm.rank() == comm.size() - 1) out.push_back(local.back() + base);
  (void)n_local;
  write_local(f, name, out);
}

void write_counted(h5::File& f, const std::string& group,
                   const std::map<std::string, std::int64_t>& m) {
  std::vector<std::string> keys;
  std::vector<std::int64_t> vals;
  for (const auto& [k, v] : m) {
    keys.push_back(k);
    vals.push_back(v);
  }
  f.write_strings(group + "_names", keys, false);
  write_all(f, group + "_counts", vals);
}

std::map<std::string, std::int64_t> read_counted(const h5::File& f, const std::string& group) {
  const auto n = f.shape(group + "_names")[0];
  const auto keys = f.read_strings(group + "_names", 0, n);
  const auto vals = f.read_all<std::int64_t>(group + "_counts");
  std::map<std::string, std::int64_t> m;
  for (std::size_t i = 0; i < keys.size(); ++i) m[keys[i]] = vals.at(i);
  return m;
}

// The optional item attributes; each is present only when ingest's log had the column.
void read_item_attributes(const h5::File& f, const std::string& path, std::int64_t n_items,
                          Dataset& ds) {
  auto check_len = [&](const std::string& name) {
    if (f.shape(name)[0] != n_items)
      throw DataError("'" + path + "': " + name + " has " + std::to_string(f.shape(name)[0]) +
                          " entries for " + std::to_string(n_items) + " items",
                      true);
  };
  if (f.exists("/items/price")) {
    check_len("/items/price");
    ds.item_price = f.read_all<double>("/items/price");
    for (double p : ds.item_price)
      if (!(std::isnan(p) || (std::isfinite(p) && p >= 0)))
        throw DataError("'" + path + "': /items/price holds a negative or infinite price", true);
  }
  if (f.exists("/items/name")) {
    check_len("/items/name");
    ds.item_names = f.read_strings("/items/name", 0, n_items);
  }
  if (f.exists("/items/category")) {
    check_len("/items/category");
    ds.item_category = f.read_all<std::int32_t>("/items/category");
    ds.categories = f.read_strings("/categories/names", 0, f.shape("/categories/names")[0]);
    const auto n_cats = static_cast<std::int32_t>(ds.categories.size());
    for (std::int32_t c : ds.item_category)
      if (c < -1 || c >= n_cats)
        throw DataError("'" + path + "': /items/category index " + std::to_string(c) +
                            " out of range (" + std::to_string(n_cats) + " categories)",
                        true);
  }
}

}  // namespace

void write_dataset(const std::string& path, const Dataset& ds, const Comm& comm) {
  h5::File f = h5::File::create(path, comm, kDatasetFormat);
  for (const char* g : {"/users", "/items", "/event_types", "/interactions", "/log", "/report"})
    f.create_group(g);
  if (ds.has_categories()) f.create_group("/categories");
  f.set_attr("/", "n_users", ds.n_users);
  f.set_attr("/", "n_items", ds.n_items());
  f.write_strings("/users/ids", ds.user_ids, true);
  write_local(f, "/users/first_time", ds.first_time);
  write_local(f, "/users/last_time", ds.last_time);
  f.write_strings("/items/ids", ds.item_ids, false);
  write_all(f, "/items/n_users", ds.item_users);
  if (ds.has_prices()) write_all(f, "/items/price", ds.item_price);
  if (ds.has_names()) f.write_strings("/items/name", ds.item_names, false);
  if (ds.has_categories()) {
    write_all(f, "/items/category", ds.item_category);
    f.write_strings("/categories/names", ds.categories, false);
  }
  f.write_strings("/event_types/names", ds.event_types, false);
  write_all(f, "/event_types/weights", ds.event_weights);
  write_all(f, "/event_types/fill", ds.event_fill);

  write_indptr(f, "/interactions/indptr", ds.indptr, comm);
  write_local(f, "/interactions/indices", ds.indices);
  write_local(f, "/interactions/weights", ds.weights);
  write_local(f, "/interactions/counts", ds.counts, std::max<std::int64_t>(1, ds.n_types()));

  fault_point("dataset.write", comm);
  write_indptr(f, "/log/indptr", ds.log_ptr, comm);
  write_local(f, "/log/item", ds.log_item);
  write_local(f, "/log/type", ds.log_type);
  write_local(f, "/log/time", ds.log_time);
  write_local(f, "/log/value", ds.log_value);
  if (ds.has_prices()) write_local(f, "/log/price", ds.log_price);

  const IngestReport& r = ds.report;
  f.set_attr("/report", "rows_read", r.rows_read);
  f.set_attr("/report", "rows_kept", r.rows_kept);
  f.set_attr("/report", "duplicates", r.duplicates);
  f.set_attr("/report", "filled_values", r.filled_values);
  f.set_attr("/report", "below_min_value", r.below_min_value);
  f.set_attr("/report", "filtered_users", r.filtered_users);
  f.set_attr("/report", "filtered_items", r.filtered_items);
  f.set_attr("/report", "filtered_rows", r.filtered_rows);
  write_counted(f, "/report/bad", r.bad);
  write_counted(f, "/report/unknown_types", r.unknown_types);
  f.write_strings("/report/examples", r.examples, false);
  f.commit();
}

IngestReport read_report(const h5::File& f) {
  IngestReport r;
  r.rows_read = f.attr_int("/report", "rows_read");
  r.rows_kept = f.attr_int("/report", "rows_kept");
  r.duplicates = f.attr_int("/report", "duplicates");
  r.filled_values = f.attr_int("/report", "filled_values");
  r.below_min_value = f.attr_int("/report", "below_min_value");
  r.filtered_users = f.attr_int("/report", "filtered_users");
  r.filtered_items = f.attr_int("/report", "filtered_items");
  r.filtered_rows = f.attr_int("/report", "filtered_rows");
  r.bad = read_counted(f, "/report/bad");
  r.unknown_types = read_counted(f, "/report/unknown_types");
  r.examples = f.read_strings("/report/examples", 0, f.shape("/report/examples")[0]);
  return r;
}

Dataset read_dataset(const std::string& path, const Comm& comm, bool with_log) {
  const h5::File f = h5::File::open(path, comm, kDatasetFormat);
  Dataset ds;
  ds.n_users = f.attr_int("/", "n_users");
  const std::int64_t n_items = f.attr_int("/", "n_items");
  if (ds.n_users < 0 || n_items < 0 || f.shape("/users/ids")[0] != ds.n_users ||
      f.shape("/items/ids")[0] != n_items || f.shape("/interactions/indptr")[0] != ds.n_users + 1)
    throw DataError("'" + path + "': inconsistent shapes (n_users " + std::to_string(ds.n_users) +
                        ", n_items " + std::to_string(n_items) + ")",
                    true);
  const Block b = block_partition(ds.n_users, comm.size(), comm.rank());
  ds.user_begin = b.begin;
  ds.user_ids = f.read_strings("/users/ids", b.begin, b.size());
  ds.first_time = f.read_rows<double>("/users/first_time", b.begin, b.size());
  ds.last_time = f.read_rows<double>("/users/last_time", b.begin, b.size());
  ds.item_ids = f.read_strings("/items/ids", 0, n_items);
  ds.item_users = f.read_all<std::int64_t>("/items/n_users");
  read_item_attributes(f, path, n_items, ds);
  ds.event_types = f.read_strings("/event_types/names", 0, f.shape("/event_types/names")[0]);
  ds.event_weights = f.read_all<double>("/event_types/weights");
  ds.event_fill = f.read_all<double>("/event_types/fill");
  const auto n_types = std::max<std::int64_t>(1, ds.n_types());

  // Reads one CSR block: pointer slice, then the entries it covers.
  auto read_ptr = [&](const std::string& name, std::int64_t n_total) {
    auto p = f.read_rows<std::int64_t>(name, b.begin, b.size() + 1);
    const std::int64_t base = p.front();
    for (auto& x : p) x -= base;
    bool ok = p.back() >= 0 && base >= 0 && base + p.back() <= n_total;
    for (std::size_t i = 1; ok && i < p.size(); ++i) ok = p[i] >= p[i - 1];
    comm.check_all(ok ? "" : "'" + path + "': corrupt " + name, kExitData);
    return std::pair{p, base};
  };
  {
    const std::int64_t nnz = f.shape("/interactions/indices")[0];
    auto [p, base] = read_ptr("/interactions/indptr", nnz);
    ds.indptr = std::move(p);
    const std::int64_t n = ds.indptr.back();
    ds.indices = f.read_rows<std::int32_t>("/interactions/indices", base, n);
    ds.weights = f.read_rows<float>("/interactions/weights", base, n);
    ds.counts = f.read_rows<std::uint32_t>("/interactions/counts", base, n);
    if (static_cast<std::int64_t>(ds.counts.size()) != n * n_types)
      throw DataError("'" + path + "': /interactions/counts has the wrong width", true);
    std::string err;
    for (auto i : ds.indices)
      if (i < 0 || i >= n_items) {
        err = "'" + path + "': item index " + std::to_string(i) + " out of range";
        break;
      }
    for (std::size_t j = 0; err.empty() && j < ds.weights.size(); ++j)
      if (!std::isfinite(ds.weights[j]))
        err = "'" + path + "': /interactions/weights holds a non-finite value (damaged file?)";
    comm.check_all(err, kExitData);
  }
  if (with_log) {
    const std::int64_t n_ev = f.shape("/log/item")[0];
    auto [p, base] = read_ptr("/log/indptr", n_ev);
    ds.log_ptr = std::move(p);
    const std::int64_t n = ds.log_ptr.back();
    ds.log_item = f.read_rows<std::int32_t>("/log/item", base, n);
    ds.log_type = f.read_rows<std::uint8_t>("/log/type", base, n);
    ds.log_time = f.read_rows<double>("/log/time", base, n);
    ds.log_value = f.read_rows<float>("/log/value", base, n);
    if (ds.has_prices()) {
      if (f.shape("/log/price")[0] != n_ev)
        throw DataError("'" + path + "': /log/price has the wrong length", true);
      ds.log_price = f.read_rows<float>("/log/price", base, n);
    }
    // A damaged file must give a clear error, not an out-of-range access in a later stage.
    std::string err;
    for (std::size_t j = 0; err.empty() && j < ds.log_item.size(); ++j) {
      if (ds.log_item[j] < 0 || ds.log_item[j] >= n_items)
        err = "event log item index " + std::to_string(ds.log_item[j]) + " out of range";
      else if (ds.log_type[j] >= n_types)
        err = "event log type " + std::to_string(ds.log_type[j]) + " out of range (" +
              std::to_string(n_types) + " types)";
      else if (!std::isfinite(ds.log_time[j]) || !std::isfinite(ds.log_value[j]))
        err = "event log holds a non-finite time or value";
    }
    for (std::size_t j = 0; err.empty() && j < ds.log_price.size(); ++j)
      if (!(std::isnan(ds.log_price[j]) ||
            (std::isfinite(ds.log_price[j]) && ds.log_price[j] >= 0)))
        err = "/log/price holds a negative or infinite price";
    comm.check_all(err.empty() ? err : "'" + path + "': " + err + " (damaged file?)", kExitData);
  } else {
    ds.log_ptr.assign(static_cast<std::size_t>(b.size() + 1), 0);
  }
  ds.report = read_report(f);
  return ds;
}

}  // namespace segrec
