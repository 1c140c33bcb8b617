// DBSCAN under mpirun (1, 2, 3 and 4 ranks): labels and core flags must equal a naive
// O(n^2) single-process DBSCAN written here (same definitions: exact d^2, core, border rule
// of the nearest core user with ties to the lowest index, clusters numbered by their lowest
// core user), on random inputs with ties and duplicates; planted blobs plus uniform noise
// must come back at ARI >= 0.95; bad options give one clear line.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "kmeans_reference.hpp"
#include "scratch_dir.hpp"
#include "segrec/core/error.hpp"
#include "segrec/io/companion.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/segmentation/dbscan/dbscan.hpp"

namespace segrec {
namespace {

using testing_ref::ari;

// ---- the naive reference -------------------------------------------------------------

double ref_d2(const MatrixRF& X, std::int64_t a, std::int64_t b) {
  double s = 0;
  for (Eigen::Index f = 0; f < X.cols(); ++f) {
    const double d = static_cast<double>(X(a, f)) - static_cast<double>(X(b, f));
    s = std::fma(d, d, s);
  }
  return s;
}

struct Ref {
  std::vector<std::int32_t> labels;
  std::vector<std::uint8_t> core;
};

Ref naive_dbscan(const MatrixRF& X, double eps, std::int64_t min_samples) {
  const std::int64_t n = X.rows();
  const double e2 = eps * eps;
  Ref r;
  r.core.assign(static_cast<std::size_t>(n), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t c = 0;
    for (std::int64_t j = 0; j < n; ++j) c += ref_d2(X, i, j) <= e2;
    r.core[i] = c >= min_samples;
  }
  // Components of core users by breadth-first search, in index order: a component is
  // found first from its lowest index, so the numbering is by lowest core index.
  std::vector<std::int32_t> comp(static_cast<std::size_t>(n), -1);
  std::int32_t k = 0;
  for (std::int64_t s = 0; s < n; ++s) {
    if (!r.core[s] || comp[s] >= 0) continue;
    std::vector<std::int64_t> queue = {s};
    comp[s] = k;
    for (std::size_t q = 0; q < queue.size(); ++q)
      for (std::int64_t j = 0; j < n; ++j)
        if (r.core[j] && comp[j] < 0 && ref_d2(X, queue[q], j) <= e2) {
          comp[j] = k;
          queue.push_back(j);
        }
    ++k;
  }
  r.labels.assign(static_cast<std::size_t>(n), -1);
  for (std::int64_t i = 0; i < n; ++i) {
    if (r.core[i]) {
      r.labels[i] = comp[i];
      continue;
    }
    double best = INFINITY;
    for (std::int64_t j = 0; j < n; ++j) {  // ascending j: ties keep the lowest index
      if (!r.core[j]) continue;
      const double d = ref_d2(X, i, j);
      if (d <= e2 && d < best) {
        best = d;
        r.labels[i] = comp[j];
      }
    }
  }
  return r;
}

// ---- inputs -------------------------------------------------------------------------------

MatrixRF uniform(std::int64_t n, std::int64_t h, double lo, double hi, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  MatrixRF X(n, h);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t f = 0; f < h; ++f) X(i, f) = static_cast<float>(u(rng));
  return X;
}

/// Small integer coordinates: many duplicates and distances exactly eps.
MatrixRF lattice(std::int64_t n, std::int64_t h, int levels, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> u(0, levels - 1);
  MatrixRF X(n, h);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t f = 0; f < h; ++f) X(i, f) = static_cast<float>(u(rng));
  return X;
}

/// `blobs` Gaussian blobs (sd 1, centres 12 apart on the axes) and `noise` uniform users in
/// the box around them; truth: blob index, -1 for noise. Users are shuffled.
MatrixRF planted(std::int64_t per_blob, int blobs, std::int64_t noise, std::int64_t h,
                 std::uint64_t seed, std::vector<std::int32_t>& truth) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> g(0.0, 1.0);
  const std::int64_t n = per_blob * blobs + noise;
  std::vector<std::int64_t> perm(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) perm[i] = i;
  std::shuffle(perm.begin(), perm.end(), rng);
  const double box = 12.0 * blobs;
  std::uniform_real_distribution<double> u(-6.0, box + 6.0);
  MatrixRF X(n, h);
  truth.assign(static_cast<std::size_t>(n), -1);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t row = perm[i];
    if (i < per_blob * blobs) {
      const int b = static_cast<int>(i / per_blob);
      truth[row] = b;
      for (std::int64_t f = 0; f < h; ++f)
        X(row, f) = static_cast<float>((f == b % h ? 12.0 * b : 0.0) + g(rng));
    } else {
      for (std::int64_t f = 0; f < h; ++f) X(row, f) = static_cast<float>(u(rng));
    }
  }
  return X;
}

// ---- running DBSCAN on this rank's block --------------------------------------------

struct DbRun {
  DbscanResult r;
  std::vector<std::int32_t> labels;  // all users, gathered
  std::vector<std::uint8_t> core;
};

DbRun run(const MatrixRF& X, const std::string& eps, std::int64_t min_samples, int threads,
          const Comm& comm, std::int64_t kdist_sample = 0) {
  const Block b = block_partition(X.rows(), comm.size(), comm.rank());
  const MatrixRF local = X.middleRows(b.begin, b.size());
  DbscanParams p;
  p.eps = eps;
  p.min_samples = min_samples;
  p.threads = threads;
  p.kdist_sample = kdist_sample;
  DbRun out;
  out.r = dbscan(local, p, p.validate(), comm);
  out.labels = comm.allgatherv(out.r.labels);
  out.core = comm.allgatherv(out.r.core);
  return out;
}

struct DiffCase {
  std::string name;
  MatrixRF X;
  double eps;
  std::int64_t min_samples;
};

std::vector<DiffCase> diff_cases() {
  std::vector<DiffCase> v;
  v.push_back({"uniform 2-D", uniform(400, 2, 0, 10, 1), 0.6, 4});
  v.push_back({"uniform 5-D", uniform(350, 5, -1, 1, 2), 0.55, 5});
  v.push_back({"lattice ties", lattice(300, 2, 6, 3), 1.0, 5});
  v.push_back({"lattice dups 3-D", lattice(260, 3, 3, 4), 1.0, 9});
  v.push_back({"min-samples 1", uniform(200, 3, 0, 4, 5), 0.5, 1});
  v.push_back({"all duplicates", MatrixRF::Constant(50, 4, 2.5f), 0.1, 3});
  std::vector<std::int32_t> truth;
  v.push_back({"blobs and noise", planted(150, 3, 60, 6, 6, truth), 1.6, 6});
  v.push_back({"tiny", uniform(3, 2, 0, 1, 7), 0.5, 2});
  v.push_back({"big min-samples", uniform(200, 2, 0, 3, 8), 0.7, 30});
  return v;
}

TEST(DbscanMpi, MatchesNaiveReference) {
  const Comm world = Comm::world();
  for (const auto& c : diff_cases()) {
    const Ref ref = naive_dbscan(c.X, c.eps, c.min_samples);
    for (const int threads : {1, 3}) {
      std::ostringstream eps;
      eps.precision(17);
      eps << c.eps;
      const DbRun got = run(c.X, eps.str(), c.min_samples, threads, world);
      const std::string what = c.name + ", " + std::to_string(world.size()) + " rank(s) x " +
                               std::to_string(threads) + " thread(s)";
      EXPECT_EQ(got.core, ref.core) << what;
      EXPECT_EQ(got.labels, ref.labels) << what;
      const std::int64_t k = *std::max_element(ref.labels.begin(), ref.labels.end()) + 1;
      EXPECT_EQ(got.r.k, std::max<std::int64_t>(k, 0)) << what;
      std::int64_t noise = 0, core = 0;
      for (std::size_t i = 0; i < ref.labels.size(); ++i) {
        noise += ref.labels[i] < 0;
        core += ref.core[i];
      }
      EXPECT_EQ(got.r.n_noise, noise) << what;
      EXPECT_EQ(got.r.n_core, core) << what;
      EXPECT_EQ(got.r.n_border, c.X.rows() - noise - core) << what;
    }
  }
}

TEST(DbscanMpi, BorderRuleNearestCoreThenLowestIndex) {
  // 1-D, eps 2, min-samples 4: clusters {5.5, 6, 6.5, 7} (rows 0-3, cluster 0) and
  // {0, 0.5, 1, 1.5} (rows 4-7, cluster 1). The user at 3.5 (row 8) has 3 users within eps,
  // so it is a border user, exactly 2 from the core users at 5.5 (row 0) and 1.5 (row 7):
  // the tie goes to the lower index, cluster 0. The user at 8.4 is nearest to 7 (cluster 0),
  // the user at -1.9 to 0 (cluster 1); 20 is noise.
  const std::vector<float> xs = {5.5, 6, 6.5, 7, 0, 0.5, 1, 1.5, 3.5, 8.4, -1.9, 20};
  MatrixRF X(static_cast<Eigen::Index>(xs.size()), 1);
  for (std::size_t i = 0; i < xs.size(); ++i) X(static_cast<Eigen::Index>(i), 0) = xs[i];
  const Comm world = Comm::world();
  const DbRun got = run(X, "2", 4, 1, world);
  const Ref ref = naive_dbscan(X, 2.0, 4);
  EXPECT_EQ(got.labels, ref.labels);
  EXPECT_EQ(got.core, ref.core);
  EXPECT_EQ(got.labels, (std::vector<std::int32_t>{0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, -1}));
  EXPECT_EQ(got.core, (std::vector<std::uint8_t>{1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}));
}

TEST(DbscanMpi, PlantedBlobsRecovered) {
  const Comm world = Comm::world();
  std::vector<std::int32_t> truth;
  const MatrixRF X = planted(600, 4, 300, 8, 11, truth);
  const DbRun got = run(X, "3", 10, 2, world);
  const double a = ari(got.labels, truth);
  EXPECT_GE(a, 0.95) << "ARI " << a << ", k " << got.r.k << ", noise " << got.r.n_noise;
  EXPECT_EQ(got.r.k, 4);
  // --eps auto picks a radius from the k-distance knee, the same at any rank count.
  const DbRun aut = run(X, "auto", 10, 2, world, 1000);
  EXPECT_GT(aut.r.eps, 0.5);
  EXPECT_EQ(aut.r.curve.dist.size(), 1000u);
  EXPECT_TRUE(std::is_sorted(aut.r.curve.dist.begin(), aut.r.curve.dist.end()));
  const double a2 = ari(aut.labels, truth);
  EXPECT_GE(a2, 0.9) << "eps auto " << aut.r.eps << ": ARI " << a2;
  const Comm serial;
  const DbRun one = run(X, "auto", 10, 1, serial, 1000);
  EXPECT_EQ(aut.r.curve.dist, one.r.curve.dist);
  EXPECT_EQ(aut.r.eps, one.r.eps);
  EXPECT_EQ(aut.labels, one.labels);
}

TEST(DbscanMpi, KDistanceMatchesNaive) {
  const Comm world = Comm::world();
  const MatrixRF X = lattice(120, 2, 5, 21);
  const Block b = block_partition(X.rows(), world.size(), world.rank());
  const MatrixRF local = X.middleRows(b.begin, b.size());
  const KDistanceCurve c = k_distance_curve(local, 4, 1000, 7, 2, world);  // all users
  ASSERT_EQ(c.dist.size(), 120u);
  std::vector<double> want;
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    std::vector<double> d;
    for (Eigen::Index j = 0; j < X.rows(); ++j) d.push_back(ref_d2(X, i, j));
    std::sort(d.begin(), d.end());
    want.push_back(std::sqrt(d[3]));
  }
  std::sort(want.begin(), want.end());
  EXPECT_EQ(c.dist, want);
}

TEST(DbscanMpi, KneeOfAHockeyStick) {
  std::vector<double> v;
  for (int i = 0; i < 90; ++i) v.push_back(1.0 + i * 0.001);
  for (int i = 0; i < 10; ++i) v.push_back(2.0 + i);
  EXPECT_EQ(knee_index(v), 89);
  EXPECT_EQ(knee_index({1.0}), -1);
  EXPECT_EQ(knee_index({2.0, 2.0, 2.0}), 2);
}

TEST(DbscanMpi, BadOptions) {
  struct Bad {
    std::string eps;
    std::int64_t min_samples, sample;
    std::string message;
  };
  const std::vector<Bad> table = {
      {"0", 5, 0, "invalid value '0' for --eps: give a radius > 0 (projection units) or auto"},
      {"-1", 5, 0, "invalid value '-1' for --eps: give a radius > 0 (projection units) or auto"},
      {"abc", 5, 0, "invalid value 'abc' for --eps: give a radius > 0 (projection units) or auto"},
      {"", 5, 0, "invalid value '' for --eps: give a radius > 0 (projection units) or auto"},
      {"nan", 5, 0, "invalid value 'nan' for --eps: give a radius > 0 (projection units) or auto"},
      {"1", 0, 0, "invalid value '0' for --min-samples: must be at least 1"},
      {"1", -3, 0, "invalid value '-3' for --min-samples: must be at least 1"},
      {"auto", 5, 0,
       "invalid value '0' for --kdist-sample: --eps auto needs a k-distance sample of at least 2 "
       "users"},
      {"1", 5, -1, "invalid value '-1' for --kdist-sample: must be >= 0"},
  };
  for (const auto& t : table) {
    DbscanParams p;
    p.eps = t.eps;
    p.min_samples = t.min_samples;
    p.kdist_sample = t.sample;
    try {
      p.validate();
      ADD_FAILURE() << "accepted eps '" << t.eps << "'";
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()), t.message);
    }
  }
  EXPECT_EQ(parse_cluster_method("dbscan"), ClusterMethod::kDbscan);
  EXPECT_EQ(parse_cluster_method("hamerly"), ClusterMethod::kKMeans);
  try {
    parse_cluster_method("optics");
    ADD_FAILURE() << "accepted optics";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "invalid value 'optics' for --algorithm: use auto, lloyd, hamerly, gmm or dbscan");
  }
}

TEST(DbscanMpi, UnsegmentedLabelsReadWhereAllowed) {
  const Comm world = Comm::world();
  const std::string dir = testing_tmp::scratch_dir("dbscan", world);
  const std::string path = dir + "/labels.h5";
  const std::vector<std::int32_t> all = {0, -1, 1, 1, -1, 0, 1};
  const Block b = block_partition(7, world.size(), world.rank());
  {
    h5::File f = h5::File::create(path, world, kSegmentsFormat);
    f.write_rows<std::int32_t>(
        "/labels", std::vector<std::int32_t>(all.begin() + b.begin, all.begin() + b.end));
    f.set_attr("/", "k", std::int64_t{2});
    f.commit();
  }
  UserRowsSpec spec;
  spec.path = path;
  spec.name = "/labels";
  std::int64_t k = 0;
  {
    const h5::File f = h5::File::open(path, world, kSegmentsFormat);
    const auto got = read_user_labels(f, spec, b, world, k, /*allow_unsegmented=*/true);
    EXPECT_EQ(got, std::vector<std::int32_t>(all.begin() + b.begin, all.begin() + b.end));
  }
  std::string msg;
  try {
    const h5::File f = h5::File::open(path, world, kSegmentsFormat);
    read_user_labels(f, spec, b, world, k);
  } catch (const DataError& e) {
    msg = e.what();
  }
  EXPECT_EQ(msg, "'" + path +
                     "': /labels row 1 holds segment -1 outside [0, 2) (-1 is a user in no "
                     "segment, e.g. DBSCAN noise; this needs a segment for every user)");
}

}  // namespace
}  // namespace segrec
