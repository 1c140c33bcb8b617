// Parameters of DBSCAN (--eps, --min-samples, --kdist-sample) and the --algorithm method.
#include "segrec/segmentation/dbscan/params.hpp"

#include <charconv>
#include <cmath>
#include <system_error>

#include "segrec/core/env.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"

namespace segrec {

ClusterMethod parse_cluster_method(const std::string& algorithm) {
  return parse_mode<ClusterMethod>(algorithm,
                                   {{"auto", ClusterMethod::kKMeans},
                                    {"lloyd", ClusterMethod::kKMeans},
                                    {"hamerly", ClusterMethod::kKMeans},
                                    {"gmm", ClusterMethod::kKMeans},
                                    {"dbscan", ClusterMethod::kDbscan}},
                                   "algorithm", "use auto, lloyd, hamerly, gmm or dbscan");
}

int DbscanParams::resolved_threads() const {
  return threads > 0 ? threads : env::default_threads();
}

DbscanModes DbscanParams::validate() const {
  DbscanModes m;
  const std::string rule = "give a radius > 0 (projection units) or auto";
  require(!eps.empty(), "eps", eps, rule);
  if (eps == "auto") {
    m.auto_eps = true;
  } else {
    double v = 0;
    const auto r = std::from_chars(eps.data(), eps.data() + eps.size(), v);
    require(r.ec == std::errc() && r.ptr == eps.data() + eps.size() && std::isfinite(v) && v > 0,
            "eps", eps, rule);
    m.eps = v;
  }
  require(min_samples >= 1, "min-samples", min_samples, "must be at least 1");
  require(min_samples <= 100000, "min-samples", min_samples, "must be at most 100000");
  require(kdist_sample >= 0, "kdist-sample", kdist_sample, "must be >= 0");
  require(kdist_sample <= 1000000, "kdist-sample", kdist_sample, "must be at most 1000000");
  if (m.auto_eps)
    require(kdist_sample >= 2, "kdist-sample", kdist_sample,
            "--eps auto needs a k-distance sample of at least 2 users");
  require(threads >= 0 && threads <= 1024, "threads", threads,
          "must be between 0 ($OMP_NUM_THREADS or 1) and 1024");
  return m;
}

}  // namespace segrec
