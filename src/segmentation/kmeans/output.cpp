// K-means files: centroid files in (CSV or .h5 /centroids), segments.h5 and the
// user_id,segment CSV out.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/io/textio.hpp"
#include "segrec/segmentation/kmeans/output.hpp"

namespace segrec {
namespace {

std::string lower_ext(const std::string& path) {
  std::string e = std::filesystem::path(path).extension().string();
  for (auto& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

}  // namespace

MatrixRF read_centroid_file(const std::string& path, const Comm& comm) {
  const std::string ext = lower_ext(path);
  if (ext == ".h5" || ext == ".hdf5") {
    MatrixRF C;
    std::string err;  // raised once the file is closed
    {
      const h5::File f = h5::File::open_any(path, comm);
      if (!f.exists("/centroids") || f.shape("/centroids").size() != 2) {
        err = "'" + path + "': no 2-D dataset /centroids to start from";
      } else {
        const auto s = f.shape("/centroids");
        const auto v = f.read_all<float>("/centroids");
        C = Eigen::Map<const MatrixRF>(v.data(), s[0], s[1]);
        if (!C.allFinite()) err = "'" + path + "': /centroids holds NaN or Inf";
      }
    }
    comm.check_all(err, kExitData);
    return C;
  }
  std::string err;
  std::vector<std::vector<float>> rows;
  std::ifstream in(path);
  if (!in) err = "cannot open centroid file '" + path + "'";
  std::string line;
  int lineno = 0;
  while (err.empty() && std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::vector<float> row;
    bool numeric = true;
    for (const auto& field : split_list(line, ',')) {
      float x = 0;
      const auto r = std::from_chars(field.data(), field.data() + field.size(), x);
      if (r.ec != std::errc() || r.ptr != field.data() + field.size() || !std::isfinite(x)) {
        numeric = false;
        break;
      }
      row.push_back(x);
    }
    if (!numeric) {
      if (rows.empty() && lineno == 1) continue;  // header
      err = path + ":" + std::to_string(lineno) + ": not a row of finite numbers";
    } else if (!rows.empty() && row.size() != rows[0].size()) {
      err = path + ":" + std::to_string(lineno) + ": " + std::to_string(row.size()) +
            " values, the first row has " + std::to_string(rows[0].size());
    } else {
      rows.push_back(std::move(row));
    }
  }
  if (err.empty() && rows.empty()) err = "centroid file '" + path + "' holds no rows";
  comm.check_all(err, kExitData);
  MatrixRF C(static_cast<Eigen::Index>(rows.size()), static_cast<Eigen::Index>(rows[0].size()));
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::size_t f = 0; f < rows[r].size(); ++f) C(r, f) = rows[r][f];
  return C;
}

void write_segments_csv(const std::string& path, const std::vector<std::string>& local_user_ids,
                        std::span<const std::int32_t> labels, const Comm& comm) {
  SEGREC_ASSERT(local_user_ids.size() == labels.size(), "one label per user");
  OrderedWriter out(path, comm);
  // This rank's lines go to a scratch file in bounded chunks, then into the output in one
  // ordered append: every rank's users stay together, in global user order.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> scratch(std::tmpfile(), &std::fclose);
  std::string err = scratch ? "" : "cannot create a scratch file for '" + path + "'";
  comm.check_all(err, kExitIo);
  constexpr std::int64_t kChunk = 1 << 16;
  const auto n = static_cast<std::int64_t>(labels.size());
  std::int64_t bytes = 0;
  std::string text;
  if (comm.is_root()) text = "user_id,segment\n";
  for (std::int64_t i = 0; i < n || !text.empty(); ++i) {
    if (i < n) {
      append_csv_field(text, local_user_ids[i]);
      text += ',';
      text += std::to_string(labels[i]);
      text += '\n';
    }
    if (i + 1 >= n || (i + 1) % kChunk == 0) {
      if (std::fwrite(text.data(), 1, text.size(), scratch.get()) != text.size() && err.empty())
        err = "cannot write a scratch file for '" + path + "'";
      bytes += static_cast<std::int64_t>(text.size());
      text.clear();
    }
  }
  comm.check_all(err, kExitIo);
  std::rewind(scratch.get());
  out.append_file(scratch.get(), bytes);
  out.commit();
}

void write_segments(const std::string& path, const ClusterRun& run,
                    const std::vector<std::string>& local_user_ids, const KMeansParams& p,
                    const std::string& projection_path, const Comm& comm,
                    const std::function<void(h5::File&)>& extra) {
  const KMeansResult& r = run.result;
  const std::int64_t k = r.k, h = r.centroids.cols();
  h5::File f = h5::File::create(path, comm, kSegmentsFormat);
  const MatrixRF cf = r.centroids.cast<float>();
  f.write_replicated<float>("/centroids", std::span<const float>(cf.data(), cf.size()), h);
  f.write_rows<std::int32_t>("/labels", r.labels);
  f.write_replicated<std::int64_t>("/sizes", r.sizes);
  f.create_group("/users");
  f.write_strings("/users/ids", local_user_ids, /*partitioned=*/true);
  f.create_group("/iterations");
  std::vector<double> inertia, shift, seconds;
  std::vector<std::int64_t> changed, bytes, relocated, recomputed;
  for (const auto& it : r.iterations) {
    inertia.push_back(it.inertia);
    shift.push_back(it.shift);
    seconds.push_back(it.seconds);
    changed.push_back(it.changed);
    bytes.push_back(static_cast<std::int64_t>(it.bytes));
    relocated.push_back(it.relocated);
    recomputed.push_back(it.recomputed);
  }
  f.write_replicated<double>("/iterations/inertia", inertia);
  f.write_replicated<double>("/iterations/shift", shift);
  f.write_replicated<std::int64_t>("/iterations/changed", changed);
  f.write_replicated<double>("/iterations/seconds", seconds);
  f.write_replicated<std::int64_t>("/iterations/bytes_sent", bytes);
  f.write_replicated<std::int64_t>("/iterations/relocated", relocated);
  f.write_replicated<std::int64_t>("/iterations/recomputed", recomputed);
  if (!run.sweep.empty()) {
    f.create_group("/sweep");
    std::vector<std::int64_t> ks, iters;
    std::vector<double> in, sil, db, ch, gap, gap_se, dip;
    for (const auto& row : run.sweep) {
      ks.push_back(row.k);
      iters.push_back(row.n_iter);
      in.push_back(row.inertia);
      sil.push_back(row.quality.silhouette);
      db.push_back(row.quality.davies_bouldin);
      ch.push_back(row.quality.calinski_harabasz);
      gap.push_back(row.quality.gap);
      gap_se.push_back(row.quality.gap_se);
      dip.push_back(row.quality.split_dip);
    }
    f.write_replicated<std::int64_t>("/sweep/k", ks);
    f.write_replicated<std::int64_t>("/sweep/n_iter", iters);
    f.write_replicated<double>("/sweep/inertia", in);
    f.write_replicated<double>("/sweep/silhouette", sil);
    f.write_replicated<double>("/sweep/davies_bouldin", db);
    f.write_replicated<double>("/sweep/calinski_harabasz", ch);
    f.write_replicated<double>("/sweep/gap", gap);
    f.write_replicated<double>("/sweep/gap_se", gap_se);
    f.write_replicated<double>("/sweep/split_dip", dip);
    if (run.gmm.fitted) {
      std::vector<double> bic, ll;
      for (const auto& row : run.sweep) {
        bic.push_back(row.bic);
        ll.push_back(row.log_likelihood);
      }
      f.write_replicated<double>("/sweep/bic", bic);
      f.write_replicated<double>("/sweep/log_likelihood", ll);
      f.set_attr("/sweep", "pick_bic", run.sweep[pick_k(run.sweep, Criterion::kBic)].k);
    }
    if (run.tied) {
      std::vector<double> log_det;
      for (const auto& row : run.sweep) log_det.push_back(row.log_det);
      f.write_replicated<double>("/sweep/log_det", log_det);
    }
    f.set_attr("/sweep", "pick", std::string(criterion_name(run.pick)));
    // The k each rule would have chosen, for comparison (pick_gap, pick_silhouette, ...).
    for (const auto& [name, crit] :
         {std::pair{"gap", Criterion::kGap}, std::pair{"silhouette", Criterion::kSilhouette},
          std::pair{"db", Criterion::kDaviesBouldin}, std::pair{"ch", Criterion::kCalinskiHarabasz},
          std::pair{"elbow", Criterion::kElbow}})
      f.set_attr("/sweep", std::string("pick_") + name, run.sweep[pick_k(run.sweep, crit)].k);
  }
  f.set_attr("/", "k", k);
  f.set_attr("/", "dims", h);
  f.set_attr("/", "init", p.init);
  f.set_attr("/", "shape", std::string(run.tied ? "tied" : "spherical"));
  if (run.tied) f.set_attr("/", "tied_rounds", static_cast<std::int64_t>(run.tied_rounds));
  f.set_attr("/", "algorithm",
             std::string(run.gmm.fitted ? "gmm"
                         : r.hamerly    ? "hamerly"
                                        : "lloyd"));
  if (const GmmFit& g = run.gmm; g.fitted) {
    // The mixture: /gmm/weights (k), /gmm/covariances (m h x h rows: m = k, or 1 when tied).
    f.create_group("/gmm");
    f.write_replicated<double>("/gmm/weights", g.weights);
    std::vector<double> cov;
    for (const auto& c : g.covariances)
      for (Eigen::Index a = 0; a < h; ++a)
        for (Eigen::Index b = 0; b < h; ++b) cov.push_back(c(a, b));
    f.write_replicated<double>("/gmm/covariances", cov, h);
    f.set_attr("/gmm", "covariance", covariance_name(g.covariance));
    f.set_attr("/gmm", "reg", g.reg);
    f.set_attr("/gmm", "log_likelihood", g.log_likelihood);
    f.set_attr("/gmm", "bic", g.bic);
    f.set_attr("/gmm", "n_params", g.n_params);
    f.set_attr("/gmm", "n_iter", static_cast<std::int64_t>(g.n_iter));
    f.set_attr("/gmm", "converged", static_cast<std::int64_t>(g.converged));
  }
  f.set_attr("/", "inertia", r.inertia);
  f.set_attr("/", "n_iter", static_cast<std::int64_t>(r.n_iter));
  f.set_attr("/", "converged", static_cast<std::int64_t>(r.converged));
  f.set_attr("/", "restart", static_cast<std::int64_t>(r.restart));
  f.set_attr("/", "n_init",
             static_cast<std::int64_t>(std::max<std::size_t>(1, r.restart_inertia.size())));
  f.set_attr("/", "swaps", static_cast<std::int64_t>(r.swaps));
  f.set_attr("/", "swap_runs", static_cast<std::int64_t>(r.swap_runs));
  f.set_attr("/", "max_iter", static_cast<std::int64_t>(p.max_iter));
  f.set_attr("/", "tol", p.tol);
  f.set_attr("/", "spherical", static_cast<std::int64_t>(p.spherical));
  f.set_attr("/", "seed", static_cast<std::int64_t>(p.seed));
  f.set_attr("/", "relocated", r.relocated);
  f.set_attr("/", "lloyd_seconds", r.seconds);
  f.set_attr("/", "silhouette", run.quality.silhouette);
  f.set_attr("/", "silhouette_sample", run.quality.silhouette_sample);
  f.set_attr("/", "davies_bouldin", run.quality.davies_bouldin);
  f.set_attr("/", "calinski_harabasz", run.quality.calinski_harabasz);
  f.set_attr("/", "allreduce_bytes_per_iteration",
             static_cast<std::int64_t>(lloyd_allreduce_bytes(k, h)));
  f.set_attr("/", "projection", projection_path);
  if (extra) extra(f);
  f.commit();
}

}  // namespace segrec
