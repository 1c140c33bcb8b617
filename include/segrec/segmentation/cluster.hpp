// The cluster stage, files in and files out: reads projection.h5 (each rank an even
// block of users), clusters (kmeans.hpp), writes segments.h5, segments.csv and the
// segment report (segment_report.hpp), whose inputs follow the attribute chain
// projection.h5 "profiles" -> profiles.h5 "dataset" unless given.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"
#include "segrec/segmentation/segment_report.hpp"

namespace segrec {

/// Paths of the cluster stage.
struct ClusterFiles {
  std::string projection;    ///< input: projection.h5 (/H, /users/ids)
  std::string out;           ///< segments.h5
  std::string segments_csv;  ///< user_id,segment
  std::string report;        ///< report path without extension: writes .md and .json
  std::string data;          ///< dataset.h5 for item lifts; "" = the profiles' attribute
  std::string profiles;      ///< profiles.h5 for statistics; "" = the projection's attribute
};

/// What the stage did.
struct ClusterOutcome {
  ClusterRun run;
  std::int64_t n_users = 0, dims = 0;
  std::string profiles_used, data_used;  ///< "" when not used
  std::vector<std::string> notes;        ///< report inputs that were named but not found
  /// Wall seconds on rank 0 by part, in order: read (projection), init (k-means++ etc., all
  /// restarts and k), lloyd (iterations), quality (silhouette, Davies-Bouldin,
  /// Calinski-Harabasz), write (segments.h5 and CSV), report (its inputs, building and
  /// writing it), total.
  std::vector<std::pair<std::string, double>> timings;
};

/// Collective. Runs the whole stage (parameters already validated; the modes are taken from
/// p.validate() once here).
ClusterOutcome run_cluster_stage(const ClusterFiles& files, const KMeansParams& p,
                                 const SegmentReportParams& rp, const Comm& comm);

}  // namespace segrec
