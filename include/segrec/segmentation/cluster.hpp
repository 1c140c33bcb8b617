// The cluster stage, files in and files out: reads projection.h5 (each rank an even
// block of users), chooses the view (view.hpp), clusters (kmeans.hpp), writes segments.h5, segments.csv and the
// segment report (segment_report.hpp), whose inputs follow the attribute chain
// projection.h5 "profiles" -> profiles.h5 "dataset" unless given.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/dbscan/dbscan.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"
#include "segrec/segmentation/segment_report.hpp"
#include "segrec/segmentation/view.hpp"
#include "segrec/segmentation/transitions.hpp"

namespace segrec {

/// Paths of the cluster stage.
struct ClusterFiles {
  std::string projection;    ///< input: projection.h5 (/H, /users/ids)
  std::string out;           ///< segments.h5
  std::string segments_csv;  ///< user_id,segment
  std::string report;        ///< report path without extension: writes .md and .json
  std::string data;          ///< dataset.h5 for item lifts; "" = the profiles' attribute
  std::string profiles;      ///< profiles.h5 for statistics; "" = the projection's attribute
  std::string previous;      ///< earlier segments.h5 whose ids to keep (stable_ids.hpp); "" = none
  /// --report-item-info: item attributes (io/items.hpp) naming the report's items and, when
  /// the data set has none, giving their categories; "" = the data set's own.
  std::string item_info;
  std::string item_info_format = "csv";  ///< csv | movielens (u.item)
};

/// What the stage did.
struct ClusterOutcome {
  ClusterRun run;       ///< K-means
  DbscanResult dbscan;  ///< DBSCAN (when run with DbscanParams)
  ViewTransform view;   ///< what the segments are about (view.hpp)
  std::int64_t n_users = 0, dims = 0;
  std::string profiles_used, data_used;           ///< "" when not used
  std::vector<std::string> notes;                 ///< report inputs that were named but not found
  std::optional<SegmentTransitions> transitions;  ///< with ClusterFiles::previous
  /// Wall seconds on rank 0 by part, in order: read (projection), view (choosing it), init
  /// (k-means++ etc., all restarts and k), lloyd (iterations), quality (silhouette,
  /// Davies-Bouldin, Calinski-Harabasz, gap), write (segments.h5 and CSV), report (its
  /// inputs, building and writing it), total.
  std::vector<std::pair<std::string, double>> timings;
};

/// Collective. Runs the whole stage (parameters already validated; the modes are taken from
/// p.validate() once here). With `dbscan`, clusters by DBSCAN (its modes from
/// dbscan->validate()) instead of K-means, and p is not used.
ClusterOutcome run_cluster_stage(const ClusterFiles& files, const KMeansParams& p,
                                 const ViewParams& vp, const SegmentReportParams& rp,
                                 const Comm& comm, const DbscanParams* dbscan = nullptr);

}  // namespace segrec
