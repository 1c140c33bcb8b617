// Exact global quantiles by bisection on order-preserving integer keys.
#include "segrec/core/quantiles.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "segrec/core/error.hpp"

namespace segrec {

std::int64_t quantile_rank(double q, std::int64_t n) {
  SEGREC_ASSERT(n > 0 && q >= 0 && q <= 1, "quantile_rank(", q, ", ", n, ")");
  const double r = std::ceil(q * static_cast<double>(n)) - 1;
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(r), 0, n - 1);
}

std::uint64_t order_key(double x) {
  if (x == 0) x = 0.0;  // -0.0 sorts with 0.0
  std::uint64_t b = 0;
  std::memcpy(&b, &x, sizeof b);
  constexpr std::uint64_t sign = std::uint64_t{1} << 63;
  return (b & sign) ? ~b : (b | sign);
}

double from_order_key(std::uint64_t k) {
  constexpr std::uint64_t sign = std::uint64_t{1} << 63;
  const std::uint64_t b = (k & sign) ? (k & ~sign) : ~k;
  double x = 0;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

std::vector<double> exact_quantiles(std::span<const double> local, std::span<const double> probs,
                                    const Comm& comm) {
  for (double q : probs)
    SEGREC_ASSERT(q >= 0 && q <= 1, "quantile probability ", q, " outside [0, 1]");
  std::vector<std::uint64_t> keys;
  keys.reserve(local.size());
  for (double x : local)
    if (!std::isnan(x)) keys.push_back(order_key(x));
  std::sort(keys.begin(), keys.end());
  const auto n = comm.allreduce_value(static_cast<std::int64_t>(keys.size()));
  const std::size_t m = probs.size();
  std::vector<double> out(m, std::numeric_limits<double>::quiet_NaN());
  if (n == 0 || m == 0) return out;

  // The global key range first; then per cut point the smallest key K in [lo, hi]
  // with count(key <= K) > rank (the answer is always a key of the data).
  std::vector<std::uint64_t> range{keys.empty() ? ~std::uint64_t{0} : keys.front(),
                                   keys.empty() ? ~std::uint64_t{0} : ~keys.back()};
  comm.allreduce(range, Op::kMin);
  std::vector<std::uint64_t> lo(m, range[0]), hi(m, ~range[1]);
  std::vector<std::int64_t> rank(m), count(m);
  for (std::size_t j = 0; j < m; ++j) rank[j] = quantile_rank(probs[j], n);
  for (;;) {
    bool open = false;
    std::vector<std::uint64_t> mid(m);
    for (std::size_t j = 0; j < m; ++j) {
      mid[j] = lo[j] + (hi[j] - lo[j]) / 2;
      open |= lo[j] < hi[j];
    }
    if (!open) break;  // identical on every rank: lo and hi move alike everywhere
    for (std::size_t j = 0; j < m; ++j)
      count[j] = static_cast<std::int64_t>(std::upper_bound(keys.begin(), keys.end(), mid[j]) -
                                           keys.begin());
    comm.allreduce(count);
    for (std::size_t j = 0; j < m; ++j) {
      if (lo[j] == hi[j]) continue;
      if (count[j] > rank[j])
        hi[j] = mid[j];
      else
        lo[j] = mid[j] + 1;
    }
  }
  for (std::size_t j = 0; j < m; ++j) out[j] = from_order_key(lo[j]);
  return out;
}

}  // namespace segrec
