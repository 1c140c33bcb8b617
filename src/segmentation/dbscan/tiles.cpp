// DBSCAN's tiles: the exact squared distance, the k-d split of a block into tiles with
// bounding balls, their packing for the ring, and the radius thresholds.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "internal.hpp"
#include "segrec/core/error.hpp"

namespace segrec::dbscan_detail {

double exact_d2(const float* a, const float* b, std::int64_t h) {
  double s = 0;
  for (std::int64_t f = 0; f < h; ++f) {
    const double d = static_cast<double>(a[f]) - static_cast<double>(b[f]);
    s = std::fma(d, d, s);
  }
  return s;
}

namespace {

void split(const MatrixRF& X, std::vector<std::int64_t>& idx, std::int64_t lo, std::int64_t hi,
           std::vector<std::int64_t>& starts) {
  if (hi - lo <= kLeafRows) {
    starts.push_back(lo);
    return;
  }
  const std::int64_t h = X.cols();
  std::int64_t dim = 0;
  float best = -1, cut = 0;
  for (std::int64_t f = 0; f < h; ++f) {
    float mn = std::numeric_limits<float>::infinity(), mx = -mn;
    for (std::int64_t i = lo; i < hi; ++i) {
      mn = std::min(mn, X(idx[i], f));
      mx = std::max(mx, X(idx[i], f));
    }
    if (mx - mn > best) {
      best = mx - mn;
      dim = f;
      cut = mn + (mx - mn) / 2;
    }
  }
  // The midpoint of the widest extent (cells shrink, so dense groups and sparse users part);
  // the median when that leaves fewer than a sixteenth on one side.
  std::int64_t mid = std::partition(idx.begin() + lo, idx.begin() + hi,
                                    [&](std::int64_t a) { return X(a, dim) < cut; }) -
                     idx.begin();
  if (mid - lo < (hi - lo) / 16 || hi - mid < (hi - lo) / 16) {
    mid = lo + (hi - lo) / 2;
    std::nth_element(idx.begin() + lo, idx.begin() + mid, idx.begin() + hi,
                     [&](std::int64_t a, std::int64_t b) {
                       const float va = X(a, dim), vb = X(b, dim);
                       return va < vb || (va == vb && a < b);
                     });
  }
  split(X, idx, lo, mid, starts);
  split(X, idx, mid, hi, starts);
}

template <class T>
void put(std::vector<char>& out, const std::vector<T>& v) {
  const std::int64_t n = static_cast<std::int64_t>(v.size());
  const std::size_t at = out.size();
  out.resize(at + sizeof n + v.size() * sizeof(T));
  std::memcpy(out.data() + at, &n, sizeof n);
  if (!v.empty()) std::memcpy(out.data() + at + sizeof n, v.data(), v.size() * sizeof(T));
}

template <class T>
void get(const std::vector<char>& in, std::size_t& at, std::vector<T>& v) {
  std::int64_t n = 0;
  SEGREC_ASSERT(at + sizeof n <= in.size(), "truncated DBSCAN block");
  std::memcpy(&n, in.data() + at, sizeof n);
  at += sizeof n;
  SEGREC_ASSERT(n >= 0 && at + static_cast<std::size_t>(n) * sizeof(T) <= in.size(),
                "truncated DBSCAN block");
  v.resize(static_cast<std::size_t>(n));
  if (n) std::memcpy(v.data(), in.data() + at, static_cast<std::size_t>(n) * sizeof(T));
  at += static_cast<std::size_t>(n) * sizeof(T);
}

}  // namespace

Tiles make_tiles(const MatrixRF& X, std::int64_t begin, std::vector<std::int64_t>& order) {
  Tiles t;
  t.n = X.rows();
  t.h = X.cols();
  const std::int64_t h = t.h;
  order.resize(static_cast<std::size_t>(t.n));
  for (std::int64_t i = 0; i < t.n; ++i) order[i] = i;
  if (t.n > 0) split(X, order, 0, t.n, t.start);
  t.start.push_back(t.n);
  t.x.resize(static_cast<std::size_t>(t.n * h));
  t.sqn.resize(static_cast<std::size_t>(t.n));
  t.gid.resize(static_cast<std::size_t>(t.n));
  for (std::int64_t r = 0; r < t.n; ++r) {
    const float* src = X.data() + order[r] * h;
    std::copy(src, src + h, t.x.begin() + r * h);
    float s = 0;
    for (std::int64_t f = 0; f < h; ++f) s += src[f] * src[f];
    t.sqn[r] = s;
    t.gid[r] = begin + order[r];
  }
  const std::int64_t nt = t.tiles();
  t.centre.assign(static_cast<std::size_t>(nt * h), 0.0);
  t.radius.assign(static_cast<std::size_t>(nt), 0.0);
  for (std::int64_t k = 0; k < nt; ++k) {
    double* c = t.centre.data() + k * h;
    const std::int64_t r0 = t.start[k], r1 = t.start[k + 1];
    for (std::int64_t r = r0; r < r1; ++r)
      for (std::int64_t f = 0; f < h; ++f) c[f] += t.x[r * h + f];
    for (std::int64_t f = 0; f < h; ++f) c[f] /= static_cast<double>(r1 - r0);
    double m = 0;
    for (std::int64_t r = r0; r < r1; ++r) {
      double s = 0;
      for (std::int64_t f = 0; f < h; ++f) {
        const double d = t.x[r * h + f] - c[f];
        s += d * d;
      }
      m = std::max(m, s);
    }
    t.radius[k] = std::sqrt(m);
  }
  return t;
}

std::vector<char> pack(const Tiles& t) {
  std::vector<char> out;
  const std::vector<std::int64_t> head = {t.n, t.h};
  put(out, head);
  put(out, t.x);
  put(out, t.sqn);
  put(out, t.gid);
  put(out, t.start);
  put(out, t.centre);
  put(out, t.radius);
  put(out, t.label);
  return out;
}

Tiles unpack(const std::vector<char>& bytes) {
  Tiles t;
  std::size_t at = 0;
  std::vector<std::int64_t> head;
  get(bytes, at, head);
  SEGREC_ASSERT(head.size() == 2, "bad DBSCAN block header");
  t.n = head[0];
  t.h = head[1];
  get(bytes, at, t.x);
  get(bytes, at, t.sqn);
  get(bytes, at, t.gid);
  get(bytes, at, t.start);
  get(bytes, at, t.centre);
  get(bytes, at, t.radius);
  get(bytes, at, t.label);
  return t;
}

Relation relate(const Tiles& a, std::int64_t ta, const Tiles& b, std::int64_t tb, double eps,
                double slack) {
  const std::int64_t h = a.h;
  const double* ca = a.centre.data() + ta * h;
  const double* cb = b.centre.data() + tb * h;
  double s = 0;
  for (std::int64_t f = 0; f < h; ++f) {
    const double d = ca[f] - cb[f];
    s += d * d;
  }
  const double dc = std::sqrt(s), rr = a.radius[ta] + b.radius[tb];
  const double tol = slack + 1e-9 * (eps + rr + dc);
  if (dc - rr > eps + tol) return Relation::kApart;
  if (dc + rr + tol <= eps) return Relation::kWithin;
  return Relation::kMixed;
}

Radius make_radius(double eps, std::int64_t h, double scale) {
  Radius r;
  r.h = h;
  r.eps = eps;
  r.eps2 = eps * eps;
  const double fmax = std::numeric_limits<float>::max();
  if (r.eps2 >= fmax) {
    r.e2lo = std::numeric_limits<float>::max();
    r.e2hi = std::numeric_limits<float>::infinity();
  } else {
    r.e2lo = static_cast<float>(r.eps2);
    if (static_cast<double>(r.e2lo) > r.eps2) r.e2lo = std::nextafter(r.e2lo, 0.0f);
    r.e2hi = static_cast<float>(r.eps2);
    if (static_cast<double>(r.e2hi) < r.eps2)
      r.e2hi = std::nextafter(r.e2hi, std::numeric_limits<float>::infinity());
  }
  // Twice the worst-case rounding of an h-term float dot product and two norms (GEMM), or of
  // an h-term float sum of squared differences (sqdist), with u = 2^-24.
  r.gemm_rel = static_cast<float>(2.0 * (2.0 * static_cast<double>(h) + 16.0) * 0x1.0p-24);
  r.dist_rel = 2.0 * (static_cast<double>(h) + 8.0) * 0x1.0p-24;
  r.tiny = static_cast<float>(1e-36 * static_cast<double>(h + 4));
  r.slack = 1e-9 * scale;
  return r;
}

}  // namespace segrec::dbscan_detail
