// The clustering stage's algorithm: every k of --k (a sweep or one value), the quality
// figures of each, and the k that --pick prefers.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "internal.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/segmentation/kmeans/quality.hpp"

namespace segrec {

using kmeans_detail::nan;

ClusterRun cluster(const MatrixRF& X, const KMeansParams& p, const KMeansModes& modes,
                   const Comm& comm, const MatrixRF* init) {
  const auto ks = p.k_values();
  const std::int64_t n = comm.allreduce_value(static_cast<std::int64_t>(X.rows()));
  if (ks.back() > n)
    throw DataError("--k " + p.k + " asks for " + std::to_string(ks.back()) +
                        " segments but there are only " + std::to_string(n) + " users",
                    true);
  MatrixRF normalised;
  if (p.spherical) normalised = normalize_rows(X);
  const MatrixRF& Xs = p.spherical ? normalised : X;
  const int threads = p.resolved_threads();
  const bool sweep = ks.size() > 1;
  const Criterion crit = modes.pick;
  ClusterRun run;
  double best_score = nan();
  progress::Task task("cluster", "k sweep", sweep ? static_cast<double>(ks.size()) : 0, "k");
  for (const std::int64_t k : ks) {
    KMeansResult res = kmeans_detail::kmeans_prepared(Xs, k, p, modes, comm, init);
    run.init_seconds += res.init_seconds;
    run.lloyd_seconds += res.seconds;
    const auto tq = std::chrono::steady_clock::now();
    ClusterQuality q;
    q.davies_bouldin = davies_bouldin_score(Xs, res.labels, k, comm);
    q.calinski_harabasz = calinski_harabasz_score(Xs, res.labels, k, comm);
    if (p.silhouette_sample > 0)
      q.silhouette = silhouette_score(Xs, res.labels, k, p.silhouette_sample, p.seed, threads, comm,
                                      &q.silhouette_sample);
    run.quality_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - tq).count();
    if (!sweep) {
      run.result = std::move(res);
      run.quality = q;
      break;
    }
    run.sweep.push_back({k, res.inertia, res.n_iter, q});
    task.update(static_cast<double>(run.sweep.size()),
                {{"k", static_cast<double>(k)},
                 {"inertia", res.inertia},
                 {"silhouette", q.silhouette},
                 {"davies_bouldin", q.davies_bouldin}},
                true);
    double score = crit == Criterion::kSilhouette      ? q.silhouette
                   : crit == Criterion::kDaviesBouldin ? -q.davies_bouldin
                                                       : q.calinski_harabasz;
    const bool first = run.result.k == 0;
    if (first || (std::isfinite(score) && (!std::isfinite(best_score) || score > best_score))) {
      best_score = score;
      run.result = std::move(res);
      run.quality = q;
    }
  }
  return run;
}

ClusterRun cluster(const MatrixRF& X, const KMeansParams& p, const Comm& comm,
                   const MatrixRF* init) {
  return cluster(X, p, p.validate(), comm, init);
}

}  // namespace segrec
