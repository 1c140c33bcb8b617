// Lloyd's iterations: the assignment step with its accumulation, empty-cluster relocation,
// the centroid update and the stopping rule; kmeans() (restarts) and lloyd().
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "internal.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/core/watchdog.hpp"
#include "segrec/segmentation/kmeans/init.hpp"

namespace segrec {
namespace kmeans_detail {

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

Exec exec_of(const KMeansParams& p, const KMeansModes& m) {
  Exec ex;
  ex.threads = p.resolved_threads();
#ifdef __AVX512F__
  ex.fused = m.kernel != KMeansKernel::kGemm;
#else
  (void)m;
#endif
  return ex;
}

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

namespace {

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
    broadcast_best_row(
        v, L, std::span<double>(row),
        [&](std::int64_t i, std::span<double> r) {
          SEGREC_ASSERT(next < nc && cand[next] == i, "relocation candidate mismatch");
          ++next;
          for (std::int64_t f = 0; f < h; ++f) r[f] = X(i, f);
          r[h] = labels[i];
        },
        comm);
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

}  // namespace

// Mean over features of the (population) variance of X's columns, global.
RowCovariance row_covariance(const MatrixRF& X, const Comm& comm) {
  const std::int64_t h = X.cols();
  // One allreduce: [n | sum (h) | sum of outer products (h x h)].
  std::vector<double> buf(static_cast<std::size_t>(1 + h + h * h), 0.0);
  buf[0] = static_cast<double>(X.rows());
  Eigen::Map<Eigen::VectorXd> s(buf.data() + 1, h);
  Eigen::Map<Eigen::MatrixXd> ss(buf.data() + 1 + h, h, h);
  constexpr Eigen::Index kRows = 4096;  // rows cast to double at a time
  for (Eigen::Index r = 0; r < X.rows(); r += kRows) {
    const Eigen::MatrixXd Xd = X.middleRows(r, std::min(kRows, X.rows() - r)).cast<double>();
    s += Xd.colwise().sum().transpose();
    ss += Xd.transpose() * Xd;
  }
  comm.allreduce(buf);
  RowCovariance rc;
  rc.n = buf[0];
  rc.mean = rc.n > 0 ? Eigen::VectorXd(s / rc.n) : Eigen::VectorXd::Zero(h);
  rc.cov = rc.n > 0 ? Eigen::MatrixXd(ss / rc.n - rc.mean * rc.mean.transpose())
                    : Eigen::MatrixXd::Zero(h, h);
  rc.cov = 0.5 * (rc.cov + rc.cov.transpose());
  return rc;
}

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

KMeansResult lloyd_impl(const MatrixRF& X, const Layout& L, const MatrixRD& init,
                        const KMeansParams& p, const KMeansModes& m, double tol_abs, Exec ex,
                        const Comm& comm, int max_iter, bool partial,
                        const std::vector<std::int32_t>* labels0) {
  const auto start = std::chrono::steady_clock::now();
  const std::int64_t k = init.rows(), h = X.cols();
  if (max_iter < 0) max_iter = p.max_iter;
  KMeansResult res;
  res.k = k;
  MatrixRD C = init;
  if (p.spherical && !labels0) normalize_rows_inplace(C);
  MatrixRF Cf = C.cast<float>();
  if (labels0)
    res.labels = *labels0;
  else
    res.labels.assign(static_cast<std::size_t>(L.n_local), -1);
  std::vector<float> dist(static_cast<std::size_t>(L.n_local), 0.0f);
  std::vector<double> buf;
  bool consistent = false;  // labels are the nearest-centroid labels of the final centroids
  const bool hamerly = m.use_hamerly(k, h);
  res.hamerly = hamerly;
  HamerlyState hs;  // fresh bounds for every run (restart)
  // A restart that goes on after the others stopped is its own task ("k=K, continued").
  progress::Task task(p.progress_stage, "k=" + std::to_string(k) + (labels0 ? ", continued" : ""),
                      max_iter, "iter", true);
  for (int it = 0; it < max_iter; ++it) {
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
  if (partial && !res.converged) {  // the caller goes on from C and these labels
    res.inertia = res.iterations.empty() ? 0 : res.iterations.back().inertia;
  } else if (!consistent) {  // labels and inertia for the final centroids
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

KMeansResult finish_run(const MatrixRF& X, const Layout& L, KMeansResult r, const KMeansParams& p,
                        const KMeansModes& m, double tol_abs, Exec ex, const Comm& comm) {
  if (r.converged || r.n_iter >= p.max_iter) return r;
  KMeansResult more = lloyd_impl(X, L, r.centroids, p, m, tol_abs, ex, comm, p.max_iter - r.n_iter,
                                 false, &r.labels);
  more.seconds += r.seconds;
  more.restart = r.restart;
  more.n_iter += r.n_iter;
  more.relocated += r.relocated;
  more.iterations.insert(more.iterations.begin(), r.iterations.begin(), r.iterations.end());
  return more;
}

KMeansResult kmeans_prepared(const MatrixRF& X, std::int64_t k, const KMeansParams& p,
                             const KMeansModes& m, const Comm& comm, const MatrixRF* init,
                             const std::function<void()>& restart_done) {
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
  const int restarts = init ? 1 : p.restarts(L.n, k, X.cols());
  // Restarts run restart_iters iterations each (all of max_iter when 0 or larger); the
  // lowest inertia then goes on from its centroids, as had it run alone.
  const int screen =
      restarts > 1 && p.restart_iters > 0 ? std::min(p.restart_iters, p.max_iter) : p.max_iter;
  const Exec ex = exec_of(p, m);
  KMeansResult best;
  double init_s = 0, lloyd_s = 0;
  std::vector<double> compared;
  for (int r = 0; r < restarts; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const MatrixRF c0 = init ? *init : init_centroids(X, k, p, m, r, comm);
    init_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    KMeansResult res =
        lloyd_impl(X, L, c0.cast<double>(), p, m, tol_abs, ex, comm, screen, screen < p.max_iter);
    lloyd_s += res.seconds;
    res.restart = r;
    compared.push_back(res.inertia);
    if (r == 0 || res.inertia < best.inertia) best = std::move(res);
    if (restart_done) restart_done();
  }
  best.seconds = lloyd_s;  // every restart's
  best = finish_run(X, L, std::move(best), p, m, tol_abs, ex, comm);
  best.init_seconds = init_s;
  best.restart_inertia = std::move(compared);
  if (!init)
    best = swap_refine(X, L, std::move(best), p.swaps(L.n, k, X.cols()), p, m, tol_abs, ex, comm);
  return best;
}

}  // namespace kmeans_detail

using kmeans_detail::exec_of;
using kmeans_detail::Layout;
using kmeans_detail::make_layout;
using kmeans_detail::mean_variance;

KMeansResult lloyd(const MatrixRF& X, const MatrixRF& init, const KMeansParams& p,
                   const Comm& comm) {
  const Layout L = make_layout(X.rows(), comm);
  SEGREC_ASSERT(init.cols() == X.cols(), "centroids have ", init.cols(), " columns, data ",
                X.cols());
  const KMeansModes m = p.validate();
  return kmeans_detail::lloyd_impl(X, L, init.cast<double>(), p, m,
                                   p.tol * mean_variance(X, L, comm), exec_of(p, m), comm);
}

KMeansResult kmeans(const MatrixRF& X, std::int64_t k, const KMeansParams& p, const Comm& comm,
                    const MatrixRF* init) {
  const KMeansModes m = p.validate();
  if (!p.spherical) return kmeans_detail::kmeans_prepared(X, k, p, m, comm, init);
  const MatrixRF Xn = normalize_rows(X);
  return kmeans_detail::kmeans_prepared(Xn, k, p, m, comm, init);
}

MatrixRF normalize_rows(const MatrixRF& X) {
  MatrixRF out = X;
  for (Eigen::Index i = 0; i < out.rows(); ++i) {
    const double nrm = out.row(i).cast<double>().norm();
    if (nrm > 0) out.row(i) = (out.row(i).cast<double>() / nrm).cast<float>();
  }
  return out;
}

ColumnMoments column_moments(const MatrixRF& X, const Comm& comm) {
  const Eigen::Index h = X.cols();
  const auto hs = static_cast<std::size_t>(h);
  std::vector<double> m(2 * hs + 1, 0.0);  // [sum x | sum x^2 | n]
  for (Eigen::Index i = 0; i < X.rows(); ++i)
    for (std::size_t j = 0; j < hs; ++j) {
      const double x = X(i, static_cast<Eigen::Index>(j));
      m[j] += x;
      m[hs + j] += x * x;
    }
  m[2 * hs] = static_cast<double>(X.rows());
  comm.allreduce(m);
  ColumnMoments c;
  c.n = m[2 * hs];
  c.mean.assign(hs, 0.0);
  c.var.assign(hs, 0.0);
  if (c.n <= 0) return c;
  for (std::size_t j = 0; j < hs; ++j) {
    c.mean[j] = m[j] / c.n;
    c.var[j] = std::max(0.0, m[hs + j] / c.n - c.mean[j] * c.mean[j]);
  }
  return c;
}

std::uint64_t lloyd_allreduce_bytes(std::int64_t k, std::int64_t h) {
  return static_cast<std::uint64_t>(k * h + k + 2) * sizeof(double);
}

}  // namespace segrec
