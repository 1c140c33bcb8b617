// The cluster stage end to end under mpirun: synthetic projection.h5, profiles.h5 and
// dataset.h5 in; every output must equal the one a serial run writes.
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
#include <sstream>

#include "kmeans_reference.hpp"
#include "scratch_dir.hpp"
#include "segment_report_fixture.hpp"
#include "segrec/core/error.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/segmentation/cluster.hpp"
#include "segrec/segmentation/dbscan/dbscan.hpp"
#include "segrec/segmentation/profile.hpp"
#include "segrec/segmentation/project.hpp"
#include "segrec/segmentation/view.hpp"

namespace segrec {
namespace {

using report_fixture::kUsers;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Writes projection.h5 (pointing at profiles.h5 by a relative name), profiles.h5
/// (pointing at dataset.h5) and dataset.h5 for the 200 fixture users into `dir`.
void write_inputs(const std::string& dir, const Comm& comm, bool poison = false) {
  const Block b = block_partition(kUsers, comm.size(), comm.rank());
  std::vector<std::string> ids;
  for (std::int64_t u = b.begin; u < b.end; ++u) ids.push_back("user" + std::to_string(u));
  write_dataset(dir + "/dataset.h5", report_fixture::dataset(b.begin, b.end), comm);
  {
    h5::File f = h5::File::create(dir + "/profiles.h5", comm, kProfilesFormat);
    f.create_group("/users");
    f.write_strings("/users/ids", ids, true);
    f.create_group("/dense");
    const auto st = report_fixture::stats(b.begin, b.end);
    f.write_strings("/dense/names", st.names, false);
    f.write_rows<float>("/dense/raw", std::span<const float>(st.raw.data(), st.raw.size()), 2);
    f.set_attr("/", "dataset", std::string("dataset.h5"));
    f.commit();
  }
  {
    // Three blobs along the fixture's segments, so the clustering recovers them.
    const MatrixRF blobs = testing_ref::make_blobs(kUsers, 3, 1, 0.0, 5);
    MatrixRF H = blobs.middleRows(b.begin, b.size());
    for (std::int64_t u = b.begin; u < b.end; ++u)
      H(u - b.begin, report_fixture::segment_of(u)) += 40.0f;
    if (poison && comm.rank() == comm.size() - 1) H(H.rows() - 1, 0) = std::nanf("");
    h5::File f = h5::File::create(dir + "/projection.h5", comm, kProjectionFormat);
    f.write_rows<float>("/H", std::span<const float>(H.data(), H.size()), 3);
    f.create_group("/users");
    f.write_strings("/users/ids", ids, true);
    f.set_attr("/", "profiles", std::string("profiles.h5"));
    f.commit();
  }
}

std::string make_dir(const std::string& name, const Comm& comm) {
  return testing_tmp::scratch_dir("cluster_stage/" + name, comm, /*fresh=*/true);
}

ClusterFiles files_in(const std::string& in, const std::string& out) {
  ClusterFiles f;
  f.projection = in + "/projection.h5";
  f.out = out + "/segments.h5";
  f.segments_csv = out + "/segments.csv";
  f.report = out + "/segments";
  return f;
}

TEST(ClusterStage, OutputsMatchASerialRun) {
  const Comm world = Comm::world();
  const std::string dir = make_dir("stage", world);
  write_inputs(dir, world);
  KMeansParams p;
  p.k = "2:4";
  p.silhouette_sample = 64;
  const SegmentReportParams rp;
  const auto dist = run_cluster_stage(files_in(dir, dir), p, ViewParams{}, rp, world);
  EXPECT_EQ(dist.run.result.k, 3);
  EXPECT_EQ(dist.profiles_used, dir + "/profiles.h5");  // found next to the projection
  EXPECT_EQ(dist.data_used, dir + "/dataset.h5");
  EXPECT_TRUE(dist.notes.empty());
  // Every rank repeats the stage serially into its own folder.
  const Comm serial;
  const std::string mine = dir + "/serial" + std::to_string(world.rank());
  std::filesystem::create_directories(mine);
  const auto ser = run_cluster_stage(files_in(dir, mine), p, ViewParams{}, rp, serial);
  EXPECT_EQ(ser.run.result.k, 3);
  world.barrier();
  // The report JSON's timings_s line is wall time; everything else must match.
  auto untimed = [](std::string s) {
    const auto a = s.find("\n  \"timings_s\": {");
    EXPECT_NE(a, std::string::npos) << s;
    if (a != std::string::npos) s.erase(a, s.find('\n', a + 1) - a);
    return s;
  };
  for (const char* f : {"/segments.csv", "/segments.md"})
    EXPECT_EQ(slurp(dir + f), slurp(mine + f)) << f;
  EXPECT_EQ(untimed(slurp(dir + "/segments.json")), untimed(slurp(mine + "/segments.json")));
  const std::string md = slurp(dir + "/segments.md");
  // The recovered segments carry the fixture's items and statistics.
  EXPECT_NE(md.find("item b over-represented (lift 3.3)"), std::string::npos) << md;
  EXPECT_NE(md.find("(not described: too few users)"), std::string::npos) << md;
  const auto csv = slurp(dir + "/segments.csv");
  EXPECT_EQ(csv.rfind("user_id,segment\nuser0,", 0), 0u);
}

TEST(ClusterStage, MissingReportInputsBecomeNotes) {
  const Comm world = Comm::world();
  const std::string dir = make_dir("stage_notes", world);
  write_inputs(dir, world);
  if (world.is_root()) std::filesystem::remove(dir + "/dataset.h5");
  world.barrier();
  KMeansParams p;
  p.k = "3";
  const auto out =
      run_cluster_stage(files_in(dir, dir), p, ViewParams{}, SegmentReportParams{}, world);
  ASSERT_EQ(out.notes.size(), 1u);
  EXPECT_NE(out.notes[0].find("dataset.h5"), std::string::npos);
  EXPECT_TRUE(out.data_used.empty());
  const std::string js = slurp(dir + "/segments.json");
  EXPECT_NE(js.find("item lifts omitted"), std::string::npos) << js;
}

TEST(ClusterStage, BadInputsAreCollectiveDataErrors) {
  const Comm world = Comm::world();
  const std::string dir = make_dir("stage_bad", world);
  write_inputs(dir, world, /*poison=*/true);
  KMeansParams p;
  p.k = "3";
  try {
    run_cluster_stage(files_in(dir, dir), p, ViewParams{}, SegmentReportParams{}, world);
    FAIL() << "NaN accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitData);
    EXPECT_TRUE(e.collective());
    EXPECT_NE(std::string(e.what()).find("row 199"), std::string::npos) << e.what();
  }
  p.k = "201";
  const std::string ok = make_dir("stage_bad_k", world);
  write_inputs(ok, world);
  EXPECT_THROW(run_cluster_stage(files_in(ok, ok), p, ViewParams{}, SegmentReportParams{}, world),
               DataError);
  EXPECT_FALSE(std::filesystem::exists(ok + "/segments.h5"));
}

// A one-block view clusters the block's columns alone and widens the result (cluster.cpp):
// the same labels and centroids as K-means on the full-width viewed rows (the other block's
// columns all 0), centroids 0 outside the block, the whitening the identity there.
TEST(ClusterStage, OneBlockViewMatchesTheFullWidth) {
  const Comm world = Comm::world();
  const Comm serial;
  constexpr std::int64_t kInterest = 3, kValue = 3, kH = kInterest + kValue;
  // Interest: structureless noise; value: three blobs along the fixture's segments.
  const MatrixRF noise = testing_ref::make_blobs(kUsers, kInterest, 1, 0.0, 7);
  const MatrixRF blobs = testing_ref::make_blobs(kUsers, kValue, 3, 6.0, 8);
  MatrixRF H(kUsers, kH);
  H << noise, blobs;
  for (const char* view : {"value", "interest"}) {
    SCOPED_TRACE(view);
    const std::string dir = make_dir(std::string("stage_block_") + view, world);
    write_inputs(dir, world);
    const Block b = block_partition(kUsers, world.size(), world.rank());
    {
      std::vector<std::string> ids;
      for (std::int64_t u = b.begin; u < b.end; ++u) ids.push_back("user" + std::to_string(u));
      const MatrixRF mine = H.middleRows(b.begin, b.size());
      h5::File f = h5::File::create(dir + "/projection.h5", world, kProjectionFormat);
      f.write_rows<float>("/H", std::span<const float>(mine.data(), mine.size()), kH);
      f.create_group("/users");
      f.write_strings("/users/ids", ids, true);
      f.set_attr("/", "interest_dims", kInterest);
      f.set_attr("/", "value_dims", kValue);
      f.commit();
    }
    KMeansParams p;
    p.k = "2:4";
    p.silhouette_sample = 64;
    ViewParams vp;
    vp.view = view;
    const auto out = run_cluster_stage(files_in(dir, dir), p, vp, SegmentReportParams{}, world);
    const KMeansResult& r = out.run.result;
    const bool tied = std::string(view) == "value";
    ASSERT_EQ(out.view.whitened(), tied);
    // The reference: every row viewed at full width, clustered serially.
    ViewTransform v = out.view;
    v.whitening.resize(0, 0);
    MatrixRF X = H;
    v.apply(X);
    KMeansModes modes = p.validate();
    modes.tied = tied;
    const ClusterRun ref = cluster(X, p, modes, serial);
    ASSERT_EQ(r.k, ref.result.k);
    EXPECT_EQ(r.labels, std::vector<std::int32_t>(ref.result.labels.begin() + b.begin,
                                                  ref.result.labels.begin() + b.end));
    ASSERT_EQ(r.centroids.cols(), kH);
    const std::int64_t first = tied ? kInterest : 0, count = tied ? kValue : kInterest;
    EXPECT_LT((r.centroids - ref.result.centroids).cwiseAbs().maxCoeff(), 1e-5);
    for (std::int64_t j = 0; j < kH; ++j)
      if (j < first || j >= first + count) {
        EXPECT_EQ(r.centroids.col(j).cwiseAbs().maxCoeff(), 0.0) << "column " << j;
      }
    if (tied) {
      ASSERT_EQ(out.view.whitening.rows(), kH);
      EXPECT_LT((out.view.whitening - ref.whitening).cwiseAbs().maxCoeff(), 1e-9);
      EXPECT_TRUE(out.view.whitening.topLeftCorner(kInterest, kInterest).isIdentity(0.0));
      EXPECT_TRUE(out.view.whitening.topRightCorner(kInterest, kValue).isZero(0.0));
      // DBSCAN on the same view: the labels and cluster means of the full-width rows.
      DbscanParams dp;
      dp.eps = "1.5";
      dp.min_samples = 5;
      const auto db =
          run_cluster_stage(files_in(dir, dir), p, vp, SegmentReportParams{}, world, &dp);
      const DbscanResult dref = dbscan(X, dp, dp.validate(), serial);
      ASSERT_GT(dref.k, 1);
      EXPECT_EQ(db.dbscan.labels, std::vector<std::int32_t>(dref.labels.begin() + b.begin,
                                                            dref.labels.begin() + b.end));
      ASSERT_EQ(db.dbscan.centroids.cols(), kH);
      EXPECT_LT((db.dbscan.centroids - dref.centroids).cwiseAbs().maxCoeff(), 1e-4);
      EXPECT_EQ(db.dbscan.centroids.leftCols(kInterest).cwiseAbs().maxCoeff(), 0.0f);
    }
  }
}

}  // namespace
}  // namespace segrec
