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
#include <iostream>
#include <set>
#include <sstream>

#include "command.hpp"
#include "segrec/error.hpp"
#include "segrec/h5.hpp"
#include "segrec/params.hpp"
#include "segrec/tempfile.hpp"

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
      "verbose,v", po::bool_switch(&c.verbose), "print more detail")(
      "quiet,q", po::bool_switch(&c.quiet), "print errors only")(
      "max-memory-per-rank", po::value(&c.max_memory_per_rank),
      "refuse to read an array from a file that needs more than this on one rank, e.g. 8G "
      "(default: physical memory)");
  return d;
}

void print_program_help(const Comm& comm) {
  if (!comm.is_root()) return;
  std::cout << "segrec " SEGREC_VERSION
               ": user segments and per-user recommendations from behaviour logs\n\n"
               "usage: [mpirun -n P] segrec <command> [options]\n"
               "       segrec <command> --help\n       segrec --version\n\ncommands:\n";
  for (const auto& c : all_commands())
    std::printf("  %-10s %s\n", c->name().c_str(), c->summary().c_str());
  std::cout << std::flush;
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
        std::cout << "\n" << all << std::flush;
      }
      return kExitOk;
    }
    po::notify(vm);
    if (!common.max_memory_per_rank.empty())
      h5::set_memory_budget(parse_bytes(common.max_memory_per_rank, "max-memory-per-rank"));
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + " (see 'segrec " + cmd.name() + " --help')");
  }
  const Context ctx{comm, common, vm};
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = cmd.run(ctx);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto peak = comm.allreduce_value(peak_rss_bytes(), Op::kMax);
  if (!common.quiet && comm.is_root())
    std::printf("segrec %s: done in %.2f s on %d rank(s), peak memory %.1f MiB per rank (max)\n",
                cmd.name().c_str(), secs, comm.size(), static_cast<double>(peak) / (1 << 20));
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
    if (!e.collective()) {
      std::fprintf(stderr, "segrec: error (rank %d): %s\n", rank, cli::one_line(e.what()).c_str());
      std::fflush(stderr);
      remove_registered_temporaries();
      MpiEnvironment::abort(e.code());
    }
    if (rank == 0) std::fprintf(stderr, "segrec: error: %s\n", cli::one_line(e.what()).c_str());
    code = e.code();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "segrec: error (rank %d): %s\n", rank, cli::one_line(e.what()).c_str());
    std::fflush(stderr);
    remove_registered_temporaries();
    MpiEnvironment::abort(kExitOther);
  }
  return code;
}
