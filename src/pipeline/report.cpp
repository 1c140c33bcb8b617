#include "segrec/pipeline/report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "segrec/core/json.hpp"
#include "segrec/core/tempfile.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/pipeline/models.hpp"

namespace segrec {
namespace {

namespace fs = std::filesystem;

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

template <class T>
std::string json_array(const std::vector<T>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i)
    s += (i ? ", " : "") + json::num(static_cast<double>(v[i]));
  return s + "]";
}

// Both renderings of the report, built section by section.
struct Out {
  std::ostringstream js, md;
  bool first = true;
  void key(const std::string& k) {
    js << (first ? "\n  " : ",\n  ") << json::str(k) << ": ";
    first = false;
  }
};

void stages(const PipelineRecord& r, Out& o) {
  o.key("stages");
  o.js << "[";
  o.md << "## Stages\n\n| stage | seconds (max over ranks) | peak memory MiB per rank |\n"
       << "|---|---:|---|\n";
  for (std::size_t i = 0; i < r.stages.size(); ++i) {
    const StageRecord& s = r.stages[i];
    std::vector<double> mib;
    for (const auto b : s.peak_bytes) mib.push_back(static_cast<double>(b) / (1 << 20));
    o.js << (i ? ", " : "") << "{\"name\": " << json::str(s.name)
         << ", \"skipped\": " << (s.skipped ? "true" : "false")
         << ", \"seconds\": " << json_array(s.seconds) << ", \"peak_mib\": " << json_array(mib)
         << "}";
    if (s.skipped) {
      o.md << "| " << s.name << " | up to date, skipped | |\n";
      continue;
    }
    std::string per_rank;
    for (std::size_t k = 0; k < mib.size(); ++k) per_rank += (k ? ", " : "") + fmt("%.0f", mib[k]);
    o.md << "| " << s.name << " | "
         << fmt("%.2f", *std::max_element(s.seconds.begin(), s.seconds.end())) << " | " << per_rank
         << " |\n";
  }
  o.js << "]";
  o.md << "\n";
}

void ingest(const std::string& path, const Comm& comm, Out& o) {
  const h5::File f = h5::File::open_any(path, comm);
  const char* names[] = {"rows_read",       "rows_kept",      "duplicates",     "filled_values",
                         "below_min_value", "filtered_users", "filtered_items", "filtered_rows"};
  o.key("ingest");
  o.js << "{\"users\": " << f.attr_int("/", "n_users")
       << ", \"items\": " << f.attr_int("/", "n_items");
  o.md << "## Ingest\n\n"
       << f.attr_int("/", "n_users") << " users, " << f.attr_int("/", "n_items")
       << " items.\n\n| rows | count |\n|---|---:|\n";
  for (const char* n : names)
    if (f.has_attr("/report", n)) {
      const auto v = f.attr_int("/report", n);
      o.js << ", " << json::str(n) << ": " << v;
      o.md << "| " << n << " | " << v << " |\n";
    }
  if (f.exists("/report/bad_names")) {
    const auto n = f.shape("/report/bad_names")[0];
    const auto names_v = f.read_strings("/report/bad_names", 0, n);
    const auto counts = f.read_all<std::int64_t>("/report/bad_counts");
    o.js << ", \"malformed\": {";
    for (std::int64_t i = 0; i < n; ++i) {
      o.js << (i ? ", " : "") << json::str(names_v[i]) << ": " << counts[i];
      o.md << "| malformed: " << names_v[i] << " | " << counts[i] << " |\n";
    }
    o.js << "}";
  }
  o.js << "}";
  o.md << "\n";
}

void projection(const std::string& path, const Comm& comm, Out& o) {
  const h5::File f = h5::File::open_any(path, comm);
  const auto evr = f.read_all<double>("/explained_variance_ratio");
  const double total = std::accumulate(evr.begin(), evr.end(), 0.0);
  const std::string method = f.has_attr("/", "method") ? f.attr_string("/", "method") : "";
  o.key("projection");
  o.js << "{\"method\": " << json::str(method) << ", \"dims\": " << evr.size()
       << ", \"explained_variance_ratio\": " << json_array(evr)
       << ", \"explained_variance_total\": " << json::num(total) << "}";
  o.md << "## Projection\n\n"
       << method << ", " << evr.size() << " dimensions, explaining " << fmt("%.2f", 100 * total)
       << "% of the profile variance (first components: ";
  for (std::size_t i = 0; i < std::min<std::size_t>(5, evr.size()); ++i)
    o.md << (i ? ", " : "") << fmt("%.2f", 100 * evr[i]) << "%";
  o.md << ").\n\n";
}

void segments(const std::string& dir, const Comm& comm, Out& o) {
  const h5::File f = h5::File::open_any((fs::path(dir) / "segments.h5").string(), comm);
  const auto sizes = f.read_all<std::int64_t>("/sizes");
  o.key("segments");
  o.js << "{\"k\": " << sizes.size() << ", \"sizes\": " << json_array(sizes);
  o.md << "## Segments\n\nk = " << sizes.size();
  if (f.exists("/sweep/k")) {
    const auto ks = f.read_all<std::int64_t>("/sweep/k");
    const auto sil = f.read_all<double>("/sweep/silhouette");
    const auto inertia = f.read_all<double>("/sweep/inertia");
    o.js << ", \"sweep\": {\"k\": " << json_array(ks) << ", \"silhouette\": " << json_array(sil)
         << ", \"inertia\": " << json_array(inertia) << "}";
    o.md << ", chosen by a sweep:\n\n| k | inertia | silhouette |\n|---:|---:|---:|\n";
    for (std::size_t i = 0; i < ks.size(); ++i)
      o.md << "| " << ks[i] << " | " << fmt("%.6g", inertia[i]) << " | " << fmt("%.4f", sil[i])
           << " |\n";
  } else {
    o.md << ".\n";
  }
  // The segment table itself is segments.json / segments.md (cluster's report).
  std::string seg_json;
  if (comm.is_root()) {
    std::ifstream in(fs::path(dir) / "segments.json");
    std::stringstream ss;
    ss << in.rdbuf();
    seg_json = ss.str();
    while (!seg_json.empty() && std::isspace(static_cast<unsigned char>(seg_json.back())))
      seg_json.pop_back();
  }
  if (!seg_json.empty()) o.js << ", \"report\": " << seg_json;
  o.js << "}";
  o.md << "\n| segment | users |\n|---:|---:|\n";
  for (std::size_t i = 0; i < sizes.size(); ++i) o.md << "| " << i << " | " << sizes[i] << " |\n";
  o.md << "\nWhat each segment is: [segments.md](segments.md).\n\n";
}

// A model without a network (train --model-kind ease | popularity): its kind, lambda and the
// validation NDCG of each lambda tried.
void training_linear(const h5::File& f, const std::string& kind, Out& o) {
  o.key("training");
  o.js << "{\"model_kind\": \"" << kind << "\"";
  o.md << "## Training\n\n" << kind << " model";
  if (f.exists("/ease")) {
    const auto grid = f.read_all<double>("/ease/l2_grid");
    const auto ndcg = f.read_all<double>("/ease/val_ndcg");
    const double l2 = f.attr_double("/ease", "l2");
    o.js << ", \"l2\": " << json::num(l2) << ", \"l2_grid\": " << json_array(grid)
         << ", \"val_ndcg\": " << json_array(ndcg);
    o.md << ", lambda " << fmt("%g", l2);
    if (grid.size() > 1) {
      o.md << " (best on the validation users)\n\n| lambda | validation NDCG |\n|---:|---:|\n";
      for (std::size_t j = 0; j < grid.size() && j < ndcg.size(); ++j)
        o.md << "| " << fmt("%g", grid[j]) << " | " << fmt("%.4f", ndcg[j]) << " |\n";
    }
  }
  if (f.exists("/validation") && f.has_attr("/validation", "k")) {
    const double best = f.attr_double("/validation", "best_ndcg");
    o.js << ", \"validation\": {\"k\": " << f.attr_int("/validation", "k")
         << ", \"best_ndcg\": " << json::num(best) << "}";
    o.md << "\nValidation NDCG@" << f.attr_int("/validation", "k") << ": " << fmt("%.4f", best)
         << ".";
  }
  o.js << "}";
  o.md << "\n\n";
}

void training(const std::string& path, const Comm& comm, Out& o) {
  const h5::File f = h5::File::open_any(path, comm);
  if (f.has_attr("/", "model_kind") && f.attr_string("/", "model_kind") != "mlp")
    return training_linear(f, f.attr_string("/", "model_kind"), o);
  const auto loss = f.read_all<double>("/curves/train_loss");
  const auto ndcg = f.read_all<double>("/curves/val_ndcg");
  const auto secs = f.read_all<double>("/curves/seconds");
  o.key("training");
  o.js << "{\"epochs\": " << loss.size() << ", \"train_loss\": " << json_array(loss)
       << ", \"val_ndcg\": " << json_array(ndcg) << ", \"seconds\": " << json_array(secs);
  o.md << "## Training\n\n" << loss.size() << " epochs";
  if (f.exists("/validation")) {
    const auto k = f.attr_int("/validation", "k");
    const auto best_epoch = f.attr_int("/validation", "best_epoch");
    const double best = f.attr_double("/validation", "best_ndcg");
    o.js << ", \"validation\": {\"k\": " << k << ", \"best_epoch\": " << best_epoch
         << ", \"best_ndcg\": " << json::num(best) << "}";
    o.md << "; validation NDCG@" << k << " best " << fmt("%.4f", best) << " at epoch "
         << best_epoch;
  }
  o.js << "}";
  o.md << ".\n\n| epoch | train loss | validation NDCG | seconds |\n|---:|---:|---:|---:|\n";
  for (std::size_t e = 0; e < loss.size(); ++e)
    o.md << "| " << e + 1 << " | " << fmt("%.5g", loss[e]) << " | " << fmt("%.4f", ndcg[e]) << " | "
         << fmt("%.2f", secs[e]) << " |\n";
  o.md << "\n";
}

// run --models: the kinds trained, their validation NDCG@K and fit seconds, the one kept
// (DIR/models.csv, read on rank 0, which writes the report).
void model_comparison(const std::string& csv, const Comm& comm, Out& o) {
  if (!comm.is_root()) return;
  std::ifstream in(csv);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto rows = pipeline::parse_models_csv(ss.str());
  if (rows.empty()) return;
  o.key("model_comparison");
  o.js << "[";
  o.md << "## Model comparison\n\nEach kind trained on the same training users and scored on "
          "the same validation users (the sequence kind: on its own next-item split, not "
          "compared); the best is model.h5.\n\n| kind | validation NDCG@"
       << rows.front().ndcg_k << " | fit seconds | kept |\n|---|---:|---:|---|\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    o.js << (i ? ", " : "") << "{\"kind\": " << json::str(r.kind) << ", \"ndcg_k\": " << r.ndcg_k
         << ", \"val_ndcg\": " << json::num(r.val_ndcg)
         << ", \"fit_seconds\": " << json::num(r.fit_seconds)
         << ", \"split\": " << json::str(r.split) << ", \"kept\": " << (r.kept ? "true" : "false")
         << "}";
    o.md << "| " << r.kind << " | " << fmt("%.4f", r.val_ndcg)
         << (r.split == "users" ? "" : " (next-item split)") << " | " << fmt("%.2f", r.fit_seconds)
         << " | " << (r.kept ? "yes (model.h5)" : "no") << " |\n";
  }
  o.js << "]";
  o.md << "\n";
}

}  // namespace

bool exists_on_every_rank(const std::string& path, const Comm& comm) {
  const int here = fs::exists(path) ? 1 : 0;
  return comm.allreduce_value(here, Op::kMin) == 1;
}

void write_pipeline_report(const PipelineRecord& r, const Comm& comm) {
  const fs::path dir(r.out_dir);
  Out o;
  o.js << "{";
  o.md << "# segrec run\n\nOutput directory `" << r.out_dir << "`, " << r.ranks << " rank(s).\n\n";
  o.key("segrec_version");
  o.js << json::str(SEGREC_VERSION);
  o.key("ranks");
  o.js << r.ranks;
  stages(r, o);
  const auto p = [&](const char* f) { return (dir / f).string(); };
  if (exists_on_every_rank(p("dataset.h5"), comm)) ingest(p("dataset.h5"), comm, o);
  if (exists_on_every_rank(p("projection.h5"), comm)) projection(p("projection.h5"), comm, o);
  if (exists_on_every_rank(p("segments.h5"), comm)) segments(r.out_dir, comm, o);
  if (exists_on_every_rank(p("model.h5"), comm)) training(p("model.h5"), comm, o);
  if (exists_on_every_rank(p("models.csv"), comm)) model_comparison(p("models.csv"), comm, o);
  if (exists_on_every_rank(p("recommendations.csv"), comm)) {
    o.key("recommendations");
    o.js << json::str("recommendations.csv");
    o.md << "## Recommendations\n\n[recommendations.csv](recommendations.csv): columns "
            "`user_id,rank,item_id,score,segment,source`, the items of each user's history "
            "excluded.\n\n";
  }
  if (!r.plots.empty()) {
    o.key("plots");
    o.js << "[";
    o.md << "## Pictures\n\n";
    for (std::size_t i = 0; i < r.plots.size(); ++i) {
      o.js << (i ? ", " : "") << json::str("plots/" + r.plots[i]);
      o.md << "![" << r.plots[i] << "](plots/" << r.plots[i] << ")\n\n";
    }
    o.js << "]";
  }
  o.js << "\n}\n";
  if (comm.is_root()) {
    write_file_atomically(p("report.json"), o.js.str());
    write_file_atomically(p("report.md"), o.md.str());
  }
}

}  // namespace segrec
