// The k-distance curve of DBSCAN (--eps auto): each sampled user's distance to its k-th
// nearest user, by exact d^2 over this rank's tiles (nearest tiles first, stopping once a
// tile's ball is beyond the k-th best), merged over ranks; and the knee of the sorted curve.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "../kmeans/internal.hpp"
#include "internal.hpp"
#include "segrec/segmentation/dbscan/dbscan.hpp"

namespace segrec {
namespace {

constexpr std::uint64_t kTagKDistance = 0x4b44495354ULL;  // "KDIST"

}  // namespace

std::int64_t knee_index(const std::vector<double>& v) {
  std::int64_t n = 0;
  while (n < static_cast<std::int64_t>(v.size()) && std::isfinite(v[n])) ++n;
  if (n < 2) return -1;
  const double lo = v[0], hi = v[n - 1];
  if (!(hi > lo)) return n - 1;
  std::int64_t best = 0;
  double gap = -1;
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(i) / static_cast<double>(n - 1);
    const double y = (v[i] - lo) / (hi - lo);
    if (x - y > gap) {
      gap = x - y;
      best = i;
    }
  }
  return best;
}

KDistanceCurve k_distance_curve(const MatrixRF& X, std::int64_t k, std::int64_t sample,
                                std::uint64_t seed, int threads, const Comm& comm) {
  using dbscan_detail::Tiles;
  KDistanceCurve c;
  c.k = k;
  const std::int64_t h = X.cols();
  const kmeans_detail::Layout L = kmeans_detail::make_layout(X.rows(), comm);
  const auto ids =
      kmeans_detail::sample_indices(L, sample, kmeans_detail::key_of(seed, kTagKDistance), comm);
  const MatrixRF S = kmeans_detail::fetch_rows(X, L, ids, h, comm);
  const auto ns = static_cast<std::int64_t>(ids.size());
  std::vector<std::int64_t> order;
  const Tiles A = dbscan_detail::make_tiles(X, L.begin, order);
  const std::int64_t nt = A.tiles();
  const double inf = std::numeric_limits<double>::infinity();
  // Per sample, this rank's k smallest d^2 (ascending; +inf pads).
  std::vector<double> local(static_cast<std::size_t>(ns * k), inf);
  kmeans_detail::parallel_for(threads, ns, [&](int, std::int64_t s) {
    const float* q = S.row(s).data();
    std::vector<std::pair<double, std::int64_t>> lb(static_cast<std::size_t>(nt));
    for (std::int64_t t = 0; t < nt; ++t) {
      double d = 0;
      for (std::int64_t f = 0; f < h; ++f) {
        const double e = q[f] - A.centre[t * h + f];
        d += e * e;
      }
      const double gap = std::max(0.0, std::sqrt(d) - A.radius[t]);
      lb[t] = {gap * gap * (1 - 1e-9), t};
    }
    std::sort(lb.begin(), lb.end());
    std::vector<double> heap;  // max-heap of the k smallest d^2
    for (const auto& [bound, t] : lb) {
      if (static_cast<std::int64_t>(heap.size()) == k && bound > heap.front()) break;
      for (std::int64_t r = A.start[t]; r < A.start[t + 1]; ++r) {
        const double d2 = dbscan_detail::exact_d2(q, A.row(r), h);
        if (static_cast<std::int64_t>(heap.size()) < k) {
          heap.push_back(d2);
          std::push_heap(heap.begin(), heap.end());
        } else if (d2 < heap.front()) {
          std::pop_heap(heap.begin(), heap.end());
          heap.back() = d2;
          std::push_heap(heap.begin(), heap.end());
        }
      }
    }
    std::sort_heap(heap.begin(), heap.end());
    std::copy(heap.begin(), heap.end(), local.begin() + s * k);
  });
  const auto all = comm.allgatherv(local);  // ranks x ns x k
  const std::int64_t P = comm.size();
  c.dist.resize(static_cast<std::size_t>(ns));
  std::vector<double> merged;
  for (std::int64_t s = 0; s < ns; ++s) {
    merged.clear();
    for (std::int64_t r = 0; r < P; ++r)
      merged.insert(merged.end(), all.begin() + (r * ns + s) * k,
                    all.begin() + (r * ns + s + 1) * k);
    std::nth_element(merged.begin(), merged.begin() + (k - 1), merged.end());
    c.dist[s] = std::sqrt(merged[k - 1]);
  }
  std::sort(c.dist.begin(), c.dist.end());
  c.knee = knee_index(c.dist);
  c.knee_eps = c.knee >= 0 ? c.dist[c.knee] : 0.0;
  return c;
}

}  // namespace segrec
