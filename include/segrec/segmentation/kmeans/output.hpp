// K-means files: centroid files in (--init FILE), segments.h5 and segments CSV out.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/segmentation/kmeans/kmeans.hpp"

namespace segrec {

/// Reads a centroid file: .h5 (dataset /centroids) or CSV. Every rank reads it; a bad file is
/// a collective DataError.
MatrixRF read_centroid_file(const std::string& path, const Comm& comm);

/// Collective. Writes segments.h5 (format kSegmentsFormat): /centroids, /labels, /sizes,
/// /users/ids, /iterations/*, /sweep/* (if any) and the root attributes; `extra` (when set)
/// adds more to the file before it is committed.
void write_segments(const std::string& path, const ClusterRun& run,
                    const std::vector<std::string>& local_user_ids, const KMeansParams& p,
                    const std::string& projection_path, const Comm& comm,
                    const std::function<void(h5::File&)>& extra = {});
/// Collective. Writes `user_id,segment` lines (one file, ranks in order).
void write_segments_csv(const std::string& path, const std::vector<std::string>& local_user_ids,
                        std::span<const std::int32_t> labels, const Comm& comm);

}  // namespace segrec
