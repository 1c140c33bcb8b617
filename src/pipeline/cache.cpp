#include "segrec/pipeline/cache.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "segrec/core/random.hpp"
#include "segrec/core/tempfile.hpp"
#include "segrec/io/h5.hpp"

namespace segrec::pipeline {
namespace {

namespace fs = std::filesystem;

// Options that cannot change a stage's result.
const std::set<std::string> kNoEffect = {"threads",          "kernel",     "algorithm",
                                         "resume",           "checkpoint", "checkpoint-every",
                                         "stop-after-steps", "examples"};

std::string hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string path(const std::string& dir, const std::string& file) {
  return (fs::path(dir) / file).string();
}

bool is_h5(const std::string& file) { return fs::path(file).extension() == ".h5"; }

// Where the hash of a non-HDF5 output is recorded: DIR/.FILE.made_by.
std::string stamp(const std::string& dir, const std::string& file) {
  return path(dir, "." + file + ".made_by");
}

}  // namespace

bool no_effect(const std::string& option) { return kNoEffect.count(option) > 0; }

std::string event_chain(std::uint64_t seed, const std::vector<std::string>& events,
                        const Comm& comm) {
  std::string chain = "segrec-run-1\x1e";
  chain += std::to_string(seed);
  for (const auto& e : events) {
    struct stat st {};
    if (::stat(e.c_str(), &st) != 0) st = {};  // checked before; vanished since: re-run
    for (const std::string& part :
         {fs::absolute(e).string(), std::to_string(st.st_size), std::to_string(st.st_mtim.tv_sec),
          std::to_string(st.st_mtim.tv_nsec)})
      chain.append("\x1e").append(part);
  }
  comm.broadcast(chain);  // rank 0's view of the files: every rank takes the same decisions
  return chain;
}

std::string stage_hash(const std::string& chain, const std::string& stage,
                       const std::vector<Option>& given, const std::vector<Option>& set) {
  std::string text = chain;
  text.append("\x1e").append(stage);
  for (const auto& [n, v] : given)
    if (!no_effect(n)) text.append("\x1e").append(n).append("=").append(v);
  for (const auto& [k, v] : set)
    if (k == "k" || k == "silhouette-sample") text.append("\x1e").append(k).append("=").append(v);
  return hex(rng::fnv1a(text));
}

std::string made_by(const std::string& path, const Comm& comm) {
  const h5::File f = h5::File::open_any(path, comm);
  return f.has_attr("/", "made_by") ? f.attr_string("/", "made_by") : "";
}

bool up_to_date(const std::string& dir, const std::vector<std::string>& outputs,
                const std::string& hash, const Comm& comm) {
  int missing = 0;
  if (comm.is_root())
    for (const auto& o : outputs)
      if (!fs::exists(path(dir, o))) missing = 1;
  if (comm.allreduce_value(missing, Op::kMax)) return false;
  const std::string& first = outputs.front();
  if (is_h5(first)) return made_by(path(dir, first), comm) == hash;
  std::string recorded;
  if (comm.is_root()) {
    std::ifstream in(stamp(dir, first));
    std::getline(in, recorded);
  }
  comm.broadcast(recorded);
  return recorded == hash;
}

void record_hash(const std::string& dir, const std::vector<std::string>& outputs,
                 const std::string& hash, const Comm& comm) {
  if (!is_h5(outputs.front()) && comm.is_root())
    write_file_atomically(stamp(dir, outputs.front()), hash + "\n");
}

}  // namespace segrec::pipeline
