// Progress reports of long-running stages, for people watching a terminal and for
// tools following a batch job.
//
// Stages create a `progress::Task` and update it on every rank (cheap); only the
// process set up as the reporting root prints or writes, and nothing here calls MPI.
// Until `configure` is called (by main, from the common options) every report is
// discarded, so library users and unit tests see no output.
//
// Output, on stderr:
//  - a terminal: one line updated in place (a bar when the total is known);
//  - otherwise (a batch log): a plain line at most every `interval` seconds;
//  - long loops update often (every training step, block of rows or users) so that a
//    line is due within about `interval`; a position inside a unit (update_part) shows as
//    "epoch 2/10  step 312/4000", and the line of a task inside another (a K-means run in a
//    k sweep) ends with "| cluster: k sweep 40%, ETA 3m10s";
//  - --verbose: additionally every milestone (PCA pass, K-means iteration, epoch) as a line;
//  - --quiet: nothing.
// With --log-json FILE, one JSON object per event (start, task begin/end, every
// milestone, throttled updates, end) is appended to FILE and flushed.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace segrec::progress {

enum class Verbosity { kQuiet, kNormal, kVerbose };

/// Reporter set-up (see configure).
struct Options {
  Verbosity verbosity = Verbosity::kNormal;
  double interval = 10;   ///< seconds between plain lines when stderr is not a terminal
  std::string json_path;  ///< one JSON object per event ("" = none)
  bool root = true;       ///< whether this process reports (rank 0)
  int ranks = 1;          ///< rank count, recorded in every JSON event
  int threads = 1;        ///< threads per rank, recorded in the start event
  std::string command;    ///< e.g. "cluster"
  std::string job_id;     ///< batch job id ($SLURM_JOB_ID), "" when none
  int terminal = -1;      ///< 1: stderr is a terminal, 0: it is not, -1: detect (isatty)
};

/// One named figure of an event; NaN means "not available" (JSON null).
struct Metric {
  std::string_view name;
  double value;
};

/// Where a task stands inside the unit in progress, for the console line:
/// {2, "step", 312, 4000} shows "epoch 2/10  step 312/4000".
struct Part {
  double unit = 0;             ///< the unit in progress, 1-based (epoch 2)
  std::string_view name;       ///< of the sub-units ("step")
  double done = 0, total = 0;  ///< sub-units done of the unit's total (312 of 4000)
};

/// Seconds left of a task of `total` units that started at `start` units, was first seen
/// at `first_done` units `first_t` seconds in (-1: never) and is at `done` units `t`
/// seconds in. The rate counts from the first update once it is over 0.5 s old (start-up
/// excluded), before that from the start. NaN when there is no estimate (unknown total,
/// finished, no progress yet).
double eta_seconds(double total, double start, double first_done, double first_t, double done,
                   double t);

/// Sets up the process-wide reporter and writes the start event. Throws IoError when
/// the JSON log cannot be opened.
void configure(const Options& o);
/// Writes the end event (exit code, outputs, peak memory) and closes the JSON log.
void finish(int exit_code, const std::vector<std::string>& outputs, double peak_mib);
/// Discards the reporter state (tests).
void reset();
/// Seconds since configure().
double elapsed();
/// Clears the terminal progress line, so other output starts at column 0.
void clear_line();
/// A line at --verbose only (stage timings and details); also a JSON "note" event.
void note(std::string_view stage, std::string_view text);
/// "segrec: warning: TEXT" on stderr now (root, unless --quiet); also a JSON "warning" event.
void warning(std::string_view stage, std::string_view text);

/// A long task of a stage: `total` units (bytes, passes, iterations, epochs) or 0 when
/// unknown. Units "B" are shown as bytes. When `total_is_limit` the total is only an
/// upper bound (K-means max-iter): no bar, no ETA.
class Task {
 public:
  Task(std::string stage, std::string what, double total, std::string unit,
       bool total_is_limit = false);
  ~Task();
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;

  /// `done` units so far, with figures of the moment. A milestone (one iteration, one
  /// epoch) always reaches the JSON log and, at --verbose, the console; other updates
  /// are shown when due. The rate and ETA are derived from `done` and the clock.
  void update(double done, std::initializer_list<Metric> metrics = {}, bool milestone = false);
  /// As update, inside a unit: `done` (fractional units, e.g. 1.078 = epoch 2 at 7.8%)
  /// drives the bar, the percentage and the ETA; the line shows `part`. Never a milestone:
  /// meant to be called often (every step, every block of rows), it stays cheap.
  void update_part(double done, const Part& part, std::initializer_list<Metric> metrics = {});
  /// The task goes on from `done` units (a resumed run): rates count from there.
  void start_at(double done) { start_ = done; }
  /// Seconds since the task began.
  double elapsed() const;
  /// Whether reports go anywhere (false on non-root ranks and before configure):
  /// lets callers skip work spent only on figures.
  static bool active();

 private:
  std::string stage_, what_, unit_;
  double total_ = 0;
  bool limit_ = false;
  bool shown_ = false;  // a plain line of this task was printed
  std::chrono::steady_clock::time_point t0_;
  double first_t_ = -1, first_done_ = 0;  // first update: rate baseline
  double done_ = 0, start_ = 0;
  double last_t_ = 0;       // task seconds at the last update
  double shown_done_ = -1;  // `done` of the last plain line printed
  bool has_part_ = false;   // the last update was update_part
  Part part_;               // its position (part_.name points into part_name_)
  std::string part_name_;
  std::vector<std::pair<std::string, double>> metrics_;
  void report(std::initializer_list<Metric> metrics, bool milestone);
  std::string line() const;
  /// "  | STAGE: WHAT 40%, ETA 3m10s" of the outermost live task when it is another one
  /// with a known total (a k sweep around its K-means runs); "" otherwise.
  std::string outer() const;
  /// The JSON fields of a progress or task_end event of this task.
  std::string json_fields(const char* event) const;
};

/// Human formats used by the reports (exposed for tests). format_bytes: binary units up to
/// EiB; `significant` 0 gives "512 B" / "1.5 GiB", n > 0 printf's %.ng ("224 GiB", "7.11 PiB").
std::string format_bytes(double bytes, int significant = 0);
std::string format_duration(double seconds);
/// A JSON string literal (quoted, escaped).
std::string json_string(std::string_view s);

}  // namespace segrec::progress
