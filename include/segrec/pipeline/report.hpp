// The report of a `segrec run`: report.json and report.md in the output directory,
// read back from the stage outputs (so a stage skipped as up to date still appears).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec {

/// One stage of a run: per-rank seconds and peak resident memory (empty when skipped).
struct StageRecord {
  std::string name;
  bool skipped = false;                  ///< outputs were up to date
  std::vector<double> seconds;           ///< wall seconds, one per rank
  std::vector<std::int64_t> peak_bytes;  ///< peak resident bytes during the stage, one per rank
};

struct PipelineRecord {
  std::string out_dir;
  int ranks = 1;
  std::vector<StageRecord> stages;  ///< in pipeline order
  std::vector<std::string> plots;   ///< PNG files written in out_dir/plots (--plots)
};

/// Collective. Whether `path` exists as every rank sees it.
bool exists_on_every_rank(const std::string& path, const Comm& comm);

/// Collective. Reads the outputs present in `r.out_dir` (dataset.h5, projection.h5,
/// segments.h5 + segments.json, model.h5,
/// recommendations.csv) and writes report.json and report.md there.
void write_pipeline_report(const PipelineRecord& r, const Comm& comm);

}  // namespace segrec
