// Stable segment ids across refreshes: the earlier segments.h5, the distributed join by user
// id, the matching and the renumbering (stable_ids.hpp).
#include "segrec/segmentation/stable_ids.hpp"

#include <filesystem>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "segrec/core/error.hpp"
#include "segrec/core/random.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/segmentation/hungarian.hpp"
#include "segrec/segmentation/view.hpp"

namespace segrec {

PreviousSegments read_previous_segments(const std::string& path, std::int64_t dims,
                                        const Comm& comm) {
  const std::string where = "--previous '" + path + "'";
  std::string err;
  if (comm.is_root()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) err = where + ": no such file";
  }
  comm.check_all(err, kExitData);
  PreviousSegments prev;
  prev.path = path;
  MatrixRF& C = prev.centroids.centroids;
  try {
    // Problems are raised once the file is closed.
    const h5::File f = h5::File::open(path, comm, kSegmentsFormat);
    if (!f.exists("/centroids") || !f.exists("/labels") || !f.exists("/sizes") ||
        !f.exists("/users/ids") || f.shape("/centroids").size() != 2) {
      err = where + ": lacks /centroids, /labels, /sizes or /users/ids";
    } else {
      const auto cs = f.shape("/centroids");
      const std::int64_t k = cs[0], n = f.shape("/labels")[0];
      if (cs[1] != dims) {
        err = where + ": its centroids have " + std::to_string(cs[1]) + " dims, the projection " +
              std::to_string(dims) + "; ids can only follow a run in the same projection space";
      } else if (k < 1 || f.shape("/sizes")[0] != k || f.shape("/users/ids")[0] != n) {
        err = where + ": /centroids (" + std::to_string(k) + "), /sizes and /labels (" +
              std::to_string(n) + "), /users/ids disagree";
      } else {
        const auto v = f.read_all<float>("/centroids");
        C = Eigen::Map<const MatrixRF>(v.data(), k, cs[1]);
        prev.whitening = read_view(f, "/").whitening;  // tied segments' centroids are whitened
        prev.centroids.sizes = f.read_all<std::int64_t>("/sizes");
        prev.n_users = n;
        const Block b = block_partition(n, comm.size(), comm.rank());
        prev.labels = f.read_rows<std::int32_t>("/labels", b.begin, b.size());
        prev.ids = f.read_strings("/users/ids", b.begin, b.size());
        if (!C.allFinite()) err = where + ": /centroids holds NaN or Inf";
        for (std::size_t i = 0; i < prev.labels.size() && err.empty(); ++i)
          if (prev.labels[i] < 0 || prev.labels[i] >= k)
            err = where + ": /labels row " +
                  std::to_string(b.begin + static_cast<std::int64_t>(i)) + " is " +
                  std::to_string(prev.labels[i]) + ", not in [0, " + std::to_string(k) + ")";
      }
    }
  } catch (const Error& e) {
    if (!e.collective()) throw;
    throw Error("--previous: " + std::string(e.what()), e.code(), true);
  }
  comm.check_all(err, kExitData);
  return prev;
}

UserOverlap user_overlap(const PreviousSegments& prev, const std::vector<std::string>& ids,
                         std::span<const std::int32_t> labels, std::int64_t k_new,
                         const Comm& comm) {
  SEGREC_ASSERT(ids.size() == labels.size(), "one label per user");
  const int P = comm.size();
  const std::int64_t k_old = prev.k();
  // Every id goes to its owner rank fnv1a(id) mod P: text[r] the ids back to back,
  // meta[r] a (run: 0 old / 1 new, segment, length) triple per id.
  std::vector<std::vector<char>> text(static_cast<std::size_t>(P));
  std::vector<std::vector<std::int64_t>> meta(static_cast<std::size_t>(P));
  auto route = [&](const std::string& id, std::int64_t run, std::int64_t segment) {
    const auto r = static_cast<std::size_t>(rng::fnv1a(id) % static_cast<std::uint64_t>(P));
    text[r].insert(text[r].end(), id.begin(), id.end());
    meta[r].insert(meta[r].end(), {run, segment, static_cast<std::int64_t>(id.size())});
  };
  for (std::size_t i = 0; i < prev.ids.size(); ++i) route(prev.ids[i], 0, prev.labels[i]);
  for (std::size_t i = 0; i < ids.size(); ++i) route(ids[i], 1, labels[i]);
  const auto in_text = comm.alltoallv(text);
  const auto in_meta = comm.alltoallv(meta);
  text.clear();
  meta.clear();

  // This rank's share of the join: old ids first (every source), then the new ones.
  struct Old {
    std::int32_t segment;
    bool seen;
  };
  std::unordered_map<std::string_view, Old> old;
  std::vector<std::int64_t> out(static_cast<std::size_t>(k_old * k_new + 3), 0);
  std::int64_t& common = out[k_old * k_new];
  std::int64_t& fresh = out[k_old * k_new + 1];
  std::int64_t& departed = out[k_old * k_new + 2];
  for (int pass = 0; pass < 2; ++pass)
    for (int s = 0; s < P; ++s) {
      const auto& m = in_meta[s];
      std::size_t off = 0;
      for (std::size_t t = 0; t + 2 < m.size(); t += 3) {
        const std::string_view id(in_text[s].data() + off, static_cast<std::size_t>(m[t + 2]));
        off += static_cast<std::size_t>(m[t + 2]);
        if (m[t] != pass) continue;
        if (pass == 0) {
          old.emplace(id, Old{static_cast<std::int32_t>(m[t + 1]), false});
          continue;
        }
        const auto it = old.find(id);
        if (it == old.end()) {
          ++fresh;
        } else {
          ++common;
          it->second.seen = true;
          ++out[it->second.segment * k_new + m[t + 1]];
        }
      }
    }
  for (const auto& [id, o] : old) departed += !o.seen;
  comm.allreduce(out);
  UserOverlap o;
  o.k_old = k_old;
  o.k_new = k_new;
  o.counts.assign(out.begin(), out.begin() + k_old * k_new);
  o.common = out[k_old * k_new];
  o.new_users = out[k_old * k_new + 1];
  o.departed = out[k_old * k_new + 2];
  return o;
}

SegmentMatch match_segments(const UserOverlap& overlap, const MatrixRF& old_centroids,
                            const MatrixRD& new_centroids) {
  const std::int64_t ko = overlap.k_old, kn = overlap.k_new;
  SEGREC_ASSERT(old_centroids.rows() == ko && new_centroids.rows() == kn &&
                    old_centroids.cols() == new_centroids.cols(),
                "centroids ", old_centroids.rows(), " and ", new_centroids.rows(), " for ", ko,
                " and ", kn, " segments");
  SegmentMatch m;
  m.previous_id.assign(static_cast<std::size_t>(kn), -1);
  m.matched_by.assign(static_cast<std::size_t>(kn), "");
  // Most users in common: rows are the new clusters, columns the old segments.
  std::vector<double> cost(static_cast<std::size_t>(kn * ko));
  for (std::int64_t b = 0; b < kn; ++b)
    for (std::int64_t a = 0; a < ko; ++a)
      cost[b * ko + a] = -static_cast<double>(overlap.counts[a * kn + b]);
  const auto by_users = min_cost_assignment(cost, kn, ko);
  std::vector<char> taken(static_cast<std::size_t>(ko), 0);
  for (std::int64_t b = 0; b < kn; ++b) {
    const std::int64_t a = by_users[b];
    if (a >= 0 && overlap.counts[a * kn + b] > 0) {
      m.previous_id[b] = static_cast<std::int32_t>(a);
      m.matched_by[b] = "users";
      taken[a] = 1;
    }
  }
  // The rest by centroid distance.
  std::vector<std::int64_t> rest_new, rest_old;
  for (std::int64_t b = 0; b < kn; ++b)
    if (m.previous_id[b] < 0) rest_new.push_back(b);
  for (std::int64_t a = 0; a < ko; ++a)
    if (!taken[a]) rest_old.push_back(a);
  if (!rest_new.empty() && !rest_old.empty()) {
    const auto rn = static_cast<std::int64_t>(rest_new.size());
    const auto ro = static_cast<std::int64_t>(rest_old.size());
    std::vector<double> dist(static_cast<std::size_t>(rn * ro));
    for (std::int64_t i = 0; i < rn; ++i)
      for (std::int64_t j = 0; j < ro; ++j)
        dist[i * ro + j] =
            (new_centroids.row(rest_new[i]) - old_centroids.row(rest_old[j]).cast<double>())
                .squaredNorm();
    const auto by_distance = min_cost_assignment(dist, rn, ro);
    for (std::int64_t i = 0; i < rn; ++i)
      if (by_distance[i] >= 0) {
        m.previous_id[rest_new[i]] = static_cast<std::int32_t>(rest_old[by_distance[i]]);
        m.matched_by[rest_new[i]] = "centroid";
      }
  }
  // Ids: the old one when it fits in [0, kn), else the lowest free one.
  m.id_of.assign(static_cast<std::size_t>(kn), -1);
  std::vector<char> used(static_cast<std::size_t>(kn), 0);
  for (std::int64_t b = 0; b < kn; ++b)
    if (m.previous_id[b] >= 0 && m.previous_id[b] < kn) {
      m.id_of[b] = m.previous_id[b];
      used[m.previous_id[b]] = 1;
    }
  std::int64_t next = 0;
  for (std::int64_t b = 0; b < kn; ++b) {
    if (m.id_of[b] >= 0) continue;
    while (used[next]) ++next;
    m.id_of[b] = static_cast<std::int32_t>(next);
    used[next] = 1;
  }
  return m;
}

SegmentTransitions stabilise_ids(const PreviousSegments& prev, const std::vector<std::string>& ids,
                                 KMeansResult& r, const Comm& comm) {
  const std::int64_t kn = r.k, ko = prev.k();
  const UserOverlap o = user_overlap(prev, ids, r.labels, kn, comm);
  const SegmentMatch m = match_segments(o, prev.centroids.centroids, r.centroids);
  for (auto& l : r.labels) l = m.id_of[l];
  MatrixRD C(r.centroids.rows(), r.centroids.cols());
  std::vector<std::int64_t> sizes(r.sizes.size());
  SegmentTransitions t;
  t.previous = prev.path;
  t.k_old = ko;
  t.k_new = kn;
  t.moved.assign(static_cast<std::size_t>(ko * kn), 0);
  t.previous_id.assign(static_cast<std::size_t>(kn), -1);
  t.matched_by.assign(static_cast<std::size_t>(kn), "");
  for (std::int64_t b = 0; b < kn; ++b) {
    const std::int32_t id = m.id_of[b];
    C.row(id) = r.centroids.row(b);
    sizes[id] = r.sizes[b];
    t.previous_id[id] = m.previous_id[b];
    t.matched_by[id] = m.matched_by[b];
    for (std::int64_t a = 0; a < ko; ++a) t.moved[a * kn + id] = o.counts[a * kn + b];
  }
  r.centroids = std::move(C);
  r.sizes = std::move(sizes);
  t.common_users = o.common;
  t.new_users = o.new_users;
  t.departed_users = o.departed;
  return t;
}

}  // namespace segrec
