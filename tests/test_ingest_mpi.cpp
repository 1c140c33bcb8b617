// ingest at the world size against hand-computed results and against a
// single-process run of the same files: the dataset must not depend on ranks.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "scratch_dir.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/ingest/ingest.hpp"

namespace fs = std::filesystem;
using namespace segrec;

namespace {

std::string tmp_dir(const Comm& c) { return testing_tmp::scratch_dir("ingest", c); }

/// A dataset gathered into global arrays (CSR pointers made global).
struct Global {
  std::vector<std::string> users, items, types;
  std::vector<std::int64_t> indptr, log_ptr, item_users;
  std::vector<std::int32_t> indices, log_item;
  std::vector<float> weights, log_value;
  std::vector<std::uint32_t> counts;
  std::vector<std::uint8_t> log_type;
  std::vector<double> log_time, first, last, type_weights, type_fill;
};

std::vector<std::int64_t> global_ptr(const std::vector<std::int64_t>& local, const Comm& c) {
  std::vector<std::int64_t> lens;
  for (std::size_t i = 1; i < local.size(); ++i) lens.push_back(local[i] - local[i - 1]);
  const auto all = c.allgatherv(lens);
  std::vector<std::int64_t> p(1, 0);
  for (auto l : all) p.push_back(p.back() + l);
  return p;
}

Global gather(const Dataset& ds, const Comm& c) {
  Global g;
  std::string joined;
  for (const auto& u : ds.user_ids) joined += u + "\n";
  for (const auto& chunk : c.allgather_strings(joined)) {
    std::size_t pos = 0;
    while (pos < chunk.size()) {
      const auto nl = chunk.find('\n', pos);
      g.users.push_back(chunk.substr(pos, nl - pos));
      pos = nl + 1;
    }
  }
  g.items = ds.item_ids;
  g.types = ds.event_types;
  g.item_users = ds.item_users;
  g.type_weights = ds.event_weights;
  g.type_fill = ds.event_fill;
  g.indptr = global_ptr(ds.indptr, c);
  g.log_ptr = global_ptr(ds.log_ptr, c);
  g.indices = c.allgatherv(ds.indices);
  g.weights = c.allgatherv(ds.weights);
  g.counts = c.allgatherv(ds.counts);
  g.log_item = c.allgatherv(ds.log_item);
  g.log_type = c.allgatherv(ds.log_type);
  g.log_time = c.allgatherv(ds.log_time);
  g.log_value = c.allgatherv(ds.log_value);
  g.first = c.allgatherv(ds.first_time);
  g.last = c.allgatherv(ds.last_time);
  return g;
}

void expect_same(const Global& a, const Global& b) {
  EXPECT_EQ(a.users, b.users);
  EXPECT_EQ(a.items, b.items);
  EXPECT_EQ(a.types, b.types);
  EXPECT_EQ(a.item_users, b.item_users);
  EXPECT_EQ(a.type_weights, b.type_weights);
  EXPECT_EQ(a.type_fill, b.type_fill);
  EXPECT_EQ(a.indptr, b.indptr);
  EXPECT_EQ(a.indices, b.indices);
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_EQ(a.counts, b.counts);
  EXPECT_EQ(a.log_ptr, b.log_ptr);
  EXPECT_EQ(a.log_item, b.log_item);
  EXPECT_EQ(a.log_type, b.log_type);
  EXPECT_EQ(a.log_time, b.log_time);
  EXPECT_EQ(a.log_value, b.log_value);
  EXPECT_EQ(a.first, b.first);
  EXPECT_EQ(a.last, b.last);
}

void expect_same_report(const IngestReport& a, const IngestReport& b) {
  EXPECT_EQ(a.rows_read, b.rows_read);
  EXPECT_EQ(a.rows_kept, b.rows_kept);
  EXPECT_EQ(a.duplicates, b.duplicates);
  EXPECT_EQ(a.filled_values, b.filled_values);
  EXPECT_EQ(a.below_min_value, b.below_min_value);
  EXPECT_EQ(a.filtered_users, b.filtered_users);
  EXPECT_EQ(a.filtered_items, b.filtered_items);
  EXPECT_EQ(a.filtered_rows, b.filtered_rows);
  EXPECT_EQ(a.bad, b.bad);
  EXPECT_EQ(a.unknown_types, b.unknown_types);
  EXPECT_EQ(a.examples, b.examples);
}

const std::string kSmall = std::string(SEGREC_TEST_DATA) + "/events_small.csv";

// A messy synthetic log: several event types, ISO and unix times, duplicates,
// missing values, a few malformed rows, quoted ids. Written by rank 0.
std::string write_messy(const Comm& c, int rows, const std::string& name) {
  const std::string path = tmp_dir(c) + "/" + name;
  if (c.is_root()) {
    std::ofstream out(path);
    out << "\xEF\xBB\xBFUserId;ItemId;Behavior;TS;Dwell\r\n";
    std::mt19937_64 rng(7);
    const char* ev[] = {"view", "click", "cart", "purchase", "Share"};
    std::string prev;
    for (int i = 0; i < rows; ++i) {
      std::string line;
      const auto u = rng() % 997, it = rng() % 301;
      const auto e = ev[rng() % 5];
      const long t = 1700000000 + static_cast<long>(rng() % 5000000);
      const std::string user =
          (u % 13 == 0) ? "\"u;" + std::to_string(u) + "\"" : "u" + std::to_string(u);
      const std::string ts = (i % 3 == 0) ? std::to_string(t)
                                          : "2023-12-0" + std::to_string(1 + i % 9) +
                                                "T10:" + std::to_string(10 + i % 50) + ":00Z";
      const std::string val = (i % 4 == 0) ? "" : std::to_string(rng() % 100) + ".5";
      line = user + ";" + "it" + std::to_string(it) + ";" + e + ";" + ts + ";" + val;
      if (i % 97 == 5) line = "broken;row";              // field count
      if (i % 113 == 7) line = "u1;;view;1700000000;1";  // empty item
      out << line << "\r\n";
      if (i % 17 == 0) out << line << "\r\n";  // exact duplicate
    }
  }
  c.barrier();
  return path;
}

}  // namespace

TEST(Ingest, SmallFileHandComputed) {
  const Comm c = Comm::world();
  IngestParams p;
  p.events = {kSmall};
  p.out = "unused.h5";
  const Dataset ds = ingest(p, c);
  const Global g = gather(ds, c);
  EXPECT_EQ(ds.n_users, 4);
  EXPECT_EQ(ds.report.rows_read, 10);
  EXPECT_EQ(ds.report.duplicates, 1);
  EXPECT_EQ(ds.report.rows_kept, 9);
  EXPECT_EQ(ds.report.filled_values, 3);
  EXPECT_EQ(ds.report.bad_total(), 0);
  ASSERT_EQ(ds.report.unknown_types.size(), 1u);
  EXPECT_EQ(ds.report.unknown_types.at("share"), 1);
  // Item ids are not all integers: byte order (',' sorts before digits).
  EXPECT_EQ(g.items, (std::vector<std::string>{"i,4", "i1", "i2", "i3", "i9"}));
  EXPECT_EQ(g.types, (std::vector<std::string>{"cart", "fav", "purchase", "share", "view"}));
  EXPECT_EQ(g.type_weights, (std::vector<double>{3, 3, 5, 1, 1}));
  // view values 12.5, 3, 8, 4 -> mean 6.875; cart and share have none -> 0.
  EXPECT_DOUBLE_EQ(g.type_fill[4], 6.875);
  EXPECT_DOUBLE_EQ(g.type_fill[0], 0.0);
  EXPECT_EQ(g.item_users, (std::vector<std::int64_t>{1, 2, 2, 2, 1}));
  // The category column: one category per item; no prices or names.
  EXPECT_EQ(ds.categories, (std::vector<std::string>{"c1", "c2", "c3", "c9"}));
  EXPECT_EQ(ds.item_category, (std::vector<std::int32_t>{2, 0, 1, 0, 3}));
  EXPECT_TRUE(ds.item_price.empty());
  EXPECT_TRUE(ds.log_price.empty());
  EXPECT_TRUE(ds.item_names.empty());
  // Per user: the item weights summed over event types.
  ASSERT_EQ(g.users.size(), 4u);
  ASSERT_EQ(g.indptr.size(), 5u);
  std::map<std::string, std::map<std::string, float>> w;
  for (std::size_t u = 0; u < g.users.size(); ++u)
    for (auto i = g.indptr[u]; i < g.indptr[u + 1]; ++i)
      w[g.users[u]][g.items[g.indices[i]]] = g.weights[i];
  EXPECT_EQ(w["alice"], (std::map<std::string, float>{{"i1", 4.f}, {"i2", 1.f}}));
  EXPECT_EQ(w["bob"], (std::map<std::string, float>{{"i,4", 3.f}, {"i2", 5.f}, {"i3", 1.f}}));
  EXPECT_EQ(w["carol"], (std::map<std::string, float>{{"i1", 1.f}, {"i3", 1.f}}));
  EXPECT_EQ(w["dave"], (std::map<std::string, float>{{"i9", 1.f}}));
  // bob's events by time: 2023-11-14 22:30:00+01:00 = 1699997400 first; the filled view value.
  for (std::size_t u = 0; u < g.users.size(); ++u) {
    if (g.users[u] != "bob") continue;
    const auto b = g.log_ptr[u];
    EXPECT_EQ(g.log_ptr[u + 1] - b, 3);
    EXPECT_DOUBLE_EQ(g.log_time[b], 1699997400.0);
    EXPECT_EQ(g.items[g.log_item[b]], "i3");
    EXPECT_FLOAT_EQ(g.log_value[b], 6.875f);
    EXPECT_DOUBLE_EQ(g.log_time[b + 1], 1700000300.5);
    EXPECT_DOUBLE_EQ(g.first[u], 1699997400.0);
    EXPECT_DOUBLE_EQ(g.last[u], 1700000500.0);
  }
}

TEST(Ingest, FiltersReachAFixedPoint) {
  const Comm c = Comm::world();
  IngestParams p;
  p.events = {kSmall};
  p.out = "unused.h5";
  p.min_item_users = 2;
  const Dataset ds = ingest(p, c);
  const Global g = gather(ds, c);
  EXPECT_EQ(g.items, (std::vector<std::string>{"i1", "i2", "i3"}));
  EXPECT_EQ(ds.n_users, 3);  // dave had only i9
  EXPECT_EQ(ds.report.filtered_items, 2);
  EXPECT_EQ(ds.report.filtered_users, 1);
  EXPECT_EQ(ds.report.filtered_rows, 2);
  EXPECT_EQ(ds.report.rows_kept, 7);
}

TEST(Ingest, MinValueAndHeaderlessColumns) {
  const Comm c = Comm::world();
  const std::string path = tmp_dir(c) + "/noheader.tsv";
  if (c.is_root()) {
    std::ofstream out(path);
    out << "u1\ti1\tc\t1700000000\t5\nu1\ti2\tc\t1700000001\t2\nu2\ti1\tc\t1700000002\t4\n";
  }
  c.barrier();
  IngestParams p;
  p.events = {path};
  p.out = "unused.h5";
  p.no_header = true;
  p.columns = "user_id,item_id,category,timestamp,rating";
  p.event_name = "Rating";
  p.min_value = 4;
  const Dataset ds = ingest(p, c);
  EXPECT_EQ(ds.report.rows_read, 3);
  EXPECT_EQ(ds.report.below_min_value, 1);
  EXPECT_EQ(ds.report.rows_kept, 2);
  EXPECT_EQ(ds.event_types, (std::vector<std::string>{"rating"}));
  EXPECT_TRUE(ds.report.unknown_types.empty());
  const Global g = gather(ds, c);
  EXPECT_EQ(g.items, (std::vector<std::string>{"i1"}));
}

TEST(Ingest, RankInvariantOnMessyData) {
  const Comm c = Comm::world();
  const std::string a = write_messy(c, 20000, "messy_a.csv");
  const std::string b = write_messy(c, 3000, "messy_b.csv");
  IngestParams p;
  p.events = {a, b};
  p.out = "unused.h5";
  p.max_bad_fraction = 0.05;
  p.event_weights = {"share=2"};
  const Dataset dist = ingest(p, c);
  const Dataset serial = ingest(p, Comm());  // every rank: the whole input alone
  EXPECT_GT(dist.report.duplicates, 1000);
  EXPECT_GT(dist.report.bad_total(), 100);
  EXPECT_GT(dist.report.filled_values, 1000);
  EXPECT_EQ(dist.report.examples.size(), 5u);
  EXPECT_NE(dist.report.examples[0].find("messy_a.csv:8: field count"), std::string::npos)
      << dist.report.examples[0];
  expect_same_report(dist.report, serial.report);
  expect_same(gather(dist, c), gather(serial, Comm()));
}

TEST(Ingest, DatasetFileRoundTrip) {
  const Comm c = Comm::world();
  const std::string path = tmp_dir(c) + "/roundtrip.h5";
  IngestParams p;
  p.events = {write_messy(c, 5000, "messy_rt.csv")};
  p.out = path;
  p.max_bad_fraction = 0.05;
  const Dataset ds = ingest(p, c);
  write_dataset(path, ds, c);
  const Dataset back = read_dataset(path, c);
  EXPECT_EQ(back.n_users, ds.n_users);
  expect_same(gather(back, c), gather(ds, c));
  expect_same_report(back.report, ds.report);
  // A single process reads the same file whole.
  const Dataset whole = read_dataset(path, Comm());
  expect_same(gather(whole, Comm()), gather(ds, c));
}

TEST(Ingest, MovieLensPreset) {
  const std::string path = std::string(SEGREC_SHARED_DATA) + "/ml-100k/u.data";
  if (!fs::exists(path)) GTEST_SKIP() << "MovieLens 100K not found at " << path << " (optional)";
  const Comm c = Comm::world();
  IngestParams p;
  p.events = {path};
  p.out = "unused.h5";
  p.format = "movielens";
  const Dataset ds = ingest(p, c);
  EXPECT_EQ(ds.n_users, 943);
  EXPECT_EQ(ds.n_items(), 1682);
  EXPECT_EQ(ds.report.rows_kept, 100000);
  EXPECT_EQ(ds.item_ids.front(), "1");  // numeric ids sort numerically
  EXPECT_EQ(ds.item_ids.back(), "1682");
  p.min_value = 4;
  const Dataset pos = ingest(p, c);
  EXPECT_EQ(pos.report.rows_kept, 55375);
  EXPECT_EQ(pos.report.below_min_value, 44625);
}
