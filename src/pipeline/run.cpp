#include "segrec/pipeline/run.hpp"

#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "segrec/core/dir_lock.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/tempfile.hpp"
#include "segrec/core/watchdog.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/pipeline/models.hpp"
#include "segrec/pipeline/report.hpp"

namespace segrec::pipeline {
namespace {

namespace fs = std::filesystem;

// Options `run` sets itself for each stage (files, and what it sizes from the data).
const std::set<std::string> kManaged = {"events",     "out",      "data",         "profiles",
                                        "projection", "segments", "segments-csv", "report",
                                        "model",      "k",        "previous"};

// Peak resident memory of this process since the last reset, bytes (VmHWM).
std::int64_t peak_rss_since_reset() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return peak_rss_bytes();
}

void reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  out << "5";  // resets VmHWM (Linux >= 4.0); harmless where it is not supported
}

std::string path(const RunParams& p, const std::string& file) {
  return (fs::path(p.out) / file).string();
}

// Users in the data set (after ingest), for the defaults sized from the data.
std::int64_t data_users(const RunParams& p, const Comm& comm) {
  const h5::File f = h5::File::open_any(path(p, "dataset.h5"), comm);
  return f.attr_int("/", "n_users");
}

// The cluster stage's --previous: OUT/segments.h5 of an earlier run, when there is one in the
// projection's space ("" otherwise; `why` says what was decided). Read by the stage before
// its output replaces it, so segment ids carry over from run to run.
std::string previous_segments(const RunParams& p, const Comm& comm, std::string& why) {
  const std::string seg = path(p, "segments.h5"), proj = path(p, "projection.h5");
  if (!exists_on_every_rank(seg, comm) || !exists_on_every_rank(proj, comm)) return "";
  std::int64_t old_dims = -1, dims = -1;
  {
    const h5::File f = h5::File::open_any(seg, comm);
    if (f.format().name == kSegmentsFormat.name && f.has_attr("/", "dims"))
      old_dims = f.attr_int("/", "dims");
  }
  {
    const h5::File f = h5::File::open_any(proj, comm);
    if (f.has_attr("/", "dims")) dims = f.attr_int("/", "dims");
  }
  if (old_dims < 0 || old_dims != dims) {
    why = "   the earlier " + seg + " is not in the projection's " + std::to_string(dims) +
          " dims; segment ids start afresh";
    return "";
  }
  why = "   --previous " + seg + ": segment ids follow the earlier run";
  return seg;
}

// --k auto: a sweep from 2 to clamp(sqrt(users / 10), 4, 20), step 2 above 10.
std::string auto_k(std::int64_t users) {
  const auto top = std::clamp<std::int64_t>(
      static_cast<std::int64_t>(std::sqrt(static_cast<double>(users) / 10.0)), 4, 20);
  return "2:" + std::to_string(top) + (top > 10 ? ":2" : "");
}

// The value of option `name` among the options given for a stage ("" when absent).
std::string given_value(const std::vector<Option>& given, const std::string& name) {
  for (const auto& [k, v] : given)
    if (k == name) return v;
  return "";
}

// The options `run` sets for a stage; `users` (-1: not known yet) sizes --k auto; `dbscan`:
// the cluster stage runs DBSCAN, which takes no k.
std::vector<Option> files_for(const RunParams& p, const std::string& name, std::int64_t users,
                              bool dbscan) {
  std::vector<Option> s;
  if (name == "ingest") {
    for (const auto& e : p.events) s.emplace_back("events", e);
    s.emplace_back("out", path(p, "dataset.h5"));
  } else if (name == "profile") {
    s = {{"data", path(p, "dataset.h5")}, {"out", path(p, "profiles.h5")}};
  } else if (name == "project") {
    s = {{"profiles", path(p, "profiles.h5")}, {"out", path(p, "projection.h5")}};
  } else if (name == "cluster") {
    s = {{"projection", path(p, "projection.h5")},
         {"out", path(p, "segments.h5")},
         {"data", path(p, "dataset.h5")},
         {"profiles", path(p, "profiles.h5")}};
    if (!dbscan || p.k != "auto")  // (a --k given with DBSCAN: the stage refuses it)
      s.emplace_back("k", p.k != "auto" ? p.k : users < 0 ? "2" : auto_k(users));
    if (p.silhouette_sample_defaulted && users > 1000000)
      s.emplace_back("silhouette-sample", "2000");
  } else if (name == "train") {
    s = {{"data", path(p, "dataset.h5")},
         {"projection", path(p, "projection.h5")},
         {"segments", path(p, "segments.h5")},
         {"profiles", path(p, "profiles.h5")},  // the serving bundle
         {"out", path(p, "model.h5")}};
  } else if (name == "recommend") {
    s = {{"model", path(p, "model.h5")},
         {"data", path(p, "dataset.h5")},
         {"projection", path(p, "projection.h5")},
         {"segments", path(p, "segments.h5")},
         {"out", path(p, "recommendations.csv")}};
  }
  return s;
}

// $SEGREC_PLOT_SCRIPT, else beside the executable: ../scripts (build tree) or
// ../share/segrec/scripts (installed).
std::string find_plot_script() {
  if (const char* env = std::getenv("SEGREC_PLOT_SCRIPT")) return env;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  for (const fs::path& rel : {fs::path("../scripts/plot_report.py"),
                              fs::path("../share/segrec/scripts/plot_report.py")}) {
    const fs::path f = exe.parent_path() / rel;
    if (fs::exists(f)) return fs::weakly_canonical(f).string();
  }
  return "";
}

// Runs scripts/plot_report.py on DIR (rank 0); returns the pictures written.
std::vector<std::string> draw_plots(const RunParams& p, const Comm& comm) {
  std::vector<std::string> pngs;
  std::string note;
  if (comm.is_root()) {
    const std::string script = find_plot_script();
    if (script.empty()) {
      note =
          "--plots: scripts/plot_report.py not found next to the executable "
          "(set SEGREC_PLOT_SCRIPT)";
    } else {
      // The system interpreter (Debian's matplotlib and h5py), not one first on PATH.
      const std::string py = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
      const std::string cmd =
          py + " '" + script + "' '" + p.out + "'" + (p.verbose ? "" : " >/dev/null 2>&1");
      const int rc = std::system(cmd.c_str());
      const int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
      if (code == 1)
        note = "--plots: no pictures, python3-matplotlib or python3-h5py is not installed";
      else if (code != 0)
        note = "--plots: plot_report.py failed (exit " + std::to_string(code) + "; -v shows why)";
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(fs::path(p.out) / "plots", ec))
        if (e.path().extension() == ".png") pngs.push_back(e.path().filename().string());
      std::sort(pngs.begin(), pngs.end());
    }
    if (!note.empty()) std::fprintf(stderr, "segrec: warning: %s\n", note.c_str());
  }
  std::string joined;
  for (const auto& f : pngs) joined += f + "\n";
  comm.broadcast(joined);
  pngs.clear();
  std::istringstream in(joined);
  for (std::string line; std::getline(in, line);) pngs.push_back(line);
  return pngs;
}

// --models: the train stage once per kind into DIR/model-KIND.h5, then the best copied to
// DIR/model.h5 and the comparison written to DIR/models.csv. Returns the exit code.
int train_models(const RunParams& p, const std::vector<std::string>& kinds, Stage& st,
                 std::vector<Option> set, const Comm& comm,
                 const std::function<void(const std::string&)>& say) {
  std::vector<ModelRow> rows;
  for (const auto& kind : kinds) {
    for (auto& [k, v] : set)
      if (k == "out") v = path(p, model_file(kind));
    std::vector<Option> with_kind = set;
    with_kind.emplace_back("model-kind", kind);
    say("== train: " + kind + " -> " + path(p, model_file(kind)));
    st.apply(with_kind);
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = st.run();
    if (rc != kExitOk) return rc;
    const double secs = comm.allreduce_value(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), Op::kMax);
    rows.push_back(read_model_row(path(p, model_file(kind)), kind, comm));
    rows.back().fit_seconds = secs;
  }
  choose_kept(rows);
  std::string err;
  if (comm.is_root()) {
    for (const auto& r : rows)
      if (r.kept) {
        // The copy keeps the stage hash ("made_by") of the file it copies.
        const std::string to = path(p, "model.h5"), tmp = to + ".tmp";
        std::error_code ec;
        fs::copy_file(path(p, model_file(r.kind)), tmp, fs::copy_options::overwrite_existing, ec);
        if (!ec) fs::rename(tmp, to, ec);
        if (ec) err = "cannot write '" + to + "': " + ec.message();
      }
    if (err.empty()) try {
        write_file_atomically(path(p, "models.csv"), models_csv(rows));
      } catch (const Error& e) {
        err = e.what();
      }
  }
  comm.check_all(err, kExitIo);
  for (const auto& r : rows) {
    char line[200];
    std::snprintf(line, sizeof line, "   %-10s validation NDCG@%lld %.4f, %.2f s%s", r.kind.c_str(),
                  r.ndcg_k, r.val_ndcg, r.fit_seconds,
                  r.kept               ? ", kept as model.h5"
                  : r.split == "users" ? ""
                                       : " (next-item split: not compared)");
    say(line);
  }
  return kExitOk;
}

}  // namespace

const std::vector<StageInfo>& stages() {
  static const std::vector<StageInfo> kStages = {
      {"ingest", {"dataset.h5"}},
      {"profile", {"profiles.h5"}},
      {"project", {"projection.h5"}},
      {"cluster", {"segments.h5", "segments.csv", "segments.md", "segments.json"}},
      {"train", {"model.h5"}},
      {"recommend", {"recommendations.csv"}}};
  return kStages;
}

bool managed(const std::string& option) { return kManaged.count(option) > 0; }

std::int64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<std::int64_t>(ru.ru_maxrss) * 1024;
}

int run(const RunParams& p, std::vector<Stage>& stages, const Comm& comm,
        const std::function<void(const std::string&)>& say) {
  require(!p.events.empty(), "events", "", "give at least one event file");
  require(!p.out.empty(), "out", "", "give the output directory");
  require(std::any_of(stages.begin(), stages.end(),
                      [&](const Stage& s) { return s.info.name == p.until; }),
          "until", p.until, "must be one of ingest, profile, project, cluster, train, recommend");
  const std::vector<std::string> kinds = parse_models(p.models);
  std::string missing;
  for (const auto& e : p.events)
    if (missing.empty() && !fs::is_regular_file(e)) missing = "events: cannot read '" + e + "'";
  comm.check_all(missing, kExitUsage);
  // Every stage's options are checked before the first stage starts.
  const auto runs_dbscan = [](const Stage& st) {
    return st.info.name == "cluster" && given_value(st.given, "algorithm") == "dbscan";
  };
  for (Stage& st : stages) {
    st.apply(files_for(p, st.info.name, /*users=*/-1, runs_dbscan(st)));
    st.check();
    if (st.info.name == "train")
      for (const auto& kind : kinds) {
        st.apply({{"model-kind", kind}});
        st.check();
      }
  }
  std::string err;
  if (comm.is_root()) {
    std::error_code ec;
    fs::create_directories(p.out, ec);
    if (ec) err = "cannot create the output directory '" + p.out + "': " + ec.message();
  }
  comm.check_all(err, kExitIo);
  // One job at a time in an output directory: rank 0 holds the lock until the end.
  std::optional<DirLock> lock;
  int lock_code = kExitOk;
  if (comm.is_root()) try {
      lock.emplace(p.out);
    } catch (const Error& e) {
      err = e.what();
      lock_code = e.code();
    }
  lock_code = comm.allreduce_value(lock_code, Op::kMax);
  comm.check_all(err, lock_code);
  if (lock && !lock->stale().empty())
    say("== took over the stale lock of a job that ended without releasing it (" + lock->stale() +
        ")");

  // Hash chain: the event files, then every stage's options on top of its input's hash.
  std::string chain = event_chain(p.seed, p.events, comm);

  PipelineRecord record;
  record.out_dir = p.out;
  record.ranks = comm.size();
  bool upstream_ran = false;
  for (Stage& st : stages) {
    const std::string& name = st.info.name;
    const bool dbscan = runs_dbscan(st);
    std::vector<Option> set =
        files_for(p, name, name == "cluster" ? data_users(p, comm) : -1, dbscan);
    std::vector<Option> given = st.given;
    if (name == "train" && !kinds.empty()) given.emplace_back("models", p.models);
    const std::string hash = stage_hash(chain, name, given, set);
    chain = hash;

    StageRecord sr;
    sr.name = name;
    const bool fresh = !p.force && !upstream_ran && up_to_date(p.out, st.info.outputs, hash, comm);
    if (fresh) {
      sr.skipped = true;
      say("== " + name + ": up to date, skipped (--force re-runs it)");
    } else {
      // An interrupted training run of the same configuration resumes from its checkpoint
      // when it left no model (a requeued job needs nothing more than the same command line).
      if (name == "train" && kinds.empty() && !p.force && !p.resume &&
          !exists_on_every_rank(path(p, "model.h5"), comm)) {
        const std::string ckpt = p.checkpoint ? *p.checkpoint : path(p, "model.h5") + ".ckpt.h5";
        if (exists_on_every_rank(ckpt, comm) && made_by(ckpt, comm) == hash) {
          set.emplace_back("resume", "");
          say("== train: resuming from " + ckpt);
        }
      }
      say("== " + name);
      // --previous is not part of the hash: with unchanged inputs the stage is skipped (the
      // ids it would keep are the ones it wrote); a forced re-run starts from the earlier
      // centroids, a fixed point, and keeps them too.
      if (name == "cluster" && !dbscan) {  // (DBSCAN has no centroids to start from)
        std::string why;
        const std::string previous = previous_segments(p, comm, why);
        if (!previous.empty()) set.emplace_back("previous", previous);
        if (!why.empty()) say(why);
      }
      watchdog::set_stage(name);  // names the stage in a stall message
      st.apply(set);
      h5::set_made_by(hash);
      reset_peak_rss();
      const auto t0 = std::chrono::steady_clock::now();
      const int rc =
          name == "train" && !kinds.empty() ? train_models(p, kinds, st, set, comm, say) : st.run();
      if (name == "train" && kinds.empty() && comm.is_root()) {
        std::error_code ec;
        fs::remove(path(p, "models.csv"), ec);  // a comparison of an earlier run
      }
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      h5::set_made_by("");
      if (rc != kExitOk) return rc;
      record_hash(p.out, st.info.outputs, hash, comm);
      sr.seconds = comm.allgatherv(std::vector<double>{secs});
      sr.peak_bytes = comm.allgatherv(std::vector<std::int64_t>{peak_rss_since_reset()});
      upstream_ran = true;
    }
    record.stages.push_back(sr);
    if (name == p.until) break;
  }
  if (p.plots) record.plots = draw_plots(p, comm);
  write_pipeline_report(record, comm);
  say("wrote " + (fs::path(p.out) / "report.md").string() + " and report.json");
  return kExitOk;
}

}  // namespace segrec::pipeline
