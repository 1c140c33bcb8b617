// The stage runner of `segrec run`: ingest -> profile -> project -> cluster -> train
// (-> recommend) under one output directory, each stage skipped when up to date
// (pipeline/cache.hpp), then the run's report (pipeline/report.hpp). The stages
// themselves come from the command layer as callbacks over plain data.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/pipeline/cache.hpp"

namespace segrec::pipeline {

/// One stage: its name and the files it writes in the output directory.
struct StageInfo {
  std::string name;
  std::vector<std::string> outputs;  ///< relative to DIR; the first records the stage hash
};

/// The stages, in pipeline order.
const std::vector<StageInfo>& stages();

/// Whether the runner sets an option itself (files, and what it sizes from the data).
bool managed(const std::string& option);

/// A stage as the command layer hands it to the runner.
struct Stage {
  StageInfo info;
  /// Its options given or defaulted, in declaration order (managed ones left out).
  std::vector<Option> given;
  /// Sets options (value "" = a switch) into the stage's parameters.
  std::function<void(const std::vector<Option>&)> apply;
  /// Validates the stage's parameters (throws UsageError).
  std::function<void()> check;
  /// Runs the stage: its exit code.
  std::function<int()> run;
};

/// What `segrec run` takes besides the stages' own options.
struct RunParams {
  std::vector<std::string> events;          ///< --events
  std::string out;                          ///< --out DIR
  std::string k = "auto";                   ///< --k: K, FROM:TO[:STEP] or auto
  std::string until = "recommend";          ///< --until: last stage
  std::string models;                       ///< --models: kinds to compare ("" = train's own)
  bool force = false;                       ///< --force
  bool plots = false;                       ///< --plots
  std::uint64_t seed = 42;                  ///< --seed
  bool verbose = false;                     ///< --verbose (plot script output)
  bool silhouette_sample_defaulted = true;  ///< cluster's --silhouette-sample not given
  bool resume = false;                      ///< train's --resume
  std::optional<std::string> checkpoint;    ///< train's --checkpoint, when given
};

/// Collective. Runs the stages (in stages() order) into p.out and writes the report;
/// `say` prints a progress line. Returns the exit code.
int run(const RunParams& p, std::vector<Stage>& stages, const Comm& comm,
        const std::function<void(const std::string&)>& say);

/// Peak resident memory of this process, bytes (getrusage).
std::int64_t peak_rss_bytes();

}  // namespace segrec::pipeline
