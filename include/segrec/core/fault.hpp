// Fault injection for tests of the error policy. A named point fails when the
// environment variable SEGREC_FAULT is "<point>:<rank>" and this rank matches:
// it throws a non-collective DataError, as a real local failure would.
// A named point freezes this rank when SEGREC_STOP names it and this rank: the
// process stops itself (SIGSTOP, watchdog thread included), as a host that stops
// answering in the middle of a collective call does.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "segrec/core/comm.hpp"
#include "segrec/core/error.hpp"

namespace segrec {

inline void fault_point(const char* point, const Comm& comm) {
  const char* spec = std::getenv("SEGREC_FAULT");
  if (!spec) return;
  const std::string want = std::string(point) + ":" + std::to_string(comm.rank());
  if (want == spec) throw DataError(std::string("injected fault at ") + point + " (SEGREC_FAULT)");
}

/// SEGREC_STOP is "<point>:<rank>" or "<point>:<rank>:<n>" (the n-th time this rank
/// passes the point; default the first). Prints "segrec: test stop at <point> on
/// '<what>' (rank R, pid N)" to stderr, then stops.
inline void stop_point(const char* point, const Comm& comm, const std::string& what = {}) {
  static const char* const spec = std::getenv("SEGREC_STOP");
  static int passed = 0;
  if (!spec) return;
  const std::string want = std::string(point) + ":" + std::to_string(comm.rank());
  const std::string s = spec;
  if (s != want && s.rfind(want + ":", 0) != 0) return;
  const int n = s.size() > want.size() ? std::atoi(s.c_str() + want.size() + 1) : 1;
  if (++passed != n) return;
  std::fprintf(stderr, "segrec: test stop at %s on '%s' (rank %d, pid %ld)\n", point, what.c_str(),
               comm.rank(), static_cast<long>(::getpid()));
  std::fflush(stderr);
  ::raise(SIGSTOP);
}

}  // namespace segrec
