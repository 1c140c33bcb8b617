// Output paths checked against the inputs before any work: a stage never overwrites one of
// its own inputs (compared by device and inode, so a symbolic or hard link counts), and a
// file output never names an existing directory.
#include <sys/stat.h>

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "command.hpp"
#include "segrec/core/error.hpp"

namespace segrec::cli {
namespace {

// Options that name files a command reads, and files it writes (by option name; "events"
// and "foldin" are repeatable). A value that names no file (an id list) is skipped.
constexpr const char* kInputOptions[] = {
    "events",    "data",        "profiles",        "projection",
    "segments",  "model",       "exclude",         "foldin",
    "test",      "config",      "items",           "items-file",
    "item-info", "query-users", "item-categories", "report-item-info"};
// Inputs that may be the file --out names (and no other output): read completely before the
// output's temporary replaces it (cluster --previous: ids follow the segments.h5 rewritten).
constexpr const char* kReadBeforeOut[] = {"previous"};
constexpr const char* kOutputOptions[] = {"out", "checkpoint", "json", "log-json"};

std::vector<std::pair<std::string, std::string>> paths_of(const po::variables_map& vm,
                                                          const char* option) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!vm.count(option)) return out;
  const po::variable_value& v = vm[option];
  if (const auto* one = boost::any_cast<std::string>(&v.value())) {
    if (!one->empty()) out.emplace_back(option, *one);
  } else if (const auto* many = boost::any_cast<std::vector<std::string>>(&v.value())) {
    for (const auto& s : *many)
      if (!s.empty()) out.emplace_back(option, s);
  }
  return out;
}

}  // namespace

void check_io_paths(const Command& cmd, const po::variables_map& vm) {
  std::vector<std::pair<std::string, std::string>> inputs;
  for (const char* o : kInputOptions)
    for (auto& p : paths_of(vm, o)) inputs.push_back(std::move(p));
  for (const char* o : kReadBeforeOut)
    for (auto& p : paths_of(vm, o)) inputs.push_back(std::move(p));
  for (const char* o : kOutputOptions) {
    for (const auto& [option, path] : paths_of(vm, o)) {
      struct stat out {};
      if (::stat(path.c_str(), &out) != 0) continue;  // not there yet: cannot be an input
      const bool dir_out = option == "out" && cmd.out_is_directory();
      if (S_ISDIR(out.st_mode) && !dir_out)
        throw UsageError("--" + option + " '" + path + "' is a directory; give a file name");
      if (!S_ISDIR(out.st_mode) && dir_out)
        throw UsageError("--" + option + " '" + path + "' exists and is not a directory");
      for (const auto& [in_option, in_path] : inputs) {
        struct stat in {};
        const bool allowed =
            option == "out" && std::find(std::begin(kReadBeforeOut), std::end(kReadBeforeOut),
                                         in_option) != std::end(kReadBeforeOut);
        if (allowed) continue;
        if (::stat(in_path.c_str(), &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino)
          throw UsageError("--" + option + " '" + path + "' is the input --" + in_option + " '" +
                           in_path + "'; refusing to overwrite an input");
      }
    }
  }
}

}  // namespace segrec::cli
