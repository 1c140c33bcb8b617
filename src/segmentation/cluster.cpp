// The cluster stage: projection.h5 in; segments.h5, segments.csv and the report out.
#include "segrec/segmentation/cluster.hpp"
#include "segrec/segmentation/kmeans/tied.hpp"
#include "segrec/segmentation/profile.hpp"
#include "segrec/segmentation/project.hpp"

#include <chrono>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "segrec/core/error.hpp"
#include "segrec/core/json.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/io/companion.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/io/items.hpp"
#include "segrec/segmentation/dbscan/output.hpp"
#include "segrec/segmentation/kmeans/output.hpp"
#include "segrec/segmentation/memory.hpp"
#include "segrec/segmentation/stable_ids.hpp"

namespace segrec {
namespace {

namespace fs = std::filesystem;

// A one-block view leaves the other block's columns 0 (view.hpp), so K-means and DBSCAN run
// on the block alone: the same distances, centroids and whitening at count / h of the cost.
// Back to the projection's width: centroids 0 outside the block, the whitening the identity
// there (so that serving maps full rows).
template <class M>
M widen_cols(const M& A, std::int64_t first, std::int64_t h) {
  M W = M::Zero(A.rows(), h);
  W.middleCols(first, A.cols()) = A;
  return W;
}

void widen_run(ClusterRun& run, std::int64_t first, std::int64_t h) {
  run.result.centroids = widen_cols(run.result.centroids, first, h);
  if (run.whitening.size() > 0) {
    MatrixRD W = MatrixRD::Identity(h, h);
    W.block(first, first, run.whitening.rows(), run.whitening.cols()) = run.whitening;
    run.whitening = std::move(W);
  }
}

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

/// Names (and, when the data set has none, categories) of the data set's items from an
/// item attribute file; items the file does not list keep theirs.
void apply_item_info(const ItemAttributes& a, Dataset& ds) {
  std::map<std::string, std::int64_t> row;
  for (std::int64_t i = 0; i < a.size(); ++i) row.emplace(a.ids[i], i);
  const std::size_t n = ds.item_ids.size();
  ds.item_names.resize(n);
  const bool categories = ds.categories.empty();
  std::map<std::string, std::int32_t> cats;
  if (categories) {
    for (const auto& id : ds.item_ids)
      if (const auto it = row.find(id); it != row.end() && !a.categories[it->second].empty())
        cats.emplace(a.categories[it->second], 0);
    for (auto& [name, idx] : cats) {
      idx = static_cast<std::int32_t>(ds.categories.size());
      ds.categories.push_back(name);
    }
    ds.item_category.assign(n, -1);
  }
  for (std::size_t i = 0; i < n; ++i) {
    const auto it = row.find(ds.item_ids[i]);
    if (it == row.end()) continue;
    if (!a.names[it->second].empty()) ds.item_names[i] = a.names[it->second];
    if (categories && !a.categories[it->second].empty())
      ds.item_category[i] = cats.at(a.categories[it->second]);
  }
  if (categories && ds.categories.empty()) ds.item_category.clear();
}

}  // namespace

ClusterOutcome run_cluster_stage(const ClusterFiles& files, const KMeansParams& p,
                                 const ViewParams& vp, const SegmentReportParams& rp,
                                 const Comm& comm, const DbscanParams* dbscan) {
  KMeansModes modes = dbscan ? KMeansModes{} : p.validate();
  const DbscanModes db_modes = dbscan ? dbscan->validate() : DbscanModes{};
  const ClusterView view = vp.validate();
  ClusterOutcome out;
  const auto t_start = std::chrono::steady_clock::now();
  auto t_mark = t_start;
  auto lap = [&t_mark] {  // seconds since the previous lap
    const auto now = std::chrono::steady_clock::now();
    return std::chrono::duration<double>(now - std::exchange(t_mark, now)).count();
  };
  // ---- input: this rank's even block of /H and /users/ids. Problems are raised once the
  // file is closed: a handle open while an error unwinds a parallel job is not closed.
  MatrixRF X;
  std::vector<std::string> ids;
  std::string profiles_ref, err;
  const ItemsFormat items_format = parse_items_format(files.item_info_format);
  Block b{0, 0};
  std::int64_t interest_dims = 0, value_dims = 0;
  {
    const h5::File f = h5::File::open(files.projection, comm, kProjectionFormat);
    UserRowsSpec spec;
    spec.path = files.projection;
    spec.name = "/H";
    spec.cols = -1;  // users x dims, both from the file
    const auto s = user_rows_shape(f, spec);
    out.n_users = s[0];
    out.dims = s[1];
    b = block_partition(out.n_users, comm.size(), comm.rank());
    check_cluster_memory(b.size(), out.dims, p, comm);
    ids = read_user_ids(f, spec, b);
    const auto v = read_user_rows<float>(f, spec, b, comm);
    X = Eigen::Map<const MatrixRF>(v.data(), b.size(), s[1]);
    if (f.has_attr("/", "profiles")) profiles_ref = f.attr_string("/", "profiles");
    if (f.has_attr("/", "value_dims")) {
      interest_dims = f.attr_int("/", "interest_dims");
      value_dims = f.attr_int("/", "value_dims");
    }
    for (Eigen::Index i = 0; i < X.rows() && err.empty(); ++i)
      if (!X.row(i).allFinite())
        err = "'" + files.projection + "': /H row " + std::to_string(b.begin + i) +
              " holds NaN or Inf";
  }
  comm.check_all(err, kExitData);
  std::optional<PreviousSegments> prev;  // read completely: --previous may be --out
  if (!files.previous.empty()) prev = read_previous_segments(files.previous, out.dims, comm);
  MatrixRF init;
  const bool from_file = modes.init == InitMethod::kFile;
  if (from_file && !dbscan) init = read_centroid_file(p.init, comm);

  const double t_read = lap();
  // The view's evidence is taken at one k: the k given, or 8 within the sweep's range
  // (8 for DBSCAN, which has no k).
  KMeansParams probe_p = p;
  if (dbscan) {
    probe_p.k = std::to_string(kViewProbeK);
    probe_p.algorithm = "auto";
  }
  const auto ks = probe_p.k_values();
  const std::int64_t probe = std::clamp<std::int64_t>(kViewProbeK, ks.front(), ks.back());
  out.view = resolve_view(view, vp, X, interest_dims, value_dims, probe, probe_p,
                          dbscan ? probe_p.validate() : modes, comm);
  if (view == ClusterView::kAuto && std::isfinite(out.view.gap_interest))
    progress::note("cluster", "view " + out.view.name() +
                                  ": gap at k = " + std::to_string(out.view.probe_k) +
                                  " interest " + json::num(out.view.gap_interest) + ", value " +
                                  json::num(out.view.gap_value));
  out.view.apply(X);
  // auto: tied segments on the value view (kmeans/params.hpp --shape).
  modes.tied = !dbscan && !modes.gmm && !p.spherical &&
               (modes.shape == ClusterShape::kTied ||
                (modes.shape == ClusterShape::kAuto && out.view.view == ClusterView::kValue));
  if (prev && prev->whitening.size() > 0)  // earlier tied segments: back to the view's space
    prev->centroids.centroids =
        unwhiten_rows(prev->centroids.centroids.cast<double>(), prev->whitening).cast<float>();
  // K-means or DBSCAN on a one-block view: the block's columns only (widen_cols). Not for a
  // mixture, whose likelihood and BIC count every column, nor a centroid file of another width
  // (cluster() names the mismatch).
  const auto [first, count] = out.view.block_columns();
  const bool narrow =
      !modes.gmm && count > 0 && count < X.cols() && (!from_file || init.cols() == X.cols());
  std::optional<PreviousCentroids> prev_block;  // the earlier centroids, narrowed the same way
  if (narrow) {
    X = MatrixRF(X.middleCols(first, count));
    if (from_file) init = MatrixRF(init.middleCols(first, count));
    if (prev)
      prev_block = PreviousCentroids{MatrixRF(prev->centroids.centroids.middleCols(first, count)),
                                     prev->centroids.sizes};
  }
  const double t_view = lap();
  if (dbscan) {
    out.dbscan = segrec::dbscan(X, *dbscan, db_modes, comm);
    if (narrow) out.dbscan.centroids = widen_cols(out.dbscan.centroids, first, out.dims);
    out.run.result.labels = out.dbscan.labels;  // -1: noise
    out.run.result.sizes = out.dbscan.sizes;
    out.run.result.k = out.dbscan.k;
    out.run.result.inertia = std::numeric_limits<double>::quiet_NaN();
  } else {
    const PreviousCentroids* from_prev =
        prev_block ? &*prev_block : (prev ? &prev->centroids : nullptr);
    out.run = cluster(X, p, modes, comm, from_file ? &init : nullptr, from_prev);
    if (narrow) widen_run(out.run, first, out.dims);
    KMeansResult& res = out.run.result;
    const bool tied = out.run.whitening.size() > 0;
    if (prev) {  // ids follow the earlier segments, compared in the view's (unwhitened) space
      if (tied) res.centroids = unwhiten_rows(res.centroids, out.run.whitening);
      out.transitions = stabilise_ids(*prev, ids, res, comm);
      if (tied) res.centroids = res.centroids * out.run.whitening.transpose();
    }
    prev.reset();
    out.view.whitening = out.run.whitening;
  }
  const KMeansResult& r = out.run.result;
  const double t_cluster = lap();
  if (dbscan) {
    write_dbscan_segments(files.out, out.dbscan, ids, *dbscan, files.projection, comm);
  } else {
    write_segments(files.out, out.run, ids, p, files.projection, comm, [&](h5::File& f) {
      write_view(f, "/", out.view);
      if (out.transitions) write_transitions(f, *out.transitions);
    });
  }
  write_segments_csv(files.segments_csv, ids, r.labels, comm);
  const ClusterRun& cr = out.run;
  out.timings = {{"read", t_read},
                 {"view", t_view},
                 {"init", cr.init_seconds},
                 {"lloyd", cr.lloyd_seconds},
                 {"em", cr.gmm_seconds},
                 {"quality", cr.quality_seconds},
                 {"other", std::max(0.0, t_cluster - cr.init_seconds - cr.lloyd_seconds -
                                             cr.gmm_seconds - cr.quality_seconds)},
                 {"write", lap()}};

  // ---- report inputs, following the attribute chain projection -> profiles -> dataset
  std::string profiles = files.profiles;
  if (profiles.empty() && !profiles_ref.empty()) {
    profiles = resolve_reference(profiles_ref, files.projection);
    if (profiles.empty())
      out.notes.push_back("profiles '" + profiles_ref + "' named by the projection was not found");
  }
  std::string data = files.data;
  if (data.empty() && !profiles.empty()) {
    const h5::File pf = h5::File::open(profiles, comm, kProfilesFormat);
    if (pf.has_attr("/", "dataset")) {
      const std::string ref = pf.attr_string("/", "dataset");
      data = resolve_reference(ref, profiles);
      if (data.empty())
        out.notes.push_back("dataset '" + ref + "' named by the profiles was not found");
    }
  }
  LocalStats stats;
  if (!profiles.empty()) stats = read_profile_stats(profiles, out.n_users, b.begin, ids, comm);
  Dataset ds;
  if (!data.empty()) {
    ds = read_dataset(data, comm, /*with_log=*/false);
    if (ds.n_users != out.n_users)
      throw DataError("'" + data + "' holds " + std::to_string(ds.n_users) +
                          " users, the projection " + std::to_string(out.n_users),
                      true);
    err.clear();
    for (std::size_t i = 0; i < ids.size() && err.empty(); ++i)
      if (ds.user_ids[i] != ids[i])
        err = "'" + data + "': user " + std::to_string(b.begin + static_cast<std::int64_t>(i)) +
              " is '" + ds.user_ids[i] + "', the projection has '" + ids[i] + "'";
    comm.check_all(err, kExitData);
    if (!files.item_info.empty())
      apply_item_info(read_items(files.item_info, items_format, comm), ds);
  } else if (!files.item_info.empty()) {
    out.notes.push_back("no dataset: --report-item-info '" + files.item_info + "' not used");
  }
  out.profiles_used = profiles;
  out.data_used = data;
  if (rp.min_report_users < SegmentReportParams{}.min_report_users) {
    const std::string floor = std::to_string(rp.min_report_users);
    const std::string w =
        "--min-report-users " + floor + " lowers the privacy floor from " +
        std::to_string(SegmentReportParams{}.min_report_users) +
        (rp.min_report_users == 1 ? ": it is off, so every segment is described however small"
                                  : ": segments of " + floor + " users are described");
    progress::warning("cluster", w);
    out.notes.push_back(w);
  }
  SegmentReport rep = build_segment_report(r.labels, r.sizes, data.empty() ? nullptr : &ds,
                                           profiles.empty() ? nullptr : &stats, rp, comm);
  rep.inertia = r.inertia;
  rep.quality = out.run.quality;
  if (dbscan) {
    rep.method_json = "\"dbscan\": " + dbscan_report_json(out.dbscan);
    rep.method_markdown = dbscan_report_markdown(out.dbscan);
  }
  rep.notes.insert(rep.notes.begin(), out.notes.begin(), out.notes.end());
  if (out.transitions) {
    rep.extra_markdown += out.transitions->markdown();
    rep.extra_json.emplace_back("transitions", out.transitions->json());
  }
  rep.timings = out.timings;
  rep.timings.emplace_back("report", lap());  // up to here: its inputs and building it
  write_segment_report(rep, files.report + ".md", files.report + ".json", comm);
  out.timings.emplace_back("report", lap() + rep.timings.back().second);
  out.timings.emplace_back(
      "total", std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
  return out;
}

}  // namespace segrec
