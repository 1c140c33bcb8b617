#include "segrec/personalisation/ease.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include <Eigen/Core>

#include "segrec/core/blas.hpp"
#include "segrec/core/cholesky.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/personalisation/input_rows.hpp"

#ifdef SEGREC_HAVE_OPENBLAS
// OpenBLAS's LAPACK (Fortran interface; the trailing length of the character argument).
extern "C" {
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info, std::size_t);
}
#endif

namespace segrec::ease {

namespace {

using ColMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

#ifdef SEGREC_HAVE_OPENBLAS
constexpr bool kHaveLapack = true;
#else
constexpr bool kHaveLapack = false;
#endif

// Columns per panel of the triangular solves: panel [a, a + b) solves with the (n - a)^2
// trailing triangle only, so that column j costs about 2 (n - j)^2 flops (as dpotri).
constexpr std::int64_t kPanel = 128;

}  // namespace

int panel_owner(std::int64_t q, int p) {
  const std::int64_t r = q % (2 * std::int64_t{p});
  return static_cast<int>(r < p ? r : 2 * std::int64_t{p} - 1 - r);
}

double rank_flops(std::int64_t n, int p, int rank) {
  double f = 0;
  for (std::int64_t q = 0; q * kPanel < n; ++q) {
    if (panel_owner(q, p) != rank) continue;
    const auto m = static_cast<double>(n - q * kPanel);
    f += 2.0 * m * m * static_cast<double>(std::min(kPanel, n - q * kPanel));
  }
  return f;
}

std::int64_t bytes_per_rank(std::int64_t n, int p) {
  const long double nn = static_cast<long double>(n) * static_cast<long double>(n);
  // One panel's right-hand sides: n x kPanel doubles (none with dpotri on one rank).
  long double rhs = p > 1 ? static_cast<long double>(n) * kPanel : 0;
#ifndef SEGREC_HAVE_OPENBLAS
  rhs = static_cast<long double>(n) * kPanel;
#endif
  const long double b =
      24 * nn + 8 * rhs + static_cast<long double>(linalg::cholesky_scratch_bytes(n, p));
  return b > static_cast<long double>(std::numeric_limits<std::int64_t>::max())
             ? std::numeric_limits<std::int64_t>::max()
             : static_cast<std::int64_t>(b);
}

void check_memory(std::int64_t n, int p, std::int64_t budget) {
  const std::int64_t need = bytes_per_rank(n, p);
  if (need <= budget) return;
  throw DataError("ease: " + std::to_string(n) + " items need " +
                      progress::format_bytes(static_cast<double>(need), 3) +
                      " per rank (the Gram matrix, its Cholesky factor and two B: about 24 x " +
                      std::to_string(n) + "^2 bytes), over the " +
                      progress::format_bytes(static_cast<double>(budget), 3) +
                      " allowed per rank (--max-memory-per-rank); keep fewer items",
                  true);
}

std::vector<double> gram(std::int64_t n, const std::vector<std::int64_t>& indptr,
                         const std::vector<std::int32_t>& indices, const std::vector<float>& values,
                         const std::vector<std::int64_t>& rows, const Comm& comm) {
  std::vector<double> G(static_cast<std::size_t>(n * n), 0.0);
  std::vector<std::pair<std::int32_t, double>> x;  // one user's (item, value), by item
  for (const std::int64_t r : rows) {
    x.clear();
    for (std::int64_t a = indptr[r]; a < indptr[r + 1]; ++a) x.emplace_back(indices[a], values[a]);
    std::sort(x.begin(), x.end());
    std::size_t m = 0;  // a repeated item counts once, with its values summed (a row of X)
    for (std::size_t a = 0; a < x.size(); ++a)
      if (m > 0 && x[m - 1].first == x[a].first)
        x[m - 1].second += x[a].second;
      else
        x[m++] = x[a];
    x.resize(m);
    for (std::size_t a = 0; a < x.size(); ++a) {  // the upper triangle only: pairs a <= b
      double* row = G.data() + std::int64_t{x[a].first} * n;
      const double va = x[a].second;
      for (std::size_t b = a; b < x.size(); ++b) row[x[b].first] += va * x[b].second;
    }
  }
  comm.allreduce(G);
  return G;
}

namespace {

// B_ij = -P_ij / P_jj (diag 0) from P's upper triangle (P: n x n, row-major, i <= j read):
// tiles of kTile x kTile, so that the lower tiles read their mirror image (P_ji) from a
// tile-sized block of rows rather than down whole columns. B: n x n floats, row-major.
std::vector<float> b_from_upper(const double* P, std::int64_t n) {
  constexpr std::int64_t kTile = 64;
  std::vector<double> neg_inv(static_cast<std::size_t>(n));
  for (std::int64_t j = 0; j < n; ++j) neg_inv[j] = -1.0 / P[j * n + j];
  std::vector<float> B(static_cast<std::size_t>(n * n));
  for (std::int64_t i0 = 0; i0 < n; i0 += kTile) {
    const std::int64_t i1 = std::min(n, i0 + kTile);
    for (std::int64_t j0 = 0; j0 < n; j0 += kTile) {
      const std::int64_t j1 = std::min(n, j0 + kTile);
      for (std::int64_t i = i0; i < i1; ++i) {
        float* b = B.data() + i * n;
        const double* row = P + i * n;  // P_ij for j >= i
        for (std::int64_t j = j0; j < std::min(j1, i); ++j)
          b[j] = static_cast<float>(P[j * n + i] * neg_inv[j]);
        for (std::int64_t j = std::max(j0, i); j < j1; ++j)
          b[j] = static_cast<float>(row[j] * neg_inv[j]);
        if (i >= j0 && i < j1) b[i] = 0.0f;
      }
    }
  }
  return B;
}

}  // namespace

std::vector<float> solve(std::vector<double> G, std::int64_t n, double lambda, const Comm& comm) {
  SEGREC_ASSERT(std::ssize(G) == n * n && lambda > 0, "ease::solve: bad G or lambda");
  // F = G + lambda I, factored in place: G's row-major upper triangle is F's column-major
  // lower one, the triangle the factor reads. Its flops are split over the ranks by column
  // blocks (every rank then holds all of L).
  Eigen::Map<ColMat> F(G.data(), n, n);
  F.diagonal().array() += lambda;
  // The factor and the inverse: BLAS threads for this rank's share of its node's CPUs.
  const blas::NodeThreads threads(comm.node().size());
  std::string err;
  if (!linalg::cholesky_blocks(F.data(), n, comm))
    err = "ease: G + lambda I is not positive definite (lambda " + std::to_string(lambda) + ")";
  comm.check_all(err, kExitData);

  // P, row-major in F's storage: the rows of panel [a, a + b) hold P[panel, a:] (on and right
  // of the panel's diagonal block), P[a:, panel] = L_a^-T (L_a^-1 E) with L_a = L[a:, a:];
  // each rank solves its own panels (panel_owner), then every panel is broadcast from its
  // owner. B then reads P's upper triangle only.
  const int p = comm.size();
  Eigen::Map<RowMat> P(F.data(), n, n);
#ifdef SEGREC_HAVE_OPENBLAS
  if (p == 1) {
    const int ni = static_cast<int>(n);
    int info = 0;
    dpotri_("L", &ni, F.data(), &ni, &info, 1);  // lower triangle of P, column-major
    SEGREC_ASSERT(info == 0, "ease: dpotri failed");
    // Column-major lower = row-major upper: the triangle b_from_upper reads.
  }
#endif
  if (p > 1 || !kHaveLapack) {
    // A panel's result overwrites F's columns [a, a + b) (as P's rows a.. a + b), which this
    // rank's later panels (columns >= a + b) no longer read.
    for (std::int64_t a = 0; a < n; a += kPanel) {
      if (panel_owner(a / kPanel, p) != comm.rank()) continue;
      const std::int64_t b = std::min(kPanel, n - a), m = n - a;
      ColMat Y = ColMat::Zero(m, b);
      Y.topRows(b).setIdentity();
      const auto La = F.bottomRightCorner(m, m).triangularView<Eigen::Lower>();
      La.solveInPlace(Y);            // L_a^-1 E
      La.adjoint().solveInPlace(Y);  // P[a:, panel]
      P.block(a, a, b, m) = Y.transpose();
    }
    // Every panel from its owner, once all are solved (until then this rank's panels read
    // the L columns of the other ranks' panels to their right): F's columns [a, a + b),
    // contiguous (the rows above a are not used).
    for (std::int64_t a = 0; a < n && p > 1; a += kPanel)
      comm.broadcast(std::span<double>(F.data() + a * n,
                                       static_cast<std::size_t>(std::min(kPanel, n - a) * n)),
                     panel_owner(a / kPanel, p));
  }
  return b_from_upper(F.data(), n);
}

mlp::Shape linear_shape(std::int64_t n_items) {
  mlp::Shape s;
  s.sparse_in = n_items;
  s.n_out = n_items;
  return s;
}

void write_linear(h5::File& f, const Model& m, const Comm& comm) {
  const std::int64_t n = std::ssize(m.item_ids);
  f.set_attr("/", "model_kind", to_string(m.kind));
  if (m.kind == ModelKind::kPopularity) {
    SEGREC_ASSERT(std::ssize(m.item_scores) == n, "popularity scores do not match the items");
    f.create_group("/popularity");
    f.write_replicated<float>("/popularity/scores", std::span<const float>(m.item_scores));
    return;
  }
  SEGREC_ASSERT(m.kind == ModelKind::kEase && std::ssize(m.item_item) == n * n,
                "EASE matrix does not match the items");
  f.create_group("/ease");
  f.set_attr("/ease", "l2", m.l2);
  f.set_attr("/ease", "history_weight", m.history_weight);
  // Each rank writes its block of rows.
  const Block rows = block_partition(n, comm.size(), comm.rank());
  const std::int64_t r0 = rows.begin, r1 = rows.end;
  f.write_rows<float>(
      "/ease/B",
      std::span<const float>(m.item_item.data() + r0 * n, static_cast<std::size_t>((r1 - r0) * n)),
      std::max<std::int64_t>(n, 1));
  f.write_replicated<double>("/ease/l2_grid", std::span<const double>(m.l2_grid));
  f.write_replicated<double>("/ease/val_ndcg", std::span<const double>(m.l2_ndcg));
}

void read_linear(const h5::File& f, const std::string& path, Model& m) {
  const std::int64_t n = std::ssize(m.item_ids);
  m.shape = linear_shape(n);
  m.input = "history";
  const auto finite = [&](const std::vector<float>& v, const char* name) {
    if (!std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); }))
      throw DataError("'" + path + "': " + name + " holds non-finite values (damaged file?)", true);
  };
  if (m.kind == ModelKind::kPopularity) {
    m.item_scores = f.read_all<float>("/popularity/scores");
    if (std::ssize(m.item_scores) != n)
      throw DataError("'" + path + "': /popularity/scores does not match the item list", true);
    finite(m.item_scores, "/popularity/scores");
    return;
  }
  const auto shape = f.shape("/ease/B");
  if (shape.size() != 2 || shape[0] != n || shape[1] != std::max<std::int64_t>(n, 1))
    throw DataError("'" + path + "': /ease/B is not " + std::to_string(n) + " x " +
                        std::to_string(n) + " (the item list)",
                    true);
  m.item_item = f.read_all<float>("/ease/B");  // refused over --max-memory-per-rank
  finite(m.item_item, "/ease/B");
  m.l2 = f.attr_double("/ease", "l2");
  m.history_weight = f.attr_string("/ease", "history_weight");
  if (m.history_weight != "binary" && m.history_weight != "log")
    throw DataError("'" + path + "': bad /ease history_weight '" + m.history_weight + "'", true);
  m.l2_grid = f.read_all<double>("/ease/l2_grid");
  m.l2_ndcg = f.read_all<double>("/ease/val_ndcg");
}

std::vector<double> default_grid() { return {25, 50, 100, 200, 400, 800, 1600, 3200}; }

TopN score_linear(const Model& m, const UserInputs& u, std::int64_t n, bool exclude_history) {
  require(n >= 1, "top-n", n, "must be >= 1");
  const std::int64_t n_items = std::ssize(m.item_ids), rows = u.rows();
  if (rows < 0 || u.indptr.empty() || u.indptr[0] != 0 ||
      u.indptr.back() != std::ssize(u.indices) || u.weights.size() != u.indices.size())
    throw DataError("score_users: malformed user histories");
  for (auto i : u.indices)
    if (i < 0 || i >= n_items)
      throw DataError("score_users: item index " + std::to_string(i) + " outside the model's " +
                      std::to_string(n_items) + " items");
  const bool ease = m.kind == ModelKind::kEase;
  SEGREC_ASSERT(
      ease ? std::ssize(m.item_item) == n_items * n_items : std::ssize(m.item_scores) == n_items,
      "score_linear: the model's item scores do not match its items");
  const bool log_weight = m.history_weight == "log";
  TopN out;
  out.n = n;
  out.items.assign(static_cast<std::size_t>(rows * n), -1);
  out.scores.assign(static_cast<std::size_t>(rows * n), -std::numeric_limits<float>::infinity());
  std::vector<float> z(static_cast<std::size_t>(n_items));
  std::vector<std::int32_t> cand, ranked;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (ease) {
      std::fill(z.begin(), z.end(), 0.0f);  // z = x_u B
      for (std::int64_t k = u.indptr[r]; k < u.indptr[r + 1]; ++k) {
        const float v = history_value(u.weights[k], log_weight);
        const float* b = m.item_item.data() + std::int64_t{u.indices[k]} * n_items;
        for (std::int64_t j = 0; j < n_items; ++j) z[j] += v * b[j];
      }
    } else {
      z = m.item_scores;
    }
    if (exclude_history)
      for (std::int64_t k = u.indptr[r]; k < u.indptr[r + 1]; ++k)
        z[u.indices[k]] = -std::numeric_limits<float>::infinity();
    top_k(z.data(), n_items, n, cand, ranked);
    for (std::size_t q = 0; q < ranked.size(); ++q) {
      out.items[static_cast<std::size_t>(r * n) + q] = ranked[q];
      out.scores[static_cast<std::size_t>(r * n) + q] = z[static_cast<std::size_t>(ranked[q])];
    }
  }
  return out;
}

}  // namespace segrec::ease
