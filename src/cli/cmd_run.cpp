// segrec run: the whole pipeline in one job, stage after stage in this process:
// ingest -> profile -> project -> cluster -> train (-> recommend).
//
// Every stage is the command of the same name: `run` accepts the options of all of
// them (one INI for the whole pipeline), wires the files together under --out DIR,
// and calls each command in turn. A stage whose inputs and options have not
// changed since its outputs were written is skipped: each HDF5 output records in
// its "made_by" attribute a hash of the options of its stage and of every stage
// before it, and of the event files (path, size, modification time).
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "command.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/random.hpp"
#include "segrec/core/tempfile.hpp"
#include "segrec/core/watchdog.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/pipeline/pipeline_report.hpp"

namespace segrec::cli {
namespace {

namespace fs = std::filesystem;

// Options `run` sets itself for each stage (files, and what it sizes from the data).
const std::set<std::string> kManaged = {"events",     "out",      "data",         "profiles",
                                        "projection", "segments", "segments-csv", "report",
                                        "model",      "k"};
// Options that cannot change a stage's result (left out of the stage hash).
const std::set<std::string> kNoEffect = {"threads",          "kernel",     "algorithm",
                                         "resume",           "checkpoint", "checkpoint-every",
                                         "stop-after-steps", "examples"};

using rng::fnv1a;

std::string hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Text of a parsed option value, for the stage hash.
std::string value_text(const po::variable_value& v) {
  const boost::any& a = v.value();
  if (a.empty()) return "";
  if (const auto* s = boost::any_cast<std::string>(&a)) return *s;
  if (const auto* b = boost::any_cast<bool>(&a)) return *b ? "1" : "0";
  if (const auto* i = boost::any_cast<std::int64_t>(&a)) return std::to_string(*i);
  if (const auto* u = boost::any_cast<std::uint64_t>(&a)) return std::to_string(*u);
  if (const auto* n = boost::any_cast<int>(&a)) return std::to_string(*n);
  if (const auto* d = boost::any_cast<double>(&a)) {
    std::ostringstream os;
    os.precision(17);
    os << *d;
    return os.str();
  }
  if (const auto* vs = boost::any_cast<std::vector<std::string>>(&a)) {
    std::string out;
    for (const auto& x : *vs) out += x + "\x1f";
    return out;
  }
  return std::string("?") + a.type().name();
}

std::string made_by(const std::string& path, const Comm& comm) {
  const h5::File f = h5::File::open_any(path, comm);
  return f.has_attr("/", "made_by") ? f.attr_string("/", "made_by") : "";
}

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

/// One stage of the pipeline: its command and its options split in two.
struct Stage {
  std::unique_ptr<Command> cmd;
  po::options_description own;                           // every option of the command
  std::vector<std::string> passed;                       // options `run` passes through
  std::vector<std::string> outputs;                      // files it writes (relative to DIR)
  std::vector<std::pair<std::string, std::string>> set;  // options `run` sets for it
};

class RunCommand final : public Command {
 public:
  RunCommand() {
    add("ingest", make_ingest(), {"dataset.h5"});
    add("profile", make_profile(), {"profiles.h5"});
    add("project", make_project(), {"projection.h5"});
    add("cluster", make_cluster(), {"segments.h5", "segments.csv", "segments.md", "segments.json"});
    add("train", make_train(), {"model.h5"});
    add("recommend", make_recommend(), {"recommendations.csv"});
  }

  std::string name() const override { return "run"; }
  std::string summary() const override {
    return "the whole pipeline: ingest, profile, project, cluster, train, recommend, with a "
           "report";
  }
  std::string usage() const override {
    return "examples:\n"
           "  mpirun -n 4 segrec run --events events.csv --out run1\n"
           "  mpirun -n 4 segrec run --events u.data --format movielens --min-value 4 --k 8 \\\n"
           "                         --epochs 50 --out ml100k\n"
           "  segrec run --config pipeline.ini        # any option of any stage, one INI\n"
           "Every option of ingest, profile, project, cluster, train and recommend is accepted\n"
           "(the file options are set by run). Outputs in --out: dataset.h5, profiles.h5,\n"
           "projection.h5, segments.h5, segments.csv, segments.md, segments.json, model.h5,\n"
           "recommendations.csv, report.json, report.md (and plots/*.png with --plots).\n"
           "Stages whose inputs and options are unchanged are skipped (--force).\n"
           "Defaults sized from the data (when not given): --k auto sweeps 2..K_MAX with\n"
           "K_MAX = clamp(sqrt(users / 10), 4, 20) (step 2 above 10) and picks by silhouette;\n"
           "the silhouette sample shrinks to 2000 users above 10^6 users.";
  }

  void add_options(po::options_description& d) override {
    d.add_options()("events", po::value(&events_)->composing()->multitoken(),
                    "input event files (CSV/TSV/MovieLens; repeatable), as for ingest")(
        "out", po::value(&out_), "output directory (created)")(
        "k", po::value(&k_)->default_value(k_),
        "segments: K, a sweep FROM:TO[:STEP], or auto (a sweep sized from the users)")(
        "force", po::bool_switch(&force_), "re-run every stage, even when up to date")(
        "until", po::value(&until_)->default_value(until_),
        "last stage to run: ingest, profile, project, cluster, train or recommend")(
        "plots", po::bool_switch(&plots_),
        "also draw the run's pictures into DIR/plots (scripts/plot_report.py; needs "
        "python3-matplotlib and python3-h5py)");
    std::set<std::string> seen;
    for (const auto& o : d.options()) seen.insert(o->long_name());
    for (const auto& name : order_) {
      Stage& st = stages_.at(name);
      po::options_description pass(name + " options (as in 'segrec " + name + "')");
      for (const auto& o : st.own.options()) {
        const std::string& n = o->long_name();
        if (kManaged.count(n)) continue;
        st.passed.push_back(n);
        if (seen.insert(n).second) pass.add(o);
      }
      d.add(pass);
    }
  }

  int run(const Context& ctx) override {
    require(!events_.empty(), "events", "", "give at least one event file");
    require(!out_.empty(), "out", "", "give the output directory");
    require(std::any_of(order_.begin(), order_.end(), [&](const auto& s) { return s == until_; }),
            "until", until_, "must be one of ingest, profile, project, cluster, train, recommend");
    const Comm& comm = ctx.comm;
    std::string missing;
    for (const auto& e : events_)
      if (missing.empty() && !fs::is_regular_file(e)) missing = "events: cannot read '" + e + "'";
    comm.check_all(missing, kExitUsage);
    // Every stage's options are checked before the first stage starts.
    for (const auto& name : order_) {
      Stage& st = stages_.at(name);
      st.set = files_for(name, ctx, /*users=*/-1);
      apply(st);
      st.cmd->check(ctx);
    }
    std::string err;
    if (comm.is_root()) {
      std::error_code ec;
      fs::create_directories(out_, ec);
      if (ec) err = "cannot create the output directory '" + out_ + "': " + ec.message();
    }
    comm.check_all(err, kExitIo);

    // Hash chain: the event files, then every stage's options on top of its input's hash.
    std::string chain = "segrec-run-1\x1e";
    chain += std::to_string(ctx.common.seed);
    for (const auto& e : events_) {
      struct stat st {};
      if (::stat(e.c_str(), &st) != 0) st = {};  // checked above; vanished since: re-run
      for (const std::string& part :
           {fs::absolute(e).string(), std::to_string(st.st_size), std::to_string(st.st_mtim.tv_sec),
            std::to_string(st.st_mtim.tv_nsec)})
        chain.append("\x1e").append(part);
    }
    comm.broadcast(chain);  // rank 0's view of the files: every rank takes the same decisions

    PipelineRecord record;
    record.out_dir = out_;
    record.ranks = comm.size();
    bool upstream_ran = false;
    for (const auto& name : order_) {
      Stage& st = stages_.at(name);
      st.set = files_for(name, ctx, name == "cluster" ? data_users(comm) : -1);
      std::string text = chain;
      text.append("\x1e").append(name);
      for (const auto& n : st.passed)
        if (!kNoEffect.count(n) && ctx.vm.count(n))
          text.append("\x1e").append(n).append("=").append(value_text(ctx.vm[n]));
      for (const auto& [k, v] : st.set)
        if (k == "k" || k == "silhouette-sample")
          text.append("\x1e").append(k).append("=").append(v);
      const std::string hash = hex(fnv1a(text));
      chain = hash;

      StageRecord sr;
      sr.name = name;
      const bool fresh = !force_ && !upstream_ran && up_to_date(st, hash, comm);
      if (fresh) {
        sr.skipped = true;
        ctx.say("== " + name + ": up to date, skipped (--force re-runs it)");
      } else {
        // An interrupted training run of the same configuration resumes from its checkpoint
        // when it left no model (a requeued job needs nothing more than the same command line).
        if (name == "train" && !force_ && !ctx.vm["resume"].as<bool>() &&
            !exists_on_every_rank(path("model.h5"), comm)) {
          const std::string ckpt = ctx.vm.count("checkpoint")
                                       ? ctx.vm["checkpoint"].as<std::string>()
                                       : path("model.h5") + ".ckpt.h5";
          if (exists_on_every_rank(ckpt, comm) && made_by(ckpt, comm) == hash) {
            st.set.emplace_back("resume", "");
            ctx.say("== train: resuming from " + ckpt);
          }
        }
        ctx.say("== " + name);
        watchdog::set_stage(name);  // names the stage in a stall message
        apply(st);
        h5::set_made_by(hash);
        reset_peak_rss();
        const auto t0 = std::chrono::steady_clock::now();
        const int rc = st.cmd->run(ctx);
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        h5::set_made_by("");
        if (rc != kExitOk) return rc;
        if (!is_h5(st.outputs.front()) && comm.is_root())
          write_file_atomically(stamp(st.outputs.front()), hash + "\n");
        sr.seconds = comm.allgatherv(std::vector<double>{secs});
        sr.peak_bytes = comm.allgatherv(std::vector<std::int64_t>{peak_rss_since_reset()});
        upstream_ran = true;
      }
      record.stages.push_back(sr);
      if (name == until_) break;
    }
    if (plots_) record.plots = draw_plots(ctx);
    write_pipeline_report(record, comm);
    ctx.say("wrote " + (fs::path(out_) / "report.md").string() + " and report.json");
    return kExitOk;
  }

 private:
  void add(const std::string& name, std::unique_ptr<Command> cmd,
           std::vector<std::string> outputs) {
    Stage st;
    st.cmd = std::move(cmd);
    st.cmd->add_options(st.own);
    st.outputs = std::move(outputs);
    order_.push_back(name);
    stages_.emplace(name, std::move(st));
  }

  std::string path(const std::string& file) const { return (fs::path(out_) / file).string(); }

  // Users in the data set (after ingest), for the defaults sized from the data.
  std::int64_t data_users(const Comm& comm) const {
    const h5::File f = h5::File::open_any(path("dataset.h5"), comm);
    return f.attr_int("/", "n_users");
  }

  // The options `run` sets for a stage; `users` (-1: not known yet) sizes --k auto.
  std::vector<std::pair<std::string, std::string>> files_for(const std::string& name,
                                                             const Context& ctx,
                                                             std::int64_t users) const {
    std::vector<std::pair<std::string, std::string>> s;
    if (name == "ingest") {
      for (const auto& e : events_) s.emplace_back("events", e);
      s.emplace_back("out", path("dataset.h5"));
    } else if (name == "profile") {
      s = {{"data", path("dataset.h5")}, {"out", path("profiles.h5")}};
    } else if (name == "project") {
      s = {{"profiles", path("profiles.h5")}, {"out", path("projection.h5")}};
    } else if (name == "cluster") {
      s = {{"projection", path("projection.h5")},
           {"out", path("segments.h5")},
           {"data", path("dataset.h5")},
           {"profiles", path("profiles.h5")}};
      s.emplace_back("k", k_ != "auto" ? k_ : users < 0 ? "2" : auto_k(users));
      if (ctx.vm["silhouette-sample"].defaulted() && users > 1000000)
        s.emplace_back("silhouette-sample", "2000");
    } else if (name == "train") {
      s = {{"data", path("dataset.h5")},
           {"projection", path("projection.h5")},
           {"segments", path("segments.h5")},
           {"profiles", path("profiles.h5")},  // the serving bundle
           {"out", path("model.h5")}};
    } else if (name == "recommend") {
      s = {{"model", path("model.h5")},
           {"data", path("dataset.h5")},
           {"projection", path("projection.h5")},
           {"segments", path("segments.h5")},
           {"out", path("recommendations.csv")}};
    }
    return s;
  }

  // --k auto: a sweep from 2 to clamp(sqrt(users / 10), 4, 20), step 2 above 10.
  static std::string auto_k(std::int64_t users) {
    const auto top = std::clamp<std::int64_t>(
        static_cast<std::int64_t>(std::sqrt(static_cast<double>(users) / 10.0)), 4, 20);
    return "2:" + std::to_string(top) + (top > 10 ? ":2" : "");
  }

  // Parses the options `run` sets for a stage into that stage's parameter struct.
  static void apply(Stage& st) {
    std::vector<std::string> args;
    po::options_description d;
    std::set<std::string> added;
    for (const auto& [k, v] : st.set) {
      args.push_back("--" + k);
      if (!v.empty()) args.push_back(v);  // "" = a switch
      if (added.insert(k).second)
        for (const auto& o : st.own.options())
          if (o->long_name() == k) d.add(o);
    }
    po::variables_map vm;
    po::store(po::command_line_parser(args).options(d).run(), vm);
    po::notify(vm);
  }

  bool up_to_date(const Stage& st, const std::string& hash, const Comm& comm) const {
    int missing = 0;
    if (comm.is_root())
      for (const auto& o : st.outputs)
        if (!fs::exists(path(o))) missing = 1;
    if (comm.allreduce_value(missing, Op::kMax)) return false;
    const std::string& first = st.outputs.front();
    if (is_h5(first)) return made_by(path(first), comm) == hash;
    std::string recorded;
    if (comm.is_root()) {
      std::ifstream in(stamp(first));
      std::getline(in, recorded);
    }
    comm.broadcast(recorded);
    return recorded == hash;
  }

  static bool is_h5(const std::string& file) { return fs::path(file).extension() == ".h5"; }
  // Where the hash of a non-HDF5 output is recorded: DIR/.FILE.made_by.
  std::string stamp(const std::string& file) const { return path("." + file + ".made_by"); }

  // Runs scripts/plot_report.py on DIR (rank 0); returns the pictures written.
  std::vector<std::string> draw_plots(const Context& ctx) const {
    std::vector<std::string> pngs;
    std::string note;
    if (ctx.comm.is_root()) {
      const std::string script = find_plot_script();
      if (script.empty()) {
        note =
            "--plots: scripts/plot_report.py not found next to the executable "
            "(set SEGREC_PLOT_SCRIPT)";
      } else {
        // The system interpreter (Debian's matplotlib and h5py), not one first on PATH.
        const std::string py = fs::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        const std::string cmd = py + " '" + script + "' '" + out_ + "'" +
                                (ctx.common.verbose ? "" : " >/dev/null 2>&1");
        const int rc = std::system(cmd.c_str());
        const int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
        if (code == 1)
          note = "--plots: no pictures, python3-matplotlib or python3-h5py is not installed";
        else if (code != 0)
          note = "--plots: plot_report.py failed (exit " + std::to_string(code) + "; -v shows why)";
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(fs::path(out_) / "plots", ec))
          if (e.path().extension() == ".png") pngs.push_back(e.path().filename().string());
        std::sort(pngs.begin(), pngs.end());
      }
      if (!note.empty()) std::fprintf(stderr, "segrec: warning: %s\n", note.c_str());
    }
    std::string joined;
    for (const auto& p : pngs) joined += p + "\n";
    ctx.comm.broadcast(joined);
    pngs.clear();
    std::istringstream in(joined);
    for (std::string line; std::getline(in, line);) pngs.push_back(line);
    return pngs;
  }

  // $SEGREC_PLOT_SCRIPT, else beside the executable: ../scripts (build tree) or
  // ../share/segrec/scripts (installed).
  static std::string find_plot_script() {
    if (const char* env = std::getenv("SEGREC_PLOT_SCRIPT")) return env;
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return "";
    for (const fs::path& rel : {fs::path("../scripts/plot_report.py"),
                                fs::path("../share/segrec/scripts/plot_report.py")}) {
      const fs::path p = exe.parent_path() / rel;
      if (fs::exists(p)) return fs::weakly_canonical(p).string();
    }
    return "";
  }

  std::vector<std::string> events_;
  std::string out_;
  std::string k_ = "auto";
  std::string until_ = "recommend";
  bool force_ = false;
  bool plots_ = false;
  std::vector<std::string> order_;
  std::map<std::string, Stage> stages_;
};

}  // namespace

std::unique_ptr<Command> make_run() { return std::make_unique<RunCommand>(); }

}  // namespace segrec::cli
