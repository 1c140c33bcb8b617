#include "segrec/core/dir_lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <sstream>

#include "segrec/core/env.hpp"
#include "segrec/core/error.hpp"

namespace segrec {
namespace {

std::string host_name() {
  char h[256] = {};
  if (::gethostname(h, sizeof h - 1) != 0) return "?";
  return h;
}

std::string read_all(int fd) {
  std::string s;
  char buf[512];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n <= 0) break;
    s.append(buf, static_cast<std::size_t>(n));
    at += n;
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

// "host H, pid P, job J, since T" of a holder line "H P J T" ("-" for no job).
std::string describe(const std::string& line) {
  std::istringstream in(line);
  std::string host, pid, job, since;
  in >> host >> pid >> job >> since;
  std::string s = "host " + host + ", pid " + pid;
  if (!job.empty() && job != "-") s += ", job " + job;
  if (!since.empty()) s += ", since " + since;
  return s;
}

bool holder_gone_here(const std::string& line) {
  std::istringstream in(line);
  std::string host;
  long pid = 0;
  in >> host >> pid;
  return host == host_name() && pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 &&
         errno == ESRCH;
}

}  // namespace

DirLock::DirLock(const std::string& dir) : path_(dir + "/" + kFileName) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw IoError("cannot create the lock '" + path_ + "': " + std::strerror(errno));
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  const int rc = ::fcntl(fd_, F_SETLK, &fl);
  const int why = errno;
  const std::string holder = read_all(fd_);
  const bool no_locks = rc != 0 && (why == ENOLCK || why == EOPNOTSUPP || why == ENOSYS);
  if ((rc != 0 && !no_locks) || (no_locks && !holder.empty() && !holder_gone_here(holder))) {
    ::close(fd_);
    fd_ = -1;
    std::string msg = "'" + dir + "' is in use by another segrec job (" +
                      (holder.empty() ? std::string("holder unknown") : describe(holder)) +
                      "); wait for it to end or give another --out";
    if (no_locks) msg += " (this file system has no locks: remove '" + path_ + "' if it is stale)";
    throw UsageError(msg);
  }
  stale_ = holder.empty() ? "" : describe(holder);
  const std::string job = env::job_id();
  char since[32] = {};
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  std::strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
  const std::string line = host_name() + " " + std::to_string(::getpid()) + " " +
                           (job.empty() ? "-" : job) + " " + since + "\n";
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size())) {
    const std::string err = std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    throw IoError("cannot write the lock '" + path_ + "': " + err);
  }
}

DirLock::~DirLock() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still holding the lock
  ::close(fd_);
}

}  // namespace segrec
