// Stable segment ids across refreshes (`segrec cluster --previous OLD_segments.h5`).
//
// The earlier run's centroids start K-means (kmeans/init.hpp: centroids_from_previous);
// afterwards the new segments are matched to the old ones and renumbered:
//  1. overlap(a, b): users in both runs (joined exactly by user id) with old segment a and
//     new K-means cluster b. The join is distributed: every user id, old and new, is sent
//     to the rank fnv1a(id) mod P (one alltoallv), which counts its pairs; one allreduce.
//  2. An optimal assignment (hungarian.hpp) maximises the total overlap; pairs with overlap
//     are matched ("users").
//  3. The clusters and old segments left (no overlap, e.g. all new users) are paired by an
//     optimal assignment on squared centroid distance ("centroid").
//  4. A matched cluster keeps its old id when it is below the new k; the others (new
//     segments, and matched ones whose old id is k_new or more) take the free ids in
//     [0, k_new) in ascending order, in K-means cluster order. Unmatched old ids are retired.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"
#include "segrec/segmentation/transitions.hpp"

namespace segrec {

/// An earlier segments.h5, as far as `--previous` needs it.
struct PreviousSegments {
  std::string path;
  PreviousCentroids centroids;       ///< k_old x h and the old sizes
  std::int64_t n_users = 0;          ///< users of the earlier run
  std::vector<std::string> ids;      ///< this rank's even block of the old users
  std::vector<std::int32_t> labels;  ///< their old segments, in [0, k_old)
  MatrixRD whitening;                ///< tied segments (view.hpp): the centroids' whitening
  std::int64_t k() const { return centroids.centroids.rows(); }
};

/// Collective. Reads `path` completely (centroids, sizes; an even block of /users/ids and
/// /labels per rank), so that the file may be replaced afterwards. A missing file, a file
/// that is not a segments.h5, centroids whose dims differ from `dims` or inconsistent
/// datasets are a collective error naming the file ("--previous 'F': ...").
PreviousSegments read_previous_segments(const std::string& path, std::int64_t dims,
                                        const Comm& comm);

/// Users of both runs per (old segment, new cluster), and the users of one run only.
struct UserOverlap {
  std::int64_t k_old = 0, k_new = 0;
  std::vector<std::int64_t> counts;  ///< k_old x k_new, row-major
  std::int64_t common = 0, new_users = 0, departed = 0;
};

/// Collective. The exact distributed join by user id (this rank's new users `ids` with their
/// `labels` in [0, k_new)). User ids are unique within a run (ingest makes them so); an id
/// repeated in the earlier run would count with the first copy its owner receives.
UserOverlap user_overlap(const PreviousSegments& prev, const std::vector<std::string>& ids,
                         std::span<const std::int32_t> labels, std::int64_t k_new,
                         const Comm& comm);

/// The match of the new clusters to old segments (steps 2-4 above), indexed by K-means
/// cluster b.
struct SegmentMatch {
  std::vector<std::int32_t> id_of;        ///< final id of cluster b, a permutation of [0, k_new)
  std::vector<std::int32_t> previous_id;  ///< old segment cluster b continues, -1: none
  std::vector<std::string> matched_by;    ///< "users", "centroid" or ""
};

/// Replicated (no communication). old_centroids: k_old x h; new_centroids: k_new x h.
SegmentMatch match_segments(const UserOverlap& overlap, const MatrixRF& old_centroids,
                            const MatrixRD& new_centroids);

/// Collective. Matches r's clusters to `prev`, renumbers r in place (labels, centroids,
/// sizes) and returns the transitions in the final ids.
SegmentTransitions stabilise_ids(const PreviousSegments& prev, const std::vector<std::string>& ids,
                                 KMeansResult& r, const Comm& comm);

}  // namespace segrec
