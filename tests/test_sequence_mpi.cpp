// Sequence data under MPI: `generate --sequential` is byte-identical at any rank count and
// plants the documented share of successor views; `split --temporal-last` is identical at
// any rank count and agrees with a naive reference; on the temporal split of sequential
// data the "most frequent successor of the last item" oracle beats popularity and a bag of
// items (co-occurrence) baseline, and does not on the same data without --sequential.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "generate_helpers.hpp"
#include "segrec/core/comm.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/ingest/generate.hpp"
#include "segrec/ingest/ingest.hpp"
#include "segrec/serving/split.hpp"

namespace segrec {
namespace {

using namespace gen_test;

constexpr const char* kSplitHeader = "user_id,item_id,event,timestamp,value,price,category";

GenerateParams seq_params(const std::string& tag, bool sequential) {
  auto p = base_params(tag, 600);
  p.items = 300;
  p.categories = 12;
  p.segments = 4;
  p.events_per_user = 30;
  p.sequential = sequential;
  return p;
}

// generate -> ingest -> dataset.h5 at the world's rank count; returns the dataset path.
std::string make_dataset(const GenerateParams& p, const std::string& tag, const Comm& comm) {
  generate(p, comm);
  IngestParams ip;
  ip.events = {p.events_out};
  ip.out = tmp_path(tag + "_ds.h5");
  ip.max_bad_fraction = 0.2;  // --noise breaks some rows
  const Dataset ds = ingest(ip, comm);
  write_dataset(ip.out, ds, comm);
  return ip.out;
}

SplitSummary split_last(const std::string& data, const std::string& out, const Comm& comm) {
  SplitParams sp;
  sp.data = data;
  sp.out = out;
  sp.protocol = "temporal-last";
  return run_split(sp, comm);
}

// ---- generate --sequential ---------------------------------------------------------------

TEST(SequenceMpi, SequentialGenerateIsByteIdenticalToSerialRun) {
  auto p = base_params("seqident", 457);
  p.sequential = true;
  p.noise = 0.05;
  p.round_users = 17;
  check_matches_serial(p, "seqident");
}

// Share of the views that follow a view of the same session (gap under 30 min; sessions
// are at least 31 min apart) and are the previous view's planted successor for the user's
// segment. Also checks that a user's times strictly increase.
double planted_share(const GenerateParams& p) {
  std::vector<std::vector<std::int32_t>> succ;
  for (int s = 0; s < p.segments; ++s) succ.push_back(planted_successors(p, s));
  std::map<std::string, int> segment;
  for (const auto& r : read_csv(p.truth_out, "user_id,segment")) segment[r[0]] = std::stoi(r[1]);
  std::string user;
  std::int64_t view = -1, view_time = 0, time = 0, pairs = 0, hits = 0;
  int increasing = 1;
  for (const auto& r : read_csv(p.events_out, kEventsHeader)) {
    const std::int64_t t = std::stoll(r[4]);
    if (r[0] != user) {
      user = r[0];
      view = -1;
    } else if (t <= time) {
      increasing = 0;
    }
    time = t;
    if (r[3] != "view") continue;
    const std::int64_t item = id_number(r[1], 'i');
    if (view >= 0 && t - view_time < 1800) {
      ++pairs;
      hits += item == succ[static_cast<std::size_t>(segment[user])][static_cast<std::size_t>(view)];
    }
    view = item;
    view_time = t;
  }
  EXPECT_EQ(increasing, 1) << "event times do not strictly increase within a user";
  return pairs ? static_cast<double>(hits) / static_cast<double>(pairs) : 0.0;
}

TEST(SequenceMpi, PlantedSuccessorShare) {
  const Comm world = Comm::world();
  auto p = seq_params("seqshare", true);
  auto q = with_paths(seq_params("seqshare_off", false), "seqshare_off");
  generate(p, world);
  generate(q, world);
  if (world.is_root()) {
    // At least q = 0.5 (the planted steps), plus the draws that hit the successor by chance.
    const double on = planted_share(p), off = planted_share(q);
    EXPECT_GE(on, 0.47);
    EXPECT_LE(on, 0.6);
    EXPECT_LT(off, 0.1);
    std::printf("planted successor share: %.3f with --sequential, %.3f without\n", on, off);
    // Strength 1: every view after a session's first is the successor.
    auto r = with_paths(p, "seqshare_one");
    r.sequence_strength = 1;
    generate(r, Comm());
    EXPECT_GE(planted_share(r), 0.97);
  }
  world.barrier();
}

TEST(SequenceMpi, StrengthIsValidated) {
  auto p = seq_params("seqbad", true);
  p.sequence_strength = 1.5;
  EXPECT_THROW(p.validate(), UsageError);
  p.sequence_strength = 0;
  EXPECT_NO_THROW(p.validate());
}

// ---- split --temporal-last -----------------------------------------------------------------

TEST(SequenceMpi, TemporalLastSplitIsRankInvariantAndMatchesNaiveReference) {
  const Comm world = Comm::world();
  auto p = seq_params("seqsplit", true);
  p.noise = 0.05;  // duplicates (removed by ingest) and rows without value (filled)
  const std::string data = make_dataset(p, "seqsplit", world);
  const std::string dir = tmp_path("seqsplit_out");
  const SplitSummary s = split_last(data, dir, world);
  if (world.is_root()) {
    const std::string sdir = tmp_path("seqsplit_serial");
    const Comm serial;
    const SplitSummary t = split_last(data, sdir, serial);
    for (const char* f : {"/train.csv", "/valid.csv", "/foldin.csv", "/test.csv"}) {
      const std::string a = slurp(dir + f);
      EXPECT_FALSE(a.empty()) << f;
      EXPECT_TRUE(a == slurp(sdir + f)) << f << " differs from the serial run";
    }
    EXPECT_EQ(s.test_rows, t.test_rows);
    EXPECT_EQ(s.dropped_rows, t.dropped_rows);

    // Naive reference from the serially read log: distinct items in order of first event.
    const Dataset ds = read_dataset(data, serial);
    std::map<std::string, std::pair<std::string, std::string>> want;  // user -> (valid, test)
    std::int64_t events = 0;
    for (std::int64_t u = 0; u < ds.n_local(); ++u) {
      std::set<std::int32_t> seen;
      std::vector<std::int32_t> order;
      for (auto q = ds.log_ptr[u]; q < ds.log_ptr[u + 1]; ++q, ++events)
        if (seen.insert(ds.log_item[q]).second) order.push_back(ds.log_item[q]);
      if (order.size() >= 3)
        want[ds.user_ids[u]] = {ds.item_ids[order[order.size() - 2]], ds.item_ids[order.back()]};
    }
    EXPECT_EQ(s.rows, events);
    EXPECT_EQ(s.heldout_users, static_cast<std::int64_t>(want.size()));
    EXPECT_GT(want.size(), 500u);
    std::map<std::string, std::pair<std::string, std::string>> got;
    for (const auto& r : read_csv(dir + "/valid.csv", kSplitHeader)) {
      EXPECT_EQ(got.count(r[0]), 0u) << "two validation rows for " << r[0];
      got[r[0]].first = r[1];
    }
    std::map<std::string, double> target_time;
    for (const auto& r : read_csv(dir + "/test.csv", kSplitHeader)) {
      EXPECT_TRUE(got[r[0]].second.empty()) << "two test rows for " << r[0];
      got[r[0]].second = r[1];
      target_time[r[0]] = std::stod(r[3]);
    }
    EXPECT_TRUE(got == want) << "targets differ from the naive reference";
    // No target in its own history; fold-in = train + the rows up to the test target.
    std::set<std::pair<std::string, std::string>> train_pairs, foldin_pairs;
    const auto train = read_csv(dir + "/train.csv", kSplitHeader);
    const auto foldin = read_csv(dir + "/foldin.csv", kSplitHeader);
    for (const auto& r : train) train_pairs.insert({r[0], r[1]});
    for (const auto& r : foldin) {
      foldin_pairs.insert({r[0], r[1]});
      EXPECT_LE(std::stod(r[3]), target_time[r[0]]) << r[0];
    }
    for (const auto& [u, vt] : want) {
      EXPECT_EQ(train_pairs.count({u, vt.first}), 0u) << u;
      EXPECT_EQ(foldin_pairs.count({u, vt.second}), 0u) << u;
      EXPECT_EQ(foldin_pairs.count({u, vt.first}), 1u) << u;
    }
    EXPECT_EQ(s.valid_rows, s.heldout_users);
    EXPECT_EQ(s.test_rows, s.heldout_users);
    EXPECT_GE(s.foldin_rows, s.valid_rows + static_cast<std::int64_t>(want.size()));
  }
  world.barrier();
}

// ---- the planted order is visible on the temporal split -------------------------------------

struct Hits {
  double popularity = 0, bag = 0, successor = 0, successor_top1 = 0;
};

// Top-10 hit rates on OUT/test.csv of: training popularity (users per item); the bag of
// items (sum over the history's items of user co-occurrence counts in train.csv); the
// successor oracle (items most often right after the history's last item in train.csv,
// popularity after them). History items are never recommended.
Hits oracle_hits(const std::string& dir, std::int64_t n_items) {
  const auto n = static_cast<std::size_t>(n_items);
  std::map<std::string, std::vector<std::size_t>> train, foldin;  // user -> items, log order
  for (const auto& r : read_csv(dir + "/train.csv", kSplitHeader))
    train[r[0]].push_back(static_cast<std::size_t>(id_number(r[1], 'i')));
  for (const auto& r : read_csv(dir + "/foldin.csv", kSplitHeader))
    foldin[r[0]].push_back(static_cast<std::size_t>(id_number(r[1], 'i')));
  std::vector<std::int64_t> pop(n, 0), next(n * n, 0), co(n * n, 0);  // next, co: n x n
  for (const auto& [u, seq] : train) {
    std::vector<std::size_t> items(seq);
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    for (std::size_t i : items) {
      ++pop[i];
      for (std::size_t j : items) co[i * n + j] += i != j;
    }
    for (std::size_t k = 1; k < seq.size(); ++k)
      if (seq[k] != seq[k - 1]) ++next[seq[k - 1] * n + seq[k]];
  }
  // Items with a positive count, by count (descending), ties by index.
  const auto ranked = [n](const std::int64_t* c) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < n; ++i)
      if (c[i] > 0) out.push_back(i);
    std::stable_sort(out.begin(), out.end(),
                     [c](std::size_t a, std::size_t b) { return c[a] > c[b]; });
    return out;
  };
  const std::vector<std::size_t> popular = ranked(pop.data());
  Hits h;
  std::int64_t users = 0;
  std::vector<std::int64_t> bag(n);
  for (const auto& r : read_csv(dir + "/test.csv", kSplitHeader)) {
    const auto target = static_cast<std::size_t>(id_number(r[1], 'i'));
    const auto& hist = foldin[r[0]];
    std::vector<char> seen(n, 0);
    for (std::size_t i : hist) seen[i] = 1;
    // The first 10 unseen items of `first`, then of popularity.
    const auto top10 = [&](std::vector<std::size_t> first) {
      std::vector<std::size_t> out;
      first.insert(first.end(), popular.begin(), popular.end());
      for (std::size_t i : first)
        if (!seen[i] && std::find(out.begin(), out.end(), i) == out.end()) {
          out.push_back(i);
          if (out.size() == 10) break;
        }
      return out;
    };
    const auto hit = [&](const std::vector<std::size_t>& l) {
      return std::find(l.begin(), l.end(), target) != l.end() ? 1.0 : 0.0;
    };
    std::fill(bag.begin(), bag.end(), 0);
    for (std::size_t i = 0; i < n; ++i)
      if (seen[i])
        for (std::size_t j = 0; j < n; ++j) bag[j] += co[i * n + j];
    const auto succ = top10(ranked(next.data() + hist.back() * n));
    h.popularity += hit(top10({}));
    h.bag += hit(top10(ranked(bag.data())));
    h.successor += hit(succ);
    h.successor_top1 += !succ.empty() && succ[0] == target;
    ++users;
  }
  for (double* x : {&h.popularity, &h.bag, &h.successor, &h.successor_top1})
    *x /= static_cast<double>(std::max<std::int64_t>(users, 1));
  return h;
}

TEST(SequenceMpi, SuccessorOracleBeatsPopularityOnlyWithPlantedOrder) {
  const Comm world = Comm::world();
  Hits on, off;
  for (bool sequential : {true, false}) {
    const std::string tag = sequential ? "seqoracle" : "seqoracle_off";
    auto p = with_paths(seq_params(tag, sequential), tag);
    const std::string dir = tmp_path(tag + "_split");
    split_last(make_dataset(p, tag, world), dir, world);
    if (world.is_root()) (sequential ? on : off) = oracle_hits(dir, p.items);
  }
  if (world.is_root()) {
    std::printf(
        "HR@10 popularity / bag / successor (HR@1): with order %.3f / %.3f / %.3f (%.3f), "
        "without %.3f / %.3f / %.3f (%.3f)\n",
        on.popularity, on.bag, on.successor, on.successor_top1, off.popularity, off.bag,
        off.successor, off.successor_top1);
    EXPECT_GT(on.successor, on.popularity + 0.25);
    EXPECT_GT(on.successor, on.bag + 0.1);
    EXPECT_GT(on.successor_top1, off.successor_top1 + 0.08);
    EXPECT_LT(off.successor, off.bag + 0.02);  // without order the last item adds nothing
  }
  world.barrier();
}

}  // namespace
}  // namespace segrec
