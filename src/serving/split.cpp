// `segrec split`: strong, weak and temporal evaluation splits of an event file.
#include "segrec/serving/split.hpp"
#include "segrec/core/random.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <string_view>
#include <unordered_map>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/tempfile.hpp"
#include "segrec/io/parse.hpp"
#include "segrec/io/textio.hpp"

namespace segrec {
namespace {

using rng::splitmix64;

// Where a row goes.
enum Dest : std::uint8_t { kDrop = 0, kTrain = 1, kFoldin = 2, kTest = 4 };

struct RowRec {
  std::uint32_t user;  // UINT32_MAX: dropped at parse time
  std::uint64_t item;  // seeded (user, item) hash
  double time;
};

constexpr std::uint32_t kNoUser = std::numeric_limits<std::uint32_t>::max();

// One of the three outputs, written to a temporary and renamed on success.
struct Output {
  std::string path, tmp;
  std::ofstream os;
  explicit Output(const std::string& p) : path(p), tmp(temporary_name(p)) {
    register_temporary(tmp);
    os.open(tmp, std::ios::binary);
    if (!os) throw IoError("cannot write '" + tmp + "'");
  }
  void commit() {
    os.close();
    if (!os) throw IoError("write error on '" + tmp + "'");
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw IoError("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
    unregister_temporary(tmp);
  }
  ~Output() {
    if (os.is_open()) {
      os.close();
      std::remove(tmp.c_str());
      unregister_temporary(tmp);
    }
  }
};

SplitSummary split_on_root(const SplitParams& p, const SplitModes& m) {
  SplitSummary s;
  const std::string& path = p.input.events.front();
  const EventFileLayout fl = describe_event_file(path, p.input, m.input);
  const auto max_line = static_cast<std::size_t>(p.input.max_line_bytes);
  std::error_code ec;
  const auto size = static_cast<std::int64_t>(std::filesystem::file_size(path, ec));
  if (ec) throw DataError("cannot read '" + path + "': " + ec.message());

  // ---- pass 1: parse every row --------------------------------------------------------------
  std::vector<RowRec> rows;
  std::unordered_map<std::string, std::uint32_t> user_index;
  std::vector<std::string> user_ids;
  std::vector<std::uint64_t> user_hash;
  {
    LineReader lr(path, ByteRange{0, size}, max_line);
    std::string_view line;
    bool too_long = false, first = true;
    std::vector<std::string_view> fields;
    std::string scratch;
    parse::Row row;
    while (lr.next(line, too_long)) {
      const bool is_first = first;
      first = false;
      if (is_first && fl.layout.header) continue;
      const std::string_view l = parse::strip_line(line, is_first);
      if (l.empty() && !too_long) {
        rows.push_back({kNoUser, 0, 0});
        continue;
      }
      ++s.rows;
      if (too_long || parse::parse_row(l, fl.layout, max_line, fields, scratch, row, nullptr) !=
                          parse::Bad::kNone) {
        ++s.bad_rows;
        rows.push_back({kNoUser, 0, 0});
        continue;
      }
      if (row.has_value && row.value < p.input.min_value) {
        ++s.below_min;
        rows.push_back({kNoUser, 0, 0});
        continue;
      }
      auto [it, added] = user_index.try_emplace(std::string(row.user),
                                                static_cast<std::uint32_t>(user_ids.size()));
      if (added) {
        user_ids.emplace_back(row.user);
        user_hash.push_back(seeded_hash(p.seed, row.user));
      }
      const std::uint32_t u = it->second;
      rows.push_back({u, splitmix64(user_hash[u] ^ seeded_hash(p.seed ^ 0x5bd1e995ULL, row.item)),
                      row.has_time ? row.time : 0.0});
    }
  }
  if (s.rows > 0 &&
      static_cast<double>(s.bad_rows) > p.input.max_bad_fraction * static_cast<double>(s.rows))
    throw DataError("'" + path + "': " + std::to_string(s.bad_rows) + " of " +
                    std::to_string(s.rows) + " rows are malformed (more than --max-bad-fraction " +
                    std::to_string(p.input.max_bad_fraction) + ")");

  // ---- group rows by user ------------------------------------------------------------------
  const std::size_t nu = user_ids.size();
  std::vector<std::int64_t> ptr(nu + 1, 0);
  for (const auto& r : rows)
    if (r.user != kNoUser) ++ptr[r.user + 1];
  std::partial_sum(ptr.begin(), ptr.end(), ptr.begin());
  std::vector<std::int64_t> by_user(static_cast<std::size_t>(ptr[nu]));
  {
    std::vector<std::int64_t> fill(ptr.begin(), ptr.end() - 1);
    for (std::size_t i = 0; i < rows.size(); ++i)
      if (rows[i].user != kNoUser) by_user[fill[rows[i].user]++] = static_cast<std::int64_t>(i);
  }
  std::vector<std::uint8_t> dest(rows.size(), kDrop);
  std::vector<std::uint8_t> eligible(nu, 0);
  std::vector<std::uint64_t> keys;
  for (std::size_t u = 0; u < nu; ++u) {
    keys.clear();
    for (auto q = ptr[u]; q < ptr[u + 1]; ++q) keys.push_back(rows[by_user[q]].item);
    std::sort(keys.begin(), keys.end());
    const auto distinct = std::unique(keys.begin(), keys.end()) - keys.begin();
    eligible[u] = distinct >= p.min_user_items;
    s.users += eligible[u];
  }
  s.dropped_users = static_cast<std::int64_t>(nu) - s.users;

  // Held-out users (strong): the smallest seeded user hashes, ties by id.
  std::vector<std::uint8_t> heldout(nu, 0);
  if (m.protocol == SplitProtocol::kStrong) {
    std::vector<std::uint32_t> order;
    for (std::size_t u = 0; u < nu; ++u)
      if (eligible[u]) order.push_back(static_cast<std::uint32_t>(u));
    std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      return user_hash[a] != user_hash[b] ? user_hash[a] < user_hash[b] : user_ids[a] < user_ids[b];
    });
    const auto n_out =
        static_cast<std::size_t>(std::llround(p.holdout_share * static_cast<double>(order.size())));
    for (std::size_t j = 0; j < n_out && j < order.size(); ++j) heldout[order[j]] = 1;
  }

  // Per-user decisions.
  std::vector<std::uint64_t> items;
  for (std::size_t u = 0; u < nu; ++u) {
    if (!eligible[u]) continue;
    const auto b = ptr[u], e = ptr[u + 1];
    bool has_test = false;
    if (m.protocol == SplitProtocol::kTemporal) {
      std::vector<std::int64_t> idx(by_user.begin() + b, by_user.begin() + e);
      std::stable_sort(idx.begin(), idx.end(),
                       [&](std::int64_t x, std::int64_t y) { return rows[x].time < rows[y].time; });
      const std::int64_t n = e - b;
      const std::int64_t n_test = n > p.last_n ? p.last_n : 0;
      for (std::int64_t j = 0; j < n; ++j) dest[idx[j]] = j >= n - n_test ? kTest : kTrain;
      has_test = n_test > 0;
    } else {
      items.clear();
      for (auto q = b; q < e; ++q) items.push_back(rows[by_user[q]].item);
      std::sort(items.begin(), items.end());
      items.erase(std::unique(items.begin(), items.end()), items.end());
      const auto n = static_cast<std::int64_t>(items.size());
      // topn_quality.py folds in ceil(0.8 n) items: floor(test_share n) are scored.
      const auto n_test = static_cast<std::int64_t>(std::floor(p.test_share * n + 1e-9));
      const bool strong = m.protocol == SplitProtocol::kStrong;
      if (strong && !heldout[u]) {
        for (auto q = b; q < e; ++q) dest[by_user[q]] = kTrain;
        continue;
      }
      // The first n - n_test keys (ascending) stay in; the rest are test.
      const std::uint64_t cut =
          n_test > 0 ? items[n - n_test] : std::numeric_limits<std::uint64_t>::max();
      for (auto q = b; q < e; ++q) {
        const bool test = n_test > 0 && rows[by_user[q]].item >= cut;
        dest[by_user[q]] = test ? kTest : (strong ? kFoldin : kTrain);
      }
      has_test = strong || n_test > 0;
    }
    if (has_test) {
      ++s.heldout_users;
      if (m.protocol != SplitProtocol::kStrong)
        for (auto q = b; q < e; ++q)
          if (dest[by_user[q]] == kTrain) dest[by_user[q]] |= kFoldin;
    }
  }

  // ---- pass 2: copy the rows -----------------------------------------------------------------
  std::filesystem::create_directories(p.out, ec);
  if (ec) throw IoError("cannot create the directory '" + p.out + "': " + ec.message());
  // The input's extension: a u.data or ratings.dat layout read back with --format movielens
  // must keep its name, or it would be taken for a CSV with a header.
  std::string ext = std::filesystem::path(path).extension().string();
  if (ext.empty()) ext = ".csv";
  Output train(p.out + "/train" + ext), foldin(p.out + "/foldin" + ext),
      test(p.out + "/test" + ext);
  {
    LineReader lr(path, ByteRange{0, size}, max_line);
    std::string_view line;
    bool too_long = false, first = true;
    std::size_t i = 0;
    while (lr.next(line, too_long)) {
      const bool is_first = first;
      first = false;
      const std::string_view l = parse::strip_line(line, is_first);
      if (is_first && fl.layout.header) {
        for (Output* o : {&train, &foldin, &test}) o->os << l << '\n';
        continue;
      }
      const std::uint8_t d = dest[i++];
      if (d & kTrain) {
        train.os << l << '\n';
        ++s.train_rows;
      }
      if (d & kFoldin) {
        foldin.os << l << '\n';
        ++s.foldin_rows;
      }
      if (d & kTest) {
        test.os << l << '\n';
        ++s.test_rows;
      }
    }
  }
  train.commit();
  foldin.commit();
  test.commit();
  return s;
}

}  // namespace

std::uint64_t seeded_hash(std::uint64_t seed, std::string_view s) {
  std::uint64_t h = rng::kFnvOffset ^ splitmix64(seed);
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return splitmix64(h ^ s.size());
}

SplitModes SplitParams::validate() const {
  SplitModes m;
  m.protocol = parse_mode<SplitProtocol>(protocol,
                                         {{"strong", SplitProtocol::kStrong},
                                          {"weak", SplitProtocol::kWeak},
                                          {"temporal", SplitProtocol::kTemporal},
                                          {"temporal-last", SplitProtocol::kTemporalLast}},
                                         "protocol", "use strong, weak, temporal or temporal-last");
  require(!out.empty(), "out", out, "give the output directory");
  if (m.protocol == SplitProtocol::kTemporalLast) {
    require(!data.empty(), "data", data,
            "give the dataset.h5 whose event log temporal-last splits");
    require(input.events.empty(), "events", input.events.empty() ? "" : input.events.front(),
            "temporal-last reads --data dataset.h5, not an event file");
    return m;
  }
  require(data.empty(), "data", data, "only --protocol temporal-last reads a dataset.h5");
  require(input.events.size() == 1, "events", input.events.size(), "give exactly one event file");
  require(holdout_share > 0 && holdout_share < 1, "holdout-share", holdout_share,
          "must be in (0, 1)");
  require(test_share > 0 && test_share < 1, "test-share", test_share, "must be in (0, 1)");
  require(last_n >= 1, "last-n", last_n, "must be >= 1");
  require(min_user_items >= 1, "min-user-items", min_user_items, "must be >= 1");
  IngestParams ip = input;
  ip.out = out;
  m.input = ip.validate();
  return m;
}

SplitSummary run_split(const SplitParams& p, const Comm& comm) {
  const SplitModes m = p.validate();
  if (m.protocol == SplitProtocol::kTemporalLast) return run_split_temporal_last(p, comm);
  SplitSummary s;
  std::string err;
  int code = 0;
  if (comm.is_root()) {
    try {
      s = split_on_root(p, m);
    } catch (const Error& e) {
      err = e.what();
      code = e.code();
    }
  }
  code = comm.allreduce_value(code, Op::kMax);
  comm.check_all(err, code);
  std::int64_t v[9] = {s.rows,          s.bad_rows,   s.below_min,   s.users,    s.dropped_users,
                       s.heldout_users, s.train_rows, s.foldin_rows, s.test_rows};
  comm.broadcast(std::span<std::int64_t>(v, 9));
  SplitSummary r;
  r.rows = v[0];
  r.bad_rows = v[1];
  r.below_min = v[2];
  r.users = v[3];
  r.dropped_users = v[4];
  r.heldout_users = v[5];
  r.train_rows = v[6];
  r.foldin_rows = v[7];
  r.test_rows = v[8];
  return r;
}

}  // namespace segrec
