// DBSCAN files: segments.h5 (labels with -1 for noise) and the DBSCAN part of the report.
#pragma once

#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/segmentation/dbscan/dbscan.hpp"

namespace segrec {

/// Collective. Writes segments.h5 (format kSegmentsFormat): /centroids (cluster means),
/// /labels (-1: noise), /sizes, /core (1 for core users), /users/ids, /kdistance (when
/// computed) and the root attributes (k, dims, algorithm = "dbscan", eps, min_samples, ...).
void write_dbscan_segments(const std::string& path, const DbscanResult& r,
                           const std::vector<std::string>& local_user_ids, const DbscanParams& p,
                           const std::string& projection_path, const Comm& comm);

/// The "dbscan" member of the report JSON (eps, counts, the k-distance curve and its knee)
/// and a markdown paragraph for the report.
std::string dbscan_report_json(const DbscanResult& r);
std::string dbscan_report_markdown(const DbscanResult& r);

}  // namespace segrec
