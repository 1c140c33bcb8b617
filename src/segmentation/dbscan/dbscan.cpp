// Exact distributed DBSCAN: two ring passes over tiled blocks (neighbour counts, then
// core-core components and border users), and the merge of components across ranks. The
// algorithm, its exactness and its memory are described in dbscan.hpp.
#include "segrec/segmentation/dbscan/dbscan.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_map>
#include <utility>

#include "../kmeans/internal.hpp"
#include "internal.hpp"
#include "segrec/core/error.hpp"

namespace segrec {
namespace {

using dbscan_detail::exact_d2;
using dbscan_detail::Radius;
using dbscan_detail::Relation;
using dbscan_detail::Tiles;
using kmeans_detail::parallel_for;

/// Union-find over 0..n-1; the root of a set is its smallest member.
struct UnionFind {
  std::vector<std::int64_t> parent;
  explicit UnionFind(std::int64_t n) : parent(static_cast<std::size_t>(n)) {
    std::iota(parent.begin(), parent.end(), std::int64_t{0});
  }
  std::int64_t find(std::int64_t x) {
    while (parent[x] != x) {
      parent[x] = parent[parent[x]];
      x = parent[x];
    }
    return x;
  }
  void unite(std::int64_t a, std::int64_t b) {
    a = find(a);
    b = find(b);
    if (a < b)
      parent[b] = a;
    else if (b < a)
      parent[a] = b;
  }
};

/// Union-find over arbitrary labels; the root is the smallest label of a set.
struct LabelUnion {
  std::unordered_map<std::int64_t, std::int64_t> parent;
  std::int64_t find(std::int64_t x) {
    auto it = parent.find(x);
    if (it == parent.end()) return x;
    std::int64_t r = x;
    while (true) {
      const auto p = parent.find(r);
      if (p == parent.end() || p->second == r) break;
      r = p->second;
    }
    while (x != r) {  // path compression
      auto& p = parent[x];
      x = p;
      p = r;
    }
    return r;
  }
  void unite(std::int64_t a, std::int64_t b) {
    a = find(a);
    b = find(b);
    if (a == b) return;
    if (b < a) std::swap(a, b);
    parent[b] = a;
    parent.emplace(a, a);
  }
};

/// Calls fn(block, source rank) for every rank's block (this rank's first), shifting the
/// blocks around the ring; the next block is in flight while fn runs.
template <class Fn>
void ring_pass(const Tiles& mine, const Comm& comm, Fn&& fn) {
  const int P = comm.size(), me = comm.rank();
  std::vector<char> cur = dbscan_detail::pack(mine);
  const std::vector<std::int64_t> one = {static_cast<std::int64_t>(cur.size())};
  const auto bytes = comm.allgatherv(one);
  for (int s = 0; s < P; ++s) {
    std::vector<char> next;
    Request req;
    if (s + 1 < P) {
      next.resize(static_cast<std::size_t>(bytes[static_cast<std::size_t>((me - s - 1 + P) % P)]));
      req = comm.ring_shift<char>(std::span<const char>(cur), std::span<char>(next));
    }
    if (s == 0) {
      fn(mine, me);
    } else {
      const Tiles b = dbscan_detail::unpack(cur);
      fn(b, (me - s + P) % P);
    }
    if (req.active()) req.wait();
    cur.swap(next);
  }
}

struct Scratch {
  MatrixRF g, xa;                  ///< GEMM result; gathered rows of A
  std::vector<std::int64_t> rows;  ///< the rows of A in xa
  std::int64_t exact = 0;
};

/// Pass 1 on one visiting block: adds to count[r] (local tile order) the neighbours in B,
/// B's tiles nearest first, until every row of the tile has min_samples (only whether a count
/// reaches min_samples matters).
/// A neighbour of a user that is not (yet) core: global index and exact d^2.
struct Neighbour {
  std::int64_t gid;
  double d2;
};

/// Adds the neighbours of row i among rows j of B (mask: per j, 2 within, 1 too close to
/// call, 0 beyond) to its list while row i is short of min_samples.
void collect(const Tiles& A, std::int64_t i, const Tiles& B, std::int64_t b0, std::int64_t nb,
             const std::uint8_t* mask, const Radius& rad, std::vector<Neighbour>& out,
             std::int64_t& exact) {
  for (std::int64_t j = 0; j < nb; ++j) {
    if (mask[j] == 0) continue;
    ++exact;
    const double d2 = exact_d2(A.row(i), B.row(b0 + j), rad.h);
    if (d2 <= rad.eps2) out.push_back({B.gid[b0 + j], d2});
  }
}

/// A core user keeps min_samples of its neighbours (edges that join most of pass 2's
/// components at once).
void trim(std::vector<Neighbour>& v, std::int64_t count, std::int64_t min_samples) {
  if (count < min_samples || static_cast<std::int64_t>(v.size()) <= min_samples) return;
  v.resize(static_cast<std::size_t>(min_samples));
  v.shrink_to_fit();
}

/// Also keeps every row's neighbours found until it had min_samples (nbr, at most
/// min_samples each): a non-core user's whole neighbourhood for the border search of pass 2,
/// and a core user's first edges for its components.
void count_block(const Tiles& A, const Tiles& B, const Radius& rad, std::int64_t min_samples,
                 int threads, std::vector<std::int64_t>& count,
                 std::vector<std::vector<Neighbour>>& nbr, std::vector<Scratch>& scratch) {
  const std::int64_t h = A.h;
  parallel_for(threads, A.tiles(), [&](int t, std::int64_t ta) {
    Scratch& s = scratch[static_cast<std::size_t>(t)];
    const std::int64_t a0 = A.start[ta], na = A.start[ta + 1] - a0;
    bool open = false;
    for (std::int64_t i = a0; i < a0 + na && !open; ++i) open = count[i] < min_samples;
    if (!open) return;
    std::vector<std::pair<double, std::int64_t>> near;  // (ball gap, tile) of B
    near.reserve(static_cast<std::size_t>(B.tiles()));
    for (std::int64_t tb = 0; tb < B.tiles(); ++tb) {
      double d = 0;
      for (std::int64_t f = 0; f < h; ++f) {
        const double e = A.centre[ta * h + f] - B.centre[tb * h + f];
        d += e * e;
      }
      near.emplace_back(std::sqrt(d) - B.radius[tb], tb);
    }
    std::sort(near.begin(), near.end());
    for (std::size_t q = 0; q < near.size(); ++q) {
      const std::int64_t tb = near[q].second;
      const Relation rel = dbscan_detail::relate(A, ta, B, tb, rad.eps, rad.slack);
      if (rel == Relation::kApart) continue;
      // The rows still short of min_samples, gathered.
      s.rows.clear();
      for (std::int64_t i = a0; i < a0 + na; ++i)
        if (count[i] < min_samples) s.rows.push_back(i);
      if (s.rows.empty()) break;
      const std::int64_t b0 = B.start[tb], nb = B.start[tb + 1] - b0;
      if (rel == Relation::kWithin) {
        std::uint8_t all[dbscan_detail::kLeafRows];
        std::fill(all, all + nb, std::uint8_t{2});
        for (const auto i : s.rows) {
          count[i] += nb;
          collect(A, i, B, b0, nb, all, rad, nbr[i], s.exact);
          trim(nbr[i], count[i], min_samples);
        }
        continue;
      }
      const auto nr = static_cast<std::int64_t>(s.rows.size());
      s.xa.resize(nr, h);
      for (std::int64_t r = 0; r < nr; ++r)
        std::copy(A.row(s.rows[r]), A.row(s.rows[r]) + h, s.xa.data() + r * h);
      const Eigen::Map<const MatrixRF> xb(B.row(b0), nb, h);
      s.g.resize(nr, nb);
      s.g.noalias() = s.xa * xb.transpose();
      const float* sqb = B.sqn.data() + b0;
      for (std::int64_t r = 0; r < nr; ++r) {
        const std::int64_t i = s.rows[r];
        const float sqa = A.sqn[i];
        const float* g = s.g.data() + r * nb;
        std::int64_t in = 0, amb = 0;
        for (std::int64_t j = 0; j < nb; ++j) {
          const float d2 = sqa + sqb[j] - 2.0f * g[j];
          const float m = rad.gemm_rel * (sqa + sqb[j]) + rad.tiny;
          const bool yes = d2 + m <= rad.e2lo, no = d2 - m > rad.e2hi;
          in += yes;
          amb += !yes && !no;
        }
        if (amb > 0) {
          for (std::int64_t j = 0; j < nb; ++j) {
            const float d2 = sqa + sqb[j] - 2.0f * g[j];
            if (dbscan_detail::gemm_decide(rad, d2, sqa + sqb[j]) >= 0) continue;
            ++s.exact;
            in += exact_d2(A.row(i), B.row(b0 + j), h) <= rad.eps2;
          }
        }
        count[i] += in;
        if (in > 0 || amb > 0) {
          std::uint8_t mask[dbscan_detail::kLeafRows];
          for (std::int64_t j = 0; j < nb; ++j) {
            const float d2 = sqa + sqb[j] - 2.0f * g[j];
            mask[j] =
                static_cast<std::uint8_t>(dbscan_detail::gemm_decide(rad, d2, sqa + sqb[j]) != 0);
          }
          collect(A, i, B, b0, nb, mask, rad, nbr[i], s.exact);
          trim(nbr[i], count[i], min_samples);
        }
      }
    }
  });
}

/// One tile pair of pass 2: rows of tile ta of A against the rows of tile tb of B by one
/// float GEMM, computed when the first row is asked for (never when the balls say every pair
/// is within eps).
class TilePair {
 public:
  TilePair(const Tiles& A, std::int64_t ta, const Tiles& B, std::int64_t tb, Relation rel,
           const Radius& rad, Scratch& s)
      : A_(A),
        B_(B),
        rad_(rad),
        s_(s),
        ta_(ta),
        a0_(A.start[ta]),
        b0_(B.start[tb]),
        nb_(B.start[tb + 1] - b0_),
        all_(rel == Relation::kWithin) {}
  /// mask[j - b0] = 2 when rows i and j are neighbours, 1 when too close to call by the float
  /// distance, 0 when they are not (all of tile b's rows; vectorised).
  void row_mask(std::int64_t i, std::uint8_t* mask) const {
    if (all_) {
      std::fill(mask, mask + nb_, std::uint8_t{2});
      return;
    }
    if (!ready_) {
      const std::int64_t na = A_.start[ta_ + 1] - a0_, h = A_.h;
      const Eigen::Map<const MatrixRF> xa(A_.row(a0_), na, h), xb(B_.row(b0_), nb_, h);
      s_.g.resize(na, nb_);
      s_.g.noalias() = xa * xb.transpose();
      ready_ = true;
    }
    const float sqa = A_.sqn[i], e2lo = rad_.e2lo, e2hi = rad_.e2hi, rel = rad_.gemm_rel,
                tiny = rad_.tiny;
    const float* sqb = B_.sqn.data() + b0_;
    const float* g = s_.g.data() + (i - a0_) * nb_;
    for (std::int64_t j = 0; j < nb_; ++j) {
      const float d2 = sqa + sqb[j] - 2.0f * g[j];
      const float m = rel * (sqa + sqb[j]) + tiny;
      mask[j] = static_cast<std::uint8_t>((d2 + m <= e2lo) + !(d2 - m > e2hi));
    }
  }
  /// Rows i and j, with mask value mv from row_mask: neighbours?
  bool resolve(std::int64_t i, std::int64_t j, std::uint8_t mv) const {
    if (mv != 1) return mv == 2;
    ++s_.exact;
    return exact_d2(A_.row(i), B_.row(j), rad_.h) <= rad_.eps2;
  }
  /// The exact d^2 of rows i and j (mask value not 0).
  double d2(std::int64_t i, std::int64_t j) const {
    ++s_.exact;
    return exact_d2(A_.row(i), B_.row(j), rad_.h);
  }

 private:
  const Tiles &A_, &B_;
  const Radius& rad_;
  Scratch& s_;
  std::int64_t ta_, a0_, b0_, nb_;
  bool all_;
  mutable bool ready_ = false;
};

/// Bounding balls of the core rows of each tile (radius -1: no core row): tighter than the
/// tiles' balls, which sparse rows widen; pass 2 compares core rows only.
struct CoreBalls {
  std::vector<double> centre, radius;
};
CoreBalls core_balls(const Tiles& T, const std::vector<std::uint8_t>* core) {
  const std::int64_t h = T.h, nt = T.tiles();
  CoreBalls b;
  b.centre.assign(static_cast<std::size_t>(nt * h), 0.0);
  b.radius.assign(static_cast<std::size_t>(nt), -1.0);
  const auto is_core = [&](std::int64_t r) { return core ? (*core)[r] != 0 : T.label[r] >= 0; };
  for (std::int64_t t = 0; t < nt; ++t) {
    double* c = b.centre.data() + t * h;
    std::int64_t k = 0;
    for (std::int64_t r = T.start[t]; r < T.start[t + 1]; ++r)
      if (is_core(r)) {
        ++k;
        for (std::int64_t f = 0; f < h; ++f) c[f] += T.x[r * h + f];
      }
    if (k == 0) continue;
    for (std::int64_t f = 0; f < h; ++f) c[f] /= static_cast<double>(k);
    double m = 0;
    for (std::int64_t r = T.start[t]; r < T.start[t + 1]; ++r)
      if (is_core(r)) {
        double d2 = 0;
        for (std::int64_t f = 0; f < h; ++f) {
          const double e = T.x[r * h + f] - c[f];
          d2 += e * e;
        }
        m = std::max(m, d2);
      }
    b.radius[t] = std::sqrt(m);
  }
  return b;
}

/// relate() on the core balls of tile ta of A and tile tb of B.
Relation relate_cores(const CoreBalls& a, std::int64_t ta, const CoreBalls& b, std::int64_t tb,
                      std::int64_t h, const Radius& rad) {
  double s = 0;
  for (std::int64_t f = 0; f < h; ++f) {
    const double d = a.centre[ta * h + f] - b.centre[tb * h + f];
    s += d * d;
  }
  const double dc = std::sqrt(s), rr = a.radius[ta] + b.radius[tb];
  const double tol = rad.slack + 1e-9 * (rad.eps + rr + dc);
  if (dc - rr > rad.eps + tol) return Relation::kApart;
  if (dc + rr + tol <= rad.eps) return Relation::kWithin;
  return Relation::kMixed;
}

/// Pass 2, first step, on this rank's own block: local components of the core rows (tile
/// order), each labelled by its lowest global index; -1 for non-core rows.
std::vector<std::int64_t> local_components(const Tiles& A, const std::vector<std::uint8_t>& core,
                                           const std::vector<std::vector<Neighbour>>& nbr,
                                           const Radius& rad, int threads,
                                           std::vector<Scratch>& scratch) {
  const std::int64_t n = A.n, nt = A.tiles();
  // First the edges pass 1 kept, so that most tiles are one set before the tile pairs.
  UnionFind base(n);
  if (n > 0) {
    const std::int64_t first = *std::min_element(A.gid.begin(), A.gid.end());
    std::vector<std::int64_t> at(static_cast<std::size_t>(n));
    for (std::int64_t r = 0; r < n; ++r) at[A.gid[r] - first] = r;
    for (std::int64_t i = 0; i < n; ++i) {
      if (!core[i]) continue;
      for (const auto& e : nbr[i]) {
        if (e.gid < first || e.gid >= first + n) continue;
        const std::int64_t j = at[e.gid - first];
        if (core[j]) base.unite(i, j);
      }
    }
  }
  std::vector<std::int64_t> cores(static_cast<std::size_t>(nt), 0);  // core rows per tile
  for (std::int64_t t = 0; t < nt; ++t)
    for (std::int64_t r = A.start[t]; r < A.start[t + 1]; ++r) cores[t] += core[r];
  const CoreBalls cb = core_balls(A, &core);
  std::vector<UnionFind> uf(scratch.size(), base);
  parallel_for(threads, nt, [&](int t, std::int64_t ta) {
    if (cores[ta] == 0) return;
    UnionFind& u = uf[static_cast<std::size_t>(t)];
    for (std::int64_t tb = ta; tb < nt; ++tb) {
      if (cores[tb] == 0) continue;
      const Relation rel = relate_cores(cb, ta, cb, tb, A.h, rad);
      if (rel == Relation::kApart) continue;
      const std::int64_t b0 = A.start[tb], b1 = A.start[tb + 1];
      // The common root of tile b's core rows, or -1 when they are not (yet) one set.
      std::int64_t rb = -2;
      for (std::int64_t j = b0; j < b1 && rb != -1; ++j)
        if (core[j]) rb = rb == -2 ? u.find(j) : (u.find(j) == rb ? rb : -1);
      bool skip = true;  // every core row of tile a already in tile b's one set
      for (std::int64_t i = A.start[ta]; i < A.start[ta + 1] && skip; ++i)
        if (core[i] && (rb < 0 || u.find(i) != rb)) skip = false;
      if (skip) continue;
      const TilePair tp(A, ta, A, tb, rel, rad, scratch[static_cast<std::size_t>(t)]);
      std::uint8_t mask[dbscan_detail::kLeafRows];
      for (std::int64_t i = A.start[ta]; i < A.start[ta + 1]; ++i) {
        if (!core[i]) continue;
        if (rb >= 0 && u.find(i) == rb) continue;
        tp.row_mask(i, mask);
        for (std::int64_t j = b0; j < b1; ++j) {
          const std::uint8_t mv = mask[j - b0];
          if (mv == 0 || !core[j] || j == i) continue;
          if (rb < 0 && u.find(i) == u.find(j)) continue;
          if (!tp.resolve(i, j, mv)) continue;
          u.unite(i, j);
          if (rb >= 0) {
            rb = u.find(j);
            break;  // tile b is one set: one edge joins all of it
          }
        }
      }
    }
  });
  UnionFind all(n);
  for (auto& u : uf)
    for (std::int64_t r = 0; r < n; ++r)
      if (core[r]) all.unite(r, u.find(r));
  std::vector<std::int64_t> low(static_cast<std::size_t>(n),
                                std::numeric_limits<std::int64_t>::max());
  for (std::int64_t r = 0; r < n; ++r)
    if (core[r]) low[all.find(r)] = std::min(low[all.find(r)], A.gid[r]);
  std::vector<std::int64_t> label(static_cast<std::size_t>(n), -1);
  for (std::int64_t r = 0; r < n; ++r)
    if (core[r]) label[r] = low[all.find(r)];
  return label;
}

/// Pass 2 on a block: border search against its core rows and, for another rank's block,
/// (own label, their label) pairs of core neighbours, one per pair of labels and tile pair
/// at most, into pairs[thread].
void link_block(const Tiles& A, const Tiles& B, const std::vector<std::uint8_t>& core,
                const std::vector<std::vector<Neighbour>>& nbr, const Radius& rad, int threads,
                bool own, std::vector<Scratch>& scratch,
                std::vector<std::vector<std::pair<std::int64_t, std::int64_t>>>& pairs,
                std::vector<double>& best_d2, std::vector<std::int64_t>& best_gid,
                std::vector<std::int64_t>& best_label) {
  // Distinct core labels per tile of B.
  std::vector<std::vector<std::int64_t>> tile_labels(static_cast<std::size_t>(B.tiles()));
  for (std::int64_t tb = 0; tb < B.tiles(); ++tb) {
    auto& v = tile_labels[tb];
    for (std::int64_t j = B.start[tb]; j < B.start[tb + 1]; ++j)
      if (B.label[j] >= 0) v.push_back(B.label[j]);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  }
  // Distinct core labels of each tile of A.
  std::vector<std::vector<std::int64_t>> own_labels(static_cast<std::size_t>(A.tiles()));
  for (std::int64_t ta = 0; ta < A.tiles(); ++ta) {
    auto& v = own_labels[ta];
    for (std::int64_t i = A.start[ta]; i < A.start[ta + 1]; ++i)
      if (core[i]) v.push_back(A.label[i]);
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  }
  // Border search: each non-core row's neighbours (from pass 1) that are core users of B;
  // the nearest (then the lowest global index) is kept. Core rows' kept neighbours give
  // label pairs at once (known), which the tile pairs need not find again.
  std::vector<std::pair<std::int64_t, std::int64_t>> known;
  if (B.n > 0) {
    const std::int64_t first = *std::min_element(B.gid.begin(), B.gid.end());
    std::vector<std::int64_t> at(static_cast<std::size_t>(B.n));  // global -> B's row
    for (std::int64_t r = 0; r < B.n; ++r) at[B.gid[r] - first] = r;
    for (std::int64_t i = 0; i < A.n; ++i) {
      for (const auto& nb : nbr[i]) {
        if (nb.gid < first || nb.gid >= first + B.n) continue;
        const std::int64_t j = at[nb.gid - first];
        if (B.label[j] < 0) continue;
        if (core[i]) {
          if (!own) known.emplace_back(A.label[i], B.label[j]);
          continue;
        }
        if (nb.d2 < best_d2[i] || (nb.d2 == best_d2[i] && nb.gid < best_gid[i])) {
          best_d2[i] = nb.d2;
          best_gid[i] = nb.gid;
          best_label[i] = B.label[j];
        }
      }
    }
  }
  if (own) return;  // core rows of the own block: local_components
  std::sort(known.begin(), known.end());
  known.erase(std::unique(known.begin(), known.end()), known.end());
  pairs[0].insert(pairs[0].end(), known.begin(), known.end());
  const CoreBalls balls_a = core_balls(A, &core), balls_b = core_balls(B, nullptr);
  parallel_for(threads, A.tiles(), [&](int t, std::int64_t ta) {
    auto& out = pairs[static_cast<std::size_t>(t)];
    std::vector<std::pair<std::int64_t, std::int64_t>> found, todo;
    std::vector<std::int64_t> need;
    std::uint8_t mask[dbscan_detail::kLeafRows];
    for (std::int64_t tb = 0; tb < B.tiles(); ++tb) {
      if (tile_labels[tb].empty()) continue;
      // Label pairs this tile pair could add (none for the own block: local_components).
      todo.clear();
      if (!own)
        for (const auto ca : own_labels[ta])
          for (const auto cb : tile_labels[tb])
            if (!std::binary_search(known.begin(), known.end(), std::make_pair(ca, cb)))
              todo.emplace_back(ca, cb);
      if (todo.empty()) continue;
      const Relation rel = relate_cores(balls_a, ta, balls_b, tb, A.h, rad);
      if (rel == Relation::kApart) continue;
      const TilePair tp(A, ta, B, tb, rel, rad, scratch[static_cast<std::size_t>(t)]);
      found.clear();
      for (std::int64_t i = A.start[ta]; i < A.start[ta + 1] && found.size() < todo.size(); ++i) {
        if (!core[i]) continue;
        const std::int64_t ci = A.label[i];
        need.clear();
        for (const auto l : tile_labels[tb])
          if (std::find(found.begin(), found.end(), std::make_pair(ci, l)) == found.end())
            need.push_back(l);
        if (need.empty()) continue;
        tp.row_mask(i, mask);
        for (std::int64_t j = B.start[tb]; j < B.start[tb + 1] && !need.empty(); ++j) {
          const std::int64_t cj = B.label[j];
          const std::uint8_t mv = mask[j - B.start[tb]];
          if (cj < 0 || mv == 0) continue;
          const auto it = std::find(need.begin(), need.end(), cj);
          if (it == need.end() || !tp.resolve(i, j, mv)) continue;
          found.emplace_back(ci, cj);
          out.emplace_back(ci, cj);
          need.erase(it);
        }
      }
    }
  });
}

double max_abs(const MatrixRF& X, const Comm& comm) {
  double m = X.size() > 0 ? static_cast<double>(X.cwiseAbs().maxCoeff()) : 0.0;
  return comm.allreduce_value(m, Op::kMax);
}

}  // namespace

DbscanResult dbscan(const MatrixRF& X, const DbscanParams& p, const DbscanModes& m,
                    const Comm& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  DbscanResult res;
  res.min_samples = p.min_samples;
  res.auto_eps = m.auto_eps;
  const int threads = p.resolved_threads();
  const std::int64_t h = X.cols(), n_local = X.rows();
  const std::int64_t begin = comm.exscan_sum(n_local);
  if (p.kdist_sample > 0)
    res.curve = k_distance_curve(X, p.min_samples, p.kdist_sample, p.seed, threads, comm);
  if (m.auto_eps) {
    if (res.curve.knee < 0 || !(res.curve.knee_eps > 0) || !std::isfinite(res.curve.knee_eps))
      throw DataError("--eps auto: the k-distance curve (k = " + std::to_string(p.min_samples) +
                          ") has no positive knee; give --eps",
                      true);
    res.eps = res.curve.knee_eps;
  } else {
    res.eps = m.eps;
  }
  const Radius rad = dbscan_detail::make_radius(res.eps, h, max_abs(X, comm));
  std::vector<std::int64_t> order;
  Tiles A = dbscan_detail::make_tiles(X, begin, order);
  std::vector<Scratch> scratch(static_cast<std::size_t>(std::max(threads, 1)));

  // ---- pass 1: neighbour counts (itself included) -> core flags
  std::vector<std::int64_t> count(static_cast<std::size_t>(n_local), 0);
  std::vector<std::vector<Neighbour>> nbr(static_cast<std::size_t>(n_local));
  ring_pass(A, comm, [&](const Tiles& B, int) {
    count_block(A, B, rad, p.min_samples, threads, count, nbr, scratch);
  });
  std::vector<std::uint8_t> core(static_cast<std::size_t>(n_local));
  for (std::int64_t r = 0; r < n_local; ++r) core[r] = count[r] >= p.min_samples;

  // ---- pass 2: local components, then cross-rank component pairs and border users
  A.label = local_components(A, core, nbr, rad, threads, scratch);
  std::vector<std::vector<std::pair<std::int64_t, std::int64_t>>> pairs(scratch.size());
  std::vector<double> best_d2(static_cast<std::size_t>(n_local),
                              std::numeric_limits<double>::infinity());
  std::vector<std::int64_t> best_gid(static_cast<std::size_t>(n_local), -1);
  std::vector<std::int64_t> best_label(static_cast<std::size_t>(n_local), -1);
  ring_pass(A, comm, [&](const Tiles& B, int src) {
    link_block(A, B, core, nbr, rad, threads, src == comm.rank(), scratch, pairs, best_d2, best_gid,
               best_label);
  });

  // ---- merge: every rank unions the gathered component pairs
  std::vector<std::int64_t> flat;
  for (auto& v : pairs) {
    for (const auto& [a, b] : v) {
      flat.push_back(std::min(a, b));
      flat.push_back(std::max(a, b));
    }
    v.clear();
  }
  {
    std::vector<std::pair<std::int64_t, std::int64_t>> pv;
    for (std::size_t i = 0; i < flat.size(); i += 2) pv.emplace_back(flat[i], flat[i + 1]);
    std::sort(pv.begin(), pv.end());
    pv.erase(std::unique(pv.begin(), pv.end()), pv.end());
    flat.clear();
    for (const auto& [a, b] : pv) {
      flat.push_back(a);
      flat.push_back(b);
    }
  }
  const auto all_pairs = comm.allgatherv(flat);
  res.component_pairs = static_cast<std::int64_t>(all_pairs.size() / 2);
  LabelUnion lu;
  for (std::size_t i = 0; i < all_pairs.size(); i += 2) lu.unite(all_pairs[i], all_pairs[i + 1]);
  std::vector<std::int64_t> root(static_cast<std::size_t>(n_local), -1);  // tile order
  std::vector<std::int64_t> roots;
  for (std::int64_t r = 0; r < n_local; ++r) {
    if (core[r])
      root[r] = lu.find(A.label[r]);
    else if (best_label[r] >= 0)
      root[r] = lu.find(best_label[r]);
    if (core[r]) roots.push_back(root[r]);
  }
  std::sort(roots.begin(), roots.end());
  roots.erase(std::unique(roots.begin(), roots.end()), roots.end());
  auto ids = comm.allgatherv(roots);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  res.k = static_cast<std::int64_t>(ids.size());
  SEGREC_ASSERT(res.k < std::numeric_limits<std::int32_t>::max(), "too many clusters");

  // ---- labels in the original row order, sizes, means
  res.labels.assign(static_cast<std::size_t>(n_local), -1);
  res.core.assign(static_cast<std::size_t>(n_local), 0);
  res.sizes.assign(static_cast<std::size_t>(res.k), 0);
  std::vector<double> sums(static_cast<std::size_t>(res.k * h), 0.0);
  std::int64_t counts[4] = {0, 0, 0, 0};  // core, border, noise, exact checks
  for (std::int64_t r = 0; r < n_local; ++r) {
    const std::int64_t row = order[r];
    res.core[row] = core[r];
    if (root[r] < 0) {
      ++counts[2];
      continue;
    }
    const auto id = std::lower_bound(ids.begin(), ids.end(), root[r]) - ids.begin();
    res.labels[row] = static_cast<std::int32_t>(id);
    ++res.sizes[id];
    ++counts[core[r] ? 0 : 1];
    for (std::int64_t f = 0; f < h; ++f) sums[id * h + f] += X(row, f);
  }
  for (const auto& s : scratch) counts[3] += s.exact;
  comm.allreduce(std::span<std::int64_t>(counts, 4));
  comm.allreduce(res.sizes);
  comm.allreduce(sums);
  res.n_core = counts[0];
  res.n_border = counts[1];
  res.n_noise = counts[2];
  res.exact_checks = counts[3];
  res.centroids.resize(res.k, h);
  for (std::int64_t c = 0; c < res.k; ++c)
    for (std::int64_t f = 0; f < h; ++f)
      res.centroids(c, f) = static_cast<float>(sums[c * h + f] / static_cast<double>(res.sizes[c]));
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace segrec
