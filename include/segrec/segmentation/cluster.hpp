// The cluster stage, files in and files out: reads projection.h5 (each rank an even
// block of users), clusters (kmeans.hpp), writes segments.h5, segments.csv and the
// segment report (segment_report.hpp), whose inputs follow the attribute chain
// projection.h5 "profiles" -> profiles.h5 "dataset" unless given.
#pragma once

#include <cstdint>
#include <string>
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
  /// --report-item-info: item attributes (io/items.hpp) naming the report's items and, when
  /// the data set has none, giving their categories; "" = the data set's own.
  std::string item_info;
  std::string item_info_format = "csv";  ///< csv | movielens (u.item)
};

/// What the stage did.
struct ClusterOutcome {
  ClusterRun run;
  std::int64_t n_users = 0, dims = 0;
  std::string profiles_used, data_used;  ///< "" when not used
  std::vector<std::string> notes;        ///< report inputs that were named but not found
};

/// Collective. Runs the whole stage (parameters already validated; the modes are taken from
/// p.validate() once here).
ClusterOutcome run_cluster_stage(const ClusterFiles& files, const KMeansParams& p,
                                 const SegmentReportParams& rp, const Comm& comm);

}  // namespace segrec
