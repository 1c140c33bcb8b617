// Exact global quantiles of values spread over the ranks.
//
// The quantile q of n values x_(0) <= ... <= x_(n-1) (NaN excluded) is the order
// statistic x_(r) with r = quantile_rank(q, n) = max(0, ceil(q n) - 1): the smallest
// value whose empirical distribution function reaches q (the inverse CDF, "type 1").
// It is found without moving the data: every double maps to an order-preserving
// 64-bit key, and a bisection over the key range counts, for all cut points at once,
// the values at or below each probe with one allreduce per step (64 steps at most).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec {

/// 0-based order statistic of the quantile q in [0, 1] of n > 0 values.
std::int64_t quantile_rank(double q, std::int64_t n);

/// Order-preserving image of a double (-0.0 and 0.0 map alike; not for NaN) and back.
std::uint64_t order_key(double x);
double from_order_key(std::uint64_t k);

/// Collective. Exact quantiles of the finite and infinite values of `local` over all ranks,
/// one per entry of `probs` (each in [0, 1]); NaN values are ignored. Returns NaN for every
/// quantile when no rank holds a value. Identical on every rank and at any rank count.
std::vector<double> exact_quantiles(std::span<const double> local, std::span<const double> probs,
                                    const Comm& comm);

}  // namespace segrec
