// segrec run: the whole pipeline in one job, stage after stage in this process:
// ingest -> profile -> project -> cluster -> train (-> recommend).
//
// Every stage is the command of the same name: `run` accepts the options of all of
// them (one INI for the whole pipeline) and hands each command to the stage runner
// (pipeline/run.hpp), which wires the files together under --out DIR, skips the stages
// that are up to date (pipeline/cache.hpp) and writes the report.
#include <map>
#include <set>
#include <sstream>

#include "command.hpp"
#include "segrec/pipeline/run.hpp"

namespace segrec::cli {
namespace {

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

std::unique_ptr<Command> make_stage(const std::string& name) {
  if (name == "ingest") return make_ingest();
  if (name == "profile") return make_profile();
  if (name == "project") return make_project();
  if (name == "cluster") return make_cluster();
  if (name == "train") return make_train();
  return make_recommend();
}

/// One stage's command and its options split in two.
struct Stage {
  std::unique_ptr<Command> cmd;
  po::options_description own;      // every option of the command
  std::vector<std::string> passed;  // options `run` passes through
};

class RunCommand final : public Command {
 public:
  RunCommand() {
    for (const auto& info : pipeline::stages()) {
      Stage& st = stages_[info.name];
      st.cmd = make_stage(info.name);
      st.cmd->add_options(st.own);
    }
  }

  std::string name() const override { return "run"; }
  bool out_is_directory() const override { return true; }
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
           "recommendations.csv, report.json, report.md (and plots/*.png with --plots;\n"
           "model-KIND.h5 and models.csv with --models).\n"
           "Stages whose inputs and options are unchanged are skipped (--force).\n"
           "Defaults sized from the data (when not given): --k auto sweeps 2..K_MAX with\n"
           "K_MAX = clamp(sqrt(users / 10), 4, 20) (step 2 above 10) and picks k by the gap knee\n"
           "(the silhouette for tied segments), as cluster --pick auto; the silhouette sample\n"
           "shrinks to 2000 users above 10^6 users.";
  }

  void add_options(po::options_description& d) override {
    d.add_options()("events", po::value(&p_.events)->composing()->multitoken(),
                    "input event files (CSV/TSV/MovieLens; repeatable), as for ingest")(
        "out", po::value(&p_.out), "output directory (created)")(
        "k", po::value(&p_.k)->default_value(p_.k),
        "segments: K, a sweep FROM:TO[:STEP], or auto (a sweep sized from the users)")(
        "force", po::bool_switch(&p_.force), "re-run every stage, even when up to date")(
        "until", po::value(&p_.until)->default_value(p_.until),
        "last stage to run: ingest, profile, project, cluster, train or recommend")(
        "models", po::value(&p_.models),
        "train these model kinds (comma list of mlp, ease, popularity, sequence) into "
        "DIR/model-KIND.h5 and keep the best on validation NDCG as DIR/model.h5 (default: "
        "--model-kind alone)")(
        "plots", po::bool_switch(&p_.plots),
        "also draw the run's pictures into DIR/plots (scripts/plot_report.py; needs "
        "python3-matplotlib and python3-h5py)");
    std::set<std::string> seen;
    for (const auto& o : d.options()) seen.insert(o->long_name());
    for (const auto& info : pipeline::stages()) {
      Stage& st = stages_.at(info.name);
      po::options_description pass(info.name + " options (as in 'segrec " + info.name + "')");
      for (const auto& o : st.own.options()) {
        const std::string& n = o->long_name();
        if (pipeline::managed(n)) continue;
        st.passed.push_back(n);
        if (seen.insert(n).second) pass.add(o);
      }
      d.add(pass);
    }
  }

  int run(const Context& ctx) override {
    pipeline::RunParams p = p_;
    p.seed = ctx.common.seed;
    p.verbose = ctx.common.verbose;
    p.silhouette_sample_defaulted = ctx.vm["silhouette-sample"].defaulted();
    p.resume = ctx.vm["resume"].as<bool>();
    if (ctx.vm.count("checkpoint")) p.checkpoint = ctx.vm["checkpoint"].as<std::string>();
    std::vector<pipeline::Stage> stages;
    for (const auto& info : pipeline::stages()) {
      Stage& st = stages_.at(info.name);
      pipeline::Stage& ps = stages.emplace_back();
      ps.info = info;
      for (const auto& n : st.passed)
        if (ctx.vm.count(n)) ps.given.emplace_back(n, value_text(ctx.vm[n]));
      ps.apply = [&st](const std::vector<pipeline::Option>& set) { apply(st, set); };
      ps.check = [&st, &ctx] { st.cmd->check(ctx); };
      ps.run = [&st, &ctx] { return st.cmd->run(ctx); };
    }
    return pipeline::run(p, stages, ctx.comm, [&ctx](const std::string& s) { ctx.say(s); });
  }

 private:
  // Parses the options `run` sets for a stage into that stage's parameter struct.
  static void apply(const Stage& st, const std::vector<pipeline::Option>& set) {
    std::vector<std::string> args;
    po::options_description d;
    std::set<std::string> added;
    for (const auto& [k, v] : set) {
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

  pipeline::RunParams p_;
  std::map<std::string, Stage> stages_;
};

}  // namespace

std::unique_ptr<Command> make_run() { return std::make_unique<RunCommand>(); }

}  // namespace segrec::cli
