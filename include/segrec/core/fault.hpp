// Fault injection for tests of the error policy. A named point fails when the
// environment variable SEGREC_FAULT is "<point>:<rank>" and this rank matches:
// it throws a non-collective DataError, as a real local failure would.
#pragma once

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

}  // namespace segrec
