// Distance kernels of K-means: squared distances and norms in a fixed summation order, the
// argmin over cn - 2 x.c, the GEMM row blocks, and the fused AVX-512 nearest-centroid kernel
// ("fused" keeps 8 rows x 48 centroids of dot products in registers and folds them straight
// into the argmin; "gemm" runs Eigen's float GEMM over row blocks, then the argmin).
//
// GCC 12 reports false "(maybe-)uninitialized" warnings inside its own AVX-512 intrinsics
// (the _mm512_undefined_* placeholders) wherever they are inlined (Eigen's packet code,
// the argmin below); the pragmas must precede the includes to reach those headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "internal.hpp"

namespace segrec::kmeans_detail {

float sqdist(const float* a, const float* b, std::int64_t h) {
#ifdef __AVX512F__
  __m512 acc = _mm512_setzero_ps();
  std::int64_t f = 0;
  for (; f + kLanes <= h; f += kLanes) {
    const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(a + f), _mm512_loadu_ps(b + f));
    acc = _mm512_fmadd_ps(d, d, acc);
  }
  if (f < h) {
    const auto tail = static_cast<__mmask16>((1u << (h - f)) - 1);
    const __m512 d =
        _mm512_sub_ps(_mm512_maskz_loadu_ps(tail, a + f), _mm512_maskz_loadu_ps(tail, b + f));
    acc = _mm512_fmadd_ps(d, d, acc);
  }
  return _mm512_reduce_add_ps(acc);
#else
  float acc[kLanes] = {};
  std::int64_t f = 0;
  for (; f + kLanes <= h; f += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float d = a[f + l] - b[f + l];
      acc[l] += d * d;
    }
  for (int l = 0; f + l < h; ++l) {
    const float d = a[f + l] - b[f + l];
    acc[l] += d * d;
  }
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
#endif
}

float sqnorm(const float* a, std::int64_t h) {
  float acc[kLanes] = {};
  std::int64_t f = 0;
  for (; f + kLanes <= h; f += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += a[f + l] * a[f + l];
  for (int l = 0; f + l < h; ++l) acc[l] += a[f + l] * a[f + l];
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

/// argmin_j (cn[j] - 2 g[j]), the first j on ties. cn: ||c_j||^2; g: x.c_j. Every path
/// computes v = round(cn - 2 g) (2 g is exact), so all give the same index.
std::int32_t argmin_dist(const float* g, const float* cn, std::int64_t m) {
#ifdef __AVX512F__
  // 16 lanes keep their first minimum; the lane minima are then merged by (value, index).
  const __m512 two = _mm512_set1_ps(2.0f);
  const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  __m512 bv = inf;
  __m512i bx = _mm512_setzero_si512();
  __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i step = _mm512_set1_epi32(kLanes);
  std::int64_t j = 0;
  for (; j + kLanes <= m; j += kLanes) {
    const __m512 v = _mm512_fnmadd_ps(two, _mm512_loadu_ps(g + j), _mm512_loadu_ps(cn + j));
    const __mmask16 lt = _mm512_cmp_ps_mask(v, bv, _CMP_LT_OQ);
    bv = _mm512_mask_mov_ps(bv, lt, v);
    bx = _mm512_mask_mov_epi32(bx, lt, idx);
    idx = _mm512_add_epi32(idx, step);
  }
  if (j < m) {
    const auto tail = static_cast<__mmask16>((1u << (m - j)) - 1);
    const __m512 v = _mm512_mask_mov_ps(inf, tail,
                                        _mm512_fnmadd_ps(two, _mm512_maskz_loadu_ps(tail, g + j),
                                                         _mm512_maskz_loadu_ps(tail, cn + j)));
    const __mmask16 lt = _mm512_cmp_ps_mask(v, bv, _CMP_LT_OQ);
    bv = _mm512_mask_mov_ps(bv, lt, v);
    bx = _mm512_mask_mov_epi32(bx, lt, idx);
  }
  const float best = _mm512_reduce_min_ps(bv);
  const __mmask16 eq = _mm512_cmp_ps_mask(bv, _mm512_set1_ps(best), _CMP_EQ_OQ);
  return _mm512_reduce_min_epi32(_mm512_mask_mov_epi32(_mm512_set1_epi32(INT32_MAX), eq, bx));
#else
  float best = std::numeric_limits<float>::infinity();
  std::int32_t bi = 0;
  for (std::int64_t j = 0; j < m; ++j) {
    const float v = cn[j] - 2.0f * g[j];
    if (v < best) {
      best = v;
      bi = static_cast<std::int32_t>(j);
    }
  }
  return bi;
#endif
}

/// Rows per GEMM block against m centroids: the G block (rows x m floats) stays near 512 KiB,
/// in L2, and the packed centroids are reused over many rows; a multiple of 48 (Eigen's
/// AVX-512 row panel). It depends on m only, so every rank and thread cuts the same blocks.
std::int64_t block_rows(std::int64_t m) {
  const std::int64_t b = (std::int64_t{1} << 17) / std::max<std::int64_t>(m, 1) / 48 * 48;
  return std::clamp<std::int64_t>(b, 96, 2016);
}

/// Blocks per task so that a rank has at most `max_tasks` tasks. Depends on the data, never
/// on the thread count.
std::int64_t blocks_per_task(const Layout& L, std::int64_t m, std::int64_t max_tasks) {
  if (L.n_local == 0) return 1;
  const std::int64_t B = block_rows(m);
  const std::int64_t nb = (L.begin + L.n_local - 1) / B - L.begin / B + 1;
  const std::int64_t tasks = std::min(nb, std::max<std::int64_t>(1, max_tasks));
  return (nb + tasks - 1) / tasks;
}

std::vector<float> row_sqnorms(const MatrixRF& M) {
  std::vector<float> out(static_cast<std::size_t>(M.rows()));
  for (Eigen::Index i = 0; i < M.rows(); ++i) out[i] = sqnorm(M.row(i).data(), M.cols());
  return out;
}

// ---- fused nearest-centroid kernel -------------------------------------------------------
// Eight rows against tiles of up to 48 centroids: the 8 x 48 dot products live in 24 zmm
// registers over the whole depth (one FMA chain per product, in feature order, the same for
// every row wherever it sits), then fold into lane-wise running minima of cn - 2 x.c. No
// distance matrix is written and the rows are read in place.

constexpr int kTileCols = 48;

PackedCentroids pack_centroids(const MatrixRF& C) {
  PackedCentroids P;
  P.k = C.rows();
  P.h = C.cols();
  P.kp = (P.k + kLanes - 1) / kLanes * kLanes;
  P.data.assign(static_cast<std::size_t>(P.kp * P.h), 0.0f);
  P.cn.assign(static_cast<std::size_t>(P.kp), std::numeric_limits<float>::infinity());
  for (std::int64_t t0 = 0; t0 < P.kp; t0 += kTileCols) {
    const std::int64_t w = std::min<std::int64_t>(kTileCols, P.kp - t0);
    float* tile = P.data.data() + t0 * P.h;
    for (std::int64_t c = 0; c < w && t0 + c < P.k; ++c)
      for (std::int64_t f = 0; f < P.h; ++f) tile[f * w + c] = C(t0 + c, f);
  }
  for (std::int64_t j = 0; j < P.k; ++j) P.cn[j] = sqnorm(C.row(j).data(), P.h);
  return P;
}

#ifdef __AVX512F__
namespace {

/// Folds one tile of V*16 centroids (starting at j0) into the running lane minima of 8 rows.
template <int V, bool Second>
void nearest_tile(const float* x, std::int64_t h, const float* tile, const float* cn,
                  std::int32_t j0, __m512* bv, __m512i* bx, __m512* sv) {
  __m512 acc[kKernelRows][V];
#pragma GCC unroll 8
  for (int r = 0; r < kKernelRows; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  for (std::int64_t f = 0; f < h; ++f) {
    __m512 c[V];
#pragma GCC unroll 3
    for (int v = 0; v < V; ++v) c[v] = _mm512_loadu_ps(tile + f * (V * kLanes) + v * kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < kKernelRows; ++r) {
      const __m512 xr = _mm512_set1_ps(x[r * h + f]);
#pragma GCC unroll 3
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(xr, c[v], acc[r][v]);
    }
  }
  const __m512 two = _mm512_set1_ps(2.0f);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#pragma GCC unroll 3
  for (int v = 0; v < V; ++v) {
    const std::int32_t jv = j0 + v * kLanes;
    const __m512 norms = _mm512_loadu_ps(cn + jv);
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(jv), lane);
#pragma GCC unroll 8
    for (int r = 0; r < kKernelRows; ++r) {
      const __m512 val = _mm512_fnmadd_ps(two, acc[r][v], norms);
      const __mmask16 lt = _mm512_cmp_ps_mask(val, bv[r], _CMP_LT_OQ);
      if constexpr (Second) sv[r] = _mm512_mask_mov_ps(_mm512_min_ps(sv[r], val), lt, bv[r]);
      bv[r] = _mm512_mask_mov_ps(bv[r], lt, val);
      bx[r] = _mm512_mask_mov_epi32(bx[r], lt, idx);
    }
  }
}

/// Nearest centroid (first on ties) of the 8 rows at x (row stride h). With Second, also
/// the smallest cn - 2 x.c over the other centroids (+inf when there is none) in second[].
template <bool Second>
void nearest8_impl(const float* x, const PackedCentroids& P, std::int32_t* out, float* second) {
  alignas(64) __m512 bv[kKernelRows];
  alignas(64) __m512i bx[kKernelRows];
  alignas(64) __m512 sv[kKernelRows];
  for (int r = 0; r < kKernelRows; ++r) {
    bv[r] = _mm512_set1_ps(std::numeric_limits<float>::infinity());
    sv[r] = bv[r];
    bx[r] = _mm512_setzero_si512();
  }
  for (std::int64_t t0 = 0; t0 < P.kp; t0 += kTileCols) {
    const float* tile = P.data.data() + t0 * P.h;
    const auto j0 = static_cast<std::int32_t>(t0);
    switch (std::min<std::int64_t>(kTileCols, P.kp - t0) / kLanes) {
      case 3:
        nearest_tile<3, Second>(x, P.h, tile, P.cn.data(), j0, bv, bx, sv);
        break;
      case 2:
        nearest_tile<2, Second>(x, P.h, tile, P.cn.data(), j0, bv, bx, sv);
        break;
      default:
        nearest_tile<1, Second>(x, P.h, tile, P.cn.data(), j0, bv, bx, sv);
        break;
    }
  }
  for (int r = 0; r < kKernelRows; ++r) {
    const float best = _mm512_reduce_min_ps(bv[r]);
    const __mmask16 eq = _mm512_cmp_ps_mask(bv[r], _mm512_set1_ps(best), _CMP_EQ_OQ);
    out[r] =
        _mm512_reduce_min_epi32(_mm512_mask_mov_epi32(_mm512_set1_epi32(INT32_MAX), eq, bx[r]));
    if constexpr (Second) {
      // Second smallest over all centroids but out[r]: the winning lane's second, or any
      // other lane's best or second.
      const __mmask16 win =
          eq & _mm512_cmp_epi32_mask(bx[r], _mm512_set1_epi32(out[r]), _MM_CMPINT_EQ);
      const __m512 others =
          _mm512_mask_mov_ps(bv[r], win, _mm512_set1_ps(std::numeric_limits<float>::infinity()));
      second[r] = std::min(_mm512_reduce_min_ps(sv[r]), _mm512_reduce_min_ps(others));
    }
  }
}

}  // namespace

void nearest8(const float* x, const PackedCentroids& P, std::int32_t* out, float* second) {
  if (second)
    nearest8_impl<true>(x, P, out, second);
  else
    nearest8_impl<false>(x, P, out, nullptr);
}
#endif

/// Number of tasks for_each_nearest cuts this rank's rows into (at most max_tasks).
std::int64_t nearest_tasks(const Layout& L, std::int64_t k, std::int64_t max_tasks, bool fused) {
  if (L.n_local == 0) return 0;
  if (fused) {
    const std::int64_t rows = (L.n_local + max_tasks - 1) / max_tasks;
    const std::int64_t per = (rows + kKernelRows - 1) / kKernelRows * kKernelRows;
    return (L.n_local + per - 1) / per;
  }
  const std::int64_t B = block_rows(k);
  const std::int64_t nb = (L.begin + L.n_local - 1) / B - L.begin / B + 1;
  const std::int64_t bpt = blocks_per_task(L, k, max_tasks);
  return (nb + bpt - 1) / bpt;
}

std::vector<std::pair<std::int64_t, std::int64_t>> task_rows(const Layout& L, std::int64_t k,
                                                             std::int64_t max_tasks, bool fused) {
  const std::int64_t tasks = nearest_tasks(L, k, max_tasks, fused);
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  if (tasks == 0) return out;
  if (fused) {
    const std::int64_t per = (L.n_local + tasks - 1) / tasks;
    const std::int64_t step = (per + kKernelRows - 1) / kKernelRows * kKernelRows;
    for (std::int64_t t = 0; t < tasks; ++t)
      out.emplace_back(t * step, std::min(L.n_local, (t + 1) * step));
    return out;
  }
  const std::int64_t B = block_rows(k), b0 = L.begin / B, bpt = blocks_per_task(L, k, max_tasks);
  for (std::int64_t t = 0; t < tasks; ++t) {
    const std::int64_t lo = std::max(L.begin, (b0 + t * bpt) * B);
    const std::int64_t hi = std::min(L.begin + L.n_local, (b0 + (t + 1) * bpt) * B);
    out.emplace_back(lo - L.begin, hi - L.begin);
  }
  return out;
}

}  // namespace segrec::kmeans_detail
