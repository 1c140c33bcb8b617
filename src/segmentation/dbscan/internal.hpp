// Private pieces of DBSCAN: the exact squared distance, the tiled blocks that travel the
// ring, the ball tests between tiles and the float filters with their rounding bounds.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec::dbscan_detail {

/// Rows per tile: the k-d split stops at this many rows (tiles hold 65..128 rows, or fewer
/// on small blocks).
constexpr std::int64_t kLeafRows = 128;

/// The exact squared distance of DBSCAN: sum over f in order of fma((double)a_f - b_f, ...),
/// in double. Symmetric, and the same bits wherever a and b sit.
double exact_d2(const float* a, const float* b, std::int64_t h);

/// A block of users in tile order, as it travels the ring.
struct Tiles {
  std::int64_t n = 0, h = 0;
  std::vector<float> x;             ///< n x h, row-major, tile order
  std::vector<float> sqn;           ///< n: ||x||^2 (float)
  std::vector<std::int64_t> gid;    ///< n: global user index
  std::vector<std::int64_t> start;  ///< tiles + 1: first row of each tile
  std::vector<double> centre;       ///< tiles x h: mean of the tile's rows
  std::vector<double> radius;       ///< tiles: largest distance of a row to the centre
  /// n, pass 2 only: the owner's component label of a core user (the lowest global index
  /// of its local component), -1 for a non-core user; empty in pass 1.
  std::vector<std::int64_t> label;
  std::int64_t tiles() const { return static_cast<std::int64_t>(start.size()) - 1; }
  const float* row(std::int64_t r) const { return x.data() + r * h; }
};

/// Cuts this rank's rows (global rows begin, begin + X.rows()) into tiles by a k-d split
/// (widest dimension, median, ties by row). order[t]: the local row at tile position t.
Tiles make_tiles(const MatrixRF& X, std::int64_t begin, std::vector<std::int64_t>& order);

/// Bytes of a Tiles for the ring, and back.
std::vector<char> pack(const Tiles& t);
Tiles unpack(const std::vector<char>& bytes);

/// How two tiles' balls lie for a radius eps: every pair farther than eps, every pair
/// within eps, or neither. Conservative: slack absorbs the rounding of centres and radii.
enum class Relation { kApart, kWithin, kMixed };
Relation relate(const Tiles& a, std::int64_t ta, const Tiles& b, std::int64_t tb, double eps,
                double slack);

/// The radius and the float filters' thresholds.
struct Radius {
  double eps = 0, eps2 = 0;  ///< eps and eps^2 in double
  float e2lo = 0, e2hi = 0;  ///< floats just below / above eps2
  float gemm_rel = 0;        ///< GEMM filter: |error| <= gemm_rel * (||x||^2 + ||y||^2) + tiny
  double dist_rel = 0;       ///< sqdist filter: |error| <= dist_rel * d2 + tiny
  float tiny = 0;            ///< absolute slack for underflow
  double slack = 0;          ///< ball tests: absolute slack (1e-9 of the data's scale)
  std::int64_t h = 0;
};
Radius make_radius(double eps, std::int64_t h, double scale);

/// Decision from a float estimate: 1 within, 0 beyond, -1 too close to call (exact needed).
inline int gemm_decide(const Radius& r, float d2f, float sq_sum) {
  const float m = r.gemm_rel * sq_sum + r.tiny;
  if (d2f + m <= r.e2lo) return 1;
  if (d2f - m > r.e2hi) return 0;
  return -1;
}
inline int dist_decide(const Radius& r, float d2f) {
  const double d = d2f, m = r.dist_rel * d + r.tiny;
  if (d + m <= r.eps2) return 1;
  if (d - m > r.eps2) return 0;
  return -1;
}

}  // namespace segrec::dbscan_detail
