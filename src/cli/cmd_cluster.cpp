// segrec cluster: distributed K-means on the user projections, plus the segment report.
#include <cmath>
#include <filesystem>
#include <sstream>

#include "command.hpp"
#include "segrec/dataset.hpp"
#include "segrec/h5.hpp"
#include "segrec/kmeans.hpp"
#include "segrec/params.hpp"
#include "segrec/segment_report.hpp"

namespace segrec::cli {
namespace {

namespace fs = std::filesystem;

/// `ref` as written in `base_file`'s attribute: as is when it exists, else relative to the
/// directory of `base_file`; "" when neither exists.
std::string resolve_reference(const std::string& ref, const std::string& base_file) {
  if (ref.empty()) return "";
  std::error_code ec;
  if (fs::is_regular_file(ref, ec)) return ref;
  const fs::path alt = fs::path(base_file).parent_path() / ref;
  if (!fs::path(ref).is_absolute() && fs::is_regular_file(alt, ec)) return alt.string();
  return "";
}

std::string replace_ext(const std::string& path, const std::string& ext) {
  return fs::path(path).replace_extension(ext).string();
}

class Cluster final : public Command {
 public:
  std::string name() const override { return "cluster"; }
  std::string summary() const override { return "K-means user segments and a segment report"; }
  std::string usage() const override {
    return "examples:\n"
           "  segrec cluster --projection out/projection.h5 --k 12 --out out/segments.h5\n"
           "  mpirun -n 8 segrec cluster --projection out/projection.h5 --k 4:64:4 --pick db\n"
           "outputs: --out (segments.h5), --segments-csv (user_id,segment), and the report\n"
           "<report>.md / <report>.json (default: --out without its extension)";
  }
  void add_options(po::options_description& d) override {
    d.add_options()  //
        ("projection", po::value(&projection_), "projection.h5 from 'segrec project' (required)")(
            "k", po::value(&p_.k),
            "segments K, or a sweep FROM:TO[:STEP] that picks k by --pick (required)")(
            "out", po::value(&out_)->default_value(out_), "segments.h5 to write")(
            "segments-csv", po::value(&csv_),
            "user_id,segment CSV to write (default: --out with .csv)")(
            "report", po::value(&report_),
            "report path without extension; writes .md and .json (default: --out without .h5)")(
            "data", po::value(&data_),
            "dataset.h5 for item lifts (default: the 'dataset' attribute of the profiles)")(
            "profiles", po::value(&profiles_),
            "profiles.h5 for behavioural statistics (default: the 'profiles' attribute of the "
            "projection)")(
            "init", po::value(&p_.init)->default_value(p_.init),
            "k-means++, k-means||, random, or a centroid file (.csv rows or .h5 /centroids)")(
            "init-rounds", po::value(&p_.init_rounds)->default_value(p_.init_rounds),
            "k-means|| sampling rounds")(
            "oversampling-factor",
            po::value(&p_.oversampling_factor)->default_value(p_.oversampling_factor),
            "k-means|| expected draws per round (0: 2k)")(
            "n-init", po::value(&p_.n_init)->default_value(p_.n_init),
            "restarts; the lowest inertia wins")(
            "max-iter", po::value(&p_.max_iter)->default_value(p_.max_iter),
            "Lloyd iterations at most")(
            "tol", po::value(&p_.tol)->default_value(p_.tol),
            "stop when the summed squared centroid shift <= tol * mean feature variance")(
            "spherical", po::bool_switch(&p_.spherical), "cosine k-means on L2-normalised rows")(
            "threads", po::value(&p_.threads)->default_value(p_.threads),
            "threads per rank (0: $OMP_NUM_THREADS or 1); results do not depend on it")(
            "silhouette-sample",
            po::value(&p_.silhouette_sample)->default_value(p_.silhouette_sample),
            "users whose silhouette (against all users) is averaged; 0 disables; a single --k "
            "computes it only when this option is given")(
            "pick", po::value(&p_.pick)->default_value(p_.pick),
            "how a sweep chooses k: silhouette, db (Davies-Bouldin) or ch (Calinski-Harabasz)")(
            "min-report-users",
            po::value(&rp_.min_report_users)->default_value(rp_.min_report_users),
            "segments with fewer users are not described in the report")(
            "report-items", po::value(&rp_.top_items)->default_value(rp_.top_items),
            "over-represented items listed per segment")(
            "min-item-users", po::value(&rp_.min_item_users)->default_value(rp_.min_item_users),
            "segment users an item needs to be listed");
  }

  int run(const Context& ctx) override {
    const Comm& comm = ctx.comm;
    p_.seed = ctx.common.seed;
    require(!projection_.empty(), "projection", projection_, "give the projection.h5 to cluster");
    require(!out_.empty(), "out", out_, "give the segments.h5 to write");
    p_.validate();
    rp_.validate();
    if (!p_.is_sweep() && ctx.vm["silhouette-sample"].defaulted()) p_.silhouette_sample = 0;
    if (csv_.empty()) csv_ = replace_ext(out_, ".csv");
    if (report_.empty()) report_ = replace_ext(out_, "");

    // ---- input: this rank's even block of /H and /users/ids
    MatrixRF X;
    std::vector<std::string> ids;
    std::string profiles_ref;
    Block b{0, 0};
    std::int64_t n = 0;
    {
      const h5::File f = h5::File::open(projection_, comm, kClusterInputFormat);
      const auto s = f.shape("/H");
      if (s.size() != 2 || s[1] < 1)
        throw DataError("'" + projection_ + "': /H must be a users x dims matrix", true);
      n = s[0];
      if (f.shape("/users/ids")[0] != n)
        throw DataError("'" + projection_ + "': /users/ids and /H differ in length", true);
      b = block_partition(n, comm.size(), comm.rank());
      const auto v = f.read_rows<float>("/H", b.begin, b.size());
      X = Eigen::Map<const MatrixRF>(v.data(), b.size(), s[1]);
      ids = f.read_strings("/users/ids", b.begin, b.size());
      if (f.has_attr("/", "profiles")) profiles_ref = f.attr_string("/", "profiles");
      std::string err;
      for (Eigen::Index i = 0; i < X.rows() && err.empty(); ++i)
        if (!X.row(i).allFinite())
          err =
              "'" + projection_ + "': /H row " + std::to_string(b.begin + i) + " holds NaN or Inf";
      comm.check_all(err, kExitData);
    }
    MatrixRF init;
    const bool from_file = p_.init_method() == InitMethod::kFile;
    if (from_file) init = read_centroid_file(p_.init, comm);

    ctx.say("clustering " + std::to_string(n) + " users x " + std::to_string(X.cols()) +
            " dims, k = " + p_.k + ", init " + p_.init + ", " + std::to_string(comm.size()) +
            " rank(s) x " + std::to_string(p_.resolved_threads()) + " thread(s)");
    const ClusterRun run = cluster(X, p_, comm, from_file ? &init : nullptr);
    const KMeansResult& r = run.result;

    write_segments(out_, run, ids, p_, projection_, comm);
    write_segments_csv(csv_, ids, r.labels, comm);

    // ---- report inputs, following the attribute chain projection -> profiles -> dataset
    std::vector<std::string> notes;
    std::string profiles = profiles_;
    if (profiles.empty() && !profiles_ref.empty()) {
      profiles = resolve_reference(profiles_ref, projection_);
      if (profiles.empty())
        notes.push_back("profiles '" + profiles_ref + "' named by the projection was not found");
    }
    std::string data = data_;
    if (data.empty() && !profiles.empty()) {
      const h5::File pf = h5::File::open(profiles, comm, kReportProfilesFormat);
      if (pf.has_attr("/", "dataset")) {
        const std::string ref = pf.attr_string("/", "dataset");
        data = resolve_reference(ref, profiles);
        if (data.empty())
          notes.push_back("dataset '" + ref + "' named by the profiles was not found");
      }
    }
    LocalStats stats;
    if (!profiles.empty()) stats = read_profile_stats(profiles, n, b.begin, ids, comm);
    Dataset ds;
    if (!data.empty()) {
      ds = read_dataset(data, comm, /*with_log=*/false);
      if (ds.n_users != n)
        throw DataError("'" + data + "' holds " + std::to_string(ds.n_users) +
                            " users, the projection " + std::to_string(n),
                        true);
      std::string err;
      for (std::size_t i = 0; i < ids.size() && err.empty(); ++i)
        if (ds.user_ids[i] != ids[i])
          err = "'" + data + "': user " + std::to_string(b.begin + static_cast<std::int64_t>(i)) +
                " is '" + ds.user_ids[i] + "', the projection has '" + ids[i] + "'";
      comm.check_all(err, kExitData);
    }
    SegmentReport rep = build_segment_report(r.labels, r.sizes, data.empty() ? nullptr : &ds,
                                             profiles.empty() ? nullptr : &stats, rp_, comm);
    rep.inertia = r.inertia;
    rep.quality = run.quality;
    rep.notes.insert(rep.notes.begin(), notes.begin(), notes.end());
    write_segment_report(rep, report_ + ".md", report_ + ".json", comm);

    // ---- summary
    std::ostringstream os;
    if (!run.sweep.empty()) {
      os << "sweep (pick by " << p_.pick << "):\n       k       inertia  iters  silhouette"
         << "  davies-bouldin  calinski-harabasz\n";
      for (const auto& row : run.sweep) {
        char line[160];
        std::snprintf(line, sizeof line, "  %6lld  %12.6g  %5d  %10.4f  %14.4f  %17.2f%s\n",
                      static_cast<long long>(row.k), row.inertia, row.n_iter,
                      row.quality.silhouette, row.quality.davies_bouldin,
                      row.quality.calinski_harabasz, row.k == r.k ? "  <- picked" : "");
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
    if (empty)
      os << "warning: " << empty << " segment(s) are empty (fewer distinct users than k)\n";
    if (small)
      os << small << " segment(s) under " << rp_.min_report_users
         << " users are not described in the report\n";
    os << "wrote " << out_ << ", " << csv_ << ", " << report_ << ".md, " << report_ << ".json";
    ctx.say(os.str());
    return 0;
  }

 private:
  KMeansParams p_;
  SegmentReportParams rp_;
  std::string projection_, out_ = "segments.h5", csv_, report_, data_, profiles_;
};

}  // namespace

std::unique_ptr<Command> make_cluster() { return std::make_unique<Cluster>(); }

}  // namespace segrec::cli
