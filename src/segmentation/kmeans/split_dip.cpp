// The dip of a segment's 2-means split (split_dip.hpp). The dip follows Hartigan's iteration:
// the greatest convex minorant (GCM) and least concave majorant (LCM) of the empirical CDF on
// the current modal interval [lo, hi]; the largest distance between them moves the interval in
// to its contact points, and the CDF's distances from the GCM left of it and from the LCM right
// of it bound the dip from below; it stops when the two hulls are no farther apart than that.
#include "segrec/segmentation/kmeans/split_dip.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace segrec {

namespace {

using Index = std::int64_t;

/// Vertices of the lower (lower = true) or upper hull of (x_i, i + 1), i in [lo, hi], ascending.
std::vector<Index> hull(const std::vector<double>& x, Index lo, Index hi, bool lower) {
  std::vector<Index> h;
  for (Index i = lo; i <= hi; ++i) {
    while (h.size() >= 2) {
      const Index a = h[h.size() - 2], b = h.back();
      // (b - a) x (i - a) in (x, count): b is not a vertex when it is on or above the chord
      // from a to i (lower hull), or on or below it (upper hull).
      const double cross =
          static_cast<double>(b - a) * (x[i] - x[a]) - static_cast<double>(i - a) * (x[b] - x[a]);
      if (lower ? cross >= 0 : cross <= 0)
        h.pop_back();
      else
        break;
    }
    h.push_back(i);
  }
  return h;
}

/// The piecewise-linear function through the hull vertices h, at x[t] for ascending t (a cursor).
struct HullCursor {
  const std::vector<double>& x;
  const std::vector<Index>& h;
  std::size_t j = 0;
  double at(Index t) {
    while (j + 2 < h.size() && x[h[j + 1]] < x[t]) ++j;
    const Index a = h[j], b = h[std::min(j + 1, h.size() - 1)];
    if (a == b || x[b] == x[a]) return static_cast<double>(a + 1);
    return static_cast<double>(a + 1) + static_cast<double>(b - a) * (x[t] - x[a]) / (x[b] - x[a]);
  }
};

}  // namespace

double dip_statistic(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  const auto n = static_cast<Index>(x.size());
  if (n < 2 || !(x.back() > x.front())) return 0;
  // Ties become steep ramps: values kept strictly increasing by a step far below their spread.
  const double step = (x.back() - x.front()) * 1e-9 / static_cast<double>(n);
  for (Index i = 1; i < n; ++i) x[i] = std::max(x[i], x[i - 1] + step);
  Index lo = 0, hi = n - 1;
  double dip = 1;  // in counts: the CDF's steps are 1, so the dip is at least 1 / (2 n)
  while (lo < hi) {
    const std::vector<Index> g = hull(x, lo, hi, true), l = hull(x, lo, hi, false);
    // Counts: the LCM is the upper hull of the CDF's values (x_i, i + 1), the GCM the lower hull
    // of its left limits (x_i, i), the same hull as of (x_i, i + 1) less 1. The largest distance
    // between them, at a vertex of either.
    double widest = -1;
    Index at = lo;
    bool at_gcm = true;
    HullCursor lc{x, l};
    for (const Index v : g) {
      const double d = lc.at(v) - static_cast<double>(v + 1) + 1;
      if (d > widest) widest = d, at = v, at_gcm = true;
    }
    HullCursor gc{x, g};
    for (const Index v : l) {
      const double d = static_cast<double>(v + 1) - gc.at(v) + 1;
      if (d > widest) widest = d, at = v, at_gcm = false;
    }
    if (widest <= dip) break;
    Index new_lo = lo, new_hi = hi;
    if (at_gcm) {
      new_lo = at;
      const auto it = std::lower_bound(l.begin(), l.end(), at);
      new_hi = it == l.end() ? hi : *it;
    } else {
      new_hi = at;
      const auto it = std::upper_bound(g.begin(), g.end(), at);
      new_lo = it == g.begin() ? lo : *(it - 1);
    }
    // The CDF above the GCM on [lo, new_lo] and its left limits below the LCM on [new_hi, hi].
    HullCursor gl{x, g};
    for (Index i = lo; i <= new_lo; ++i) dip = std::max(dip, static_cast<double>(i + 2) - gl.at(i));
    HullCursor lu{x, l};
    for (Index i = new_hi; i <= hi; ++i) dip = std::max(dip, lu.at(i) - static_cast<double>(i));
    if (new_lo == lo && new_hi == hi) break;
    lo = new_lo;
    hi = new_hi;
  }
  return dip / (2 * static_cast<double>(n));
}

double split_dip(const MatrixRF& P, std::span<const std::int64_t> labels, std::int64_t k) {
  const Eigen::Index h = P.cols();
  std::vector<std::vector<Eigen::Index>> members(static_cast<std::size_t>(k));
  for (std::size_t s = 0; s < labels.size(); ++s)
    members[labels[s]].push_back(static_cast<Eigen::Index>(s));
  double worst = std::numeric_limits<double>::quiet_NaN();
  for (const auto& rows : members) {
    const auto m = std::ssize(rows);
    if (m < kSplitDipMinUsers) continue;
    MatrixRD Y(m, h);  // the segment's sampled rows, centred
    for (Index r = 0; r < m; ++r) Y.row(r) = P.row(rows[r]).cast<double>();
    Y.rowwise() -= Y.colwise().mean();
    // 2-means from the row farthest from the mean and the row farthest from that one.
    Eigen::Index a = 0, b = 0;
    Y.rowwise().squaredNorm().maxCoeff(&a);
    (Y.rowwise() - Y.row(a)).rowwise().squaredNorm().maxCoeff(&b);
    Eigen::RowVectorXd c1 = Y.row(a), c2 = Y.row(b);
    std::vector<char> side(static_cast<std::size_t>(m), 2);
    for (int it = 0; it < 100; ++it) {
      bool changed = false;
      Eigen::RowVectorXd s1 = Eigen::RowVectorXd::Zero(h), s2 = s1;
      double n1 = 0, n2 = 0;
      for (Index r = 0; r < m; ++r) {
        const char near = (Y.row(r) - c1).squaredNorm() <= (Y.row(r) - c2).squaredNorm() ? 0 : 1;
        changed |= side[r] != near;
        side[r] = near;
        if (near == 0)
          s1 += Y.row(r), n1 += 1;
        else
          s2 += Y.row(r), n2 += 1;
      }
      if (n1 == 0 || n2 == 0 || !changed) break;
      c1 = s1 / n1;
      c2 = s2 / n2;
    }
    const Eigen::VectorXd axis = (c1 - c2).transpose();
    const Eigen::VectorXd proj = Y * axis;
    const double d = dip_statistic(std::vector<double>(proj.data(), proj.data() + m));
    const double z = std::sqrt(static_cast<double>(m)) * d;
    if (!(worst >= z)) worst = z;
  }
  return worst;
}

bool split_resolved_later(const std::vector<SweepRow>& rows, std::size_t i) {
  const double dip = rows[i].quality.split_dip;
  if (!(dip > kSplitDipBimodal)) return false;
  // From the end: the largest split dip of rows j.. (NaN counts as unresolved).
  double tail = -std::numeric_limits<double>::infinity();
  bool resolved = false;
  for (std::size_t j = rows.size(); j-- > i + 1;) {
    const double d = rows[j].quality.split_dip;
    tail = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(tail, d);
    const double rise = rows[j].quality.gap - rows[i].quality.gap;
    const auto steps = static_cast<double>(rows[j].k - rows[i].k);
    resolved |= tail < kSplitDipResolved * dip && rise > kSplitGapRise * steps;
  }
  return resolved;
}

}  // namespace segrec
