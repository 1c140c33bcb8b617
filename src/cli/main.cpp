// segrec <command> [options]: dispatch, option parsing, and the error policy.
//
// Error policy: an error raised identically on every rank (usage errors,
// checks agreed through Comm::check_all) is printed once by rank 0 and every
// rank exits with its code. Any other error is printed by the rank that hit it,
// its temporary outputs are removed, and the whole job is aborted with the code:
// a failure on one rank never leaves the others hanging.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include "command.hpp"
#include "segrec/core/env.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/memory_budget.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/core/tempfile.hpp"
#include "segrec/core/watchdog.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/pipeline/run.hpp"

namespace segrec::cli {
namespace {

std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

po::options_description common_options(CommonOptions& c) {
  po::options_description d("Common options");
  d.add_options()("help,h", "show this help and exit")(
      "config", po::value(&c.config),
      "INI file of options (key = value, long option names; [sections] are ignored); the command "
      "line overrides it; default: $SEGREC_CONFIG")(
      "seed", po::value(&c.seed)->default_value(c.seed),
      "seed for all randomness (results do not depend on the rank count)")(
      "verbose,v", po::bool_switch(&c.verbose),
      "print more detail: every PCA pass, K-means iteration and epoch, stage timings")(
      "quiet,q", po::bool_switch(&c.quiet), "print errors only (no progress, no summary)")(
      "progress-interval", po::value(&c.progress_interval)->default_value(c.progress_interval),
      "seconds between progress lines when stderr is not a terminal (batch logs)")(
      "log-json", po::value(&c.log_json),
      "append one JSON object per progress event to FILE (stage, step, metrics, elapsed_s, "
      "ranks)")(
      "stall-timeout", po::value(&c.stall_timeout)->default_value(c.stall_timeout),
      "end the job (exit 6) when a collective waits this many seconds (lost host); 0 = off")(
      "max-memory-per-rank", po::value(&c.max_memory_per_rank),
      "memory one rank may use, e.g. 8G: a stage whose estimate needs more (model and "
      "optimiser state, score blocks, the users' rows, an array read from a file) is refused "
      "before it allocates (default: physical memory)");
  return d;
}

// Printed at the end of every --help.
constexpr const char* kHelpEpilogue =
    "exit codes: 0 success, 1 other failure, 2 usage (bad option or value), 3 input data\n"
    "            (missing, unreadable or malformed), 4 I/O writing outputs (file system, HDF5,\n"
    "            MPI-IO), 5 interrupted after writing a checkpoint,\n"
    "            6 stalled (a collective waited --stall-timeout seconds: a lost host)\n"
    "environment: SEGREC_CONFIG (default --config), OMP_NUM_THREADS (threads per rank;\n"
    "            else SLURM_CPUS_PER_TASK, else 1), SLURM_JOB_ID (recorded in --log-json),\n"
    "            OPENBLAS_NUM_THREADS (BLAS threads per rank; default the threads per rank)\n";

void print_program_help(const Comm& comm) {
  if (!comm.is_root()) return;
  std::cout << "segrec " SEGREC_VERSION
               ": user segments and per-user recommendations from behaviour logs\n\n"
               "usage: [mpirun -n P] segrec <command> [options]\n"
               "       segrec <command> --help\n       segrec --version\n\ncommands:\n";
  for (const auto& c : all_commands())
    std::printf("  %-10s %s\n", c->name().c_str(), c->summary().c_str());
  std::cout << "\n" << kHelpEpilogue << std::flush;
}

// Every long option name of every command: a config file may carry options of
// other commands (one INI for the whole pipeline), but not unknown ones.
std::set<std::string> all_option_names() {
  std::set<std::string> names;
  CommonOptions c;
  const po::options_description common = common_options(c);
  for (const auto& o : common.options()) names.insert(o->long_name());
  for (const auto& cmd : all_commands()) {
    po::options_description d;
    cmd->add_options(d);
    for (const auto& o : d.options()) names.insert(o->long_name());
  }
  return names;
}

int run_command(Command& cmd, std::vector<std::string> args, const Comm& comm) {
  CommonOptions common;
  po::options_description own(cmd.name() + " options");
  cmd.add_options(own);
  po::options_description all;
  all.add(own).add(common_options(common));
  po::positional_options_description pos;
  for (const auto& p : cmd.positional()) pos.add(p.c_str(), 1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    std::string config = vm.count("config") ? vm["config"].as<std::string>() : "";
    if (config.empty() && std::getenv("SEGREC_CONFIG")) config = std::getenv("SEGREC_CONFIG");
    if (!config.empty()) {
      const auto known = all_option_names();
      std::ostringstream text;
      for (const auto& e : read_ini(config)) {
        if (!known.count(e.key))
          throw UsageError(config + ":" + std::to_string(e.line) + ": unknown option '" + e.key +
                           "'");
        if (all.find_nothrow(e.key, false)) text << e.key << "=" << e.value << "\n";
      }
      std::istringstream in(text.str());
      po::store(po::parse_config_file(in, all, false), vm);
    }
    if (vm.count("help")) {
      if (comm.is_root()) {
        std::cout << "usage: [mpirun -n P] segrec " << cmd.name() << " [options]\n\n"
                  << cmd.summary() << "\n";
        if (!cmd.usage().empty()) std::cout << "\n" << cmd.usage() << "\n";
        std::cout << "\n" << all << "\n" << kHelpEpilogue << std::flush;
      }
      return kExitOk;
    }
    po::notify(vm);
    if (!common.max_memory_per_rank.empty())
      set_memory_per_rank(parse_bytes(common.max_memory_per_rank, "max-memory-per-rank"));
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + " (see 'segrec " + cmd.name() + " --help')");
  }
  check_io_paths(cmd, vm);
  require(!(common.quiet && common.verbose), "quiet", "--verbose",
          "give at most one of --quiet and --verbose");
  require(common.progress_interval > 0, "progress-interval", common.progress_interval,
          "must be > 0 seconds");
  progress::Options po;
  po.verbosity = common.quiet     ? progress::Verbosity::kQuiet
                 : common.verbose ? progress::Verbosity::kVerbose
                                  : progress::Verbosity::kNormal;
  po.interval = common.progress_interval;
  po.json_path = common.log_json;
  po.root = comm.is_root();
  po.ranks = comm.size();
  po.threads = env::default_threads();
  po.command = cmd.name();
  po.job_id = env::job_id();
  std::string err;
  try {
    progress::configure(po);
  } catch (const Error& e) {
    err = e.what();
  }
  comm.check_all(err, kExitIo);

  const Context ctx{comm, common, vm};
  require(common.stall_timeout >= 0, "stall-timeout", common.stall_timeout, "must be >= 0");
  const watchdog::Scope stall_watch(comm, common.stall_timeout, cmd.name());
  const auto t0 = std::chrono::steady_clock::now();
  int rc = kExitOther;
  try {
    rc = cmd.run(ctx);
  } catch (const Error& e) {
    if (e.collective()) progress::finish(e.code(), recorded_outputs(), 0);
    throw;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto peak = comm.allreduce_value(pipeline::peak_rss_bytes(), Op::kMax);
  const double peak_mib = static_cast<double>(peak) / (1 << 20);
  std::vector<std::string> outputs;
  for (const auto& o : recorded_outputs())
    if (std::filesystem::exists(o)) outputs.push_back(o);
  if (!common.quiet && comm.is_root()) {
    progress::clear_line();
    // "wrote a.h5" or, for files of one directory, "wrote DIR/: a.h5, b.csv".
    std::string dir = outputs.size() > 1 ? std::filesystem::path(outputs[0]).parent_path().string()
                                         : std::string();
    for (const auto& o : outputs)
      if (std::filesystem::path(o).parent_path().string() != dir) dir.clear();
    std::string wrote;
    for (const auto& o : outputs) {
      wrote += wrote.empty() ? (dir.empty() ? "; wrote " : "; wrote " + dir + "/: ") : ", ";
      wrote += dir.empty() ? o : std::filesystem::path(o).filename().string();
    }
    const std::string job = po.job_id.empty() ? "" : " (job " + po.job_id + ")";
    std::printf(
        "segrec %s: done in %.2f s on %d rank(s)%s, peak memory %.1f MiB per rank (max)%s\n",
        cmd.name().c_str(), secs, comm.size(), job.c_str(), peak_mib, wrote.c_str());
    std::fflush(stdout);
  }
  progress::finish(rc, outputs, peak_mib);
  return rc;
}

int dispatch(int argc, char** argv, const Comm& comm) {
  std::string cmdline;
  for (int i = 0; i < argc; ++i) {
    if (i) cmdline += ' ';
    cmdline += argv[i];
  }
  h5::set_command_line(cmdline);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    print_program_help(comm);
    return args.empty() ? kExitUsage : kExitOk;
  }
  if (args[0] == "--version") {
    if (comm.is_root()) std::cout << "segrec " SEGREC_VERSION << std::endl;
    return kExitOk;
  }
  for (auto& c : all_commands())
    if (c->name() == args[0]) return run_command(*c, {args.begin() + 1, args.end()}, comm);
  throw UsageError("unknown command '" + args[0] + "' (see 'segrec --help')");
}

}  // namespace
}  // namespace segrec::cli

int main(int argc, char** argv) {
  using namespace segrec;
  MpiEnvironment env(&argc, &argv);
  int rank = 0, code = kExitOk;
  try {
    Comm world = Comm::world();
    rank = world.rank();
    code = cli::dispatch(argc, argv, world);
  } catch (const Error& e) {
    progress::clear_line();
    if (!e.collective()) {
      std::fprintf(stderr, "segrec: error (rank %d): %s\n", rank, cli::one_line(e.what()).c_str());
      std::fflush(stderr);
      remove_registered_temporaries();
      progress::finish(e.code(), {}, 0);  // closes the JSON log when this rank holds it
      MpiEnvironment::abort(e.code());
    }
    if (rank == 0) std::fprintf(stderr, "segrec: error: %s\n", cli::one_line(e.what()).c_str());
    code = e.code();
  } catch (const std::exception& e) {
    progress::clear_line();
    std::fprintf(stderr, "segrec: error (rank %d): %s\n", rank, cli::one_line(e.what()).c_str());
    std::fflush(stderr);
    remove_registered_temporaries();
    progress::finish(kExitOther, {}, 0);
    MpiEnvironment::abort(kExitOther);
  }
  return code;
}
