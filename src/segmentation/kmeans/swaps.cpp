// Merge-split moves after Lloyd: leave a local optimum in which two planted segments share one
// centroid while another segment is cut in two (params.hpp, --swap-tries).
//
// A move from the fit (C: k x h, n_j users, S_j within sum of squares of segment j):
//   merge: the pair (a, b) with the least Ward cost n_a n_b / (n_a + n_b) ||c_a - c_b||^2,
//          c_a <- the pair's mean;
//   split: the segment j outside {a, b} with the largest S_j; c_b <- its user farthest from
//          c_j (the smallest global index on ties);
// then Lloyd, screened: 3 x --restart-iters iterations, then on to convergence only when the
// inertia is already below the bar (10 iterations missed a move on planted data). The fit is
// kept when its inertia is below (1 - 1e-6) of the current one; otherwise the next cheapest pair is
// tried, `tries` pairs in all. Every decision reads global sums, so it is the same on every rank
// and at any rank count.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

#include "internal.hpp"

namespace segrec::kmeans_detail {

namespace {
constexpr double kMinGain = 1e-6;  // relative inertia drop that keeps a move
}  // namespace

std::vector<std::tuple<double, std::int64_t, std::int64_t>> cheapest_merges(const KMeansResult& r,
                                                                            int tries) {
  std::vector<std::tuple<double, std::int64_t, std::int64_t>> pairs;
  for (std::int64_t a = 0; a < r.k; ++a)
    for (std::int64_t b = a + 1; b < r.k; ++b) {
      const auto na = static_cast<double>(r.sizes[static_cast<std::size_t>(a)]);
      const auto nb = static_cast<double>(r.sizes[static_cast<std::size_t>(b)]);
      if (na + nb == 0) continue;
      pairs.emplace_back(
          na * nb / (na + nb) * (r.centroids.row(a) - r.centroids.row(b)).squaredNorm(), a, b);
    }
  const auto n_try =
      std::min<std::size_t>(static_cast<std::size_t>(std::max(tries, 0)), pairs.size());
  std::partial_sort(pairs.begin(), pairs.begin() + static_cast<std::ptrdiff_t>(n_try), pairs.end());
  pairs.resize(n_try);
  return pairs;
}

std::vector<double> within_sums(const MatrixRF& X, const Layout& L, const KMeansResult& r,
                                const Comm& comm, std::vector<float>* dist) {
  const std::int64_t h = X.cols();
  const MatrixRF Cf = r.centroids.cast<float>();
  std::vector<double> sse(static_cast<std::size_t>(r.k), 0.0);
  for (std::int64_t i = 0; i < L.n_local; ++i) {
    const std::int32_t j = r.labels[static_cast<std::size_t>(i)];
    const float d = sqdist(X.data() + i * h, Cf.data() + j * h, h);
    if (dist) (*dist)[static_cast<std::size_t>(i)] = d;
    sse[static_cast<std::size_t>(j)] += d;
  }
  comm.allreduce(sse);
  return sse;
}

MatrixRD merged_centroids(const KMeansResult& r, std::int64_t a, std::int64_t b) {
  const auto na = static_cast<double>(r.sizes[static_cast<std::size_t>(a)]);
  const auto nb = static_cast<double>(r.sizes[static_cast<std::size_t>(b)]);
  MatrixRD C = r.centroids;
  C.row(a) = (na * r.centroids.row(a) + nb * r.centroids.row(b)) / (na + nb);
  return C;
}

void take_move(KMeansResult& cur, KMeansResult&& r) {
  r.restart = cur.restart;
  r.restart_inertia = std::move(cur.restart_inertia);
  r.n_iter += cur.n_iter;
  r.relocated += cur.relocated;
  r.init_seconds = cur.init_seconds;
  r.swaps = cur.swaps + 1;
  r.swap_runs = cur.swap_runs;
  r.iterations.insert(r.iterations.begin(), cur.iterations.begin(), cur.iterations.end());
  r.seconds = cur.seconds;
  cur = std::move(r);
}

KMeansResult swap_refine(const MatrixRF& X, const Layout& L, KMeansResult cur, int tries,
                         const KMeansParams& p, const KMeansModes& m, double tol_abs, Exec ex,
                         const Comm& comm) {
  const std::int64_t k = cur.k, h = X.cols();
  if (tries <= 0 || k < 3 || L.n <= k) return cur;
  std::vector<float> dist(static_cast<std::size_t>(L.n_local));
  std::vector<double> row(static_cast<std::size_t>(h));
  double seconds = 0;
  const int screen = p.restart_iters > 0 ? std::min(3 * p.restart_iters, p.max_iter) : p.max_iter;
  // At most k kept moves: each lowers the inertia, and k bounds the work on a slow descent.
  while (cur.swaps < k) {
    const std::vector<double> sse = within_sums(X, L, cur, comm, &dist);  // S_j, global
    const auto pairs = cheapest_merges(cur, tries);
    bool kept = false;
    for (std::size_t t = 0; t < pairs.size() && !kept; ++t) {
      const auto [cost, a, b] = pairs[t];
      std::int64_t split = -1;
      for (std::int64_t j = 0; j < k; ++j)
        if (j != a && j != b && cur.sizes[j] >= 2 && (split < 0 || sse[j] > sse[split])) split = j;
      if (split < 0 || !(sse[split] > 0)) continue;
      ValueIndex v{-std::numeric_limits<double>::infinity(), INT64_MAX};
      for (std::int64_t i = 0; i < L.n_local; ++i)
        if (cur.labels[i] == split && dist[i] > v.value) v = {dist[i], L.begin + i};
      broadcast_best_row(
          v, L, std::span<double>(row),
          [&](std::int64_t i, std::span<double> r) {
            for (std::int64_t f = 0; f < h; ++f) r[f] = X(i, f);
          },
          comm);
      MatrixRD C = merged_centroids(cur, a, b);
      for (std::int64_t f = 0; f < h; ++f) C(b, f) = row[f];
      // Screened as a restart: the inertia of Lloyd's iterations only falls, so a move that
      // is below the bar after `screen` iterations stays below it.
      KMeansResult r = lloyd_impl(X, L, C, p, m, tol_abs, ex, comm, screen, screen < p.max_iter);
      ++cur.swap_runs;
      const bool lower = r.inertia < (1 - kMinGain) * cur.inertia;  // finishing only lowers it
      if (lower) r = finish_run(X, L, std::move(r), p, m, tol_abs, ex, comm);
      seconds += r.seconds;
      if (lower) {
        take_move(cur, std::move(r));
        kept = true;
      }
    }
    if (!kept) break;
  }
  cur.seconds += seconds;
  return cur;
}

}  // namespace segrec::kmeans_detail
