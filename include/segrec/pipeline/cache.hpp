// Stage hashes of `segrec run` and the up-to-date checks of a stage's outputs: each HDF5
// output records in its "made_by" attribute a hash (16 hex digits) of the options of its
// stage and of every stage before it, and of the event files (path, size, modification time);
// a CSV output records it in DIR/.FILE.made_by.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec::pipeline {

/// (option name, value text) of one option.
using Option = std::pair<std::string, std::string>;

/// Whether an option cannot change a stage's result (left out of the stage hash).
bool no_effect(const std::string& option);

/// Collective. The start of the hash chain: the seed and the event files (absolute path,
/// size, modification time) as rank 0 sees them (broadcast, so every rank decides alike).
std::string event_chain(std::uint64_t seed, const std::vector<std::string>& events,
                        const Comm& comm);

/// A stage's hash (16 hex digits): fnv1a over `chain` (the previous stage's hash), the stage
/// name, its `given` options (no_effect ones left out) and the k / silhouette-sample of the
/// options `set` by the runner.
std::string stage_hash(const std::string& chain, const std::string& stage,
                       const std::vector<Option>& given, const std::vector<Option>& set);

/// Collective. The "made_by" attribute of an HDF5 file ("" when it has none).
std::string made_by(const std::string& path, const Comm& comm);

/// Collective. Whether every output (relative to `dir`) exists as rank 0 sees it and the
/// first records `hash`.
bool up_to_date(const std::string& dir, const std::vector<std::string>& outputs,
                const std::string& hash, const Comm& comm);

/// Rank 0: records `hash` for a first output that is not HDF5 (DIR/.FILE.made_by).
void record_hash(const std::string& dir, const std::vector<std::string>& outputs,
                 const std::string& hash, const Comm& comm);

}  // namespace segrec::pipeline
