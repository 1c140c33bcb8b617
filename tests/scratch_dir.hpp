// Scratch folders of the tests: $SEGREC_TEST_TMP/<name> (CTest sets it per build tree), else
// /tmp/segrec-tests/<name>.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

#include "segrec/core/comm.hpp"

namespace segrec::testing_tmp {

/// The folder's path, not created.
inline std::string scratch_path(const std::string& name) {
  const char* env = std::getenv("SEGREC_TEST_TMP");
  return (std::filesystem::path(env && *env ? env : "/tmp/segrec-tests") / name).string();
}

/// Created by this process (`fresh`: emptied first).
inline std::string scratch_dir(const std::string& name, bool fresh = false) {
  const std::string d = scratch_path(name);
  std::error_code ec;  // ranks of an MPI test may race to create it
  if (fresh) std::filesystem::remove_all(d, ec);
  std::filesystem::create_directories(d, ec);
  return d;
}

/// Collective: created by the root rank (`fresh`: emptied first), every rank waiting for it.
inline std::string scratch_dir(const std::string& name, const Comm& comm, bool fresh = false) {
  const std::string d = scratch_path(name);
  if (comm.is_root()) scratch_dir(name, fresh);
  comm.barrier();
  return d;
}

}  // namespace segrec::testing_tmp
