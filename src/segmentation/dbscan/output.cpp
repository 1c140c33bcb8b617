// DBSCAN files: segments.h5 and the DBSCAN part of the segment report.
#include "segrec/segmentation/dbscan/output.hpp"

#include <cstdio>
#include <sstream>

#include "segrec/core/json.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"

namespace segrec {

void write_dbscan_segments(const std::string& path, const DbscanResult& r,
                           const std::vector<std::string>& local_user_ids, const DbscanParams& p,
                           const std::string& projection_path, const Comm& comm) {
  const std::int64_t h = r.centroids.cols();
  h5::File f = h5::File::create(path, comm, kSegmentsFormat);
  f.write_replicated<float>("/centroids",
                            std::span<const float>(r.centroids.data(), r.centroids.size()), h);
  f.write_rows<std::int32_t>("/labels", r.labels);
  f.write_rows<std::uint8_t>("/core", r.core);
  f.write_replicated<std::int64_t>("/sizes", r.sizes);
  f.create_group("/users");
  f.write_strings("/users/ids", local_user_ids, /*partitioned=*/true);
  if (!r.curve.dist.empty()) f.write_replicated<double>("/kdistance", r.curve.dist);
  f.set_attr("/", "k", r.k);
  f.set_attr("/", "dims", h);
  f.set_attr("/", "algorithm", std::string("dbscan"));
  f.set_attr("/", "eps", r.eps);
  f.set_attr("/", "eps_auto", static_cast<std::int64_t>(r.auto_eps));
  f.set_attr("/", "min_samples", r.min_samples);
  f.set_attr("/", "n_core", r.n_core);
  f.set_attr("/", "n_border", r.n_border);
  f.set_attr("/", "n_noise", r.n_noise);
  f.set_attr("/", "seed", static_cast<std::int64_t>(p.seed));
  f.set_attr("/", "seconds", r.seconds);
  f.set_attr("/", "projection", projection_path);
  f.commit();
}

std::string dbscan_report_json(const DbscanResult& r) {
  std::ostringstream os;
  os << "{\"eps\": " << json::num(r.eps) << ", \"eps_auto\": " << (r.auto_eps ? "true" : "false")
     << ", \"min_samples\": " << r.min_samples << ", \"clusters\": " << r.k
     << ", \"core\": " << r.n_core << ", \"border\": " << r.n_border
     << ", \"noise\": " << r.n_noise;
  if (!r.curve.dist.empty()) {
    os << ",\n   \"kdistance\": {\"k\": " << r.curve.k << ", \"knee\": " << r.curve.knee
       << ", \"knee_eps\": " << json::num(r.curve.knee_eps) << ", \"sorted\": [";
    for (std::size_t i = 0; i < r.curve.dist.size(); ++i)
      os << (i ? ", " : "") << json::num(r.curve.dist[i]);
    os << "]}";
  }
  os << "}";
  return os.str();
}

std::string dbscan_report_markdown(const DbscanResult& r) {
  std::ostringstream os;
  os << "DBSCAN with eps " << r.eps << (r.auto_eps ? " (the knee of the k-distance curve)" : "")
     << " and min-samples " << r.min_samples << ": " << r.k << " clusters, " << r.n_core
     << " core, " << r.n_border << " border and " << r.n_noise << " noise users.";
  return os.str();
}

}  // namespace segrec
