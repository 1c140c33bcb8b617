// The segment report on a serial communicator: item lifts and behavioural contrasts
// against hand-computed values, the k-anonymity floor, the written files.
// GCC 12 false positives inside its AVX-512 intrinsics as inlined by Eigen (see kmeans.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "scratch_dir.hpp"
#include "segment_report_fixture.hpp"
#include "segrec/core/error.hpp"
#include "segrec/segmentation/segment_report.hpp"

namespace segrec {
namespace {

using report_fixture::kUsers;

TEST(SegmentReport, ItemLiftsAndStatisticsMatchHandValues) {
  const Comm comm;
  const auto ds = report_fixture::dataset(0, kUsers);
  const auto labels = report_fixture::labels(0, kUsers);
  const auto stats = report_fixture::stats(0, kUsers);
  const SegmentReportParams p;
  const auto rep = build_segment_report(labels, report_fixture::sizes(), &ds, &stats, p, comm);
  ASSERT_EQ(rep.segments.size(), 3u);
  EXPECT_EQ(rep.n_users, 200);
  const auto& s0 = rep.segments[0];
  const auto& s1 = rep.segments[1];
  const auto& s2 = rep.segments[2];
  EXPECT_TRUE(s0.described);
  EXPECT_TRUE(s1.described);
  EXPECT_FALSE(s2.described);  // 40 users < 50
  EXPECT_DOUBLE_EQ(s0.share, 0.5);
  // Segment 0: a (100/100) / (110/200) = 1.8182, d (10/100) / (50/200) = 0.4; c has 3 < 5 users.
  ASSERT_EQ(s0.items.size(), 2u);
  EXPECT_EQ(s0.items[0].item_id, "a");
  EXPECT_NEAR(s0.items[0].lift, 1.0 / 0.55, 1e-12);
  EXPECT_EQ(s0.items[0].users, 100);
  EXPECT_NEAR(s0.items[0].global_rate, 0.55, 1e-12);
  EXPECT_EQ(s0.items[1].item_id, "d");
  EXPECT_NEAR(s0.items[1].lift, 0.4, 1e-12);
  // Segment 1: b (20/60) / (20/200) = 3.3333, a (10/60) / 0.55 = 0.30303.
  ASSERT_EQ(s1.items.size(), 2u);
  EXPECT_EQ(s1.items[0].item_id, "b");
  EXPECT_NEAR(s1.items[0].lift, (20.0 / 60) / 0.1, 1e-12);
  EXPECT_EQ(s1.items[1].item_id, "a");
  EXPECT_NEAR(s1.items[1].rate, 10.0 / 60, 1e-12);
  EXPECT_TRUE(s2.items.empty());
  EXPECT_TRUE(s2.stats.empty());
  EXPECT_TRUE(s2.description.empty());
  // spend: segment 0 all 10, segment 1 all 0, segment 2 undefined: mean 6.25, sd sqrt(23.4375).
  ASSERT_EQ(s0.stats.size(), 2u);
  EXPECT_EQ(s0.stats[0].name, "spend");
  EXPECT_NEAR(s0.stats[0].mean, 10.0, 1e-12);
  EXPECT_NEAR(s0.stats[0].global_mean, 6.25, 1e-12);
  EXPECT_NEAR(s0.stats[0].z, 3.75 / std::sqrt(23.4375), 1e-12);
  // visits: 1 except segment 1 (3): mean 1.6, sd sqrt(0.84).
  EXPECT_NEAR(s1.stats[1].z, 1.4 / std::sqrt(0.84), 1e-12);
  EXPECT_EQ(s0.description, "high spend; low visits; item a over-represented (lift 1.8)");
  EXPECT_EQ(s1.description, "very high visits; very low spend; item b over-represented (lift 3.3)");
}

TEST(SegmentReport, FloorAndOptionalInputs) {
  const Comm comm;
  const auto labels = report_fixture::labels(0, kUsers);
  SegmentReportParams p;
  p.min_report_users = 100;  // only segment 0 qualifies
  p.min_item_users = 1;      // item c (3 users) is listed now
  const auto ds = report_fixture::dataset(0, kUsers);
  const auto rep = build_segment_report(labels, report_fixture::sizes(), &ds, nullptr, p, comm);
  EXPECT_TRUE(rep.segments[0].described);
  EXPECT_FALSE(rep.segments[1].described);
  ASSERT_EQ(rep.segments[0].items.size(), 3u);
  EXPECT_EQ(rep.segments[0].items[0].item_id, "c");  // (3/100) / (3/200) = 2
  EXPECT_EQ(rep.segments[0].items[1].item_id, "a");  // 1.82
  EXPECT_EQ(rep.segments[0].items[2].item_id, "d");  // 0.4
  EXPECT_EQ(rep.notes.size(), 1u);                   // no profiles
  const auto bare = build_segment_report(labels, report_fixture::sizes(), nullptr, nullptr,
                                         SegmentReportParams{}, comm);
  EXPECT_EQ(bare.notes.size(), 2u);
  EXPECT_TRUE(bare.segments[0].items.empty());
  p.top_items = 1;
  const auto top1 = build_segment_report(labels, report_fixture::sizes(), &ds, nullptr, p, comm);
  EXPECT_EQ(top1.segments[0].items.size(), 1u);
}

TEST(SegmentReport, FilesAreWrittenWhole) {
  const Comm comm;
  const std::string dir = testing_tmp::scratch_dir("report");
  const auto ds = report_fixture::dataset(0, kUsers);
  const auto stats = report_fixture::stats(0, kUsers);
  const auto labels = report_fixture::labels(0, kUsers);
  auto rep = build_segment_report(labels, report_fixture::sizes(), &ds, &stats,
                                  SegmentReportParams{}, comm);
  rep.quality.silhouette = 0.5;
  write_segment_report(rep, dir + "/seg.md", dir + "/seg.json", comm);
  std::ifstream md(dir + "/seg.md"), js(dir + "/seg.json");
  std::stringstream a, b;
  a << md.rdbuf();
  b << js.rdbuf();
  EXPECT_EQ(a.str(), rep.markdown());
  EXPECT_EQ(b.str(), rep.json());
  EXPECT_NE(a.str().find("| 2 | 40 | 20.0% | (not described: too few users) |"), std::string::npos)
      << a.str();
  EXPECT_NE(a.str().find("## Segment 1: 60 users (30.0%)"), std::string::npos);
  EXPECT_NE(b.str().find("\"silhouette\": 0.5,"), std::string::npos) << b.str();
  EXPECT_NE(b.str().find("\"davies_bouldin\": null"), std::string::npos);
  EXPECT_NE(b.str().find("{\"id\": 2, \"size\": 40, \"share\": 0.2, \"described\": false}"),
            std::string::npos);
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().string().find(".tmp-"), std::string::npos) << e.path();
  // An unwritable destination is an IoError.
  EXPECT_THROW(write_segment_report(rep, "/nonexistent/x.md", "/nonexistent/x.json", comm), Error);
}

TEST(SegmentReport, BadParameters) {
  SegmentReportParams p;
  p.min_report_users = 0;
  EXPECT_THROW(p.validate(), UsageError);
  p = {};
  p.top_items = -1;
  EXPECT_THROW(p.validate(), UsageError);
  p = {};
  p.min_item_users = 0;
  EXPECT_THROW(p.validate(), UsageError);
  EXPECT_NO_THROW(SegmentReportParams{}.validate());
}

}  // namespace
}  // namespace segrec

namespace segrec {
namespace {

// The k-anonymity floor holds in the written report: a segment under --min-report-users shows
// its size only, never its items, statistics or description, in the markdown and the JSON.
TEST(SegmentReport, SmallSegmentsRevealOnlyTheirSize) {
  const Comm comm;
  const auto labels = report_fixture::labels(0, kUsers);
  SegmentReportParams p;
  p.min_report_users = 100;  // segment 0 qualifies, segment 1 does not
  p.min_item_users = 1;
  const auto ds = report_fixture::dataset(0, kUsers);
  const auto rep = build_segment_report(labels, report_fixture::sizes(), &ds, nullptr, p, comm);
  ASSERT_TRUE(rep.segments[0].described);
  ASSERT_FALSE(rep.segments[1].described);
  const std::string md = rep.markdown(), json = rep.json();
  EXPECT_NE(md.find("## Segment 0"), std::string::npos);
  EXPECT_EQ(md.find("## Segment 1"), std::string::npos);
  EXPECT_NE(md.find("(not described: too few users)"), std::string::npos);
  const auto at1 = json.find("{\"id\": 1,");
  ASSERT_NE(at1, std::string::npos);
  const std::string seg1 = json.substr(at1, json.find('}', at1) - at1);
  EXPECT_EQ(seg1.find("items"), std::string::npos) << seg1;
  EXPECT_EQ(seg1.find("description"), std::string::npos) << seg1;
  EXPECT_NE(seg1.find("\"described\": false"), std::string::npos) << seg1;
  // Everyone in one segment over the floor: all described; the default floor is 50.
  EXPECT_EQ(SegmentReportParams{}.min_report_users, 50);
}

}  // namespace
}  // namespace segrec

namespace segrec {
namespace {

// Value and categories: M = 10 per user in segment 0, 5 in segment 1, 1 in segment 2
// (revenue 1000 + 300 + 40); R = 3 / 30 / undefined days; F = 2 / 1 / 0. Items a and c
// are "books", b "games", d has no category; items are named.
TEST(SegmentReport, RevenueSharesRfmNamesAndCategories) {
  const Comm comm;
  auto ds = report_fixture::dataset(0, kUsers);
  ds.item_names = {"Alpha", "Beta", "", "Delta"};
  ds.categories = {"books", "games"};
  ds.item_category = {0, 1, 0, -1};
  auto stats = report_fixture::stats(0, kUsers);
  for (std::int64_t u = 0; u < kUsers; ++u) {
    const auto s = report_fixture::segment_of(u);
    const float r = s == 0 ? 3.0f : (s == 1 ? 30.0f : std::numeric_limits<float>::quiet_NaN());
    stats.rfm_values.insert(stats.rfm_values.end(), {r, static_cast<float>(2 - s),
                                                     s == 0 ? 10.0f : (s == 1 ? 5.0f : 1.0f)});
    const std::uint8_t sc = static_cast<std::uint8_t>(5 - 2 * s);
    stats.rfm_scores.insert(stats.rfm_scores.end(), {sc, sc, sc});
  }
  const auto labels = report_fixture::labels(0, kUsers);
  const auto rep = build_segment_report(labels, report_fixture::sizes(), &ds, &stats,
                                        SegmentReportParams{}, comm);
  ASSERT_TRUE(rep.has_rfm);
  double total = 0;
  for (const auto& s : rep.segments) total += s.value.revenue_share;
  EXPECT_NEAR(total, 1.0, 1e-12);
  const auto& s0 = rep.segments[0];
  const auto& s1 = rep.segments[1];
  EXPECT_NEAR(s0.value.revenue_share, 1000.0 / 1340, 1e-12);
  EXPECT_NEAR(rep.segments[2].value.revenue_share, 40.0 / 1340, 1e-12);
  EXPECT_NEAR(s1.value.mean[0], 30, 1e-12);
  EXPECT_NEAR(s1.value.mean[1], 1, 1e-12);
  EXPECT_NEAR(s1.value.mean_score[2], 3, 1e-12);
  EXPECT_TRUE(std::isnan(rep.segments[2].value.mean[0]));                // not described
  EXPECT_NEAR(rep.overall.mean[0], (100 * 3 + 60 * 30) / 160.0, 1e-12);  // R defined for 160
  EXPECT_NEAR(rep.overall.mean[2], 1340.0 / 200, 1e-12);
  // Names next to ids.
  ASSERT_FALSE(s0.items.empty());
  EXPECT_EQ(s0.items[0].name, "Alpha");
  // Categories: segment 1 has 10 books and 20 games events, all users 113 and 20 of 133.
  ASSERT_EQ(s1.categories.size(), 2u);
  EXPECT_EQ(s1.categories[0].name, "games");
  EXPECT_NEAR(s1.categories[0].share, 2.0 / 3, 1e-12);
  EXPECT_NEAR(s1.categories[0].global_share, 20.0 / 133, 1e-12);
  EXPECT_NEAR(s1.categories[0].lift, (2.0 / 3) / (20.0 / 133), 1e-12);
  ASSERT_EQ(s0.categories.size(), 1u);
  EXPECT_NEAR(s0.categories[0].lift, 133.0 / 113, 1e-12);
  EXPECT_TRUE(rep.segments[2].categories.empty());
  EXPECT_EQ(s1.description,
            "very high visits; very low spend; item Beta (b) over-represented (lift 3.3); top "
            "categories games; 22.4% of revenue from 30.0% of users");
  const std::string md = rep.markdown(), json = rep.json();
  EXPECT_NE(md.find("| segment | users | share | revenue share | description |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| 0 | 100 | 50.0% | 74.6% |"), std::string::npos) << md;
  EXPECT_NE(md.find("| Beta (b) | 20 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| games | 66.7% | 15.0% | 4.43 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| recency (days) | 30.00 | "), std::string::npos) << md;
  EXPECT_NE(json.find("\"name\": \"Beta\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"categories\": [{\"name\": \"games\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"revenue_share\": 0.7462686567"), std::string::npos) << json;
}

}  // namespace
}  // namespace segrec
