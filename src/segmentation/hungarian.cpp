// The Hungarian algorithm in its O(n^2 m) form with row and column potentials (shortest
// augmenting paths, one row added at a time).
#include "segrec/segmentation/hungarian.hpp"

#include <cmath>
#include <limits>

#include "segrec/core/error.hpp"

namespace segrec {
namespace {

/// n <= m: a[i * m + j]; returns per row its column.
std::vector<std::int64_t> solve(const std::vector<double>& a, std::int64_t n, std::int64_t m) {
  const double inf = std::numeric_limits<double>::infinity();
  // 1-based potentials u (rows), v (columns); p[j]: row matched to column j (0 = none).
  std::vector<double> u(static_cast<std::size_t>(n + 1), 0.0),
      v(static_cast<std::size_t>(m + 1), 0.0);
  std::vector<std::int64_t> p(static_cast<std::size_t>(m + 1), 0),
      way(static_cast<std::size_t>(m + 1), 0);
  for (std::int64_t i = 1; i <= n; ++i) {
    p[0] = i;
    std::int64_t j0 = 0;
    std::vector<double> minv(static_cast<std::size_t>(m + 1), inf);
    std::vector<char> used(static_cast<std::size_t>(m + 1), 0);
    do {
      used[j0] = 1;
      const std::int64_t i0 = p[j0];
      double delta = inf;
      std::int64_t j1 = 0;
      for (std::int64_t j = 1; j <= m; ++j) {
        if (used[j]) continue;
        const double cur = a[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      for (std::int64_t j = 0; j <= m; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {
      const std::int64_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<std::int64_t> out(static_cast<std::size_t>(n), -1);
  for (std::int64_t j = 1; j <= m; ++j)
    if (p[j] > 0) out[p[j] - 1] = j - 1;
  return out;
}

}  // namespace

std::vector<std::int64_t> min_cost_assignment(std::span<const double> cost, std::int64_t rows,
                                              std::int64_t cols) {
  SEGREC_ASSERT(rows >= 0 && cols >= 0 && static_cast<std::int64_t>(cost.size()) == rows * cols,
                "cost matrix of ", cost.size(), " values is not ", rows, " x ", cols);
  for (const double c : cost) SEGREC_ASSERT(std::isfinite(c), "cost matrix holds ", c);
  if (rows == 0) return {};
  if (cols == 0) return std::vector<std::int64_t>(static_cast<std::size_t>(rows), -1);
  if (rows <= cols) return solve(std::vector<double>(cost.begin(), cost.end()), rows, cols);
  // More rows than columns: assign the columns to rows (transposed), then invert.
  std::vector<double> t(cost.size());
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) t[c * rows + r] = cost[r * cols + c];
  const auto col_to_row = solve(t, cols, rows);
  std::vector<std::int64_t> out(static_cast<std::size_t>(rows), -1);
  for (std::int64_t c = 0; c < cols; ++c) out[col_to_row[c]] = c;
  return out;
}

double assignment_cost(std::span<const double> cost, std::int64_t cols,
                       const std::vector<std::int64_t>& assignment) {
  double s = 0;
  for (std::size_t r = 0; r < assignment.size(); ++r)
    if (assignment[r] >= 0) s += cost[static_cast<std::int64_t>(r) * cols + assignment[r]];
  return s;
}

}  // namespace segrec
