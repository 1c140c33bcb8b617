#include "segrec/core/tempfile.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>

#include "segrec/core/error.hpp"

namespace segrec {

namespace {
std::mutex g_mutex;
std::set<std::string>& registry() {
  static std::set<std::string> s;
  return s;
}
std::atomic<int> g_counter{0};
std::vector<std::string>& outputs() {
  static std::vector<std::string> v;
  return v;
}
}  // namespace

std::string temporary_name(const std::string& path) {
  return path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(g_counter++);
}

void register_temporary(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  registry().insert(path);
}

void unregister_temporary(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  registry().erase(path);
}

void record_output(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& v = outputs();
  if (std::find(v.begin(), v.end(), path) == v.end()) v.push_back(path);
}

std::vector<std::string> recorded_outputs() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return outputs();
}

void remove_registered_temporaries() noexcept {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (const auto& p : registry()) ::unlink(p.c_str());
  registry().clear();
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = temporary_name(path);
  register_temporary(tmp);
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  const bool ok = static_cast<bool>(out);
  out.close();
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    unregister_temporary(tmp);
    throw IoError("cannot write '" + path + "'");
  }
  unregister_temporary(tmp);
  record_output(path);
}

}  // namespace segrec
