// Optimal assignment (the Hungarian algorithm, Kuhn-Munkres with potentials): used to match
// the segments of two clusterings (stable_ids.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace segrec {

/// Minimum-cost assignment of the rows of a rows x cols cost matrix (row-major, finite
/// values) to distinct columns, O(min^2 max). Returns per row its column; when rows > cols
/// the rows left over get -1. The result depends only on the matrix (ties resolved by the
/// algorithm's fixed scan order).
std::vector<std::int64_t> min_cost_assignment(std::span<const double> cost, std::int64_t rows,
                                              std::int64_t cols);

/// Sum of cost[r][assignment[r]] over the assigned rows.
double assignment_cost(std::span<const double> cost, std::int64_t cols,
                       const std::vector<std::int64_t>& assignment);

}  // namespace segrec
