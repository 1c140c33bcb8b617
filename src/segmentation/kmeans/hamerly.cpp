// Hamerly's bounds: exact Lloyd assignment with triangle-inequality pruning.
//
// Exact Lloyd with pruning (Hamerly 2010). Per local user: u >= ||x - c_a|| (a = its label)
// and l <= ||x - c_j|| for every j != a, both in double. A user keeps its label without the
// kernel when the kernel's argmin provably returns a: the kernel's value cn_j - 2 x.c_j plus
// ||x||^2 is within E = 4 (h + 4) 2^-24 (||x|| + max_j ||c_j||)^2 of the exact squared
// distance, so u^2 + 2E < L^2 (L: the lower bound on the other distances) leaves no room for
// another winner or a tie. Every other user goes through the same kernel as Lloyd, so labels
// are identical; sums, counts and inertia come from Lloyd's accumulation pass (same task runs,
// same row order), so centroids are bit-identical.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "internal.hpp"

namespace segrec::kmeans_detail {
namespace {

/// Lower bound (distance) from the kernel's second value v2 = cn_j - 2 x.c_j.
double lower_from_kernel(float v2, double xn2, double err) {
  if (!std::isfinite(v2)) return std::numeric_limits<double>::infinity();
  return std::sqrt(std::max(0.0, static_cast<double>(v2) + xn2 - err)) * (1 - 1e-12);
}

}  // namespace

/// Hamerly's assignment step fused with Lloyd's accumulation. Same contract and same result as
/// assign_accumulate; `recomputed` receives the users compared with all centroids. Rows go in
/// Lloyd's accumulation tasks, each in windows (fused: 256 rows; gemm: Lloyd's GEMM blocks)
/// that stay in cache: test the bounds, run the kernel on the users that need it, then add
/// the window's rows to the task's sums in row order.
std::vector<double> hamerly_assign_accumulate(const MatrixRF& X, const Layout& L, const MatrixRF& C,
                                              Exec ex, std::vector<std::int32_t>& labels,
                                              std::vector<float>& dist, HamerlyState& hs,
                                              std::int64_t& recomputed) {
  const std::int64_t k = C.rows(), h = C.cols(), n = L.n_local, W = k * h + k + 2;
  const auto nz = static_cast<std::size_t>(n);
  if (hs.u.size() != nz) {
    hs.u.assign(nz, 0.0);
    hs.l.assign(nz, 0.0);
    hs.xn2.assign(nz, -1.0);  // filled in the first pass
    hs.gamma = static_cast<double>(h + 4) * 0x1.0p-24;
    hs.valid = false;
  }
  const bool fresh = hs.xn2.empty() || (n > 0 && hs.xn2[0] < 0);
  double cmax = 0;  // max_j ||c_j||
  for (std::int64_t j = 0; j < k; ++j) cmax = std::max(cmax, C.row(j).cast<double>().norm());
  const double up = 1 + 4 * hs.gamma;  // sqdist's relative error, rounded up
  // Centroid shifts (largest two) and half the distance to the nearest other centroid.
  std::vector<double> shift(static_cast<std::size_t>(k), 0.0), half(static_cast<std::size_t>(k));
  double m1 = 0, m2 = 0;
  std::int64_t a1 = -1;
  if (hs.valid) {
    for (std::int64_t j = 0; j < k; ++j) {
      shift[j] = (C.row(j).cast<double>() - hs.prev.row(j).cast<double>()).norm() * (1 + 1e-12);
      if (shift[j] > m1) {
        m2 = m1;
        m1 = shift[j];
        a1 = j;
      } else {
        m2 = std::max(m2, shift[j]);
      }
    }
    const MatrixRD Cd = C.cast<double>();
    const Eigen::VectorXd cn2 = Cd.rowwise().squaredNorm();
    const MatrixRD G = Cd * Cd.transpose();
    for (std::int64_t j = 0; j < k; ++j) {
      double best = std::numeric_limits<double>::infinity();
      for (std::int64_t q = 0; q < k; ++q)
        if (q != j) best = std::min(best, cn2[j] + cn2[q] - 2 * G(j, q));
      // The Gram form loses up to ~1e-14 cmax^2 to rounding: take 1e-6 cmax off the distance.
      half[j] = std::max(0.0, 0.5 * (std::sqrt(std::max(0.0, best)) - 1e-6 * cmax));
    }
  }
#ifdef __AVX512F__
  std::unique_ptr<PackedCentroids> packed;
  if (ex.fused) packed = std::make_unique<PackedCentroids>(pack_centroids(C));
#endif
  MatrixRF Ct;
  std::vector<float> cn;
  if (!ex.fused) {
    Ct = C.transpose();
    cn = row_sqnorms(C);
  }
  const std::int64_t max_tasks =
      std::min<std::int64_t>(32, std::max<std::int64_t>(1, (std::int64_t{32} << 20) / (W * 8)));
  const auto runs = task_rows(L, k, max_tasks, ex.fused);
  const auto tasks = static_cast<std::int64_t>(runs.size());
  std::vector<double> part(static_cast<std::size_t>(std::max<std::int64_t>(tasks, 1) * W), 0.0);
  std::vector<std::int64_t> task_changed(static_cast<std::size_t>(std::max<std::int64_t>(tasks, 1)),
                                         0),
      task_recomputed(task_changed.size(), 0);
  const std::int64_t B = ex.fused ? 256 : block_rows(k);
  parallel_for(ex.threads, tasks, [&](int, std::int64_t t) {
    double* P = part.data() + t * W;
    std::vector<std::int64_t> todo;
    std::vector<float> rows(static_cast<std::size_t>(kKernelRows * h));
    MatrixRF xpad, G;
    std::int64_t ch = 0, rec = 0;
    auto settle = [&](std::int64_t i, std::int32_t j, float v2, double err) {
      ch += labels[i] != j;
      labels[i] = j;
      hs.l[i] = lower_from_kernel(v2, hs.xn2[i], err);
    };
    auto err_of = [&](std::int64_t i) {
      const double r = std::sqrt(hs.xn2[i]) + cmax;
      return 4 * hs.gamma * r * r * (1 + 1e-6);
    };
    for (std::int64_t lo = runs[t].first; lo < runs[t].second;) {
      // Window [lo, hi): gemm windows are Lloyd's global-aligned blocks.
      const std::int64_t hi =
          ex.fused ? std::min(runs[t].second, lo + B)
                   : std::min(runs[t].second, ((L.begin + lo) / B + 1) * B - L.begin);
      todo.clear();
      for (std::int64_t i = lo; i < hi; ++i) {
        if (fresh) {
          double s = 0;
          for (std::int64_t f = 0; f < h; ++f) s += static_cast<double>(X(i, f)) * X(i, f);
          hs.xn2[i] = s;
        }
        if (!hs.valid) {
          todo.push_back(i);
          continue;
        }
        const std::int32_t a = labels[i];
        double u = (hs.u[i] + shift[a]) * (1 + 1e-12);
        const double l = (hs.l[i] - (a == a1 ? m2 : m1)) * (1 - 1e-12);
        hs.l[i] = l;
        const double err = err_of(i);
        auto pruned = [&](double uu) {
          const double lb = std::max(l, 2 * half[a] - uu);
          return lb > 0 && uu * uu + 2 * err < lb * lb;
        };
        if (!pruned(u)) {  // tighten u with the exact distance
          u = std::sqrt(static_cast<double>(sqdist(X.data() + i * h, C.data() + a * h, h)) * up);
          if (!pruned(u)) todo.push_back(i);
        }
      }
      rec += static_cast<std::int64_t>(todo.size());
      // The kernel on the window's users that need it: label, changed count, lower bound.
#ifdef __AVX512F__
      if (ex.fused) {
        std::int32_t idx[kKernelRows];
        float v2[kKernelRows];
        const auto cnt_all = static_cast<std::int64_t>(todo.size());
        for (std::int64_t r0 = 0; r0 < cnt_all; r0 += kKernelRows) {
          const std::int64_t cnt = std::min<std::int64_t>(kKernelRows, cnt_all - r0);
          const float* x = X.data() + todo[r0] * h;
          if (cnt < kKernelRows || todo[r0 + kKernelRows - 1] != todo[r0] + kKernelRows - 1) {
            std::fill(rows.begin(), rows.end(), 0.0f);
            for (std::int64_t r = 0; r < cnt; ++r)
              std::copy(X.data() + todo[r0 + r] * h, X.data() + (todo[r0 + r] + 1) * h,
                        rows.begin() + r * h);
            x = rows.data();
          }
          nearest8(x, *packed, idx, v2);
          for (std::int64_t r = 0; r < cnt; ++r)
            settle(todo[r0 + r], idx[r], v2[r], err_of(todo[r0 + r]));
        }
      }
#endif
      if (!ex.fused && !todo.empty()) {
        const std::int64_t gb = (L.begin + lo) / B * B;
        const std::int64_t off = L.begin + lo - gb, cnt = hi - lo;
        if (cnt == B) {
          const Eigen::Map<const MatrixRF> xb(X.data() + lo * h, B, h);
          G.noalias() = xb * Ct;
        } else {
          xpad.setZero(B, h);
          xpad.middleRows(off, cnt) = X.middleRows(lo, cnt);
          G.noalias() = xpad * Ct;
        }
        for (const std::int64_t i : todo) {
          const float* g = G.data() + (off + i - lo) * k;
          const std::int32_t j = argmin_dist(g, cn.data(), k);
          float v2 = std::numeric_limits<float>::infinity();
          for (std::int64_t q = 0; q < k; ++q)
            if (q != j) v2 = std::min(v2, cn[q] - 2.0f * g[q]);
          settle(i, j, v2, err_of(i));
        }
      }
      // Lloyd's accumulation, rows in order; the exact distance also resets u.
      for (std::int64_t i = lo; i < hi; ++i) {
        const std::int32_t j = labels[i];
        const float* x = X.data() + i * h;
        const float d = sqdist(x, C.data() + j * h, h);
        dist[i] = d;
        hs.u[i] = std::sqrt(static_cast<double>(d) * up);
        P[W - 2] += d;
        P[k * h + j] += 1;
        double* sj = P + j * h;
        for (std::int64_t f = 0; f < h; ++f) sj[f] += x[f];
      }
      lo = hi;
    }
    task_changed[t] = ch;
    task_recomputed[t] = rec;
  });
  std::vector<double> out(part.begin(), part.begin() + W);
  for (std::int64_t t = 1; t < tasks; ++t) {
    const double* src = part.data() + t * W;
    for (std::int64_t w = 0; w < W; ++w) out[w] += src[w];
  }
  out[W - 1] = static_cast<double>(
      std::accumulate(task_changed.begin(), task_changed.end(), std::int64_t{0}));
  recomputed = std::accumulate(task_recomputed.begin(), task_recomputed.end(), std::int64_t{0});
  hs.prev = C;
  hs.valid = true;
  return out;
}

}  // namespace segrec::kmeans_detail
