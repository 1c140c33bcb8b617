// An advisory lock on an output directory, so that two jobs never write into the same one.
#pragma once

#include <string>

namespace segrec {

/// DIR/.segrec.lock, held while one process writes into DIR: the file names the holder
/// ("host pid job start"), and an fcntl write lock on it is released by the kernel when the
/// holder dies, however it dies. Taking it fails at once (UsageError, exit 2) while a live
/// holder has it; a lock file left by a dead holder is taken over (stale() says whose it was).
/// On a file system without fcntl locks, a holder on this host counts as dead when its pid is
/// gone, and one on another host as alive (the message says to remove the file by hand).
class DirLock {
 public:
  explicit DirLock(const std::string& dir);
  ~DirLock();  // removes the lock file
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  /// "" or the holder line of the stale lock that was taken over.
  const std::string& stale() const { return stale_; }
  static constexpr const char* kFileName = ".segrec.lock";

 private:
  std::string path_, stale_;
  int fd_ = -1;
};

}  // namespace segrec
