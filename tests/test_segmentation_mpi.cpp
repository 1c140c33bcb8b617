// profile and project at the world size against single-process runs of the same
// data: the results must not depend on the rank count. Also the files they write.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "scratch_dir.hpp"
#include "segmentation_fixture.hpp"
#include "segrec/core/error.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/segmentation/profile.hpp"
#include "segrec/segmentation/project.hpp"

namespace fs = std::filesystem;
using namespace segrec;
using namespace segrec::test;

namespace {

std::string tmp_dir(const Comm& c) { return testing_tmp::scratch_dir("segmentation", c); }

const std::vector<std::string> kTypes = {"view", "cart", "purchase"};
const std::vector<double> kWeights = {1, 3, 5};
constexpr int kUsers = 37, kItems = 30;

std::vector<std::string> item_ids() {
  std::vector<std::string> v;
  for (int i = 0; i < kItems; ++i) v.push_back("item" + std::to_string(100 + i));
  return v;
}

Dataset local_dataset(const Comm& c) {
  return make_dataset(kUsers, item_ids(), kTypes, kWeights, random_events(kUsers, kItems, 5),
                      block_partition(kUsers, c.size(), c.rank()));
}
Dataset full_dataset() {
  return make_dataset(kUsers, item_ids(), kTypes, kWeights, random_events(kUsers, kItems, 5),
                      {0, kUsers});
}

ProfileParams profile_params() {
  ProfileParams p;
  p.data = "dataset.h5";
  p.out = "profiles.h5";
  p.half_life_days = 5;
  return p;
}

// The categories file: every third item uncategorised.
std::string categories_file(const Comm& c) {
  const std::string path = tmp_dir(c) + "/items.csv";
  if (c.is_root()) {
    std::ofstream out(path);
    out << "item_id,category\n";
    for (int i = 0; i < kItems; ++i)
      if (i % 3) out << "item" << 100 + i << ",c" << i % 4 << "\n";
  }
  c.barrier();
  return path;
}

void expect_same_rows(const ProfileBlock& local, const ProfileBlock& full, std::int64_t begin,
                      std::int64_t d) {
  const std::int64_t n = local.n_local();
  ASSERT_EQ(static_cast<std::int64_t>(local.indptr.size()), n + 1);
  const std::int64_t base = full.indptr[begin];
  for (std::int64_t u = 0; u < n; ++u) {
    EXPECT_EQ(local.user_ids[u], full.user_ids[begin + u]);
    ASSERT_EQ(local.indptr[u + 1], full.indptr[begin + u + 1] - base);
  }
  for (std::size_t p = 0; p < local.indices.size(); ++p) {
    EXPECT_EQ(local.indices[p], full.indices[base + p]);
    EXPECT_NEAR(local.values[p], full.values[base + p], 1e-6);
  }
  ASSERT_EQ(static_cast<std::int64_t>(local.dense_values.size()), n * d);
  for (std::int64_t i = 0; i < n * d; ++i) {
    EXPECT_NEAR(local.dense_values[i], full.dense_values[begin * d + i], 1e-5);
    const float a = local.dense_raw[i], b = full.dense_raw[begin * d + i];
    EXPECT_TRUE((std::isnan(a) && std::isnan(b)) || a == b) << a << " vs " << b;
  }
}

TEST(ProfileMpi, RankInvariantAndRoundTripsThroughTheFile) {
  const Comm world = Comm::world();
  const Comm serial;
  const Dataset ds = local_dataset(world);
  const std::string cats = categories_file(world);
  std::vector<std::string> names, names1;
  auto cat = read_item_categories(cats, ds.item_ids, names, world);
  auto cat1 = read_item_categories(cats, ds.item_ids, names1, serial);
  EXPECT_EQ(cat, cat1);
  EXPECT_EQ(names, (std::vector<std::string>{"c0", "c1", "c2", "c3"}));

  const ProfileModel m = fit_profile_model(ds, profile_params(), names, cat, world);
  const ProfileBlock b = profile_block(ds, m);
  const Dataset full = full_dataset();
  const ProfileModel m1 = fit_profile_model(full, profile_params(), names1, cat1, serial);
  const ProfileBlock b1 = profile_block(full, m1);

  EXPECT_EQ(m.dense_names, m1.dense_names);
  EXPECT_EQ(m.reference_time, m1.reference_time);
  EXPECT_EQ(m.dense_weight, m1.dense_weight);
  for (std::size_t i = 0; i < m.idf.size(); ++i) EXPECT_NEAR(m.idf[i], m1.idf[i], 1e-12);
  for (std::int64_t j = 0; j < m.n_dense(); ++j) {
    EXPECT_NEAR(m.dense_mean[j], m1.dense_mean[j], 1e-12 * (1 + std::fabs(m1.dense_mean[j])));
    EXPECT_NEAR(m.dense_std[j], m1.dense_std[j], 1e-12 * (1 + m1.dense_std[j]));
  }
  expect_same_rows(b, b1, ds.user_begin, m.n_dense());

  // The file holds the same rows and constants, read back at this rank count.
  const std::string path = tmp_dir(world) + "/profiles.h5";
  write_profiles(path, m, b, "dataset.h5", world);
  const Profiles back = read_profiles(path, world, /*with_raw=*/true);
  EXPECT_EQ(back.model.item_ids, m.item_ids);
  EXPECT_EQ(back.model.idf, m.idf);
  EXPECT_EQ(back.model.dense_names, m.dense_names);
  EXPECT_EQ(back.model.dense_log, m.dense_log);
  EXPECT_EQ(back.model.dense_mean, m.dense_mean);
  EXPECT_EQ(back.model.dense_std, m.dense_std);
  EXPECT_EQ(back.model.categories, m.categories);
  EXPECT_EQ(back.model.item_category, m.item_category);
  EXPECT_EQ(back.model.event_types, m.event_types);
  EXPECT_EQ(back.model.dense_weight, m.dense_weight);
  EXPECT_EQ(back.model.half_life_days, 5);
  EXPECT_EQ(back.model.reference_time, m.reference_time);
  EXPECT_EQ(back.rows.n_users, kUsers);
  expect_same_rows(back.rows, b1, back.rows.user_begin, m.n_dense());
  // New users profiled with the stored constants match the original profiles.
  const ProfileBlock again = profile_block(ds, back.model);
  expect_same_rows(again, b1, ds.user_begin, m.n_dense());
}

void expect_same_model(const ProjectionModel& a, const ProjectionModel& b, double tol) {
  ASSERT_EQ(a.components.rows(), b.components.rows());
  ASSERT_EQ(a.components.cols(), b.components.cols());
  EXPECT_LT((a.components - b.components).cwiseAbs().maxCoeff(), tol);
  EXPECT_LT((a.mean - b.mean).cwiseAbs().maxCoeff(), 1e-12);
  for (Eigen::Index i = 0; i < a.singular_values.size(); ++i) {
    EXPECT_NEAR(a.singular_values[i], b.singular_values[i], tol * b.singular_values[0]);
    EXPECT_NEAR(a.explained_variance_ratio[i], b.explained_variance_ratio[i], tol);
  }
  EXPECT_NEAR(a.total_variance, b.total_variance, 1e-10 * b.total_variance);
}

PcaOptions opts(bool dbl) {
  PcaOptions o;
  o.dims = 5;
  o.oversampling = 10;
  o.power_iterations = 3;
  o.seed = 21;
  o.double_precision = dbl;
  return o;
}

TEST(ProjectMpi, PcaIsRankInvariant) {
  const Comm world = Comm::world();
  const Comm serial;
  Matrix mx = decaying_matrix(203, 45, 5, 0.2, 0.85, 12);
  const Block blk = block_partition(mx.n, world.size(), world.rank());
  for (bool dbl : {true, false}) {
    const double tol = dbl ? 1e-9 : 2e-4;
    world.reset_stats();
    const ProjectionModel m = randomized_pca(mx.block(blk), opts(dbl), world);
    const ProjectionModel m1 = randomized_pca(mx.all(), opts(dbl), serial);
    expect_same_model(m, m1, tol);
    // One allreduce of (D + 1) x k doubles per product with Xc^T.
    const std::int64_t D = 50, k = m.stats.block;
    EXPECT_EQ(k, 16);  // H + p = 15, rounded up to whole SIMD vectors
    EXPECT_EQ(m.stats.xt_products, 4);
    EXPECT_EQ(m.stats.xt_pass_bytes, static_cast<std::uint64_t>(8 * (D + 1) * k));
    EXPECT_EQ(m.stats.total_bytes, 16 * D +                                   // moments
                                       4 * m.stats.xt_pass_bytes +            // Xc^T products
                                       8 * k * k * m.stats.gram_allreduces);  // CholeskyQR
    // Projected rows of this rank equal the serial ones.
    const auto h = project_rows(mx.block(blk), m);
    const auto h1 = project_rows(mx.all(), m1);
    for (std::int64_t i = 0; i < blk.size() * 5; ++i)
      EXPECT_NEAR(h[i], h1[blk.begin * 5 + i], dbl ? 1e-5 : 1e-3);
  }
}

TEST(ProjectMpi, RandomProjectionIsRankInvariant) {
  const Comm world = Comm::world();
  const Comm serial;
  Matrix mx = decaying_matrix(101, 60, 3, 0.2, 0.95, 13);
  const Block blk = block_partition(mx.n, world.size(), world.rank());
  const auto m = random_projection(mx.block(blk), 8, 3, world);
  const auto m1 = random_projection(mx.all(), 8, 3, serial);
  EXPECT_EQ(m.components, m1.components);
  expect_same_model(m, m1, 1e-6);
}

TEST(ProjectMpi, CommandWritesTheProjectionFile) {
  const Comm world = Comm::world();
  const Comm serial;
  const std::string dir = tmp_dir(world);
  const Dataset ds = local_dataset(world);
  const ProfileModel pm = fit_profile_model(ds, profile_params(), {}, {}, world);
  write_profiles(dir + "/p2.h5", pm, profile_block(ds, pm), "dataset.h5", world);

  ProjectParams p;
  p.profiles = dir + "/p2.h5";
  p.out = dir + "/projection.h5";
  p.dims = 4;
  p.precision = "double";
  p.seed = 5;
  p.value_dims = 0;  // one block over all features: the reference below
  const ProjectSummary s = run_project(p, world);
  EXPECT_TRUE(s.model.warnings.empty());

  // Serial reference on the full profile matrix.
  const Dataset full = full_dataset();
  const ProfileModel pm1 = fit_profile_model(full, profile_params(), {}, {}, serial);
  const ProfileBlock b1 = profile_block(full, pm1);
  FeatureBlock X;
  X.n_users = kUsers;
  X.n_local = kUsers;
  X.n_sparse = kItems;
  X.n_dense = pm1.n_dense();
  X.indptr = b1.indptr;
  X.indices = b1.indices;
  X.values = b1.values;
  X.dense = b1.dense_values;
  PcaOptions o;
  o.dims = 4;
  o.seed = 5;
  o.double_precision = true;
  const ProjectionModel m1 = randomized_pca(X, o, serial);
  const std::vector<float> h1 = project_rows(X, m1);

  const h5::File f = h5::File::open(p.out, world, kProjectionFormat);
  const std::int64_t D = kItems + pm1.n_dense();
  EXPECT_EQ(f.attr_string("/", "method"), "pca");
  EXPECT_EQ(f.attr_int("/", "dims"), 4);
  EXPECT_EQ(f.shape("/W"), (std::vector<std::int64_t>{D, 4}));
  EXPECT_EQ(f.shape("/H"), (std::vector<std::int64_t>{kUsers, 4}));
  const auto W = f.read_all<float>("/W");
  for (std::int64_t j = 0; j < D; ++j)
    for (int c = 0; c < 4; ++c) EXPECT_NEAR(W[j * 4 + c], m1.components(j, c), 1e-6);
  const auto sv = f.read_all<double>("/singular_values");
  const auto evr = f.read_all<double>("/explained_variance_ratio");
  for (int c = 0; c < 4; ++c) {
    EXPECT_NEAR(sv[c], m1.singular_values[c], 1e-9 * m1.singular_values[0]);
    EXPECT_NEAR(evr[c], m1.explained_variance_ratio[c], 1e-9);
  }
  const auto mean = f.read_all<double>("/mean");
  for (std::int64_t j = 0; j < D; ++j) EXPECT_NEAR(mean[j], m1.mean[j], 1e-12);
  const auto H = f.read_all<float>("/H");
  for (std::size_t i = 0; i < H.size(); ++i) EXPECT_NEAR(H[i], h1[i], 1e-5);
  const auto ids = f.read_strings("/users/ids", 0, kUsers);
  EXPECT_EQ(ids, b1.user_ids);
}

// The default projection has an interest block (items) and a value block (behaviour): W is
// block-diagonal, and each block's columns are that block's own PCA.
TEST(ProjectMpi, InterestAndValueBlocks) {
  const Comm world = Comm::world();
  const Comm serial;
  const std::string dir = tmp_dir(world);
  const Dataset ds = local_dataset(world);
  const ProfileModel pm = fit_profile_model(ds, profile_params(), {}, {}, world);
  write_profiles(dir + "/pb.h5", pm, profile_block(ds, pm), "dataset.h5", world);
  ProjectParams p;
  p.profiles = dir + "/pb.h5";
  p.out = dir + "/blocks.h5";
  p.dims = 8;
  p.precision = "double";
  const ProjectSummary s = run_project(p, world);
  EXPECT_EQ(s.value_dims, 2);  // dims / 4
  EXPECT_EQ(s.interest_dims, 6);
  const h5::File f = h5::File::open(p.out, world, kProjectionFormat);
  EXPECT_EQ(f.attr_int("/", "interest_dims"), 6);
  EXPECT_EQ(f.attr_int("/", "value_dims"), 2);
  const auto W = f.read_all<float>("/W");
  const std::int64_t D = kItems + pm.n_dense();
  for (std::int64_t j = 0; j < D; ++j)
    for (int c = 0; c < 8; ++c) {
      // No category shares here: every dense column is value or descriptive.
      const bool value_row = j >= kItems;
      const bool descriptive = value_row && pm.dense_block[j - kItems] == kBlockDescriptive;
      if (value_row != (c >= 6) || descriptive) {
        EXPECT_EQ(W[j * 8 + c], 0.0f) << j << "," << c;
      }
    }
  // The value block equals the PCA of the value columns alone (serial reference); the
  // descriptive columns (restated activity counts) are in neither block.
  const Dataset full = full_dataset();
  const ProfileModel pm1 = fit_profile_model(full, profile_params(), {}, {}, serial);
  const ProfileBlock b1 = profile_block(full, pm1);
  std::vector<std::int64_t> vcols;
  for (std::int64_t j = 0; j < pm1.n_dense(); ++j)
    if (pm1.dense_block[j] == kBlockValue) vcols.push_back(j);
  ASSERT_GE(vcols.size(), 2u);
  ASSERT_LT(static_cast<std::int64_t>(vcols.size()), pm1.n_dense());
  const std::int64_t nv = static_cast<std::int64_t>(vcols.size());
  const std::vector<std::int64_t> ptr(kUsers + 1, 0);
  FeatureBlock V;
  V.n_users = V.n_local = kUsers;
  V.n_dense = nv;
  V.indptr = ptr;
  std::vector<float> vdense;  // kUsers x nv
  for (std::int64_t u = 0; u < kUsers; ++u)
    for (auto j : vcols) vdense.push_back(b1.dense_values[u * pm1.n_dense() + j]);
  V.dense = vdense;
  PcaOptions o;
  o.dims = 2;
  o.double_precision = true;
  const ProjectionModel mv = randomized_pca(V, o, serial);
  for (std::int64_t c = 0; c < nv; ++c)
    for (int k = 0; k < 2; ++k)
      EXPECT_NEAR(W[(kItems + vcols[c]) * 8 + 6 + k], mv.components(c, k), 1e-6);
}

TEST(ProjectMpi, BadInputs) {
  const Comm world = Comm::world();
  const std::string dir = tmp_dir(world);
  const Dataset ds = local_dataset(world);
  write_dataset(dir + "/dataset.h5", ds, world);
  const ProfileModel pm = fit_profile_model(ds, profile_params(), {}, {}, world);
  write_profiles(dir + "/p3.h5", pm, profile_block(ds, pm), "dataset.h5", world);

  ProjectParams p;
  p.profiles = dir + "/dataset.h5";  // a data set, not profiles
  p.out = dir + "/bad.h5";
  if (world.is_root()) fs::remove(p.out);  // left by an earlier run
  world.barrier();
  try {
    run_project(p, world);
    ADD_FAILURE() << "a dataset file was accepted as profiles";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("expected segrec-profiles"), std::string::npos)
        << e.what();
    EXPECT_TRUE(e.collective());
  }
  EXPECT_FALSE(fs::exists(p.out));

  // dims above the number of features: clamped with a warning.
  p.profiles = dir + "/p3.h5";
  p.dims = 1000;
  const ProjectSummary s = run_project(p, world);
  // The projected features: the items and the dense columns but the descriptive ones.
  const std::int64_t D =
      kItems + pm.n_dense() -
      std::count(pm.dense_block.begin(), pm.dense_block.end(), kBlockDescriptive);
  EXPECT_LT(D, kItems + pm.n_dense());
  EXPECT_EQ(s.dims, D);
  ASSERT_EQ(s.model.warnings.size(), 1u);
  EXPECT_NE(s.model.warnings[0].find("1000"), std::string::npos);
  const h5::File f = h5::File::open(p.out, world, kProjectionFormat);
  EXPECT_EQ(f.attr_int("/", "dims"), D);

  p.dims = 0;
  EXPECT_THROW(run_project(p, world), UsageError);
}

}  // namespace
