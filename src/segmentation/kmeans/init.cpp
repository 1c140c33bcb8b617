// K-means initial centroids: greedy k-means++, k-means|| (Bahmani et al.), random users;
// every draw keyed by (seed, restart, purpose, global index).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <utility>
#include <vector>

#include "internal.hpp"
#include "segrec/core/error.hpp"
#include "segrec/segmentation/kmeans/init.hpp"

namespace segrec {
namespace kmeans_detail {

MatrixRF fetch_rows(const MatrixRF& X, const Layout& L, const std::vector<std::int64_t>& ids,
                    std::int64_t h, const Comm& comm) {
  MatrixRF out = MatrixRF::Zero(static_cast<Eigen::Index>(ids.size()), h);
  for (std::size_t r = 0; r < ids.size(); ++r)
    if (L.mine(ids[r])) out.row(r) = X.row(ids[r] - L.begin);
  comm.allreduce(out);
  return out;
}

namespace {

struct HashIndex {
  std::uint64_t hash;
  std::int64_t index;
  bool operator<(const HashIndex& o) const {
    return hash < o.hash || (hash == o.hash && index < o.index);
  }
};

}  // namespace

std::vector<std::int64_t> sample_indices(const Layout& L, std::int64_t count, std::uint64_t key,
                                         const Comm& comm) {
  count = std::min(count, L.n);
  std::vector<HashIndex> local(static_cast<std::size_t>(L.n_local));
  for (std::int64_t i = 0; i < L.n_local; ++i)
    local[i] = {key_of(key, static_cast<std::uint64_t>(L.begin + i)), L.begin + i};
  const std::int64_t keep = std::min(count, L.n_local);
  std::partial_sort(local.begin(), local.begin() + keep, local.end());
  local.resize(static_cast<std::size_t>(keep));
  auto all = comm.allgatherv(local);
  std::sort(all.begin(), all.end());
  std::vector<std::int64_t> out;
  for (std::int64_t i = 0; i < count; ++i) out.push_back(all[i].index);
  return out;
}

namespace {

/// D^2-style draws: for each target (identical on every rank) the global row where the
/// running sum of `v` (global row order) first exceeds it. `totals`: each rank's sum of v.
/// When every v is 0 the draw falls back to row floor(fallback_u * n). Returns ids and rows.
std::pair<std::vector<std::int64_t>, MatrixRF> draw_rows(const MatrixRF& X, const Layout& L,
                                                         const std::vector<double>& v,
                                                         const std::vector<double>& totals,
                                                         const std::vector<double>& targets,
                                                         const std::vector<double>& fallback_u,
                                                         const Comm& comm) {
  const std::int64_t h = X.cols();
  const auto T = static_cast<std::int64_t>(targets.size());
  const int P = static_cast<int>(totals.size());
  MatrixRD buf = MatrixRD::Zero(T, h + 1);  // [global id | row]
  for (std::int64_t t = 0; t < T; ++t) {
    const double tau = targets[t];
    int owner = -1, last_pos = -1;
    double prefix = 0, owner_prefix = 0;
    for (int r = 0; r < P; ++r) {
      if (totals[r] > 0) {
        last_pos = r;
        if (owner < 0 && tau < prefix + totals[r]) {
          owner = r;
          owner_prefix = prefix;
        }
      }
      prefix += totals[r];
    }
    bool take_last = false;
    std::int64_t fixed = -1;
    if (owner < 0 && last_pos >= 0) {
      owner = last_pos;
      take_last = true;
    } else if (owner < 0) {
      fixed = std::min<std::int64_t>(L.n - 1, static_cast<std::int64_t>(fallback_u[t] * L.n));
      owner = L.owner(fixed);
    }
    if (owner != L.rank) continue;
    std::int64_t pick = -1;
    if (fixed >= 0) {
      pick = fixed - L.begin;
    } else {
      double acc = owner_prefix;
      std::int64_t last = -1;
      for (std::int64_t i = 0; i < L.n_local; ++i) {
        if (!(v[i] > 0)) continue;
        last = i;
        if (take_last) continue;
        acc += v[i];
        if (acc > tau) {
          pick = i;
          break;
        }
      }
      if (pick < 0) pick = last;
    }
    buf(t, 0) = static_cast<double>(L.begin + pick);
    for (std::int64_t f = 0; f < h; ++f) buf(t, f + 1) = X(pick, f);
  }
  comm.allreduce(buf);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(T));
  MatrixRF rows(T, h);
  for (std::int64_t t = 0; t < T; ++t) {
    ids[t] = static_cast<std::int64_t>(buf(t, 0));
    for (std::int64_t f = 0; f < h; ++f) rows(t, f) = static_cast<float>(buf(t, f + 1));
  }
  return {ids, rows};
}

/// closest[i] = min(closest[i], min_p ||x_i - P_p||^2).
void min_dist_update(const MatrixRF& X, const Layout& L, const MatrixRF& P, Exec ex,
                     std::vector<float>& closest) {
  if (P.rows() == 0) return;
  const std::int64_t h = X.cols();
  for_each_nearest(X, L, P, ex, 32, [&](std::int64_t, std::int64_t i, std::int32_t j) {
    closest[i] = std::min(closest[i], sqdist(X.data() + i * h, P.data() + j * h, h));
  });
}

MatrixRF kmeans_parallel(const MatrixRF& X, const Layout& L, std::int64_t k, const KMeansParams& p,
                         std::uint64_t key, Exec ex, const Comm& comm) {
  const std::int64_t h = X.cols();
  const double l = p.oversampling_factor > 0 ? p.oversampling_factor : 2.0 * k;
  std::vector<std::int64_t> ids{
      std::min<std::int64_t>(L.n - 1, static_cast<std::int64_t>(unit(key_of(key, 0)) * L.n))};
  MatrixRF C = fetch_rows(X, L, ids, h, comm);
  std::vector<float> closest(static_cast<std::size_t>(L.n_local));
  for (std::int64_t i = 0; i < L.n_local; ++i) closest[i] = sqdist(X.data() + i * h, C.data(), h);
  auto potential = [&] {
    double s = 0;
    for (const float d : closest) s += d;
    return comm.allreduce_value(s);
  };
  double psi = potential();
  for (int r = 1; r <= p.init_rounds && psi > 0; ++r) {
    std::vector<float> rows;
    std::vector<std::int64_t> sel;
    for (std::int64_t i = 0; i < L.n_local; ++i) {
      const std::int64_t g = L.begin + i;
      if (unit(key_of(key, static_cast<std::uint64_t>(r), static_cast<std::uint64_t>(g))) <
          l * closest[i] / psi) {
        sel.push_back(g);
        rows.insert(rows.end(), X.row(i).data(), X.row(i).data() + h);
      }
    }
    const auto new_ids = comm.allgatherv(sel);
    const auto flat = comm.allgatherv(rows);
    if (new_ids.empty()) continue;
    const Eigen::Map<const MatrixRF> Pm(flat.data(), static_cast<Eigen::Index>(new_ids.size()), h);
    const MatrixRF P = Pm;
    min_dist_update(X, L, P, ex, closest);
    MatrixRF grown(C.rows() + P.rows(), h);
    grown << C, P;
    C = std::move(grown);
    ids.insert(ids.end(), new_ids.begin(), new_ids.end());
    psi = potential();
  }
  if (C.rows() < k) {  // too few candidates (e.g. many identical users): add random users
    const auto extra = sample_indices(L, k + C.rows(), key_of(key, kTagTopUp), comm);
    std::vector<std::int64_t> add;
    std::vector<std::int64_t> have = ids;
    std::sort(have.begin(), have.end());
    for (const auto g : extra) {
      if (static_cast<std::int64_t>(ids.size() + add.size()) >= k) break;
      if (!std::binary_search(have.begin(), have.end(), g)) add.push_back(g);
    }
    const MatrixRF P = fetch_rows(X, L, add, h, comm);
    MatrixRF grown(C.rows() + P.rows(), h);
    grown << C, P;
    C = std::move(grown);
  }
  if (C.rows() == k) return C;
  // Weight each candidate by the users nearest to it, then reduce to k with weighted
  // k-means++, identically on every rank.
  std::vector<std::int32_t> lab(static_cast<std::size_t>(L.n_local), -1);
  std::vector<float> dist(static_cast<std::size_t>(L.n_local));
  const auto acc = assign_accumulate(X, L, C, ex, lab, dist);
  std::vector<double> w(acc.begin() + C.rows() * h, acc.begin() + C.rows() * (h + 1));
  comm.allreduce(w);
  const Comm serial;
  return kmeans_plus_plus(C, w, k, key_of(key, kTagReduce), ex.threads, serial);
}

}  // namespace

MatrixRF init_centroids(const MatrixRF& X, std::int64_t k, const KMeansParams& p,
                        const KMeansModes& m, int restart, const Comm& comm) {
  const Layout L = make_layout(X.rows(), comm);
  const std::uint64_t rkey = key_of(p.seed, kTagRestart, static_cast<std::uint64_t>(restart));
  const int threads = p.resolved_threads();
  switch (m.init) {
    case InitMethod::kKMeansPlusPlus:
      return kmeans_plus_plus(X, {}, k, key_of(rkey, kTagPlusPlus), threads, comm);
    case InitMethod::kKMeansParallel:
      return kmeans_parallel(X, L, k, p, key_of(rkey, kTagParallel), exec_of(p, m), comm);
    case InitMethod::kRandom:
      return fetch_rows(X, L, sample_indices(L, k, key_of(rkey, kTagRandom), comm), X.cols(), comm);
    case InitMethod::kFile:
      break;
  }
  throw UsageError("--init " + p.init + ": a centroid file is read by the caller");
}

}  // namespace kmeans_detail

using namespace kmeans_detail;

namespace kmeans_detail {
namespace {

/// Greedy weighted k-means++ continued from `seeds` (s x h, s < k; 0 rows: the usual start
/// with one drawn centre): centres [0, s) are the seeds, the rest are drawn.
MatrixRF plus_plus_from(const MatrixRF& X, std::span<const double> weights, const MatrixRF& seeds,
                        std::int64_t k, std::uint64_t key, int threads, const Comm& comm) {
  const Layout L = make_layout(X.rows(), comm);
  const std::int64_t h = X.cols(), nl = L.n_local;
  SEGREC_ASSERT(k >= 1 && k <= L.n, "k-means++ needs 1 <= k <= n, got k = ", k);
  SEGREC_ASSERT(weights.empty() || static_cast<std::int64_t>(weights.size()) == nl,
                "one weight per row");
  const auto T = static_cast<std::int64_t>(2 + std::floor(std::log(static_cast<double>(k))));
  auto w = [&](std::int64_t i) { return weights.empty() ? 1.0 : weights[i]; };
  MatrixRF centers(k, h);
  std::vector<double> v(static_cast<std::size_t>(nl));
  for (std::int64_t i = 0; i < nl; ++i) v[i] = w(i);
  std::vector<double> totals =
      comm.allgatherv(std::vector<double>{std::accumulate(v.begin(), v.end(), 0.0)});
  auto sum_of = [](const std::vector<double>& t) {
    return std::accumulate(t.begin(), t.end(), 0.0);
  };
  const std::int64_t n_seeds = seeds.rows();
  SEGREC_ASSERT(n_seeds < k && (n_seeds == 0 || seeds.cols() == h), "k-means++ from ", n_seeds,
                " seeds for k = ", k);
  if (n_seeds == 0) {
    const double u = unit(key_of(key, 0, 0));
    auto [ids, rows] = draw_rows(X, L, v, totals, {u * sum_of(totals)}, {u}, comm);
    centers.row(0) = rows.row(0);
  } else {
    centers.topRows(n_seeds) = seeds;
  }
  std::vector<float> closest(static_cast<std::size_t>(nl));
  for (std::int64_t i = 0; i < nl; ++i) closest[i] = sqdist(X.data() + i * h, centers.data(), h);
  for (std::int64_t j = 1; j < n_seeds; ++j)
    for (std::int64_t i = 0; i < nl; ++i)
      closest[i] = std::min(closest[i], sqdist(X.data() + i * h, centers.data() + j * h, h));
  for (std::int64_t i = 0; i < nl; ++i) v[i] = w(i) * closest[i];
  totals = comm.allgatherv(std::vector<double>{std::accumulate(v.begin(), v.end(), 0.0)});
  std::vector<float> D(static_cast<std::size_t>(nl * T));
  const std::vector<float> xn = row_sqnorms(X);
  for (std::int64_t c = std::max<std::int64_t>(n_seeds, 1); c < k; ++c) {
    const double pot = sum_of(totals);
    std::vector<double> targets(static_cast<std::size_t>(T)), us(static_cast<std::size_t>(T));
    for (std::int64_t t = 0; t < T; ++t) {
      us[t] = unit(key_of(key, static_cast<std::uint64_t>(c), static_cast<std::uint64_t>(t)));
      targets[t] = us[t] * pot;
    }
    auto [ids, cand] = draw_rows(X, L, v, totals, targets, us, comm);
    // D(i, t) = min(closest_i, ||x_i - cand_t||^2) in the GEMM form over row blocks.
    const MatrixRF Ct = cand.transpose();
    const std::vector<float> cn = row_sqnorms(cand);
    for_each_block(X, L, Ct, threads, 1,
                   [&](std::int64_t, int, std::int64_t row0, std::int64_t rows, std::int64_t off,
                       const MatrixRF& G) {
                     for (std::int64_t r = 0; r < rows; ++r) {
                       const std::int64_t i = row0 + r;
                       const float* g = G.data() + (off + r) * T;
                       for (std::int64_t t = 0; t < T; ++t)
                         D[i * T + t] =
                             std::min(closest[i], std::max(0.0f, xn[i] + cn[t] - 2.0f * g[t]));
                     }
                   });
    std::vector<double> local_pot(static_cast<std::size_t>(T), 0.0);
    for (std::int64_t i = 0; i < nl; ++i)
      for (std::int64_t t = 0; t < T; ++t) local_pot[t] += w(i) * D[i * T + t];
    const auto all = comm.allgatherv(local_pot);  // ranks x T, in rank order
    const auto P = static_cast<std::int64_t>(all.size()) / T;
    std::int64_t best = 0;
    double best_pot = std::numeric_limits<double>::infinity();
    for (std::int64_t t = 0; t < T; ++t) {
      double s = 0;
      for (std::int64_t r = 0; r < P; ++r) s += all[r * T + t];
      if (s < best_pot) {
        best_pot = s;
        best = t;
      }
    }
    centers.row(c) = cand.row(best);
    for (std::int64_t i = 0; i < nl; ++i) {
      closest[i] = D[i * T + best];
      v[i] = w(i) * closest[i];
    }
    for (std::int64_t r = 0; r < P; ++r) totals[r] = all[r * T + best];
  }
  return centers;
}

}  // namespace
}  // namespace kmeans_detail

MatrixRF kmeans_plus_plus(const MatrixRF& X, std::span<const double> weights, std::int64_t k,
                          std::uint64_t key, int threads, const Comm& comm) {
  return kmeans_detail::plus_plus_from(X, weights, MatrixRF(0, X.cols()), k, key, threads, comm);
}

MatrixRF centroids_from_previous(const MatrixRF& X, const PreviousCentroids& prev, std::int64_t k,
                                 const KMeansParams& p, const Comm& comm) {
  const MatrixRF& C = prev.centroids;
  const std::int64_t k_old = C.rows();
  SEGREC_ASSERT(
      k >= 1 && C.cols() == X.cols() && static_cast<std::int64_t>(prev.sizes.size()) == k_old,
      "previous centroids ", k_old, " x ", C.cols(), " for k = ", k);
  if (k == k_old) return C;
  if (k > k_old) {
    const std::uint64_t key = key_of(p.seed, kTagPrevious, static_cast<std::uint64_t>(k));
    return kmeans_detail::plus_plus_from(X, {}, C, k, key, p.resolved_threads(), comm);
  }
  // Fewer segments: the closest pair of kept centroids loses the one of the smaller segment
  // (equal sizes: the higher id), until k remain; the survivors stay in old id order.
  std::vector<char> kept(static_cast<std::size_t>(k_old), 1);
  for (std::int64_t left = k_old; left > k; --left) {
    double best = std::numeric_limits<double>::infinity();
    std::int64_t bi = -1, bj = -1;
    for (std::int64_t i = 0; i < k_old; ++i)
      for (std::int64_t j = i + 1; j < k_old && kept[i]; ++j) {
        if (!kept[j]) continue;
        const double d = (C.row(i).cast<double>() - C.row(j).cast<double>()).squaredNorm();
        if (d < best) {
          best = d;
          bi = i;
          bj = j;
        }
      }
    kept[prev.sizes[bj] <= prev.sizes[bi] ? bj : bi] = 0;
  }
  MatrixRF out(k, C.cols());
  for (std::int64_t i = 0, r = 0; i < k_old; ++i)
    if (kept[i]) out.row(r++) = C.row(i);
  return out;
}

MatrixRF init_centroids(const MatrixRF& X, std::int64_t k, const KMeansParams& p, int restart,
                        const Comm& comm) {
  return kmeans_detail::init_centroids(X, k, p, p.validate(), restart, comm);
}

}  // namespace segrec
