// K-means under mpirun (1, 2 and 4 ranks): every result must equal a run on a serial
// communicator over the full data, which every rank also computes.
// GCC 12 false positives inside its AVX-512 intrinsics as inlined by Eigen (see kmeans.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "../src/segmentation/kmeans/internal.hpp"  // swap_refine from a set start
#include "kmeans_reference.hpp"
#include "scratch_dir.hpp"
#include "segment_report_fixture.hpp"
#include "segrec/core/error.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/segmentation/kmeans/init.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"
#include "segrec/segmentation/kmeans/output.hpp"
#include "segrec/segmentation/kmeans/quality.hpp"
#include "segrec/segmentation/segment_report.hpp"

namespace segrec {
namespace {

using testing_ref::make_blobs;
using testing_ref::max_rel_diff;

std::string scratch_dir(const Comm& comm) { return testing_tmp::scratch_dir("kmeans", comm); }

struct Slice {
  MatrixRF local;
  Block block;
};

Slice slice(const MatrixRF& X, const Comm& comm) {
  const Block b = block_partition(X.rows(), comm.size(), comm.rank());
  return {X.middleRows(b.begin, b.size()), b};
}

std::vector<std::int32_t> part(const std::vector<std::int32_t>& v, Block b) {
  return {v.begin() + b.begin, v.begin() + b.end};
}

void expect_same(const KMeansResult& dist, const KMeansResult& ser, Block b,
                 const std::string& what) {
  EXPECT_EQ(dist.labels, part(ser.labels, b)) << what;
  EXPECT_LE(max_rel_diff(dist.centroids, ser.centroids), 1e-6) << what;
  EXPECT_EQ(dist.sizes, ser.sizes) << what;
  EXPECT_EQ(dist.n_iter, ser.n_iter) << what;
  EXPECT_EQ(dist.restart, ser.restart) << what;
  EXPECT_EQ(dist.relocated, ser.relocated) << what;
  EXPECT_EQ(dist.swaps, ser.swaps) << what;
  EXPECT_EQ(dist.swap_runs, ser.swap_runs) << what;
  EXPECT_NEAR(dist.inertia, ser.inertia, 1e-9 * std::max(1.0, ser.inertia)) << what;
}

struct InvCase {
  std::string init;
  bool spherical;
  int threads;
  std::int64_t n, h;
  int blobs, k, n_init;
  std::string kernel = "auto";
};

class RankInvariance : public ::testing::TestWithParam<InvCase> {};

TEST_P(RankInvariance, LabelsAndCentroidsMatchSerial) {
  const auto c = GetParam();
  const Comm world = Comm::world();
  const Comm serial;
  const MatrixRF X = make_blobs(c.n, c.h, c.blobs, 3.0, 100 + c.k);
  const Slice s = slice(X, world);
  KMeansParams p;
  p.k = std::to_string(c.k);
  p.init = c.init;
  p.spherical = c.spherical;
  p.threads = c.threads;
  p.n_init = c.n_init;
  p.seed = 9;
  p.kernel = c.kernel;
  const auto dist = kmeans(s.local, c.k, p, world);
  const auto ser = kmeans(X, c.k, p, serial);
  expect_same(dist, ser, s.block, c.init);
}

INSTANTIATE_TEST_SUITE_P(
    Inits, RankInvariance,
    ::testing::Values(InvCase{"k-means++", false, 1, 3000, 16, 12, 20, 2},
                      InvCase{"k-means++", false, 2, 1337, 7, 5, 9, 1},
                      InvCase{"k-means||", false, 1, 3000, 16, 12, 20, 2},
                      InvCase{"k-means||", true, 2, 2500, 9, 8, 6, 1},
                      InvCase{"random", false, 1, 2048, 33, 30, 40, 3},
                      InvCase{"random", true, 1, 999, 4, 3, 5, 1},
                      InvCase{"k-means++", false, 1, 3, 2, 2, 2, 1},         // ranks without users
                      InvCase{"k-means++", false, 1, 600, 64, 700, 600, 1},  // k = n
                      InvCase{"k-means||", false, 2, 2000, 12, 9, 17, 1, "gemm"},
                      InvCase{"random", true, 1, 1234, 40, 6, 70, 2, "gemm"}));

TEST(KMeansMpi, RelocationMatchesSerial) {
  const Comm world = Comm::world();
  const Comm serial;
  const MatrixRF X = make_blobs(900, 5, 4, 6.0, 7);
  const Slice s = slice(X, world);
  MatrixRF init = X.topRows(7);
  for (int j = 3; j < 7; ++j) init.row(j).setConstant(800.0f + j);
  KMeansParams p;
  p.k = "7";
  p.tol = 0;
  const auto dist = lloyd(s.local, init, p, world);
  const auto ser = lloyd(X, init, p, serial);
  EXPECT_EQ(dist.iterations[0].relocated, 4);
  expect_same(dist, ser, s.block, "relocation");
  // Bytes per iteration: the packed allreduce, (k*h + k + 2) doubles, plus the relocation
  // collectives in the first iteration only.
  if (world.size() > 1) {
    for (std::size_t i = 1; i < dist.iterations.size(); ++i)
      EXPECT_EQ(dist.iterations[i].bytes, lloyd_allreduce_bytes(7, 5));
  }
}

TEST(KMeansMpi, SwapsMatchSerial) {
  // Merge-split moves out of a local optimum: the same moves, labels and inertia at any rank
  // count, plain and with Hamerly's bounds.
  const Comm world = Comm::world();
  const Comm serial;
  const auto b = testing_ref::line_blobs(250, 5);
  const Slice s = slice(b.X, world);
  for (const std::string alg : {"lloyd", "hamerly"}) {
    KMeansParams p;
    p.k = "4";
    p.algorithm = alg;
    const KMeansModes m = p.validate();
    const auto run = [&](const MatrixRF& X, const Comm& comm) {
      const auto L = kmeans_detail::make_layout(X.rows(), comm);
      const auto ex = kmeans_detail::exec_of(p, m);
      const double tol = p.tol * kmeans_detail::mean_variance(X, L, comm);
      return kmeans_detail::swap_refine(
          X, L, kmeans_detail::lloyd_impl(X, L, b.trap, p, m, tol, ex, comm), 4, p, m, tol, ex,
          comm);
    };
    const auto dist = run(s.local, world);
    const auto ser = run(b.X, serial);
    EXPECT_GE(ser.swaps, 1) << alg;
    expect_same(dist, ser, s.block, "swaps " + alg);
  }
}

TEST(KMeansMpi, HamerlyMatchesSerialLloyd) {
  // Hamerly's bounds are per local user and add no communication: at any rank count the
  // result equals a serial Lloyd run, every iteration, with the same bytes sent.
  const Comm world = Comm::world();
  const Comm serial;
  const MatrixRF X = make_blobs(3001, 12, 24, 3.0, 41);
  const Slice s = slice(X, world);
  for (const std::string kernel : {"auto", "gemm"})
    for (const bool spherical : {false, true})
      for (const int threads : {1, 2}) {
        MatrixRF init = X.topRows(30);
        init.row(29).setConstant(900.0f);  // empty after the first assignment: relocated
        KMeansParams p;
        p.k = "30";
        p.tol = 0;
        p.kernel = kernel;
        p.spherical = spherical;
        p.threads = threads;
        p.algorithm = "lloyd";
        const MatrixRF Xs = spherical ? normalize_rows(X) : X;
        const MatrixRF Ls = spherical ? normalize_rows(s.local) : s.local;
        const MatrixRF I = spherical ? normalize_rows(init) : init;
        const auto ser = lloyd(Xs, I, p, serial);
        p.algorithm = "hamerly";
        const auto dist = lloyd(Ls, I, p, world);
        const std::string what =
            kernel + (spherical ? " spherical " : " ") + std::to_string(threads) + " threads";
        expect_same(dist, ser, s.block, "hamerly " + what);
        EXPECT_EQ(dist.centroids, ser.centroids) << what;  // bit-identical
        ASSERT_EQ(dist.iterations.size(), ser.iterations.size()) << what;
        std::int64_t rec = 0;
        for (std::size_t i = 0; i < ser.iterations.size(); ++i) {
          EXPECT_EQ(dist.iterations[i].changed, ser.iterations[i].changed) << what;
          EXPECT_EQ(dist.iterations[i].inertia, ser.iterations[i].inertia) << what;
          if (i > 0 && world.size() > 1) {
            EXPECT_EQ(dist.iterations[i].bytes, lloyd_allreduce_bytes(30, 12)) << what;
          }
          rec += dist.iterations[i].recomputed;
        }
        if (!spherical) {
          EXPECT_LT(rec, static_cast<std::int64_t>(s.local.rows()) * dist.n_iter) << what;
        }
      }
}

TEST(KMeansMpi, UnevenBlocksMatchSerial) {
  // Ranks hold blocks proportional to rank + 1: the layout comes from the data, not a rule.
  const Comm world = Comm::world();
  const Comm serial;
  const MatrixRF X = make_blobs(1000, 6, 5, 4.0, 8);
  const int P = world.size();
  std::int64_t begin = 0, end = 0;
  const std::int64_t total_w = static_cast<std::int64_t>(P) * (P + 1) / 2;
  std::int64_t acc = 0;
  for (int r = 0; r <= world.rank(); ++r) {
    begin = acc * 1000 / total_w;
    acc += r + 1;
    end = acc * 1000 / total_w;
  }
  KMeansParams p;
  p.k = "8";
  p.init = "k-means||";
  const auto dist = kmeans(X.middleRows(begin, end - begin), 8, p, world);
  const auto ser = kmeans(X, 8, p, serial);
  expect_same(dist, ser, Block{begin, end}, "uneven");
}

TEST(KMeansMpi, SweepAndQualityMatchSerial) {
  const Comm world = Comm::world();
  const Comm serial;
  const MatrixRF X = make_blobs(1500, 5, 4, 8.0, 9);
  const Slice s = slice(X, world);
  KMeansParams p;
  p.k = "2:6:2";
  p.silhouette_sample = 400;
  p.threads = 2;
  const auto dist = cluster(s.local, p, world);
  const auto ser = cluster(X, p, serial);
  ASSERT_EQ(dist.sweep.size(), ser.sweep.size());
  for (std::size_t i = 0; i < ser.sweep.size(); ++i) {
    const auto &a = dist.sweep[i].quality, &b = ser.sweep[i].quality;
    EXPECT_EQ(dist.sweep[i].k, ser.sweep[i].k);
    EXPECT_EQ(dist.sweep[i].n_iter, ser.sweep[i].n_iter);
    EXPECT_NEAR(a.silhouette, b.silhouette, 1e-9);
    EXPECT_EQ(a.silhouette_sample, 400);
    EXPECT_NEAR(a.davies_bouldin, b.davies_bouldin, 1e-9 * b.davies_bouldin);
    EXPECT_NEAR(a.calinski_harabasz, b.calinski_harabasz, 1e-9 * b.calinski_harabasz);
  }
  expect_same(dist.result, ser.result, s.block, "sweep");
}

TEST(KMeansMpi, SegmentsFileAndCsvRoundTrip) {
  const Comm world = Comm::world();
  const std::string dir = scratch_dir(world);
  const MatrixRF X = make_blobs(777, 4, 3, 5.0, 10);
  const Slice s = slice(X, world);
  KMeansParams p;
  p.k = "3";
  const auto run = cluster(s.local, p, world);
  std::vector<std::string> ids;
  for (std::int64_t i = s.block.begin; i < s.block.end; ++i) ids.push_back("u" + std::to_string(i));
  write_segments(dir + "/segments.h5", run, ids, p, "projection.h5", world);
  write_segments_csv(dir + "/segments.csv", ids, run.result.labels, world);
  const auto all_labels = world.allgatherv(run.result.labels);
  {
    const h5::File f = h5::File::open(dir + "/segments.h5", world, kSegmentsFormat);
    EXPECT_EQ(f.read_all<std::int32_t>("/labels"), all_labels);
    EXPECT_EQ(f.read_all<std::int64_t>("/sizes"), run.result.sizes);
    EXPECT_EQ(f.attr_int("/", "k"), 3);
    EXPECT_EQ(f.attr_int("/", "n_iter"), run.result.n_iter);
    EXPECT_EQ(f.shape("/centroids"), (std::vector<std::int64_t>{3, 4}));
    EXPECT_EQ(f.shape("/iterations/seconds")[0], run.result.n_iter);
    EXPECT_EQ(f.read_strings("/users/ids", 776, 1)[0], "u776");
    EXPECT_EQ(f.attr_int("/", "allreduce_bytes_per_iteration"), (3 * 4 + 3 + 2) * 8);
  }
  std::ifstream in(dir + "/segments.csv");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "user_id,segment");
  std::int64_t i = 0;
  while (std::getline(in, line)) {
    ASSERT_LT(i, 777);
    EXPECT_EQ(line, "u" + std::to_string(i) + "," + std::to_string(all_labels[i]));
    ++i;
  }
  EXPECT_EQ(i, 777);
}

TEST(KMeansMpi, SegmentReportMatchesSerial) {
  const Comm world = Comm::world();
  const Comm serial;
  using namespace report_fixture;
  const Block b = block_partition(kUsers, world.size(), world.rank());
  const auto ds = dataset(b.begin, b.end);
  const auto st = stats(b.begin, b.end);
  const SegmentReportParams p;
  const auto dist = build_segment_report(labels(b.begin, b.end), sizes(), &ds, &st, p, world);
  const auto full = dataset(0, kUsers);
  const auto full_st = stats(0, kUsers);
  const auto ser = build_segment_report(labels(0, kUsers), sizes(), &full, &full_st, p, serial);
  EXPECT_EQ(dist.json(), ser.json());
  EXPECT_EQ(dist.markdown(), ser.markdown());
}

}  // namespace
}  // namespace segrec
