// ingest's item attributes (price, name, category columns) at the world size: identical to
// a single-process run and to a naive computation over the whole file (median unit price,
// most frequent name and category with ties to the smallest), and absent without the columns.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "scratch_dir.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/ingest/ingest.hpp"
#include "segrec/io/h5.hpp"

namespace fs = std::filesystem;
using namespace segrec;

namespace {

std::string tmp_dir(const Comm& c) { return testing_tmp::scratch_dir("ingest_items", c); }

std::string write_file(const Comm& c, const std::string& name, const std::string& text) {
  const std::string path = tmp_dir(c) + "/" + name;
  if (c.is_root()) std::ofstream(path) << text;
  c.barrier();
  return path;
}

// NaN-aware exact equality of prices.
template <class T>
bool same_prices(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) return false;
  return true;
}

// Prices, names and categories of the random log: small sets, so that ties, unknown
// prices and even counts are common.
const char* const kPrices[] = {"", "0", "1.25", "2.5", "3", "10", "0.1", "7.75"};
const char* const kNames[] = {"", "Beta", "Alpha", "alpha", "Gamma, large", "\xC3\x89t\xC3\xA9"};
const char* const kCats[] = {"", "c2", "c10", "C1", "home"};

// A log with item attributes, exact duplicates and rows differing only in an attribute.
// Written by rank 0; every rank gets the text.
std::string random_log(int rows) {
  std::mt19937_64 rng(11);
  std::ostringstream out;
  out << "user_id,item_id,event,timestamp,quantity,unit_price,description,category\n";
  for (int i = 0; i < rows; ++i) {
    std::ostringstream line;
    const auto item = rng() % 40;
    // Items 30..39 never carry a price, items 35..39 no name or category either.
    const char* price = item >= 30 ? "" : kPrices[rng() % 8];
    const char* name = item >= 35 ? "" : kNames[rng() % 6];
    const char* cat = item >= 35 ? "" : kCats[rng() % 5];
    line << "u" << rng() % 150 << ",it" << item << "," << (rng() % 2 ? "view" : "purchase") << ","
         << 1700000000 + rng() % 50 << "," << 1 + rng() % 3 << "," << price << ",\"" << name
         << "\"," << cat;
    out << line.str() << "\n";
    if (i % 11 == 0) out << line.str() << "\n";  // an exact duplicate
  }
  // Hand-made ties and an even count: item "tie" (names Alpha x2, Beta x2 -> Alpha;
  // categories c2 x2, c10 x2 -> c10 in byte order; prices 1, 2, 4, 10 -> 3).
  out << "a,tie,view,1,1,1,Beta,c2\n"
      << "b,tie,view,1,1,2,Alpha,c10\n"
      << "c,tie,view,1,1,10,Beta,c10\n"
      << "d,tie,view,1,1,4,Alpha,c2\n"
      << "d,tie,view,1,1,4,Alpha,c2\n";  // a duplicate, counted once
  return out.str();
}

struct Naive {
  std::map<std::string, double> price;  // items with a known price
  std::map<std::string, std::string> name, category;
  std::vector<std::string> categories;
  std::vector<float> log_prices;  // sorted, NaN as -1
};

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> f(1);
  bool q = false;
  for (char ch : line) {
    if (ch == '"') {
      q = !q;
    } else if (ch == ',' && !q) {
      f.emplace_back();
    } else {
      f.back() += ch;
    }
  }
  return f;
}

std::string mode(const std::map<std::string, int>& counts) {
  std::string best;
  int n = 0;
  for (const auto& [k, c] : counts)  // ascending keys: ties keep the smallest
    if (c > n) {
      best = k;
      n = c;
    }
  return best;
}

// The whole file in one process: distinct lines, then per item.
Naive naive(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  std::set<std::string> lines;
  while (std::getline(in, line)) lines.insert(line);
  std::map<std::string, std::vector<float>> prices;
  std::map<std::string, std::map<std::string, int>> names, cats;
  Naive n;
  for (const auto& l : lines) {
    const auto f = split_csv(l);
    const std::string& item = f[1];
    if (!f[5].empty()) {
      prices[item].push_back(static_cast<float>(std::stod(f[5])));
      n.log_prices.push_back(prices[item].back());
    } else {
      n.log_prices.push_back(-1);
    }
    if (!f[6].empty()) ++names[item][f[6]];
    if (!f[7].empty()) ++cats[item][f[7]];
  }
  std::sort(n.log_prices.begin(), n.log_prices.end());
  for (auto& [item, v] : prices) {
    std::sort(v.begin(), v.end());
    const std::size_t k = v.size();
    n.price[item] = k % 2 ? double{v[k / 2]} : (double{v[k / 2 - 1]} + double{v[k / 2]}) / 2;
  }
  std::set<std::string> used;
  for (const auto& [item, c] : names) n.name[item] = mode(c);
  for (const auto& [item, c] : cats) used.insert(n.category[item] = mode(c));
  n.categories.assign(used.begin(), used.end());
  return n;
}

std::vector<float> gathered_log_prices(const Dataset& ds, const Comm& c) {
  return c.allgatherv(ds.log_price);
}

}  // namespace

TEST(IngestItems, MatchNaiveAndSingleProcess) {
  const Comm c = Comm::world();
  const std::string text = random_log(6000);
  IngestParams p;
  p.events = {write_file(c, "attrs.csv", text)};
  p.out = "unused.h5";
  const Dataset dist = ingest(p, c);
  const Dataset serial = ingest(p, Comm());
  // Identical at any rank count.
  EXPECT_EQ(dist.item_ids, serial.item_ids);
  EXPECT_TRUE(same_prices(dist.item_price, serial.item_price));
  EXPECT_EQ(dist.item_names, serial.item_names);
  EXPECT_EQ(dist.item_category, serial.item_category);
  EXPECT_EQ(dist.categories, serial.categories);
  EXPECT_TRUE(same_prices(gathered_log_prices(dist, c), serial.log_price));
  EXPECT_EQ(c.allgatherv(dist.log_value), serial.log_value);

  // Equal to the naive computation.
  const Naive want = naive(text);
  EXPECT_EQ(dist.report.rows_kept, static_cast<std::int64_t>(want.log_prices.size()));
  EXPECT_GT(dist.report.duplicates, 500);
  ASSERT_EQ(dist.n_items(), 41);
  ASSERT_EQ(dist.item_price.size(), 41u);
  ASSERT_EQ(dist.item_names.size(), 41u);
  ASSERT_EQ(dist.item_category.size(), 41u);
  EXPECT_EQ(dist.categories, want.categories);
  for (std::size_t i = 0; i < dist.item_ids.size(); ++i) {
    const std::string& id = dist.item_ids[i];
    const auto pr = want.price.find(id);
    if (pr == want.price.end()) {
      EXPECT_TRUE(std::isnan(dist.item_price[i])) << id;
    } else {
      EXPECT_EQ(dist.item_price[i], pr->second) << id;
    }
    const auto nm = want.name.find(id);
    EXPECT_EQ(dist.item_names[i], nm == want.name.end() ? "" : nm->second) << id;
    const auto ct = want.category.find(id);
    if (ct == want.category.end()) {
      EXPECT_EQ(dist.item_category[i], -1) << id;
    } else {
      ASSERT_GE(dist.item_category[i], 0) << id;
      EXPECT_EQ(dist.categories[static_cast<std::size_t>(dist.item_category[i])], ct->second) << id;
    }
  }
  // The hand-made item.
  const auto tie = static_cast<std::size_t>(
      std::find(dist.item_ids.begin(), dist.item_ids.end(), "tie") - dist.item_ids.begin());
  ASSERT_LT(tie, dist.item_ids.size());
  EXPECT_EQ(dist.item_price[tie], 3.0);
  EXPECT_EQ(dist.item_names[tie], "Alpha");
  EXPECT_EQ(dist.categories[static_cast<std::size_t>(dist.item_category[tie])], "c10");
  // The event log's prices: the same multiset (unknown = NaN).
  std::vector<float> got = serial.log_price;
  for (auto& x : got)
    if (std::isnan(x)) x = -1;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want.log_prices);
}

TEST(IngestItems, DuplicatesDifferInEveryKeptField) {
  const Comm c = Comm::world();
  IngestParams p;
  p.events = {write_file(c, "dups.csv",
                         "user,item,ts,price,title,cat\n"
                         "u,i,1,2.5,A,x\n"
                         "u,i,1,2.5,A,x\n"   // exact duplicate
                         "u,i,1,2.50,A,x\n"  // the same price written differently
                         "u,i,1,3,A,x\n"
                         "u,i,1,,A,x\n"
                         "u,i,1,,A,x\n"
                         "u,i,1,2.5,B,x\n"
                         "u,i,1,2.5,A,\n"
                         "u,i,1,2.5,A,y\n")};
  p.out = "unused.h5";
  const Dataset ds = ingest(p, c);
  EXPECT_EQ(ds.report.rows_read, 9);
  EXPECT_EQ(ds.report.duplicates, 3);
  EXPECT_EQ(ds.report.rows_kept, 6);
  // Prices 2.5 x4 and 3: median 2.5; names A x5, B: A; categories x x4, y: x.
  EXPECT_EQ(ds.item_price, (std::vector<double>{2.5}));
  EXPECT_EQ(ds.item_names, (std::vector<std::string>{"A"}));
  EXPECT_EQ(ds.item_category, (std::vector<std::int32_t>{0}));
  EXPECT_EQ(ds.categories, (std::vector<std::string>{"x"}));
}

// UCI Online Retail's columns; user, item and time named with --col-*, Quantity the value,
// UnitPrice the price, Description the name. A cancellation (negative quantity) is kept
// unless --min-value drops it; a row without CustomerID is malformed (empty user).
TEST(IngestItems, OnlineRetailShaped) {
  const Comm c = Comm::world();
  const std::string path = write_file(
      c, "online_retail.csv",
      "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
      "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850,"
      "United Kingdom\n"
      "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850,United Kingdom\n"
      "536366,22633,HAND WARMER UNION JACK,6,2010-12-01 08:28:00,1.85,17850,United Kingdom\n"
      "536367,85123A,WHITE HANGING HEART T-LIGHT HOLDER,32,2010-12-01 08:34:00,2.95,13047,"
      "United Kingdom\n"
      "536368,71053,\"WHITE METAL LANTERN, LARGE\",1,2010-12-01 08:35:00,4.25,13047,"
      "United Kingdom\n"
      "536369,22633,HAND WARMER UNION JACK,2,2010-12-01 08:40:00,,12583,France\n"
      "C536379,85123A,WHITE HANGING HEART T-LIGHT HOLDER,-2,2010-12-01 09:41:00,2.75,17850,"
      "United Kingdom\n"
      "536370,22633,HAND WARMER UNION JACK,12,2010-12-01 08:45:00,1.85,,United Kingdom\n");
  IngestParams p;
  p.events = {path};
  p.out = tmp_dir(c) + "/online_retail.h5";
  p.col_user = "CustomerID";
  p.col_item = "StockCode";
  p.col_time = "InvoiceDate";
  p.event_name = "purchase";
  p.max_bad_fraction = 0.5;
  const Dataset ds = ingest(p, c);
  EXPECT_EQ(ds.report.rows_read, 8);
  EXPECT_EQ(ds.report.bad, (std::map<std::string, std::int64_t>{{"empty user", 1}}));
  EXPECT_EQ(ds.report.rows_kept, 7);
  EXPECT_EQ(ds.n_users, 3);
  EXPECT_EQ(ds.item_ids, (std::vector<std::string>{"22633", "71053", "85123A"}));
  // 22633: 1.85, (unknown) -> 1.85; 71053: 3.39, 4.25 -> 3.82; 85123A: 2.55, 2.95, 2.75 -> 2.75.
  ASSERT_EQ(ds.item_price.size(), 3u);
  EXPECT_EQ(ds.item_price[0], double{1.85f});
  EXPECT_EQ(ds.item_price[1], (double{3.39f} + double{4.25f}) / 2);
  EXPECT_EQ(ds.item_price[2], double{2.75f});
  // Ties: the smallest name in byte order.
  EXPECT_EQ(ds.item_names,
            (std::vector<std::string>{"HAND WARMER UNION JACK", "WHITE METAL LANTERN",
                                      "WHITE HANGING HEART T-LIGHT HOLDER"}));
  EXPECT_TRUE(ds.item_category.empty());
  EXPECT_TRUE(ds.categories.empty());
  // The cancellation is an event with value -2 and its own price.
  const auto values = c.allgatherv(ds.log_value);
  const auto prices = c.allgatherv(ds.log_price);
  ASSERT_EQ(prices.size(), 7u);
  const auto neg = std::find(values.begin(), values.end(), -2.0f);
  ASSERT_NE(neg, values.end());
  EXPECT_EQ(prices[static_cast<std::size_t>(neg - values.begin())], 2.75f);
  EXPECT_EQ(std::count_if(prices.begin(), prices.end(), [](float x) { return std::isnan(x); }), 1);

  // Written and read back, at any rank count.
  write_dataset(p.out, ds, c);
  const Dataset back = read_dataset(p.out, c);
  EXPECT_TRUE(same_prices(back.item_price, ds.item_price));
  EXPECT_EQ(back.item_names, ds.item_names);
  EXPECT_TRUE(back.item_category.empty());
  EXPECT_TRUE(same_prices(c.allgatherv(back.log_price), prices));
  {
    const h5::File f = h5::File::open(p.out, c, kDatasetFormat);
    EXPECT_TRUE(f.exists("/log/price"));
    EXPECT_TRUE(f.exists("/items/price"));
    EXPECT_TRUE(f.exists("/items/name"));
    EXPECT_FALSE(f.exists("/items/category"));
    EXPECT_FALSE(f.exists("/categories"));
  }

  // --min-value 0 drops the cancellation (and so its price).
  p.min_value = 0;
  const Dataset kept = ingest(p, c);
  EXPECT_EQ(kept.report.below_min_value, 1);
  EXPECT_EQ(kept.report.rows_kept, 6);
  EXPECT_EQ(kept.item_price[2], (double{2.55f} + double{2.95f}) / 2);
}

TEST(IngestItems, BadPricesAreMalformedRows) {
  const Comm c = Comm::world();
  IngestParams p;
  p.events = {write_file(c, "bad_prices.csv",
                         "user,item,price\n"
                         "u1,i1,1.5\n"
                         "u1,i2,abc\n"
                         "u2,i1,-3\n"
                         "u2,i2,inf\n"
                         "u3,i1,1e39\n"
                         "u3,i2,\n")};
  p.out = "unused.h5";
  p.max_bad_fraction = 1;
  const Dataset ds = ingest(p, c);
  EXPECT_EQ(ds.report.bad, (std::map<std::string, std::int64_t>{{"bad price", 1},
                                                                {"negative price", 1},
                                                                {"non-finite price", 1},
                                                                {"price out of range", 1}}));
  EXPECT_EQ(ds.report.examples, (std::vector<std::string>{
                                    p.events[0] + ":3: bad price: price 'abc' is not a number",
                                    p.events[0] + ":4: negative price: price '-3' is negative",
                                    p.events[0] + ":5: non-finite price: price 'inf' is not finite",
                                    p.events[0] + ":6: price out of range: price '1e39' is "
                                                  "beyond float32 (3.4e38)"}));
  EXPECT_EQ(ds.report.rows_kept, 2);
  // i1: 1.5; i2: only an unknown price.
  ASSERT_EQ(ds.item_price.size(), 2u);
  EXPECT_EQ(ds.item_price[0], 1.5);
  EXPECT_TRUE(std::isnan(ds.item_price[1]));
  // Too many: the usual failure naming the first one.
  p.max_bad_fraction = 0.1;
  try {
    ingest(p, c);
    ADD_FAILURE() << "accepted";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("bad price: price 'abc' is not a number"),
              std::string::npos)
        << e.what();
  }
}

TEST(IngestItems, WithoutTheColumnsNothingIsWritten) {
  const Comm c = Comm::world();
  IngestParams p;
  p.events = {write_file(c, "plain.csv",
                         "user_id,item_id,event,timestamp,value,country\n"
                         "u1,i1,view,1700000000,1,fr\n"
                         "u2,i1,view,1700000001,2,de\n"
                         "u2,i2,cart,1700000002,,de\n")};
  p.out = tmp_dir(c) + "/plain.h5";
  const Dataset ds = ingest(p, c);
  EXPECT_FALSE(ds.has_prices() || ds.has_names() || ds.has_categories());
  EXPECT_TRUE(ds.log_price.empty());
  EXPECT_TRUE(ds.item_price.empty());
  write_dataset(p.out, ds, c);
  {
    const h5::File f = h5::File::open(p.out, c, kDatasetFormat);
    for (const char* name :
         {"/log/price", "/items/price", "/items/name", "/items/category", "/categories"})
      EXPECT_FALSE(f.exists(name)) << name;
  }
  const Dataset back = read_dataset(p.out, c);
  EXPECT_TRUE(back.item_price.empty());
  EXPECT_TRUE(back.log_price.empty());
  EXPECT_TRUE(back.item_names.empty());
  EXPECT_TRUE(back.item_category.empty());
  EXPECT_EQ(back.item_ids, ds.item_ids);
}
