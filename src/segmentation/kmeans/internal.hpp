// Private pieces shared by the K-means units: keyed randomness, the row layout, the thread
// pool, the assignment kernels' interface, and the Lloyd / Hamerly assignment steps.
//
// Determinism: the fused kernel treats every row alike; the GEMM blocks are aligned to
// GLOBAL row indices and padded to a fixed size; either way a user's distances come from the
// same instruction sequence whatever the rank or thread count. Per-cluster sums (double) are
// taken over fixed runs of rows in row order and merged in run order; random draws are keyed
// by (seed, purpose, global index).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <span>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/random.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec::kmeans_detail {

// ---- keyed randomness ------------------------------------------------------------------

// Purposes, so that draws for different uses never coincide.
constexpr std::uint64_t kTagRestart = 0x52455354415254ULL;     // "RESTART"
constexpr std::uint64_t kTagPlusPlus = 0x4b4d45414e53505ULL;   // k-means++
constexpr std::uint64_t kTagParallel = 0x4b4d45414e53504cULL;  // k-means||
constexpr std::uint64_t kTagReduce = 0x524544554345ULL;        // k-means|| reduction
constexpr std::uint64_t kTagRandom = 0x52414e444f4dULL;        // random init
constexpr std::uint64_t kTagTopUp = 0x544f505550ULL;           // k-means|| top-up
constexpr std::uint64_t kTagSilhouette = 0x53494c48ULL;        // silhouette sample
constexpr std::uint64_t kTagPrevious = 0x50524556ULL;          // completing --previous

constexpr std::uint64_t key_of(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0,
                               std::uint64_t d = 0) {
  return rng::fold_keys(a, b, c, d);
}
constexpr double unit(std::uint64_t h) { return rng::unit_uniform(h); }

inline double nan() { return std::numeric_limits<double>::quiet_NaN(); }

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

/// Collective: gathers every rank's row count.
Layout make_layout(std::int64_t n_local, const Comm& comm);

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

/// Threads from p, the kernel from the parsed --kernel.
Exec exec_of(const KMeansParams& p, const KMeansModes& m);

// ---- distance kernels (kernels.cpp) --------------------------------------------------------

constexpr int kLanes = 16;
constexpr int kKernelRows = 8;  ///< rows per call of the fused kernel

/// ||a - b||^2 with a fixed summation order (independent of alignment and position).
float sqdist(const float* a, const float* b, std::int64_t h);
float sqnorm(const float* a, std::int64_t h);
/// ||row||^2 of every row of M (M.rows()).
std::vector<float> row_sqnorms(const MatrixRF& M);
/// argmin_j (cn[j] - 2 g[j]), the first j on ties. cn: ||c_j||^2; g: x.c_j (m each).
std::int32_t argmin_dist(const float* g, const float* cn, std::int64_t m);

/// Rows per GEMM block against m centroids (depends on m only).
std::int64_t block_rows(std::int64_t m);
/// Blocks per task so that a rank has at most `max_tasks` tasks. Depends on the data, never
/// on the thread count.
std::int64_t blocks_per_task(const Layout& L, std::int64_t m, std::int64_t max_tasks);
/// Number of tasks for_each_nearest cuts this rank's rows into (at most max_tasks).
std::int64_t nearest_tasks(const Layout& L, std::int64_t k, std::int64_t max_tasks, bool fused);
/// Rows [first, second) of each task, as for_each_nearest cuts them.
std::vector<std::pair<std::int64_t, std::int64_t>> task_rows(const Layout& L, std::int64_t k,
                                                             std::int64_t max_tasks, bool fused);

/// Centroids for the fused kernel: tile t holds centroids [48t, 48t + w) as
/// data[48th + f w + c], w = 16, 32 or 48; k is padded to a multiple of 16 (kp) with zero
/// centroids of norm +inf (cn: kp).
struct PackedCentroids {
  std::int64_t k = 0, h = 0, kp = 0;
  std::vector<float> data, cn;
};
PackedCentroids pack_centroids(const MatrixRF& C);
/// Fused kernel (AVX-512 builds only): nearest centroid (first on ties) of the 8 rows at x
/// (row stride h) into out[8]. With `second`, also the smallest cn - 2 x.c over the other
/// centroids (+inf when there is none) into second[8].
void nearest8(const float* x, const PackedCentroids& P, std::int32_t* out, float* second = nullptr);

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

// ---- assignment steps (lloyd.cpp, hamerly.cpp) -------------------------------------------

/// Assigns every local row to its nearest centroid (first on ties), keeps the exact squared
/// distance to it (dist: n_local), and returns the local [k*h sums | k counts | inertia |
/// changed labels]. Sums are taken per task (fixed runs of blocks) in row order and merged
/// in task order, so the result does not depend on the thread count.
std::vector<double> assign_accumulate(const MatrixRF& X, const Layout& L, const MatrixRF& C,
                                      Exec ex, std::vector<std::int32_t>& labels,
                                      std::vector<float>& dist);

/// Hamerly's bounds between iterations (see hamerly.cpp).
struct HamerlyState {
  bool valid = false;        ///< bounds hold for the centroids in `prev`
  MatrixRF prev;             ///< centroids of the previous assignment (k x h)
  std::vector<double> u, l;  ///< per local user: upper / lower bound (distances)
  std::vector<double> xn2;   ///< per local user: ||x||^2 in double
  double gamma = 0;          ///< relative rounding bound of an h-term float sum
};

/// Same contract and same result as assign_accumulate, with Hamerly's pruning; `recomputed`
/// receives the users compared with all centroids.
std::vector<double> hamerly_assign_accumulate(const MatrixRF& X, const Layout& L, const MatrixRF& C,
                                              Exec ex, std::vector<std::int32_t>& labels,
                                              std::vector<float>& dist, HamerlyState& hs,
                                              std::int64_t& recomputed);

// ---- Lloyd and sampling (lloyd.cpp, init.cpp) ----------------------------------------------

/// Lloyd iterations from `init` (k x h); tol_abs: the absolute shift tolerance; at most
/// `max_iter` iterations (-1: p.max_iter). `partial`: when the iterations run out before
/// convergence, return the labels and inertia of the last iteration (no final assignment),
/// so that lloyd_impl(centroids, labels0 = labels) goes on exactly as had the run not
/// stopped (`labels0`: the previous labels; init then is not normalised again).
KMeansResult lloyd_impl(const MatrixRF& X, const Layout& L, const MatrixRD& init,
                        const KMeansParams& p, const KMeansModes& m, double tol_abs, Exec ex,
                        const Comm& comm, int max_iter = -1, bool partial = false,
                        const std::vector<std::int32_t>* labels0 = nullptr);
/// Collective. A run stopped by its iteration budget (lloyd_impl with `partial`) goes on to
/// p.max_iter iterations in all, ending as had it run alone; `r` as is when it converged.
/// seconds, n_iter, relocations and iterations add up.
KMeansResult finish_run(const MatrixRF& X, const Layout& L, KMeansResult r, const KMeansParams& p,
                        const KMeansModes& m, double tol_abs, Exec ex, const Comm& comm);
/// Collective. Merge-split moves from the converged `cur` (swaps.cpp; p.swap_tries): `tries`
/// candidate moves after each kept one; returns the fit with the lowest inertia, with
/// `swaps` and `swap_runs` set. Every rank takes the same decisions.
KMeansResult swap_refine(const MatrixRF& X, const Layout& L, KMeansResult cur, int tries,
                         const KMeansParams& p, const KMeansModes& m, double tol_abs, Exec ex,
                         const Comm& comm);
/// Collective. The user with the largest value over all ranks (`local`: this rank's best,
/// {-inf, INT64_MAX} when it has none; ties go to the smallest global index), with its row
/// broadcast by its owner: there `fill(i, row)` writes local row i into `row`.
template <class Fill>
ValueIndex broadcast_best_row(ValueIndex local, const Layout& L, std::span<double> row, Fill&& fill,
                              const Comm& comm) {
  const ValueIndex best = comm.allreduce_maxloc(local);
  SEGREC_ASSERT(best.index >= 0 && best.index < L.n, "no user to take");
  const int owner = L.owner(best.index);
  if (owner == comm.rank()) fill(best.index - L.begin, row);
  comm.broadcast(row, owner);
  return best;
}
/// Local. The `tries` pairs (a < b) of r's clusters with the least Ward cost
/// n_a n_b / (n_a + n_b) ||c_a - c_b||^2, cheapest first (ties by index): merge candidates.
std::vector<std::tuple<double, std::int64_t, std::int64_t>> cheapest_merges(const KMeansResult& r,
                                                                            int tries);
/// Collective. Each cluster's within sum of squares S_j over all ranks, of X's rows (n_local x
/// h) around r's centroids under r's labels.
std::vector<double> within_sums(const MatrixRF& X, const Layout& L, const KMeansResult& r,
                                const Comm& comm);
/// Local. Lloyd iterations of a move's first run: 3 x p.restart_iters, at most p.max_iter
/// (p.max_iter when restart_iters is 0).
int move_iters(const KMeansParams& p);
/// Collective. The candidate moves of one round from r (Z: n_local x h, the rows r was fit on;
/// sse: S_j over all ranks), in order: for each of the `tries` cheapest merges (a, b), when
/// `cut_anew`, the centroids C (k x h) with a, b <- the two 2-means halves of their union; then
/// for each of the `splits` splittable segments j outside {a, b} with the largest S_j, C with
/// a <- the pair's mean and j, b <- the two 2-means halves of segment j (swaps.cpp). `keep(C)`
/// runs the move and says whether it was kept; the round ends at the first kept move (true) or
/// when none is left (false). The same moves on every rank, at any rank count.
bool try_moves(const MatrixRF& Z, const KMeansResult& r, const std::vector<double>& sse, int tries,
               bool cut_anew, int splits, const Comm& comm,
               const std::function<bool(const MatrixRD&)>& keep);
/// Local. r's centroids (k x h) with row a the size-weighted mean of clusters a and b.
MatrixRD merged_centroids(const KMeansResult& r, std::int64_t a, std::int64_t b);
/// Local. cur <- r, a merge-split move kept from cur: cur's restart, restart_inertia,
/// iterations, n_iter, relocations and times carry over, swaps + 1 (swap_runs: cur's).
void take_move(KMeansResult& cur, KMeansResult&& r);
/// Collective. Mean over features of the (population) variance of X's columns.
double mean_variance(const MatrixRF& X, const Layout& L, const Comm& comm);
/// The rows of a row-partitioned X over all ranks: count, column means and population
/// covariance (h x h).
struct RowCovariance {
  double n = 0;
  Eigen::VectorXd mean;  ///< h
  Eigen::MatrixXd cov;   ///< h x h, symmetric
};
/// Collective. One pass over X (in double, a GEMM per block of 4,096 rows) and one allreduce
/// of [n | sum x (h) | sum x x^T (h x h)]; cov = sum x x^T / n - mean mean^T.
RowCovariance row_covariance(const MatrixRF& X, const Comm& comm);
/// kmeans() on rows already normalised when p.spherical; `restart_done` is called after
/// each restart's run (progress reports only).
KMeansResult kmeans_prepared(const MatrixRF& X, std::int64_t k, const KMeansParams& p,
                             const KMeansModes& m, const Comm& comm, const MatrixRF* init,
                             const std::function<void()>& restart_done = {});
/// init_centroids() with the parsed modes.
MatrixRF init_centroids(const MatrixRF& X, std::int64_t k, const KMeansParams& p,
                        const KMeansModes& m, int restart, const Comm& comm);

/// Rows of the global matrix at `ids` (ids.size() x h), on every rank: owners fill, one
/// allreduce.
MatrixRF fetch_rows(const MatrixRF& X, const Layout& L, const std::vector<std::int64_t>& ids,
                    std::int64_t h, const Comm& comm);
/// min(count, n) distinct global indices with the smallest keyed hashes, in hash order.
std::vector<std::int64_t> sample_indices(const Layout& L, std::int64_t count, std::uint64_t key,
                                         const Comm& comm);

}  // namespace segrec::kmeans_detail
