// Distributed K-means: initialisation, Lloyd iterations, quality figures, outputs.
//
// Assignment kernels: "fused" (AVX-512 builds) keeps 8 rows x 48 centroids of dot products
// in registers and folds them straight into the argmin; "gemm" runs Eigen's float GEMM over
// row blocks, then the argmin. Determinism: the fused kernel treats every row alike; the
// GEMM blocks are aligned to GLOBAL row indices and padded to a fixed size; either way a
// user's distances come from the same instruction sequence whatever the rank or thread
// count. Per-cluster sums (double) are taken over fixed runs of rows in row order and merged
// in run order; random draws are keyed by (seed, purpose, global index). Hamerly's pruning
// (see "Hamerly's bounds") skips the kernel only where its argmin provably cannot change, so
// it gives the same labels and bit-identical sums.
//
// GCC 12 reports false "(maybe-)uninitialized" warnings inside its own AVX-512 intrinsics
// (the _mm512_undefined_* placeholders) wherever they are inlined (Eigen's packet code,
// the argmin below); the pragmas must precede the includes to reach those headers.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include "segrec/segmentation/kmeans.hpp"
#include "segrec/core/random.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <numeric>
#include <sstream>
#include <thread>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "segrec/core/env.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/core/watchdog.hpp"
#include "segrec/io/textio.hpp"

namespace segrec {
namespace {

// ---- keyed randomness ------------------------------------------------------------------

// Purposes, so that draws for different uses never coincide.
constexpr std::uint64_t kTagRestart = 0x52455354415254ULL;     // "RESTART"
constexpr std::uint64_t kTagPlusPlus = 0x4b4d45414e53505ULL;   // k-means++
constexpr std::uint64_t kTagParallel = 0x4b4d45414e53504cULL;  // k-means||
constexpr std::uint64_t kTagReduce = 0x524544554345ULL;        // k-means|| reduction
constexpr std::uint64_t kTagRandom = 0x52414e444f4dULL;        // random init
constexpr std::uint64_t kTagTopUp = 0x544f505550ULL;           // k-means|| top-up
constexpr std::uint64_t kTagSilhouette = 0x53494c48ULL;        // silhouette sample

using rng::splitmix64;
constexpr std::uint64_t key_of(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0,
                               std::uint64_t d = 0) {
  return rng::fold_keys(a, b, c, d);
}
constexpr double unit(std::uint64_t h) { return rng::unit_uniform(h); }

// ---- row layout ----------------------------------------------------------------------------

/// Where the rows live: this rank holds global rows [begin, begin + n_local).
struct Layout {
  std::int64_t begin = 0, n_local = 0, n = 0;
  int rank = 0;
  std::vector<std::int64_t> starts;  // per rank, plus the total at the end
  int owner(std::int64_t g) const {
    return static_cast<int>(std::upper_bound(starts.begin(), starts.end(), g) - starts.begin()) - 1;
  }
  bool mine(std::int64_t g) const { return g >= begin && g < begin + n_local; }
};

Layout make_layout(std::int64_t n_local, const Comm& comm) {
  Layout L;
  const auto counts = comm.allgatherv(std::vector<std::int64_t>{n_local});
  L.starts.assign(counts.size() + 1, 0);
  for (std::size_t r = 0; r < counts.size(); ++r) L.starts[r + 1] = L.starts[r] + counts[r];
  L.rank = comm.rank();
  L.begin = L.starts[comm.rank()];
  L.n_local = n_local;
  L.n = L.starts.back();
  return L;
}

// ---- threads -------------------------------------------------------------------------------

/// Runs fn(thread, task) for task in [0, n) on up to `threads` threads (dynamic schedule).
template <class Fn>
void parallel_for(int threads, std::int64_t n, Fn&& fn) {
  const int t = static_cast<int>(std::min<std::int64_t>(std::max(threads, 1), n));
  if (t <= 1) {
    for (std::int64_t i = 0; i < n; ++i) fn(0, i);
    return;
  }
  std::atomic<std::int64_t> next{0};
  std::exception_ptr err;
  std::mutex mu;
  auto work = [&](int tid) {
    try {
      for (;;) {
        const std::int64_t i = next.fetch_add(1);
        if (i >= n) break;
        fn(tid, i);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu);
      if (!err) err = std::current_exception();
      next.store(n);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(t - 1));
  for (int i = 1; i < t; ++i) pool.emplace_back(work, i);
  work(0);
  for (auto& th : pool) th.join();
  if (err) std::rethrow_exception(err);
}

/// How the assignment step runs: threads per rank and the kernel.
struct Exec {
  int threads = 1;
  bool fused = false;  ///< register-blocked AVX-512 kernel instead of GEMM + argmin
};

// ---- distances -----------------------------------------------------------------------------

constexpr int kLanes = 16;

/// ||a - b||^2 with a fixed summation order (independent of alignment and position).
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

struct BlockScratch {
  MatrixRF xpad, g;
};

/// Row blocks cover global rows [b * B, (b + 1) * B), B = block_rows(m). For every block
/// touching this rank: G = Xb * Ct (B x m) where Xb is the block zero-padded to B rows, then
/// fn(task, thread, row0, rows, off, G): local rows [row0, row0 + rows) are G's rows
/// [off, off + rows). A task is `blocks_per_task` consecutive blocks, run in order by one
/// thread. Returns the number of tasks.
template <class Fn>
std::int64_t for_each_block(const MatrixRF& X, const Layout& L, const MatrixRF& Ct, int threads,
                            std::int64_t blocks_per_task, Fn&& fn) {
  if (L.n_local == 0) return 0;
  const std::int64_t h = X.cols(), m = Ct.cols(), B = block_rows(m);
  const std::int64_t b0 = L.begin / B, nb = (L.begin + L.n_local - 1) / B - b0 + 1;
  const std::int64_t tasks = (nb + blocks_per_task - 1) / blocks_per_task;
  std::vector<BlockScratch> scratch(static_cast<std::size_t>(std::max(threads, 1)));
  parallel_for(threads, tasks, [&](int t, std::int64_t task) {
    auto& s = scratch[static_cast<std::size_t>(t)];
    if (s.g.rows() != B || s.g.cols() != m) s.g.resize(B, m);
    for (std::int64_t bi = task * blocks_per_task; bi < std::min(nb, (task + 1) * blocks_per_task);
         ++bi) {
      const std::int64_t gb = (b0 + bi) * B;
      const std::int64_t lo = std::max(gb, L.begin), hi = std::min(gb + B, L.begin + L.n_local);
      const std::int64_t off = lo - gb, rows = hi - lo, row0 = lo - L.begin;
      if (rows == B) {
        const Eigen::Map<const MatrixRF> xb(X.data() + row0 * h, B, h);
        s.g.noalias() = xb * Ct;
      } else {
        s.xpad.setZero(B, h);
        s.xpad.middleRows(off, rows) = X.middleRows(row0, rows);
        s.g.noalias() = s.xpad * Ct;
      }
      fn(task, t, row0, rows, off, s.g);
    }
  });
  return tasks;
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

#ifdef __AVX512F__
// ---- fused nearest-centroid kernel -------------------------------------------------------
// Eight rows against tiles of up to 48 centroids: the 8 x 48 dot products live in 24 zmm
// registers over the whole depth (one FMA chain per product, in feature order, the same for
// every row wherever it sits), then fold into lane-wise running minima of cn - 2 x.c. No
// distance matrix is written and the rows are read in place.

constexpr int kKernelRows = 8;
constexpr int kTileCols = 48;

/// Centroids for the kernel: tile t holds centroids [48t, 48t + w) as data[48th + f w + c],
/// w = 16, 32 or 48; k is padded to a multiple of 16 with zero centroids of norm +inf.
struct PackedCentroids {
  std::int64_t k = 0, h = 0, kp = 0;
  std::vector<float> data, cn;
};

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

void nearest8(const float* x, const PackedCentroids& P, std::int32_t* out) {
  nearest8_impl<false>(x, P, out, nullptr);
}
#endif

#ifndef __AVX512F__
constexpr int kKernelRows = 8;
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

/// Calls fn(task, i, j) for every local row i with j its nearest centroid in C (first on
/// ties). Tasks are fixed runs of rows (nearest_tasks of them, whatever the thread count),
/// each run in row order by one thread.
template <class Fn>
void for_each_nearest(const MatrixRF& X, const Layout& L, const MatrixRF& C, Exec ex,
                      std::int64_t max_tasks, Fn&& fn) {
  const std::int64_t tasks = nearest_tasks(L, C.rows(), max_tasks, ex.fused);
  if (tasks == 0) return;
#ifdef __AVX512F__
  if (ex.fused) {
    const std::int64_t h = X.cols();
    const std::int64_t per = (L.n_local + tasks - 1) / tasks;
    const std::int64_t step = (per + kKernelRows - 1) / kKernelRows * kKernelRows;
    const PackedCentroids P = pack_centroids(C);
    parallel_for(ex.threads, tasks, [&](int, std::int64_t task) {
      std::vector<float> pad;
      std::int32_t idx[kKernelRows];
      const std::int64_t end = std::min(L.n_local, (task + 1) * step);
      for (std::int64_t g = task * step; g < end; g += kKernelRows) {
        const std::int64_t rows = std::min<std::int64_t>(kKernelRows, end - g);
        const float* x = X.data() + g * h;
        if (rows < kKernelRows) {  // last rows: zero-padded copy, same arithmetic per row
          pad.assign(static_cast<std::size_t>(kKernelRows * h), 0.0f);
          std::copy(x, x + rows * h, pad.begin());
          x = pad.data();
        }
        nearest8(x, P, idx);
        for (std::int64_t r = 0; r < rows; ++r) fn(task, g + r, idx[r]);
      }
    });
    return;
  }
#endif
  const std::int64_t k = C.rows();
  const MatrixRF Ct = C.transpose();
  const std::vector<float> cn = row_sqnorms(C);
  for_each_block(X, L, Ct, ex.threads, blocks_per_task(L, k, max_tasks),
                 [&](std::int64_t task, int, std::int64_t row0, std::int64_t rows, std::int64_t off,
                     const MatrixRF& G) {
                   for (std::int64_t r = 0; r < rows; ++r)
                     fn(task, row0 + r, argmin_dist(G.data() + (off + r) * k, cn.data(), k));
                 });
}

/// Assigns every local row to its nearest centroid (first on ties), keeps the exact squared
/// distance to it, and returns the local [k*h sums | k counts | inertia | changed labels].
/// Sums are taken per task (fixed runs of blocks) in row order and merged in task order,
/// so the result does not depend on the thread count.
std::vector<double> assign_accumulate(const MatrixRF& X, const Layout& L, const MatrixRF& C,
                                      Exec ex, std::vector<std::int32_t>& labels,
                                      std::vector<float>& dist) {
  const std::int64_t k = C.rows(), h = C.cols(), W = k * h + k + 2;
  // At most 32 tasks, and their partial sums within 32 MiB.
  const std::int64_t max_tasks =
      std::min<std::int64_t>(32, std::max<std::int64_t>(1, (std::int64_t{32} << 20) / (W * 8)));
  const std::int64_t tasks = nearest_tasks(L, k, max_tasks, ex.fused);
  // Task partials; each task zeroes its own on first use (in parallel, cache-warm).
  const auto slots = static_cast<std::size_t>(std::max<std::int64_t>(tasks, 1) * W);
  std::unique_ptr<double[]> part(new double[slots]);
  std::vector<char> ready(static_cast<std::size_t>(std::max<std::int64_t>(tasks, 1)), 0);
  if (tasks == 0) std::fill(part.get(), part.get() + W, 0.0);
  for_each_nearest(X, L, C, ex, max_tasks, [&](std::int64_t task, std::int64_t i, std::int32_t j) {
    double* P = part.get() + task * W;
    if (!ready[task]) {
      std::fill(P, P + W, 0.0);
      ready[task] = 1;
    }
    P[W - 1] += labels[i] != j;
    labels[i] = j;
    const float* x = X.data() + i * h;
    const float d = sqdist(x, C.data() + j * h, h);
    dist[i] = d;
    P[W - 2] += d;
    P[k * h + j] += 1;
    double* sj = P + j * h;
    for (std::int64_t f = 0; f < h; ++f) sj[f] += x[f];
  });
  std::vector<double> out(part.get(), part.get() + W);
  for (std::int64_t t = 1; t < tasks; ++t) {
    const double* src = part.get() + t * W;
    for (std::int64_t w = 0; w < W; ++w) out[w] += src[w];
  }
  return out;
}

// ---- Hamerly's bounds ------------------------------------------------------------------------
// Exact Lloyd with pruning (Hamerly 2010). Per local user: u >= ||x - c_a|| (a = its label)
// and l <= ||x - c_j|| for every j != a, both in double. A user keeps its label without the
// kernel when the kernel's argmin provably returns a: the kernel's value cn_j - 2 x.c_j plus
// ||x||^2 is within E = 4 (h + 4) 2^-24 (||x|| + max_j ||c_j||)^2 of the exact squared
// distance, so u^2 + 2E < L^2 (L: the lower bound on the other distances) leaves no room for
// another winner or a tie. Every other user goes through the same kernel as Lloyd, so labels
// are identical; sums, counts and inertia come from Lloyd's accumulation pass (same task runs,
// same row order), so centroids are bit-identical.

struct HamerlyState {
  bool valid = false;        ///< bounds hold for the centroids in `prev`
  MatrixRF prev;             ///< centroids of the previous assignment (k x h)
  std::vector<double> u, l;  ///< per local user: upper / lower bound (distances)
  std::vector<double> xn2;   ///< per local user: ||x||^2 in double
  double gamma = 0;          ///< relative rounding bound of an h-term float sum
};

/// Rows [first, second) of each accumulation task, as for_each_nearest cuts them.
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

/// Lower bound (distance) from the kernel's second value v2 = cn_j - 2 x.c_j.
double lower_from_kernel(float v2, double xn2, double err) {
  if (!std::isfinite(v2)) return std::numeric_limits<double>::infinity();
  return std::sqrt(std::max(0.0, static_cast<double>(v2) + xn2 - err)) * (1 - 1e-12);
}

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
          nearest8_impl<true>(x, *packed, idx, v2);
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

std::uint64_t bytes_sent(const Comm& comm) {
  const auto& s = comm.stats();
  return s.allreduce_bytes + s.bcast_bytes + s.gather_bytes + s.alltoall_bytes;
}

/// Moves every empty cluster (count 0) to the user farthest from its assigned centroid,
/// chosen globally (ties: smallest global index), one at a time without repeats; the user's
/// contribution moves from its old cluster. Updates the global sums/counts on every rank.
std::int64_t relocate_empty(const MatrixRF& X, const Layout& L,
                            const std::vector<std::int32_t>& labels, const std::vector<float>& dist,
                            std::int64_t k, double* sums, double* counts, const Comm& comm) {
  const std::int64_t h = X.cols();
  std::vector<std::int64_t> empty;
  for (std::int64_t j = 0; j < k; ++j)
    if (counts[j] == 0) empty.push_back(j);
  if (empty.empty()) return 0;
  // Any global top-m user is among its rank's local top-m.
  const std::int64_t m = static_cast<std::int64_t>(empty.size());
  const std::int64_t nc = std::min(m, L.n_local);
  std::vector<std::int64_t> cand(static_cast<std::size_t>(L.n_local));
  std::iota(cand.begin(), cand.end(), std::int64_t{0});
  std::partial_sort(cand.begin(), cand.begin() + nc, cand.end(),
                    [&](std::int64_t a, std::int64_t b) {
                      return dist[a] > dist[b] || (dist[a] == dist[b] && a < b);
                    });
  std::int64_t next = 0;
  std::vector<double> row(static_cast<std::size_t>(h + 1));
  for (const std::int64_t j : empty) {
    ValueIndex v{-std::numeric_limits<double>::infinity(), INT64_MAX};
    if (next < nc) v = {dist[cand[next]], L.begin + cand[next]};
    const ValueIndex best = comm.allreduce_maxloc(v);
    SEGREC_ASSERT(best.index >= 0 && best.index < L.n, "no user left to relocate to");
    const int owner = L.owner(best.index);
    if (owner == comm.rank()) {
      const std::int64_t i = cand[next++];
      SEGREC_ASSERT(L.begin + i == best.index, "relocation candidate mismatch");
      for (std::int64_t f = 0; f < h; ++f) row[f] = X(i, f);
      row[h] = labels[i];
    }
    comm.broadcast(std::span<double>(row), owner);
    const auto old = static_cast<std::int64_t>(row[h]);
    for (std::int64_t f = 0; f < h; ++f) {
      sums[old * h + f] -= row[f];
      sums[j * h + f] = row[f];
    }
    counts[old] -= 1;
    counts[j] = 1;
  }
  return m;
}

void normalize_rows_inplace(MatrixRD& C) {
  for (Eigen::Index j = 0; j < C.rows(); ++j) {
    const double nrm = C.row(j).norm();
    if (nrm > 0) C.row(j) /= nrm;
  }
}

/// Mean over features of the (population) variance of X's columns, global.
double mean_variance(const MatrixRF& X, const Layout& L, const Comm& comm) {
  const std::int64_t h = X.cols();
  if (L.n == 0 || h == 0) return 0;
  std::vector<double> s(static_cast<std::size_t>(h), 0.0);
  for (Eigen::Index i = 0; i < X.rows(); ++i)
    for (std::int64_t f = 0; f < h; ++f) s[f] += X(i, f);
  comm.allreduce(s);
  for (auto& v : s) v /= static_cast<double>(L.n);
  std::vector<double> v(static_cast<std::size_t>(h), 0.0);
  for (Eigen::Index i = 0; i < X.rows(); ++i)
    for (std::int64_t f = 0; f < h; ++f) {
      const double d = X(i, f) - s[f];
      v[f] += d * d;
    }
  comm.allreduce(v);
  return std::accumulate(v.begin(), v.end(), 0.0) / (static_cast<double>(L.n) * h);
}

KMeansResult lloyd_impl(const MatrixRF& X, const Layout& L, const MatrixRF& init,
                        const KMeansParams& p, double tol_abs, Exec ex, const Comm& comm) {
  const auto start = std::chrono::steady_clock::now();
  const std::int64_t k = init.rows(), h = X.cols();
  KMeansResult res;
  res.k = k;
  MatrixRD C = init.cast<double>();
  if (p.spherical) normalize_rows_inplace(C);
  MatrixRF Cf = C.cast<float>();
  res.labels.assign(static_cast<std::size_t>(L.n_local), -1);
  std::vector<float> dist(static_cast<std::size_t>(L.n_local), 0.0f);
  std::vector<double> buf;
  bool consistent = false;  // labels are the nearest-centroid labels of the final centroids
  const bool hamerly = p.use_hamerly(k);
  HamerlyState hs;  // fresh bounds for every run (restart)
  progress::Task task("kmeans", "k=" + std::to_string(k), p.max_iter, "iter", true);
  for (int it = 0; it < p.max_iter; ++it) {
    watchdog::set_step("k-means iteration", it + 1);
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t b0 = bytes_sent(comm);
    KMeansIteration st;
    st.recomputed = L.n_local;
    if (hamerly)
      buf = hamerly_assign_accumulate(X, L, Cf, ex, res.labels, dist, hs, st.recomputed);
    else
      buf = assign_accumulate(X, L, Cf, ex, res.labels, dist);
    comm.allreduce(buf);  // the one collective of an iteration
    double* sums = buf.data();
    double* counts = sums + k * h;
    st.inertia = buf[k * h + k];
    st.changed = static_cast<std::int64_t>(buf.back());
    st.relocated = relocate_empty(X, L, res.labels, dist, k, sums, counts, comm);
    if (st.relocated > 0) hs.valid = false;  // relocated users keep stale labels: start over
    MatrixRD Cn = C;
    for (std::int64_t j = 0; j < k; ++j)
      if (counts[j] > 0)
        for (std::int64_t f = 0; f < h; ++f) Cn(j, f) = sums[j * h + f] / counts[j];
    if (p.spherical) normalize_rows_inplace(Cn);
    st.shift = (Cn - C).squaredNorm();
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    st.bytes = bytes_sent(comm) - b0;
    res.iterations.push_back(st);
    task.update(it + 1,
                {{"inertia", st.inertia},
                 {"changed", static_cast<double>(st.changed)},
                 {"shift", st.shift}},
                true);
    res.relocated += st.relocated;
    res.n_iter = it + 1;
    C = std::move(Cn);
    Cf = C.cast<float>();
    if (st.changed == 0 || st.shift <= tol_abs) {
      res.converged = true;
      if (st.shift == 0) {
        consistent = true;
        res.inertia = st.inertia;
        res.sizes.assign(static_cast<std::size_t>(k), 0);
        for (std::int64_t j = 0; j < k; ++j) res.sizes[j] = static_cast<std::int64_t>(counts[j]);
      }
      break;
    }
  }
  if (!consistent) {  // labels and inertia for the final centroids
    std::int64_t recomputed = 0;
    buf = hamerly ? hamerly_assign_accumulate(X, L, Cf, ex, res.labels, dist, hs, recomputed)
                  : assign_accumulate(X, L, Cf, ex, res.labels, dist);
    std::vector<double> small(buf.begin() + k * h, buf.begin() + k * h + k + 1);
    comm.allreduce(small);  // [counts | inertia]
    res.inertia = small[k];
    res.sizes.assign(static_cast<std::size_t>(k), 0);
    for (std::int64_t j = 0; j < k; ++j) res.sizes[j] = static_cast<std::int64_t>(small[j]);
  }
  res.centroids = std::move(C);
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return res;
}

// ---- sampling helpers ----------------------------------------------------------------------

/// Rows of the global matrix at `ids` (k x h), on every rank: owners fill, one allreduce.
MatrixRF fetch_rows(const MatrixRF& X, const Layout& L, const std::vector<std::int64_t>& ids,
                    std::int64_t h, const Comm& comm) {
  MatrixRF out = MatrixRF::Zero(static_cast<Eigen::Index>(ids.size()), h);
  for (std::size_t r = 0; r < ids.size(); ++r)
    if (L.mine(ids[r])) out.row(r) = X.row(ids[r] - L.begin);
  comm.allreduce(out);
  return out;
}

struct HashIndex {
  std::uint64_t hash;
  std::int64_t index;
  bool operator<(const HashIndex& o) const {
    return hash < o.hash || (hash == o.hash && index < o.index);
  }
};

/// min(count, n) distinct global indices with the smallest keyed hashes, in hash order.
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

Exec exec_of(const KMeansParams& p) {
  Exec ex;
  ex.threads = p.resolved_threads();
#ifdef __AVX512F__
  ex.fused = p.kernel != "gemm";
#endif
  return ex;
}

int threads_from_env() { return env::default_threads(); }

bool parse_i64(const std::string& s, std::int64_t& v) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

std::string lower_ext(const std::string& path) {
  std::string e = std::filesystem::path(path).extension().string();
  for (auto& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

/// Means of the labelled users per cluster, counts, and the global mean (collective).
struct LabelMeans {
  MatrixRD means;              // k x h
  std::vector<double> counts;  // k
  Eigen::RowVectorXd mean;     // h
  std::int64_t n = 0, nonempty = 0;
};

LabelMeans label_means(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                       const Comm& comm) {
  const std::int64_t h = X.cols();
  std::vector<double> buf(static_cast<std::size_t>(k * h + k + h + 1), 0.0);
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    const std::int64_t j = labels[i];
    for (std::int64_t f = 0; f < h; ++f) {
      buf[j * h + f] += X(i, f);
      buf[k * h + k + f] += X(i, f);
    }
    buf[k * h + j] += 1;
  }
  buf.back() = static_cast<double>(X.rows());
  comm.allreduce(buf);
  LabelMeans m;
  m.n = static_cast<std::int64_t>(buf.back());
  m.means = MatrixRD::Zero(k, h);
  m.counts.assign(buf.begin() + k * h, buf.begin() + k * h + k);
  m.mean = Eigen::RowVectorXd::Zero(h);
  for (std::int64_t j = 0; j < k; ++j)
    if (m.counts[j] > 0) {
      ++m.nonempty;
      for (std::int64_t f = 0; f < h; ++f) m.means(j, f) = buf[j * h + f] / m.counts[j];
    }
  if (m.n > 0)
    for (std::int64_t f = 0; f < h; ++f) m.mean[f] = buf[k * h + k + f] / static_cast<double>(m.n);
  return m;
}

double nan() { return std::numeric_limits<double>::quiet_NaN(); }

}  // namespace

// ---- parameters ----------------------------------------------------------------------------

std::vector<std::int64_t> KMeansParams::k_values() const {
  const std::string rule =
      "give K (>= 1) or a sweep FROM:TO[:STEP] with 2 <= FROM <= TO, STEP >= 1";
  const auto parts = split_list(k, ':');
  std::vector<std::int64_t> v;
  for (const auto& s : parts) {
    std::int64_t x = 0;
    require(parse_i64(s, x), "k", k, rule);
    v.push_back(x);
  }
  require(!v.empty() && v.size() <= 3 &&
              std::count(k.begin(), k.end(), ':') + 1 == static_cast<std::ptrdiff_t>(v.size()),
          "k", k, rule);
  if (v.size() == 1) {
    require(v[0] >= 1, "k", k, rule);
    return v;
  }
  const std::int64_t step = v.size() == 3 ? v[2] : 1;
  require(v[0] >= 2 && v[0] <= v[1] && step >= 1, "k", k, rule);
  require((v[1] - v[0]) / step < 10000, "k", k, "a sweep may hold at most 10000 values");
  std::vector<std::int64_t> out;
  for (std::int64_t x = v[0]; x <= v[1]; x += step) out.push_back(x);
  return out;
}

InitMethod KMeansParams::init_method() const {
  if (init == "k-means++") return InitMethod::kKMeansPlusPlus;
  if (init == "k-means||") return InitMethod::kKMeansParallel;
  if (init == "random") return InitMethod::kRandom;
  std::error_code ec;
  require(!init.empty() && std::filesystem::is_regular_file(init, ec), "init", init,
          "use k-means++, k-means||, random, or an existing centroid file (.csv or .h5)");
  return InitMethod::kFile;
}

Criterion KMeansParams::criterion() const {
  if (pick == "silhouette") return Criterion::kSilhouette;
  if (pick == "db") return Criterion::kDaviesBouldin;
  if (pick == "ch") return Criterion::kCalinskiHarabasz;
  require(false, "pick", pick, "use silhouette, db or ch");
  return Criterion::kSilhouette;
}

bool KMeansParams::use_hamerly(std::int64_t k) const {
  return algorithm == "hamerly" || (algorithm == "auto" && k >= 16);
}

int KMeansParams::resolved_threads() const { return threads > 0 ? threads : threads_from_env(); }

void KMeansParams::validate() const {
  require(!k.empty(), "k", k, "give the number of segments K or a sweep FROM:TO[:STEP]");
  const auto ks = k_values();
  const InitMethod m = init_method();
  require(init_rounds >= 1, "init-rounds", init_rounds, "must be at least 1");
  require(std::isfinite(oversampling_factor) && oversampling_factor >= 0, "oversampling-factor",
          oversampling_factor, "must be >= 0 (0 means 2k)");
  require(n_init >= 1, "n-init", n_init, "must be at least 1");
  require(max_iter >= 1, "max-iter", max_iter, "must be at least 1");
  require(std::isfinite(tol) && tol >= 0, "tol", tol, "must be >= 0");
  require(threads >= 0 && threads <= 1024, "threads", threads,
          "must be between 0 ($OMP_NUM_THREADS or 1) and 1024");
  require(silhouette_sample >= 0, "silhouette-sample", silhouette_sample, "must be >= 0");
  if (criterion() == Criterion::kSilhouette && ks.size() > 1 && silhouette_sample == 0)
    throw UsageError(
        "--pick silhouette and --silhouette-sample 0 cannot be used together: the "
        "sweep would have no silhouette to pick by (use --pick db or ch)");
#ifdef __AVX512F__
  require(kernel == "auto" || kernel == "fused" || kernel == "gemm", "kernel", kernel,
          "use auto, fused or gemm");
#else
  require(kernel == "auto" || kernel == "gemm", "kernel", kernel,
          "use auto or gemm (this build has no AVX-512 for the fused kernel)");
#endif
  require(algorithm == "auto" || algorithm == "lloyd" || algorithm == "hamerly", "algorithm",
          algorithm, "use auto, lloyd or hamerly");
  require(!(m == InitMethod::kFile && ks.size() > 1), "init", init,
          "a centroid file fixes k; it cannot be combined with a --k sweep");
}

// ---- algorithms ----------------------------------------------------------------------------

MatrixRF kmeans_plus_plus(const MatrixRF& X, std::span<const double> weights, std::int64_t k,
                          std::uint64_t key, int threads, const Comm& comm) {
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
  {
    const double u = unit(key_of(key, 0, 0));
    auto [ids, rows] = draw_rows(X, L, v, totals, {u * sum_of(totals)}, {u}, comm);
    centers.row(0) = rows.row(0);
  }
  std::vector<float> closest(static_cast<std::size_t>(nl));
  for (std::int64_t i = 0; i < nl; ++i) closest[i] = sqdist(X.data() + i * h, centers.data(), h);
  for (std::int64_t i = 0; i < nl; ++i) v[i] = w(i) * closest[i];
  totals = comm.allgatherv(std::vector<double>{std::accumulate(v.begin(), v.end(), 0.0)});
  std::vector<float> D(static_cast<std::size_t>(nl * T));
  const std::vector<float> xn = row_sqnorms(X);
  for (std::int64_t c = 1; c < k; ++c) {
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

MatrixRF init_centroids(const MatrixRF& X, std::int64_t k, const KMeansParams& p, int restart,
                        const Comm& comm) {
  const Layout L = make_layout(X.rows(), comm);
  const std::uint64_t rkey = key_of(p.seed, kTagRestart, static_cast<std::uint64_t>(restart));
  const int threads = p.resolved_threads();
  switch (p.init_method()) {
    case InitMethod::kKMeansPlusPlus:
      return kmeans_plus_plus(X, {}, k, key_of(rkey, kTagPlusPlus), threads, comm);
    case InitMethod::kKMeansParallel:
      return kmeans_parallel(X, L, k, p, key_of(rkey, kTagParallel), exec_of(p), comm);
    case InitMethod::kRandom:
      return fetch_rows(X, L, sample_indices(L, k, key_of(rkey, kTagRandom), comm), X.cols(), comm);
    case InitMethod::kFile:
      break;
  }
  throw UsageError("--init " + p.init + ": a centroid file is read by the caller");
}

KMeansResult lloyd(const MatrixRF& X, const MatrixRF& init, const KMeansParams& p,
                   const Comm& comm) {
  const Layout L = make_layout(X.rows(), comm);
  SEGREC_ASSERT(init.cols() == X.cols(), "centroids have ", init.cols(), " columns, data ",
                X.cols());
  return lloyd_impl(X, L, init, p, p.tol * mean_variance(X, L, comm), exec_of(p), comm);
}

namespace {
KMeansResult kmeans_prepared(const MatrixRF& X, std::int64_t k, const KMeansParams& p,
                             const Comm& comm, const MatrixRF* init) {
  const Layout L = make_layout(X.rows(), comm);
  if (k > L.n)
    throw DataError("--k " + std::to_string(k) + " is larger than the number of users (" +
                        std::to_string(L.n) + ")",
                    /*collective=*/true);
  if (init && (init->rows() != k || init->cols() != X.cols()))
    throw DataError("the initial centroids are " + std::to_string(init->rows()) + " x " +
                        std::to_string(init->cols()) + ", expected k x h = " + std::to_string(k) +
                        " x " + std::to_string(X.cols()),
                    true);
  const double tol_abs = p.tol * mean_variance(X, L, comm);
  const int restarts = init ? 1 : p.n_init;
  KMeansResult best;
  for (int r = 0; r < restarts; ++r) {
    const MatrixRF c0 = init ? *init : init_centroids(X, k, p, r, comm);
    KMeansResult res = lloyd_impl(X, L, c0, p, tol_abs, exec_of(p), comm);
    res.restart = r;
    if (r == 0 || res.inertia < best.inertia) best = std::move(res);
  }
  return best;
}
}  // namespace

KMeansResult kmeans(const MatrixRF& X, std::int64_t k, const KMeansParams& p, const Comm& comm,
                    const MatrixRF* init) {
  if (!p.spherical) return kmeans_prepared(X, k, p, comm, init);
  const MatrixRF Xn = normalize_rows(X);
  return kmeans_prepared(Xn, k, p, comm, init);
}

ClusterRun cluster(const MatrixRF& X, const KMeansParams& p, const Comm& comm,
                   const MatrixRF* init) {
  const auto ks = p.k_values();
  const std::int64_t n = comm.allreduce_value(static_cast<std::int64_t>(X.rows()));
  if (ks.back() > n)
    throw DataError("--k " + p.k + " asks for " + std::to_string(ks.back()) +
                        " segments but there are only " + std::to_string(n) + " users",
                    true);
  MatrixRF normalised;
  if (p.spherical) normalised = normalize_rows(X);
  const MatrixRF& Xs = p.spherical ? normalised : X;
  const int threads = p.resolved_threads();
  const bool sweep = ks.size() > 1;
  const Criterion crit = p.criterion();
  ClusterRun run;
  double best_score = nan();
  progress::Task task("cluster", "k sweep", sweep ? static_cast<double>(ks.size()) : 0, "k");
  for (const std::int64_t k : ks) {
    KMeansResult res = kmeans_prepared(Xs, k, p, comm, init);
    ClusterQuality q;
    q.davies_bouldin = davies_bouldin_score(Xs, res.labels, k, comm);
    q.calinski_harabasz = calinski_harabasz_score(Xs, res.labels, k, comm);
    if (p.silhouette_sample > 0)
      q.silhouette = silhouette_score(Xs, res.labels, k, p.silhouette_sample, p.seed, threads, comm,
                                      &q.silhouette_sample);
    if (!sweep) {
      run.result = std::move(res);
      run.quality = q;
      break;
    }
    run.sweep.push_back({k, res.inertia, res.n_iter, q});
    task.update(static_cast<double>(run.sweep.size()),
                {{"k", static_cast<double>(k)},
                 {"inertia", res.inertia},
                 {"silhouette", q.silhouette},
                 {"davies_bouldin", q.davies_bouldin}},
                true);
    double score = crit == Criterion::kSilhouette      ? q.silhouette
                   : crit == Criterion::kDaviesBouldin ? -q.davies_bouldin
                                                       : q.calinski_harabasz;
    const bool first = run.result.k == 0;
    if (first || (std::isfinite(score) && (!std::isfinite(best_score) || score > best_score))) {
      best_score = score;
      run.result = std::move(res);
      run.quality = q;
    }
  }
  return run;
}

// ---- quality figures -------------------------------------------------------------------------

double silhouette_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                        std::int64_t sample, std::uint64_t seed, int threads, const Comm& comm,
                        std::int64_t* sample_used) {
  if (sample_used) *sample_used = 0;
  const Layout L = make_layout(X.rows(), comm);
  const std::int64_t h = X.cols();
  std::vector<std::int64_t> sizes(static_cast<std::size_t>(k), 0);
  for (const auto j : labels) sizes[j] += 1;
  comm.allreduce(sizes);
  const auto nonempty = std::count_if(sizes.begin(), sizes.end(), [](auto c) { return c > 0; });
  if (sample <= 0 || nonempty < 2 || nonempty >= L.n) return nan();
  auto ids = sample_indices(L, sample, key_of(seed, kTagSilhouette), comm);
  std::sort(ids.begin(), ids.end());
  const auto S = static_cast<std::int64_t>(ids.size());
  const MatrixRF P = fetch_rows(X, L, ids, h, comm);
  std::vector<std::int64_t> plab(static_cast<std::size_t>(S), 0);
  for (std::int64_t s = 0; s < S; ++s)
    if (L.mine(ids[s])) plab[s] = labels[ids[s] - L.begin];
  comm.allreduce(plab);
  const std::vector<float> pn = row_sqnorms(P), xn = row_sqnorms(X);
  // sums[l * S + s]: sum of distances from sample s to the users of cluster l.
  std::vector<double> sums(static_cast<std::size_t>(k * S), 0.0);
  constexpr std::int64_t kTile = 512;
  const std::int64_t ntiles = (S + kTile - 1) / kTile;
  parallel_for(threads, ntiles, [&](int, std::int64_t tile) {
    const std::int64_t s0 = tile * kTile, w = std::min(kTile, S - s0);
    const MatrixRF Pt = P.middleRows(s0, w).transpose();
    for_each_block(X, L, Pt, 1, 1,
                   [&](std::int64_t, int, std::int64_t row0, std::int64_t rows, std::int64_t off,
                       const MatrixRF& G) {
                     for (std::int64_t r = 0; r < rows; ++r) {
                       const std::int64_t i = row0 + r, gi = L.begin + i;
                       double* acc = sums.data() + labels[i] * S + s0;
                       const float* g = G.data() + (off + r) * w;
                       // This user's own column (if sampled here) must add exactly 0.
                       const auto it = std::lower_bound(ids.begin() + s0, ids.begin() + s0 + w, gi);
                       const bool self = it != ids.begin() + s0 + w && *it == gi;
                       const std::int64_t si = self ? it - ids.begin() - s0 : 0;
                       const double keep = self ? acc[si] : 0.0;
                       const float xi = xn[i];
                       for (std::int64_t s = 0; s < w; ++s) {
                         const float d2 = xi + pn[s0 + s] - 2.0f * g[s];
                         acc[s] += std::sqrt(std::max(d2, 0.0f));
                       }
                       if (self) acc[si] = keep;
                     }
                   });
  });
  comm.allreduce(sums);
  double total = 0;
  for (std::int64_t s = 0; s < S; ++s) {
    const std::int64_t own = plab[s];
    if (sizes[own] <= 1) continue;  // silhouette 0 for singletons
    const double a = sums[own * S + s] / static_cast<double>(sizes[own] - 1);
    double b = std::numeric_limits<double>::infinity();
    for (std::int64_t l = 0; l < k; ++l)
      if (l != own && sizes[l] > 0)
        b = std::min(b, sums[l * S + s] / static_cast<double>(sizes[l]));
    const double den = std::max(a, b);
    if (den > 0) total += (b - a) / den;
  }
  if (sample_used) *sample_used = S;
  return total / static_cast<double>(S);
}

double davies_bouldin_score(const MatrixRF& X, std::span<const std::int32_t> labels, std::int64_t k,
                            const Comm& comm) {
  const LabelMeans m = label_means(X, labels, k, comm);
  if (m.nonempty < 2) return nan();
  const std::int64_t h = X.cols();
  std::vector<double> intra(static_cast<std::size_t>(k), 0.0);
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    const std::int64_t j = labels[i];
    double d2 = 0;
    for (std::int64_t f = 0; f < h; ++f) {
      const double d = X(i, f) - m.means(j, f);
      d2 += d * d;
    }
    intra[j] += std::sqrt(d2);
  }
  comm.allreduce(intra);
  std::vector<std::int64_t> live;
  for (std::int64_t j = 0; j < k; ++j)
    if (m.counts[j] > 0) {
      intra[j] /= m.counts[j];
      live.push_back(j);
    }
  bool all_intra_zero = true, all_centroid_zero = true;
  for (const auto j : live) all_intra_zero = all_intra_zero && intra[j] == 0;
  double score = 0;
  for (const auto a : live) {
    double worst = 0;
    for (const auto b : live) {
      if (a == b) continue;
      const double dc = (m.means.row(a) - m.means.row(b)).norm();
      if (dc == 0) continue;  // scikit-learn: infinite separation, ratio 0
      all_centroid_zero = false;
      worst = std::max(worst, (intra[a] + intra[b]) / dc);
    }
    score += worst;
  }
  if (all_intra_zero || all_centroid_zero) return 0.0;
  return score / static_cast<double>(live.size());
}

double calinski_harabasz_score(const MatrixRF& X, std::span<const std::int32_t> labels,
                               std::int64_t k, const Comm& comm) {
  const LabelMeans m = label_means(X, labels, k, comm);
  if (m.nonempty < 2 || m.nonempty >= m.n) return nan();
  const std::int64_t h = X.cols();
  double intra = 0;
  for (Eigen::Index i = 0; i < X.rows(); ++i) {
    const std::int64_t j = labels[i];
    for (std::int64_t f = 0; f < h; ++f) {
      const double d = X(i, f) - m.means(j, f);
      intra += d * d;
    }
  }
  intra = comm.allreduce_value(intra);
  double extra = 0;
  for (std::int64_t j = 0; j < k; ++j)
    if (m.counts[j] > 0) extra += m.counts[j] * (m.means.row(j) - m.mean).squaredNorm();
  if (intra == 0) return 1.0;
  const double c = static_cast<double>(m.nonempty), n = static_cast<double>(m.n);
  return extra * (n - c) / (intra * (c - 1));
}

// ---- I/O -------------------------------------------------------------------------------------

MatrixRF normalize_rows(const MatrixRF& X) {
  MatrixRF out = X;
  for (Eigen::Index i = 0; i < out.rows(); ++i) {
    const double nrm = out.row(i).cast<double>().norm();
    if (nrm > 0) out.row(i) = (out.row(i).cast<double>() / nrm).cast<float>();
  }
  return out;
}

std::uint64_t lloyd_allreduce_bytes(std::int64_t k, std::int64_t h) {
  return static_cast<std::uint64_t>(k * h + k + 2) * sizeof(double);
}

MatrixRF read_centroid_file(const std::string& path, const Comm& comm) {
  const std::string ext = lower_ext(path);
  if (ext == ".h5" || ext == ".hdf5") {
    MatrixRF C;
    std::string err;  // raised once the file is closed
    {
      const h5::File f = h5::File::open_any(path, comm);
      if (!f.exists("/centroids") || f.shape("/centroids").size() != 2) {
        err = "'" + path + "': no 2-D dataset /centroids to start from";
      } else {
        const auto s = f.shape("/centroids");
        const auto v = f.read_all<float>("/centroids");
        C = Eigen::Map<const MatrixRF>(v.data(), s[0], s[1]);
        if (!C.allFinite()) err = "'" + path + "': /centroids holds NaN or Inf";
      }
    }
    comm.check_all(err, kExitData);
    return C;
  }
  std::string err;
  std::vector<std::vector<float>> rows;
  std::ifstream in(path);
  if (!in) err = "cannot open centroid file '" + path + "'";
  std::string line;
  int lineno = 0;
  while (err.empty() && std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<float> row;
    bool numeric = true;
    for (const auto& field : split_list(line, ',')) {
      float x = 0;
      const auto r = std::from_chars(field.data(), field.data() + field.size(), x);
      if (r.ec != std::errc() || r.ptr != field.data() + field.size() || !std::isfinite(x)) {
        numeric = false;
        break;
      }
      row.push_back(x);
    }
    if (!numeric) {
      if (rows.empty() && lineno == 1) continue;  // header
      err = path + ":" + std::to_string(lineno) + ": not a row of finite numbers";
    } else if (!rows.empty() && row.size() != rows[0].size()) {
      err = path + ":" + std::to_string(lineno) + ": " + std::to_string(row.size()) +
            " values, the first row has " + std::to_string(rows[0].size());
    } else {
      rows.push_back(std::move(row));
    }
  }
  if (err.empty() && rows.empty()) err = "centroid file '" + path + "' holds no rows";
  comm.check_all(err, kExitData);
  MatrixRF C(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(rows[0].size()));
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::size_t f = 0; f < rows[r].size(); ++f) C(r, f) = rows[r][f];
  return C;
}

namespace {
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}
}  // namespace

void write_segments_csv(const std::string& path, const std::vector<std::string>& local_user_ids,
                        std::span<const std::int32_t> labels, const Comm& comm) {
  SEGREC_ASSERT(local_user_ids.size() == labels.size(), "one label per user");
  OrderedWriter out(path, comm);
  constexpr std::int64_t kChunk = 1 << 16;
  const auto n = static_cast<std::int64_t>(labels.size());
  const std::int64_t rounds =
      comm.allreduce_value(std::max<std::int64_t>(1, (n + kChunk - 1) / kChunk), Op::kMax);
  for (std::int64_t r = 0; r < rounds; ++r) {
    std::string text;
    if (r == 0 && comm.is_root()) text = "user_id,segment\n";
    for (std::int64_t i = r * kChunk; i < std::min(n, (r + 1) * kChunk); ++i) {
      text += csv_field(local_user_ids[i]);
      text += ',';
      text += std::to_string(labels[i]);
      text += '\n';
    }
    out.append(text);
  }
  out.commit();
}

void write_segments(const std::string& path, const ClusterRun& run,
                    const std::vector<std::string>& local_user_ids, const KMeansParams& p,
                    const std::string& projection_path, const Comm& comm) {
  const KMeansResult& r = run.result;
  const std::int64_t k = r.k, h = r.centroids.cols();
  h5::File f = h5::File::create(path, comm, kSegmentsFormat);
  const MatrixRF cf = r.centroids.cast<float>();
  f.write_replicated<float>("/centroids", std::span<const float>(cf.data(), cf.size()), h);
  f.write_rows<std::int32_t>("/labels", r.labels);
  f.write_replicated<std::int64_t>("/sizes", r.sizes);
  f.create_group("/users");
  f.write_strings("/users/ids", local_user_ids, /*partitioned=*/true);
  f.create_group("/iterations");
  std::vector<double> inertia, shift, seconds;
  std::vector<std::int64_t> changed, bytes, relocated, recomputed;
  for (const auto& it : r.iterations) {
    inertia.push_back(it.inertia);
    shift.push_back(it.shift);
    seconds.push_back(it.seconds);
    changed.push_back(it.changed);
    bytes.push_back(static_cast<std::int64_t>(it.bytes));
    relocated.push_back(it.relocated);
    recomputed.push_back(it.recomputed);
  }
  f.write_replicated<double>("/iterations/inertia", inertia);
  f.write_replicated<double>("/iterations/shift", shift);
  f.write_replicated<std::int64_t>("/iterations/changed", changed);
  f.write_replicated<double>("/iterations/seconds", seconds);
  f.write_replicated<std::int64_t>("/iterations/bytes_sent", bytes);
  f.write_replicated<std::int64_t>("/iterations/relocated", relocated);
  f.write_replicated<std::int64_t>("/iterations/recomputed", recomputed);
  if (!run.sweep.empty()) {
    f.create_group("/sweep");
    std::vector<std::int64_t> ks, iters;
    std::vector<double> in, sil, db, ch;
    for (const auto& row : run.sweep) {
      ks.push_back(row.k);
      iters.push_back(row.n_iter);
      in.push_back(row.inertia);
      sil.push_back(row.quality.silhouette);
      db.push_back(row.quality.davies_bouldin);
      ch.push_back(row.quality.calinski_harabasz);
    }
    f.write_replicated<std::int64_t>("/sweep/k", ks);
    f.write_replicated<std::int64_t>("/sweep/n_iter", iters);
    f.write_replicated<double>("/sweep/inertia", in);
    f.write_replicated<double>("/sweep/silhouette", sil);
    f.write_replicated<double>("/sweep/davies_bouldin", db);
    f.write_replicated<double>("/sweep/calinski_harabasz", ch);
    f.set_attr("/sweep", "pick", p.pick);
  }
  f.set_attr("/", "k", k);
  f.set_attr("/", "dims", h);
  f.set_attr("/", "init", p.init);
  f.set_attr("/", "algorithm", std::string(p.use_hamerly(k) ? "hamerly" : "lloyd"));
  f.set_attr("/", "inertia", r.inertia);
  f.set_attr("/", "n_iter", static_cast<std::int64_t>(r.n_iter));
  f.set_attr("/", "converged", static_cast<std::int64_t>(r.converged));
  f.set_attr("/", "restart", static_cast<std::int64_t>(r.restart));
  f.set_attr("/", "n_init", static_cast<std::int64_t>(p.n_init));
  f.set_attr("/", "max_iter", static_cast<std::int64_t>(p.max_iter));
  f.set_attr("/", "tol", p.tol);
  f.set_attr("/", "spherical", static_cast<std::int64_t>(p.spherical));
  f.set_attr("/", "seed", static_cast<std::int64_t>(p.seed));
  f.set_attr("/", "relocated", r.relocated);
  f.set_attr("/", "lloyd_seconds", r.seconds);
  f.set_attr("/", "silhouette", run.quality.silhouette);
  f.set_attr("/", "silhouette_sample", run.quality.silhouette_sample);
  f.set_attr("/", "davies_bouldin", run.quality.davies_bouldin);
  f.set_attr("/", "calinski_harabasz", run.quality.calinski_harabasz);
  f.set_attr("/", "allreduce_bytes_per_iteration",
             static_cast<std::int64_t>(lloyd_allreduce_bytes(k, h)));
  f.set_attr("/", "projection", projection_path);
  f.commit();
}

}  // namespace segrec
