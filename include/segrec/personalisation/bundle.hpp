// The serving bundle: everything model.h5 needs to serve a user never seen in
// training, besides the network itself. A new user's events are profiled with
// the training normalisation (profile_block with `profile`), projected with W
// (h = W^T (x - mean)), assigned to the nearest centroid, and scored.
//
// Groups written into model.h5 (see docs/hdf5-schema.md):
//   /profile      the ProfileModel of profiles.h5 (same dataset names, under /profile)
//   /projection   /W f32[(n_items + d) x H], /mean f64[n_items + d]; attribute dims
//   /segments     /centroids f32[k x H]; /sizes i64[k] (training users per segment);
//                 /item_users i64[k x n_items] (training users of the segment with the item);
//                 /descriptions string[k] (from the segment report, when found);
//                 attributes k, spherical
//   /cooc         /items i32[n_items x C], /counts i32[n_items x C]: per item, the C items
//                 most often held by the same training user (-1 / 0 padding); only when
//                 the catalogue has at most kCoocMaxItems items
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/segmentation/profile.hpp"
#include "segrec/segmentation/view.hpp"

namespace segrec {

/// Co-occurrence tables are built only for catalogues up to this size (the
/// count matrix is n_items^2 cells, allreduced in blocks).
inline constexpr std::int64_t kCoocMaxItems = 20000;
/// Items kept per row of the co-occurrence table.
inline constexpr std::int64_t kCoocWidth = 5;
/// Users with more items than this are left out of the co-occurrence counts
/// (their cost is quadratic in the history length).
inline constexpr std::int64_t kCoocMaxHistory = 1000;

struct ServingParts {
  ProfileModel profile;
  std::int64_t dims = 0;                  ///< H
  std::vector<float> W;                   ///< (n_items + d) x H, row-major: columns = directions
  std::vector<double> mean;               ///< n_items + d: feature means used for centring
  std::int64_t k = 0;                     ///< segments
  bool spherical = false;                 ///< centroids compared by cosine (rows L2-normalised)
  ViewTransform view;                     ///< applied to projected rows before the centroids
  std::vector<float> centroids;           ///< k x H, row-major
  std::vector<std::int64_t> sizes;        ///< k: training users per segment
  std::vector<std::string> descriptions;  ///< k descriptions from the segment report, or empty
  std::vector<std::int64_t> item_users;   ///< k x n_items, row-major
  std::int64_t cooc_width = 0;            ///< C; 0 = no co-occurrence table
  std::vector<std::int32_t> cooc_items;   ///< n_items x C, best first, -1 padding
  std::vector<std::int32_t> cooc_counts;  ///< n_items x C, users holding both items

  std::int64_t n_items() const { return profile.n_items(); }
  std::int64_t n_features() const { return profile.n_items() + profile.n_dense(); }
  /// Training users holding item i (sum over segments).
  std::int64_t item_total(std::int64_t i) const;
  /// Training users (sum of the segment sizes).
  std::int64_t n_users() const;
};

/// Collective. Writes the groups /profile, /projection, /segments (and /cooc) into `f`.
void write_serving_parts(h5::File& f, const ServingParts& s);
/// Collective. True when `f` holds a serving bundle.
bool has_serving_parts(const h5::File& f);
/// Collective. Reads the bundle groups (DataError, collective, for inconsistent shapes).
ServingParts read_serving_parts(const h5::File& f);

/// Collective. Builds the bundle from the stage files of one run: the profile
/// constants (profiles.h5), W and the mean (projection.h5), the centroids and
/// labels (segments.h5), and from dataset.h5 the per-segment item counts and the
/// co-occurrence table (one allreduce each; the table in blocks). The segment
/// descriptions come from the report next to segments.h5 (SEGMENTS without .h5,
/// plus .json: the cluster stage's default), when it exists. The files must
/// describe the same users and items (DataError otherwise).
ServingParts load_serving_parts(const std::string& profiles, const std::string& projection,
                                const std::string& segments, const std::string& data,
                                const Comm& comm);

/// The "description" of each segment in a segment report (segments.json text),
/// by segment id; "" where a segment is not described.
std::vector<std::string> report_descriptions(const std::string& json, std::int64_t k);

/// Local. h = W^T (x - mean) for every row of a profile block: n_local x H, row-major.
std::vector<float> project_profiles(const ServingParts& s, const ProfileBlock& b);

/// Local. Nearest centroid of each row of h (n x H; squared Euclidean distance,
/// cosine for spherical centroids; ties go to the smaller segment).
std::vector<std::int32_t> nearest_segments(const ServingParts& s, const std::vector<float>& h);

/// Local. Fills the per-segment item counts and the co-occurrence table from a
/// block of users (CSR over the bundle's items) and their labels; collective
/// reductions over `comm`.
void count_training_items(ServingParts& s, const std::vector<std::int64_t>& indptr,
                          const std::vector<std::int32_t>& indices,
                          const std::vector<std::int32_t>& labels, const Comm& comm);

}  // namespace segrec
