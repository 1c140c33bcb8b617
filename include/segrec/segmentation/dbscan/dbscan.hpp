// Exact distributed DBSCAN on the user projections (scikit-learn's semantics).
//
// Definitions. d(x, y)^2 is the sum over features f, in order, of (double(x_f) -
// double(y_f))^2 with fused multiply-adds, in double: the same bits for a pair wherever its
// users sit. y is a neighbour of x when d(x, y)^2 <= eps^2 (double). A core user has at
// least min_samples neighbours, itself included. Clusters are the connected components of
// core users (core-core neighbours). A non-core user with a core neighbour is a border user
// and joins the cluster of its NEAREST core neighbour (smallest d^2; ties: the lowest global
// user index). Every other user is noise, label -1. Clusters are numbered 0, 1, ... in the
// order of their lowest global core-user index. Labels are identical at any rank or thread
// count.
//
// Distribution. Each rank holds its even block of users (n_local x h floats). The block is
// cut into tiles of at most 128 rows by a local k-d split (widest dimension, midpoint or
// median); each tile has a bounding ball (double centre, radius). Two ring passes
// (Comm::ring_shift) move every block past every rank, so each rank sees each other block
// once per pass; the next block is in flight while the current one is compared:
//   pass 1: neighbour counts -> core flags. The other block's tiles are visited nearest
//           first and a user drops out once it has min_samples neighbours; each user keeps
//           the neighbours found until then (global index, exact d^2; at most min_samples):
//           a non-core user's whole neighbourhood, a core user's first edges.
//   pass 2: the own block first: a union-find joins the kept core-core edges, then the
//           remaining core-core pairs (a tile pair whose core users are already one set
//           needs nothing) -> local components, labelled by their lowest global index. The
//           travelling blocks carry these labels: core-core neighbours across ranks give
//           (own label, their label) pairs, and each non-core user's kept neighbours give
//           its nearest core neighbour and that user's label.
// A tile pair is skipped when the balls (pass 2: the balls of the tiles' core users) are
// farther apart than eps, taken whole when within eps of each other, and otherwise compared
// by a float GEMM (||x||^2 - 2 x.y + ||y||^2) whose rounding bound decides most pairs; pairs
// within the bound of eps get the exact d^2 above. The label pairs (a few per component and
// rank) are gathered on every rank and merged by a union-find over labels.
//
// Memory per rank: the own block plus two travelling blocks, each n_local x (4h + 24) bytes
// (rows, norms, global ids, labels); the kept neighbours, at most n_local x min_samples x 16
// bytes; about 40 bytes a user of other state plus an n_local union-find per thread; and the
// gathered label pairs (16 bytes each). No rank holds all of H.
// Cost: at most 2 n^2 / P pair tests per rank (far fewer with the ball tests and the early
// stop), 2 (P - 1) block shifts per rank, one allgatherv of label pairs, a few allreduces.
#pragma once

#include <cstdint>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/dbscan/params.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec {

/// The k-distance curve for choosing eps: the distance of each sampled user to its k-th
/// nearest user (itself counted first, so a user is core exactly when its k-distance with
/// k = min_samples is <= eps), sorted ascending.
struct KDistanceCurve {
  std::int64_t k = 0;
  std::vector<double> dist;  ///< sampled users, ascending; +inf when n < k
  std::int64_t knee = -1;    ///< index of the knee in dist (-1: none)
  double knee_eps = 0;       ///< dist[knee]
};

/// What DBSCAN found.
struct DbscanResult {
  double eps = 0;  ///< the radius used (given, or the knee with --eps auto)
  bool auto_eps = false;
  std::int64_t min_samples = 0;
  std::int64_t k = 0;                                  ///< clusters
  std::vector<std::int32_t> labels;                    ///< local users: cluster, -1 noise
  std::vector<std::uint8_t> core;                      ///< local users: 1 when core
  std::vector<std::int64_t> sizes;                     ///< k: users per cluster (core + border)
  std::int64_t n_core = 0, n_border = 0, n_noise = 0;  ///< global counts
  MatrixRF centroids;                ///< k x h: cluster means (core + border users)
  KDistanceCurve curve;              ///< empty unless computed (--eps auto)
  std::int64_t exact_checks = 0;     ///< pairs decided by the exact d^2 (global)
  std::int64_t component_pairs = 0;  ///< cross-rank component pairs gathered (global)
  double seconds = 0;                ///< wall time of the two passes and the merge
};

/// Collective. The k-distance curve of `sample` users (keyed by seed and global index).
KDistanceCurve k_distance_curve(const MatrixRF& X, std::int64_t k, std::int64_t sample,
                                std::uint64_t seed, int threads, const Comm& comm);

/// The knee of an ascending curve: the index farthest below the chord from the first to the
/// last finite point, both axes scaled to [0, 1]; -1 when fewer than 2 finite points.
std::int64_t knee_index(const std::vector<double>& ascending);

/// Collective. DBSCAN on the rows of X (this rank's users, global rows in rank order).
/// With m.auto_eps, eps is the knee of k_distance_curve (a DataError when no positive knee).
DbscanResult dbscan(const MatrixRF& X, const DbscanParams& p, const DbscanModes& m,
                    const Comm& comm);

}  // namespace segrec
