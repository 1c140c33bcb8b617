// Typed errors shared by every stage. Each carries the process exit code that
// `main` returns for it (see docs/cli.md, "Exit codes").
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace segrec {

/// Exit codes of the `segrec` executable.
enum ExitCode : int {
  kExitOk = 0,
  kExitOther = 1,
  kExitUsage = 2,        ///< bad option, bad value, conflicting options
  kExitData = 3,         ///< malformed or inconsistent input data
  kExitIo = 4,           ///< file system, HDF5 or MPI-IO failure
  kExitInterrupted = 5,  ///< stopped by a signal after writing a checkpoint
};

/// Base of all segrec errors. `collective()` is true when every rank is known
/// to raise the same error at the same point (for example a validation of
/// allreduced figures); `main` then prints it once from rank 0 and exits
/// cleanly instead of aborting the job.
namespace detail {
/// Kind of the most recently created Error: lets RAII handles decide during
/// unwinding whether every rank is unwinding too (see h5::Handle::reset).
inline thread_local bool last_error_collective = false;
}  // namespace detail

class Error : public std::runtime_error {
 public:
  Error(const std::string& msg, int code, bool collective = false)
      : std::runtime_error(msg), code_(code), collective_(collective) {
    detail::last_error_collective = collective;
  }
  int code() const noexcept { return code_; }
  bool collective() const noexcept { return collective_; }

 private:
  int code_;
  bool collective_;
};

/// Bad command line or parameter value (exit 2).
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& msg, bool collective = true)
      : Error(msg, kExitUsage, collective) {}
};

/// Malformed or inconsistent input data (exit 3).
class DataError : public Error {
 public:
  explicit DataError(const std::string& msg, bool collective = false)
      : Error(msg, kExitData, collective) {}
};

/// File system, HDF5 or MPI failure (exit 4).
class IoError : public Error {
 public:
  explicit IoError(const std::string& msg, bool collective = false)
      : Error(msg, kExitIo, collective) {}
};

/// Stopped by a signal after a checkpoint was written (exit 5).
class Interrupted : public Error {
 public:
  explicit Interrupted(const std::string& msg) : Error(msg, kExitInterrupted, true) {}
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace segrec

/// Precondition check for internal invariants: throws segrec::Error with the
/// source location. User-facing checks throw UsageError/DataError directly with
/// a message that names the offending value.
#define SEGREC_ASSERT(cond, ...)                                                               \
  do {                                                                                         \
    if (!(cond))                                                                               \
      throw ::segrec::Error(                                                                   \
          ::segrec::detail::concat("internal error at ", __FILE__, ":", __LINE__, ": ", #cond, \
                                   ": " __VA_OPT__(, ) __VA_ARGS__),                           \
          ::segrec::kExitOther);                                                               \
  } while (0)
