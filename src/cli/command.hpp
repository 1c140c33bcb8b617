// The thin CLI layer: one Command per `segrec <command>`, each in its own
// cmd_*.cpp. A command binds Boost.Program_options to its stage's parameter
// struct, validates it in one place, and calls the stage.
#pragma once

#include <boost/program_options.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec::cli {

namespace po = boost::program_options;

/// Options every command accepts.
struct CommonOptions {
  std::uint64_t seed = 42;        ///< --seed: keys all randomness (with global user/item indices)
  bool verbose = false;           ///< --verbose
  bool quiet = false;             ///< --quiet
  std::string config;             ///< --config FILE.ini
  double progress_interval = 10;  ///< --progress-interval: seconds between progress lines in logs
  std::string log_json;           ///< --log-json FILE: one JSON object per progress event
  /// --stall-timeout: seconds a collective may wait before the job ends (0 = off)
  double stall_timeout = 300;

  /// --max-memory-per-rank: the memory one rank may use, e.g. "8G" (core/memory_budget.hpp).
  std::string max_memory_per_rank;
};

struct Context {
  const Comm& comm;
  const CommonOptions& common;
  const po::variables_map& vm;
  /// Prints on rank 0 unless --quiet.
  void say(const std::string& text) const;
};

class Command {
 public:
  virtual ~Command() = default;
  virtual std::string name() const = 0;
  virtual std::string summary() const = 0;
  /// Extra lines for --help (usage examples).
  virtual std::string usage() const { return ""; }
  /// Declares the options, bound to the command's parameter struct.
  virtual void add_options(po::options_description& opts) = 0;
  /// Names of options taken positionally, in order (e.g. "file").
  virtual std::vector<std::string> positional() const { return {}; }
  /// Validates the parameters without running (throws UsageError naming the option).
  virtual void check(const Context& ctx) { (void)ctx; }
  /// --out names a directory (run, split) rather than a file.
  virtual bool out_is_directory() const { return false; }
  /// Validates parameters (check) and runs; returns the exit code.
  virtual int run(const Context& ctx) = 0;
};

std::unique_ptr<Command> make_generate();
std::unique_ptr<Command> make_ingest();
std::unique_ptr<Command> make_inspect();
std::unique_ptr<Command> make_train();
std::unique_ptr<Command> make_info();
std::unique_ptr<Command> make_profile();
std::unique_ptr<Command> make_project();
std::unique_ptr<Command> make_cluster();
std::unique_ptr<Command> make_recommend();
std::unique_ptr<Command> make_audience();
std::unique_ptr<Command> make_similar();
std::unique_ptr<Command> make_split();
std::unique_ptr<Command> make_evaluate();
std::unique_ptr<Command> make_run();

/// Throws UsageError before any work when an output option (--out, --checkpoint, --json,
/// --log-json) names the same file as an input option (device and inode), or --out names an
/// existing directory for a file output (or an existing file for a directory output).
void check_io_paths(const Command& cmd, const po::variables_map& vm);

/// Every command, in the order --help lists them.
std::vector<std::unique_ptr<Command>> all_commands();

}  // namespace segrec::cli
