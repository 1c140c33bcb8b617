// The clustering stage's algorithm: every k of --k (a sweep or one value), the quality
// figures of each, and the k that --pick prefers.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "internal.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/segmentation/gmm/gmm.hpp"
#include "segrec/segmentation/kmeans/gap.hpp"
#include "segrec/segmentation/kmeans/init.hpp"
#include "segrec/segmentation/kmeans/quality.hpp"
#include "segrec/segmentation/kmeans/split_dip.hpp"
#include "segrec/segmentation/kmeans/tied.hpp"
#include "segrec/segmentation/kmeans/tied_gap.hpp"

namespace segrec {

std::size_t pick_k(const std::vector<SweepRow>& rows, Criterion crit) {
  if (rows.empty()) return 0;
  if (crit == Criterion::kGap) {
    std::vector<GapValue> g;
    std::vector<std::int64_t> ks;
    for (const auto& r : rows) {
      g.push_back({r.quality.gap, r.quality.gap_se});
      ks.push_back(r.k);
    }
    return gap_pick(ks, g);
  }
  if (crit == Criterion::kBic) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < rows.size(); ++i)
      if (std::isfinite(rows[i].bic) && !(rows[i].bic >= rows[best].bic)) best = i;
    return best;
  }
  if (crit == Criterion::kElbow) {
    // Farthest below the chord of the normalised inertia curve.
    const double k0 = static_cast<double>(rows.front().k), k1 = static_cast<double>(rows.back().k);
    const double w0 = rows.front().inertia, w1 = rows.back().inertia;
    if (rows.size() < 3 || !(w0 > w1)) return 0;
    std::size_t best = 0;
    double best_d = -1;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const double x = (static_cast<double>(rows[i].k) - k0) / (k1 - k0);
      const double y = (rows[i].inertia - w1) / (w0 - w1);
      if (1 - x - y > best_d) {
        best_d = 1 - x - y;
        best = i;
      }
    }
    return best;
  }
  // Tied segments: the silhouette skips a k that merges groups (tied_gap.hpp, split_dip.hpp).
  const auto merges = [&](std::size_t i) {
    return crit == Criterion::kSilhouette && std::isfinite(rows[i].log_det) &&
           (tied_merges_groups(rows, i) || split_resolved_later(rows, i));
  };
  std::size_t best = 0;
  double best_score = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (merges(i)) continue;
    const ClusterQuality& q = rows[i].quality;
    const double score = crit == Criterion::kSilhouette      ? q.silhouette
                         : crit == Criterion::kDaviesBouldin ? -q.davies_bouldin
                                                             : q.calinski_harabasz;
    if (std::isfinite(score) && (!std::isfinite(best_score) || score > best_score)) {
      best_score = score;
      best = i;
    }
  }
  return best;
}

ClusterRun cluster(const MatrixRF& X, const KMeansParams& p, const KMeansModes& modes,
                   const Comm& comm, const MatrixRF* init, const PreviousCentroids* previous) {
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
  const bool tied = modes.tied;
  SEGREC_ASSERT(!(tied && modes.gmm), "tied segments and a mixture are exclusive (validate)");
  Criterion crit = modes.resolved_pick();
  if (crit == Criterion::kSilhouette && modes.pick == Criterion::kAuto && p.silhouette_sample == 0)
    crit = Criterion::kGap;
  const bool gap = sweep;  // in every sweep, so that the rules can be compared (/sweep)
  GapReference ref;
  if (gap && !tied) ref = gap_reference(Xs, p.gap_sample, p.gap_references, p.seed, comm);
  ClusterRun run;
  run.pick = crit;
  run.tied = tied;
  std::vector<TiedFit> tied_fits;  // --shape tied: one per k
  // --shape tied: the columns and covariance every whitening round reads, the same for every k
  const TiedInput tied_in = tied ? tied_input(Xs, comm) : TiedInput{};
  // --shape tied: the gap of log det (tied_gap.hpp) against the rows' own
  TiedGapReference tied_ref;
  double tied_ld1 = 0;
  if (gap && tied) {
    tied_ref = tied_gap_reference(std::ssize(tied_in.cols), n, p.gap_sample, p.gap_references,
                                  p.seed, comm);
    tied_ld1 = tied_total_log_det(tied_in);
  }
  // Tied segments from K-means' own start (no --previous, no --init): a single k refines every
  // restart and keeps the lowest log det (tied.hpp); a sweep scans each k with one refinement of
  // its K-means winner, then refits the chosen k so. (Every k refined from every restart made
  // the whitened silhouette prefer one segment set apart at k = 2 on behaviour-only logs.)
  const bool tied_restarts = tied && !previous && !init;
  // Tied segments start from plain K-means: merge-split moves lower the Euclidean inertia, which
  // is not what ranks tied fits (on plant.py's 4 behaviour groups they took k = 4 from ARI 0.51
  // to 0.40). Their own moves, ranked by log det, run on each k's tied fit (tied_swap_refine):
  // with one pair per round in the scan, which cost 6.4x the scan without moves on 150,000 x 32
  // (2:20, 16 blobs) with the full tries and found the planted k as often on 15 behaviour logs.
  KMeansParams no_swaps = p;
  no_swaps.swap_tries = 0;
  // DB, CH and (with a sample) the silhouette of labels on the rows Xq.
  const auto score = [&](const MatrixRF& Xq, const std::vector<std::int32_t>& labels,
                         std::int64_t k, ClusterQuality& q) {
    q.davies_bouldin = davies_bouldin_score(Xq, labels, k, comm);
    q.calinski_harabasz = calinski_harabasz_score(Xq, labels, k, comm);
    if (p.silhouette_sample > 0)
      q.silhouette = silhouette_score(Xq, labels, k, p.silhouette_sample, p.seed, threads, comm,
                                      &q.silhouette_sample);
    if (sweep) q.split_dip = split_dip_score(Xq, labels, k, p.silhouette_sample, p.seed, comm);
  };
  std::vector<KMeansResult> results;  // one per k, until the pick
  std::vector<GmmFit> fits;           // --algorithm gmm: one per k
  // Progress: a sweep in k (each k's runs, its restarts then its gap reference sets, as
  // parts); one k in runs.
  const auto runs_of = [&](std::int64_t k) {
    return (previous || init ? 1 : p.restarts(n, k, Xs.cols())) + (gap ? p.gap_references : 0);
  };
  progress::Task task("cluster", sweep ? "k sweep" : "k=" + std::to_string(ks.front()),
                      static_cast<double>(sweep ? std::ssize(ks) : runs_of(ks.front())),
                      sweep ? "k" : "run");
  for (const std::int64_t k : ks) {
    const auto at = static_cast<double>(run.sweep.size()), runs = static_cast<double>(runs_of(k));
    double runs_done = 0;
    if (sweep)  // the position from the start of each k (and a rate baseline)
      task.update_part(at, {at + 1, "run", 0, runs}, {{"k", static_cast<double>(k)}});
    const auto run_done = [&] {
      ++runs_done;
      if (!sweep)
        task.update(runs_done);
      else
        task.update_part(at + std::min(1.0, runs_done / runs), {at + 1, "run", runs_done, runs},
                         {{"k", static_cast<double>(k)}});
    };
    MatrixRF from_previous;
    if (previous) from_previous = centroids_from_previous(Xs, *previous, k, p, comm);
    KMeansResult res;
    TiedFit tf;
    if (tied_restarts && !sweep) {
      tf = tied_kmeans_restarts(Xs, tied_in, k, res, p, modes, comm, run_done);
      run.init_seconds += res.init_seconds;
      run.lloyd_seconds += res.seconds;
    } else {
      res = kmeans_detail::kmeans_prepared(Xs, k, tied ? no_swaps : p, modes, comm,
                                           previous ? &from_previous : init, run_done);
      run.init_seconds += res.init_seconds;
      run.lloyd_seconds += res.seconds;
      if (tied) {
        const double before = res.seconds;
        tf = tied_kmeans(Xs, tied_in, res, p, modes, comm);
        if (tied_restarts)  // the scan: one pair per round (the chosen k is refit with all)
          tied_swap_refine(Xs, tied_in, res, tf, std::min(1, p.swaps(n, k, Xs.cols())), p, modes,
                           comm);
        run.lloyd_seconds += res.seconds - before;
      }
    }
    // The rows the segments are K-means segments of: the whitened rows when tied.
    const MatrixRF& Xq = tied ? tf.Z : Xs;
    const double kmeans_inertia = res.inertia;
    GmmFit fit;
    if (modes.gmm) {
      fit = gmm_em(Xs, res.labels, k, modes.gmm_options, comm, res.labels);
      run.gmm_seconds += fit.seconds;
      apply_mixture(Xs, fit, res, comm);
    }
    const auto tq = std::chrono::steady_clock::now();
    ClusterQuality q;
    score(Xq, res.labels, k, q);
    if (gap) {
      const GapValue g =
          tied ? tied_gap_statistic(tied_ref, tf.log_det, tied_ld1, k, p, modes, comm, run_done)
               : gap_statistic(ref, kmeans_inertia, n, k, p, modes, comm, run_done);
      q.gap = g.gap;
      q.gap_se = g.se;
    }
    run.quality_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - tq).count();
    if (!sweep) {
      run.result = std::move(res);
      run.quality = q;
      run.gmm = std::move(fit);
      run.whitening = std::move(tf.whitening);
      run.tied_rounds = tf.rounds;
      return run;
    }
    SweepRow row{k, kmeans_inertia, res.n_iter, q};
    if (fit.fitted) {
      row.bic = fit.bic;
      row.log_likelihood = fit.log_likelihood;
    }
    if (tied) row.log_det = tf.log_det;
    run.sweep.push_back(row);
    fits.push_back(std::move(fit));
    tf.Z = MatrixRF();  // only the whitening is kept
    tied_fits.push_back(std::move(tf));
    task.update(static_cast<double>(run.sweep.size()),
                {{"k", static_cast<double>(k)},
                 {"inertia", kmeans_inertia},
                 {"silhouette", q.silhouette},
                 {"davies_bouldin", q.davies_bouldin},
                 {"gap", q.gap}},
                true);
    results.push_back(std::move(res));
  }
  const std::size_t best = pick_k(run.sweep, crit);
  run.result = std::move(results[best]);
  run.quality = run.sweep[best].quality;
  run.gmm = std::move(fits[best]);
  run.whitening = std::move(tied_fits[best].whitening);
  run.tied_rounds = tied_fits[best].rounds;
  const std::int64_t k = run.sweep[best].k;
  // The chosen k from every restart, with every merge-split try.
  if (tied_restarts && (p.restarts(n, k, Xs.cols()) > 1 || p.swaps(n, k, Xs.cols()) > 1)) {
    progress::Task refit("cluster", "k=" + std::to_string(k) + " refit",
                         static_cast<double>(p.restarts(n, k, Xs.cols())), "run");
    double done = 0;
    KMeansResult res;
    TiedFit tf =
        tied_kmeans_restarts(Xs, tied_in, k, res, p, modes, comm, [&] { refit.update(++done); });
    run.init_seconds += res.init_seconds;
    run.lloyd_seconds += res.seconds;
    if (tf.log_det < tied_fits[best].log_det) {
      const auto tq = std::chrono::steady_clock::now();
      score(tf.Z, res.labels, k, run.quality);
      run.quality_seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - tq).count();
      res.n_iter += run.result.n_iter;  // every iteration this k took
      run.result = std::move(res);
      run.whitening = std::move(tf.whitening);
      run.tied_rounds = tf.rounds;
    }
  }
  return run;
}

ClusterRun cluster(const MatrixRF& X, const KMeansParams& p, const Comm& comm,
                   const MatrixRF* init) {
  return cluster(X, p, p.validate(), comm, init);
}

}  // namespace segrec
