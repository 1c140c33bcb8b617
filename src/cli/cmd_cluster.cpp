// segrec cluster: distributed K-means or DBSCAN on the user projections, plus the segment
// report.
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include "command.hpp"
#include "segrec/core/blas.hpp"
#include "segrec/core/env.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/io/items.hpp"
#include "segrec/segmentation/cluster.hpp"

namespace segrec::cli {
namespace {

namespace fs = std::filesystem;

std::string replace_ext(const std::string& path, const std::string& ext) {
  return fs::path(path).replace_extension(ext).string();
}

class Cluster final : public Command {
 public:
  std::string name() const override { return "cluster"; }
  std::string summary() const override {
    return "K-means or DBSCAN user segments and a segment report";
  }
  std::string usage() const override {
    return "examples:\n"
           "  segrec cluster --projection out/projection.h5 --k 12 --out out/segments.h5\n"
           "  mpirun -n 8 segrec cluster --projection out/projection.h5 --k 4:64:4 --pick db\n"
           "  segrec cluster --projection out/projection.h5 --algorithm dbscan --eps auto\n"
           "outputs: --out (segments.h5), --segments-csv (user_id,segment), and the report\n"
           "<report>.md / <report>.json (default: --out without its extension)";
  }
  void add_options(po::options_description& d) override {
    d.add_options()  //
        ("projection", po::value(&projection_), "projection.h5 from 'segrec project' (required)")(
            "k", po::value(&p_.k),
            "segments K, or a sweep FROM:TO[:STEP] that picks k by --pick (required, except "
            "with --algorithm dbscan)")("out", po::value(&out_)->default_value(out_),
                                        "segments.h5 to write")(
            "segments-csv", po::value(&csv_),
            "user_id,segment CSV to write (default: --out with .csv)")(
            "report", po::value(&report_),
            "report path without extension; writes .md and .json (default: --out without .h5)")(
            "data", po::value(&data_),
            "dataset.h5 for item lifts (default: the 'dataset' attribute of the profiles)")(
            "profiles", po::value(&profiles_),
            "profiles.h5 for behavioural statistics (default: the 'profiles' attribute of the "
            "projection)")(
            "previous", po::value(&previous_),
            "segments.h5 of an earlier run whose segment ids to keep: K-means starts from its "
            "centroids, new segments take the id of the old one they share most users with "
            "(else the nearest centroid), and the report gains a transition table; may be "
            "--out itself (segmentation.md, 'Stable ids across refreshes')")(
            "init", po::value(&p_.init)->default_value(p_.init),
            "k-means++, k-means||, random, or a centroid file (.csv rows or .h5 /centroids)")(
            "init-rounds", po::value(&p_.init_rounds)->default_value(p_.init_rounds),
            "k-means|| sampling rounds")(
            "oversampling-factor",
            po::value(&p_.oversampling_factor)->default_value(p_.oversampling_factor),
            "k-means|| expected draws per round (0: 2k)")(
            "n-init", po::value(&p_.n_init)->default_value(p_.n_init),
            "restarts; the lowest inertia wins (tied segments: the lowest log det of the pooled "
            "covariance) (0: 3 while users * k * dims <= 1e8, else 1)")(
            "restart-iters", po::value(&p_.restart_iters)->default_value(p_.restart_iters),
            "Lloyd iterations of every restart before only the best goes on (0: all run to the "
            "end)")("swap-tries", po::value(&p_.swap_tries)->default_value(p_.swap_tries),
                    "pairs of segments tried after each kept move: cut the pair anew by "
                    "2-means, or merge it and split the widest other segment by 2-means; keep "
                    "a lower inertia (tied segments: merge and split, keep a lower log det) "
                    "(-1: 5 while users * k * dims <= 1e8, else 0; 0: off)")(
            "max-iter", po::value(&p_.max_iter)->default_value(p_.max_iter),
            "Lloyd iterations at most")(
            "tol", po::value(&p_.tol)->default_value(p_.tol),
            "stop when the summed squared centroid shift <= tol * mean feature variance")(
            "spherical", po::bool_switch(&p_.spherical), "cosine k-means on L2-normalised rows")(
            "threads", po::value(&p_.threads)->default_value(p_.threads),
            "threads per rank (0: $OMP_NUM_THREADS, else $SLURM_CPUS_PER_TASK, else the rank's "
            "share of its node's CPUs); results do not depend on it")(
            "kernel", po::value(&p_.kernel)->default_value(p_.kernel),
            "assignment kernel: auto, fused (AVX-512 builds) or gemm (for benchmarks)")(
            "algorithm", po::value(&p_.algorithm)->default_value(p_.algorithm),
            "lloyd, hamerly (exact Lloyd with triangle-inequality pruning; same result), "
            "auto (hamerly when k * dims >= 4096), gmm (K-means, then a Gaussian mixture by EM "
            "from its labels; see --covariance), or dbscan (density clusters; noise users get "
            "segment -1; see --eps, --min-samples)")(
            "covariance", po::value(&p_.covariance)->default_value(p_.covariance),
            "gmm: tied (one covariance shared by all segments), full (one per segment) or diag")(
            "reg-covar", po::value(&p_.reg_covar)->default_value(p_.reg_covar),
            "gmm: added to every variance, times the data's mean feature variance")(
            "gmm-tol", po::value(&p_.gmm_tol)->default_value(p_.gmm_tol),
            "gmm: stop when the mean log-likelihood per user changes by less")(
            "gmm-max-iter", po::value(&p_.gmm_max_iter)->default_value(p_.gmm_max_iter),
            "gmm: EM iterations at most")(
            "eps", po::value(&dp_.eps),
            "dbscan: neighbourhood radius (projection units), or auto (the knee of the "
            "k-distance curve)")(
            "min-samples", po::value(&dp_.min_samples)->default_value(dp_.min_samples),
            "dbscan: users within eps (itself included) that make a user a core user")(
            "kdist-sample", po::value(&dp_.kdist_sample)->default_value(dp_.kdist_sample),
            "dbscan: sampled users whose k-distance curve (k = min-samples) goes into the "
            "report JSON; computed with --eps auto or when given")(
            "silhouette-sample",
            po::value(&p_.silhouette_sample)->default_value(p_.silhouette_sample),
            "users whose silhouette (against the other sampled users) is averaged; 0 disables; a "
            "single --k "
            "computes it only when this option is given")(
            "pick", po::value(&p_.pick)->default_value(p_.pick),
            "how a sweep chooses k: gap (gap statistic, knee of its curve), silhouette, db "
            "(Davies-Bouldin), "
            "ch (Calinski-Harabasz), elbow, bic (gmm: the mixture's lowest BIC), or auto (gap; "
            "silhouette for tied segments, skipping a k whose segments merge groups by the gap "
            "of log det or by a bimodal segment that a later k resolves)")(
            "shape", po::value(&p_.shape)->default_value(p_.shape),
            "segments' shape: spherical (K-means, Euclidean), tied (one shared within-segment "
            "covariance: Mahalanobis K-means), or auto (tied on the value view, else "
            "spherical)")(
            "view", po::value(&vp_.view)->default_value(vp_.view),
            "what segments are about: interest (items and categories), value (behaviour, "
            "recency, spend), combined, or auto (the block(s) with groups, by the gap "
            "statistic)")("value-share",
                          po::value(&vp_.value_share)->default_value(vp_.value_share),
                          "combined view: the value block's share of the variance")(
            "gap-references", po::value(&p_.gap_references)->default_value(p_.gap_references),
            "Gaussian reference sets of the gap statistic")(
            "gap-sample", po::value(&p_.gap_sample)->default_value(p_.gap_sample),
            "rows per gap reference set")(
            "min-report-users",
            po::value(&rp_.min_report_users)->default_value(rp_.min_report_users),
            "segments with fewer users are not described in the report")(
            "report-items", po::value(&rp_.top_items)->default_value(rp_.top_items),
            "over-represented items listed per segment")(
            "min-item-users", po::value(&rp_.min_item_users)->default_value(rp_.min_item_users),
            "segment users an item needs to be listed")(
            "report-item-info", po::value(&item_info_),
            "item attributes (as recommend's --item-info): names in the report's item tables, "
            "categories when the data set has none")(
            "report-item-info-format",
            po::value(&item_info_format_)->default_value(item_info_format_),
            "csv or movielens (u.item)");
  }

  void check(const Context& ctx) override {
    p_.seed = ctx.common.seed;
    require(!projection_.empty(), "projection", projection_, "give the projection.h5 to cluster");
    require(!out_.empty(), "out", out_, "give the segments.h5 to write");
    method_ = parse_cluster_method(p_.algorithm);
    if (method_ == ClusterMethod::kDbscan) {
      if (!p_.k.empty())
        throw UsageError(
            "--k cannot be used with --algorithm dbscan (DBSCAN finds the number "
            "of segments; give --eps and --min-samples)");
      dp_.seed = ctx.common.seed;
      dp_.threads = p_.threads;
      dp_.validate();
    } else {
      if (!dp_.eps.empty()) throw UsageError("--eps '" + dp_.eps + "' needs --algorithm dbscan");
      p_.validate();
      for (const char* o : {"covariance", "reg-covar", "gmm-tol", "gmm-max-iter"})
        if (p_.algorithm != "gmm" && ctx.vm.count(o) && !ctx.vm[o].defaulted())
          throw UsageError(std::string("--") + o + " needs --algorithm gmm");
    }
    rp_.validate();
    vp_.validate();
    require(previous_.empty() || method_ != ClusterMethod::kDbscan, "previous", previous_,
            "stable ids follow K-means centroids; DBSCAN runs without --previous");
    require(previous_.empty() || method_ == ClusterMethod::kDbscan ||
                p_.validate().init != InitMethod::kFile,
            "init", p_.init,
            "a centroid file cannot be combined with --previous (which starts from the earlier "
            "run's centroids)");
    try {
      parse_items_format(item_info_format_);
    } catch (const UsageError&) {
      require(false, "report-item-info-format", item_info_format_, "use csv or movielens");
    }
  }

  int run(const Context& ctx) override {
    const Comm& comm = ctx.comm;
    check(ctx);
    // --threads 0 and no thread variable: the rank's share of its node's CPUs, so that one
    // process uses the machine (the segments do not depend on the count).
    if (p_.threads == 0 && !env::threads_given()) {
      p_.threads = blas::node_share(env::affinity_cpus(), comm.node().size());
      dp_.threads = p_.threads;
    }
    if (csv_.empty()) csv_ = replace_ext(out_, ".csv");
    if (report_.empty()) report_ = replace_ext(out_, "");
    if (method_ == ClusterMethod::kDbscan) return run_dbscan(ctx);
    if (!p_.is_sweep() && ctx.vm["silhouette-sample"].defaulted()) p_.silhouette_sample = 0;

    const ClusterOutcome res =
        run_cluster_stage({projection_, out_, csv_, report_, data_, profiles_, previous_,
                           item_info_, item_info_format_},
                          p_, vp_, rp_, comm);
    const ClusterRun& run = res.run;
    const KMeansResult& r = run.result;

    // ---- summary
    std::ostringstream os;
    os << "clustered " << res.n_users << " users x " << res.dims << " dims on " << comm.size()
       << " rank(s) x " << p_.resolved_threads() << " thread(s), init " << p_.init << "\n";
    if (!run.sweep.empty()) {
      const bool gmm = run.gmm.fitted;
      os << "sweep (pick by " << criterion_name(run.pick) << (run.tied ? ", tied segments" : "")
         << "):\n       k       inertia  iters  silhouette"
         << "  davies-bouldin  calinski-harabasz     gap  (+-se)" << (gmm ? "           bic" : "")
         << "\n";
      for (const auto& row : run.sweep) {
        char line[200];
        char bic[32] = "";
        if (gmm) std::snprintf(bic, sizeof bic, "  %12.6g", row.bic);
        std::snprintf(
            line, sizeof line, "  %6lld  %12.6g  %5d  %10.4f  %14.4f  %17.2f  %6.3f  (%5.3f)%s%s\n",
            static_cast<long long>(row.k), row.inertia, row.n_iter, row.quality.silhouette,
            row.quality.davies_bouldin, row.quality.calinski_harabasz, row.quality.gap,
            row.quality.gap_se, bic, row.k == r.k ? "  <- picked" : "");
        os << line;
      }
    }
    std::int64_t empty = 0, small = 0;
    for (const auto s : r.sizes) {
      empty += s == 0;
      small += s > 0 && s < rp_.min_report_users;
    }
    os << "k = " << r.k << ": inertia " << r.inertia << " after " << r.n_iter << " iteration(s)"
       << (r.converged ? " (converged)" : " (max-iter reached)");
    if (std::isfinite(run.quality.silhouette)) os << ", silhouette " << run.quality.silhouette;
    os << ", Davies-Bouldin " << run.quality.davies_bouldin << ", Calinski-Harabasz "
       << run.quality.calinski_harabasz << "\n";
    if (const GmmFit& g = run.gmm; g.fitted)
      os << "gaussian mixture (" << covariance_name(g.covariance) << " covariance, reg " << g.reg
         << "): log-likelihood " << g.log_likelihood << ", BIC " << g.bic << " after " << g.n_iter
         << " EM iteration(s)" << (g.converged ? " (converged)" : " (max reached)")
         << "; labels by the largest responsibility\n";
    if (empty)
      os << "warning: " << empty << " segment(s) are empty (fewer distinct users than k)\n";
    if (small)
      os << small << " segment(s) under " << rp_.min_report_users
         << " users are not described in the report\n";
    for (const auto& n : res.notes) os << "note: " << n << "\n";
    if (const auto& t = res.transitions) {
      const auto ids = [](const std::vector<std::int64_t>& v) {
        std::string s;
        for (const auto x : v) {
          if (!s.empty()) s += ',';
          s += std::to_string(x);
        }
        return s.empty() ? std::string("none") : s;
      };
      os << "ids follow " << t->previous << " (k " << t->k_old << " -> " << t->k_new
         << "): " << t->common_users << " users in both runs, "
         << (std::isfinite(t->stayed_share()) ? 100 * t->stayed_share() : 0.0)
         << "% kept their segment; " << t->new_users << " new, " << t->departed_users
         << " departed users; new segments " << ids(t->new_segments()) << ", retired "
         << ids(t->retired_segments()) << "\n";
    }
    std::ostringstream times;
    times << "timings:" << std::fixed << std::setprecision(3);
    for (const auto& [part, sec] : res.timings)
      times << " " << part << " " << sec << " s" << (part == "total" ? "" : ",");
    progress::note("cluster", times.str());  // the JSON log (and --verbose)
    os << times.str() << "\n";
    os << "report inputs: profiles " << (res.profiles_used.empty() ? "(none)" : res.profiles_used)
       << ", dataset " << (res.data_used.empty() ? "(none)" : res.data_used) << "\n";
    os << "wrote " << out_ << ", " << csv_ << ", " << report_ << ".md, " << report_ << ".json";
    ctx.say(os.str());
    return 0;
  }

 private:
  int run_dbscan(const Context& ctx) {
    const Comm& comm = ctx.comm;
    if (dp_.eps != "auto" && ctx.vm["kdist-sample"].defaulted()) dp_.kdist_sample = 0;
    const ClusterOutcome res = run_cluster_stage(
        {projection_, out_, csv_, report_, data_, profiles_, "", item_info_, item_info_format_}, p_,
        vp_, rp_, comm, &dp_);
    const DbscanResult& r = res.dbscan;
    std::ostringstream os;
    os << "clustered " << res.n_users << " users x " << res.dims << " dims on " << comm.size()
       << " rank(s) x " << dp_.resolved_threads() << " thread(s), DBSCAN\n";
    if (!r.curve.dist.empty())
      os << "k-distance curve (k = " << r.curve.k << ", " << r.curve.dist.size()
         << " sampled users): knee at " << r.curve.knee_eps << "\n";
    os << "eps " << r.eps << (r.auto_eps ? " (auto)" : "") << ", min-samples " << r.min_samples
       << ": " << r.k << " clusters; " << r.n_core << " core, " << r.n_border << " border, "
       << r.n_noise << " noise (segment -1) users; " << r.seconds << " s\n";
    for (const auto& n : res.notes) os << "note: " << n << "\n";
    os << "report inputs: profiles " << (res.profiles_used.empty() ? "(none)" : res.profiles_used)
       << ", dataset " << (res.data_used.empty() ? "(none)" : res.data_used) << "\n";
    os << "wrote " << out_ << ", " << csv_ << ", " << report_ << ".md, " << report_ << ".json";
    ctx.say(os.str());
    return 0;
  }

  ClusterMethod method_ = ClusterMethod::kKMeans;
  DbscanParams dp_;
  KMeansParams p_;
  SegmentReportParams rp_;
  ViewParams vp_;
  std::string projection_, out_ = "segments.h5", csv_, report_, data_, profiles_, previous_;
  std::string item_info_, item_info_format_ = "csv";
};

}  // namespace

std::unique_ptr<Command> make_cluster() { return std::make_unique<Cluster>(); }

}  // namespace segrec::cli
