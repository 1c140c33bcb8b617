// Stable segment ids across refreshes (`cluster --previous`) under mpirun: the distributed
// join against a serial count, reruns on unchanged data, added users, a permuted previous
// file, bad previous files; every result equal to a serial run's.
// GCC 12 false positives inside its AVX-512 intrinsics as inlined by Eigen (see kmeans.cpp).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "kmeans_reference.hpp"
#include "scratch_dir.hpp"
#include "segrec/core/error.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/segmentation/cluster.hpp"
#include "segrec/segmentation/stable_ids.hpp"

namespace segrec {
namespace {

constexpr std::int64_t kUsers = 400;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// "u<g>" (appended, not operator+: GCC 12's -Wrestrict misfires on "u" + to_string).
std::string uid(std::int64_t g) {
  std::string s = "u";
  s += std::to_string(g);
  return s;
}

std::string make_dir(const std::string& name, const Comm& comm) {
  return testing_tmp::scratch_dir("stable_ids/" + name, comm, /*fresh=*/true);
}

/// projection.h5 of the first n users of one fixed population: 4 blobs in 3 dims (user g in
/// blob g mod 4), ids "u<g>"; the first users are the same whatever n.
void write_projection(const std::string& path, std::int64_t n, const Comm& comm) {
  const MatrixRF all = testing_ref::make_blobs(n, 3, 4, 20.0, 11);
  const Block b = block_partition(n, comm.size(), comm.rank());
  const MatrixRF H = all.middleRows(b.begin, b.size());
  std::vector<std::string> ids;
  for (std::int64_t g = b.begin; g < b.end; ++g) ids.push_back(uid(g));
  h5::File f = h5::File::create(path, comm, kProjectionFormat);
  f.write_rows<float>("/H", std::span<const float>(H.data(), H.size()), 3);
  f.create_group("/users");
  f.write_strings("/users/ids", ids, true);
  f.commit();
}

ClusterFiles files(const std::string& dir, const std::string& out, const std::string& prev) {
  ClusterFiles f;
  f.projection = dir + "/projection.h5";
  f.out = out + ".h5";
  f.segments_csv = out + ".csv";
  f.report = out;
  f.previous = prev;
  return f;
}

KMeansParams params() {
  KMeansParams p;
  p.k = "4";
  return p;
}

/// Every user's segment from a segments CSV, by user id.
std::map<std::string, int> labels_of(const std::string& csv) {
  std::map<std::string, int> out;
  std::istringstream in(slurp(csv));
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    const auto c = line.find(',');
    out[line.substr(0, c)] = std::stoi(line.substr(c + 1));
  }
  return out;
}

TEST(StableIds, UserOverlapMatchesASerialJoin) {
  const Comm world = Comm::world();
  // Old run: ids u0, u2, ..., u598 (segment g mod 3); new run: u399 down to u0 (segment
  // g mod 5), so 200 users in both, 200 new, 100 departed.
  const std::int64_t n_old = 300, n_new = 400, ko = 3, kn = 5;
  PreviousSegments prev;
  const Block bo = block_partition(n_old, world.size(), world.rank());
  for (std::int64_t g = bo.begin; g < bo.end; ++g) {
    prev.ids.push_back(uid(2 * g));
    prev.labels.push_back(static_cast<std::int32_t>(g % ko));
  }
  prev.centroids.centroids = MatrixRF::Zero(ko, 1);
  prev.n_users = n_old;
  const Block bn = block_partition(n_new, world.size(), world.rank());
  std::vector<std::string> ids;
  std::vector<std::int32_t> labels;
  for (std::int64_t i = bn.begin; i < bn.end; ++i) {
    const std::int64_t g = n_new - 1 - i;
    ids.push_back(uid(g));
    labels.push_back(static_cast<std::int32_t>(g % kn));
  }
  const UserOverlap o = user_overlap(prev, ids, labels, kn, world);
  std::vector<std::int64_t> want(static_cast<std::size_t>(ko * kn), 0);
  for (std::int64_t g = 0; g < n_new; g += 2) ++want[(g / 2) % ko * kn + g % kn];
  EXPECT_EQ(o.counts, want);
  EXPECT_EQ(o.common, 200);
  EXPECT_EQ(o.new_users, 200);
  EXPECT_EQ(o.departed, 100);
}

TEST(StableIds, RerunOnUnchangedDataKeepsEveryId) {
  const Comm world = Comm::world();
  const std::string dir = make_dir("rerun", world);
  write_projection(dir + "/projection.h5", kUsers, world);
  const auto first =
      run_cluster_stage(files(dir, dir + "/segments", ""), params(), ViewParams{}, {}, world);
  EXPECT_FALSE(first.transitions);
  const std::string csv = slurp(dir + "/segments.csv");
  // --previous is --out itself: read completely before the new file replaces it.
  const auto again = run_cluster_stage(files(dir, dir + "/segments", dir + "/segments.h5"),
                                       params(), ViewParams{}, {}, world);
  ASSERT_TRUE(again.transitions);
  const SegmentTransitions& t = *again.transitions;
  EXPECT_EQ(slurp(dir + "/segments.csv"), csv);
  EXPECT_EQ(t.common_users, kUsers);
  EXPECT_EQ(t.new_users, 0);
  EXPECT_EQ(t.departed_users, 0);
  EXPECT_EQ(t.stayed_share(), 1.0);
  for (std::int64_t a = 0; a < 4; ++a) {
    EXPECT_EQ(t.previous_id[a], a);
    EXPECT_EQ(t.row_share(a, a), 1.0);
  }
  EXPECT_TRUE(t.new_segments().empty());
  EXPECT_TRUE(t.retired_segments().empty());
  const std::string js = slurp(dir + "/segments.json");
  EXPECT_NE(js.find("\"transitions\": {\"previous\": "), std::string::npos) << js;
  EXPECT_NE(slurp(dir + "/segments.md").find("100.0% of them kept their segment"),
            std::string::npos);
  {
    const h5::File f = h5::File::open(dir + "/segments.h5", world, kSegmentsFormat);
    EXPECT_EQ(f.attr_string("/", "previous"), dir + "/segments.h5");
    EXPECT_EQ(f.read_all<std::int32_t>("/previous/previous_id"),
              (std::vector<std::int32_t>{0, 1, 2, 3}));
    EXPECT_EQ(f.shape("/previous/moved"), (std::vector<std::int64_t>{4, 4}));
  }
}

TEST(StableIds, PermutedPreviousFileIsFollowed) {
  const Comm world = Comm::world();
  const std::string dir = make_dir("permuted", world);
  write_projection(dir + "/projection.h5", kUsers, world);
  run_cluster_stage(files(dir, dir + "/a", ""), params(), ViewParams{}, {}, world);
  // The earlier file relabelled by perm: segment a becomes perm[a] (labels, sizes, and the
  // centroids too unless `keep_centroids`: then K-means starts as before and only the
  // matching by user overlap can make the ids follow).
  const std::vector<std::int32_t> perm = {2, 3, 1, 0};
  const auto write_permuted = [&](const std::string& path, bool keep_centroids) {
    std::vector<std::string> ids;
    std::vector<std::int32_t> labels;
    MatrixRF C;
    std::vector<std::int64_t> sizes, psizes(4);
    {
      const h5::File f = h5::File::open(dir + "/a.h5", world, kSegmentsFormat);
      const Block b = block_partition(kUsers, world.size(), world.rank());
      ids = f.read_strings("/users/ids", b.begin, b.size());
      labels = f.read_rows<std::int32_t>("/labels", b.begin, b.size());
      const auto v = f.read_all<float>("/centroids");
      C = Eigen::Map<const MatrixRF>(v.data(), 4, 3);
      sizes = f.read_all<std::int64_t>("/sizes");
    }
    MatrixRF PC = C;
    for (int a = 0; a < 4; ++a) {
      if (!keep_centroids) PC.row(perm[a]) = C.row(a);
      psizes[perm[a]] = sizes[a];
    }
    for (auto& l : labels) l = perm[l];
    h5::File f = h5::File::create(path, world, kSegmentsFormat);
    f.write_replicated<float>("/centroids", std::span<const float>(PC.data(), PC.size()), 3);
    f.write_rows<std::int32_t>("/labels", labels);
    f.write_replicated<std::int64_t>("/sizes", psizes);
    f.create_group("/users");
    f.write_strings("/users/ids", ids, true);
    f.commit();
  };
  write_permuted(dir + "/p.h5", false);
  write_permuted(dir + "/q.h5", true);
  const auto a = labels_of(dir + "/a.csv");
  ASSERT_EQ(a.size(), static_cast<std::size_t>(kUsers));
  for (const char* name : {"p", "q"}) {
    const std::string out_path = dir + "/b_" + name;
    const auto out = run_cluster_stage(files(dir, out_path, dir + "/" + name + ".h5"), params(),
                                       ViewParams{}, {}, world);
    ASSERT_TRUE(out.transitions);
    EXPECT_EQ(out.transitions->previous_id, (std::vector<std::int32_t>{0, 1, 2, 3})) << name;
    EXPECT_EQ(out.transitions->stayed_share(), 1.0) << name;
    const auto b = labels_of(out_path + ".csv");
    for (const auto& [id, l] : a) EXPECT_EQ(b.at(id), perm[l]) << name << " " << id;
  }
}

TEST(StableIds, ChangedKKeepsTheIdsItCan) {
  const Comm world = Comm::world();
  const std::string dir = make_dir("changed_k", world);
  write_projection(dir + "/projection.h5", kUsers, world);
  run_cluster_stage(files(dir, dir + "/a", ""), params(), ViewParams{}, {}, world);
  const auto a = labels_of(dir + "/a.csv");
  // k 4 -> 5: the four old segments keep their ids (each the new segment with most of its
  // users), id 4 is new.
  KMeansParams p = params();
  p.k = "5";
  const auto five =
      run_cluster_stage(files(dir, dir + "/five", dir + "/a.h5"), p, ViewParams{}, {}, world);
  ASSERT_TRUE(five.transitions);
  EXPECT_EQ(five.transitions->new_segments(), (std::vector<std::int64_t>{4}));
  EXPECT_TRUE(five.transitions->retired_segments().empty());
  for (std::int64_t s = 0; s < 4; ++s) {
    std::int64_t best = 0;
    for (std::int64_t b = 1; b < 5; ++b)
      if (five.transitions->at(s, b) > five.transitions->at(s, best)) best = b;
    EXPECT_EQ(best, s);
  }
  // k 4 -> 3: labels stay in [0, 3), one old id retires.
  p.k = "3";
  const auto three =
      run_cluster_stage(files(dir, dir + "/three", dir + "/a.h5"), p, ViewParams{}, {}, world);
  ASSERT_TRUE(three.transitions);
  EXPECT_EQ(three.transitions->retired_segments().size(), 1u);
  for (const auto& [id, l] : labels_of(dir + "/three.csv")) {
    EXPECT_GE(l, 0);
    EXPECT_LT(l, 3);
  }
}

TEST(StableIds, AddedUsersKeepEveryIdAtAnyRankCount) {
  const Comm world = Comm::world();
  const std::string dir = make_dir("added", world);
  write_projection(dir + "/projection.h5", kUsers, world);
  run_cluster_stage(files(dir, dir + "/a", ""), params(), ViewParams{}, {}, world);
  const std::string dir2 = make_dir("added2", world);
  write_projection(dir2 + "/projection.h5", kUsers + kUsers / 10, world);
  const auto out =
      run_cluster_stage(files(dir2, dir2 + "/b", dir + "/a.h5"), params(), ViewParams{}, {}, world);
  ASSERT_TRUE(out.transitions);
  const SegmentTransitions& t = *out.transitions;
  EXPECT_EQ(t.common_users, kUsers);
  EXPECT_EQ(t.new_users, kUsers / 10);
  EXPECT_EQ(t.departed_users, 0);
  EXPECT_EQ(t.previous_id, (std::vector<std::int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(t.stayed_share(), 1.0);
  const auto a = labels_of(dir + "/a.csv"), b = labels_of(dir2 + "/b.csv");
  for (const auto& [id, l] : a) EXPECT_EQ(b.at(id), l) << id;
  // The same at one rank.
  const Comm serial;
  const std::string mine = dir2 + "/serial" + std::to_string(world.rank());
  std::filesystem::create_directories(mine);
  run_cluster_stage(files(dir2, mine + "/b", dir + "/a.h5"), params(), ViewParams{}, {}, serial);
  world.barrier();
  EXPECT_EQ(slurp(mine + "/b.csv"), slurp(dir2 + "/b.csv"));
  // The report JSON's timings_s line is wall time; everything else must match.
  auto untimed = [](std::string s) {
    const auto at = s.find("\n  \"timings_s\": {");
    if (at != std::string::npos) s.erase(at, s.find('\n', at + 1) - at);
    return s;
  };
  EXPECT_EQ(untimed(slurp(mine + "/b.json")), untimed(slurp(dir2 + "/b.json")));
}

TEST(StableIds, BadPreviousFilesNameTheFile) {
  const Comm world = Comm::world();
  const std::string dir = make_dir("bad", world);
  write_projection(dir + "/projection.h5", kUsers, world);
  // A segments.h5 in 2 dims.
  const std::string two = make_dir("bad_two", world);
  {
    const MatrixRF H = testing_ref::make_blobs(kUsers, 2, 4, 20.0, 11);
    const Block b = block_partition(kUsers, world.size(), world.rank());
    const MatrixRF mine = H.middleRows(b.begin, b.size());
    std::vector<std::string> ids;
    for (std::int64_t g = b.begin; g < b.end; ++g) ids.push_back(uid(g));
    h5::File f = h5::File::create(two + "/projection.h5", world, kProjectionFormat);
    f.write_rows<float>("/H", std::span<const float>(mine.data(), mine.size()), 2);
    f.create_group("/users");
    f.write_strings("/users/ids", ids, true);
    f.commit();
  }
  run_cluster_stage(files(two, two + "/s", ""), params(), ViewParams{}, {}, world);
  const struct {
    std::string previous;
    int code;
    std::string text;
  } cases[] = {
      {dir + "/missing.h5", kExitData, "--previous '" + dir + "/missing.h5': no such file"},
      {dir + "/projection.h5", kExitData,
       "--previous: '" + dir +
           "/projection.h5' is a segrec-projection file, expected "
           "segrec-segments"},
      {two + "/s.h5", kExitData,
       "--previous '" + two + "/s.h5': its centroids have 2 dims, the projection 3"},
  };
  for (const auto& c : cases) {
    try {
      run_cluster_stage(files(dir, dir + "/out", c.previous), params(), ViewParams{}, {}, world);
      ADD_FAILURE() << c.previous << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), c.code) << e.what();
      EXPECT_TRUE(e.collective());
      EXPECT_EQ(std::string(e.what()).rfind(c.text, 0), 0u) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir + "/out.h5"));
  }
}

}  // namespace
}  // namespace segrec
