// Stall watchdog: ends a job whose collectives stop making progress.
//
// When a host or its link is lost, the ranks still alive wait forever inside a
// collective (TCP does not notice a silent peer for many minutes). Comm marks
// every MPI collective it issues (`InFlight`: two relaxed atomic stores and a
// counter bump, nothing else per call), io/h5 every HDF5 call that may wait for
// the other ranks (`IoCall`); a monitor thread, started for the run
// of a command (`Scope`), polls that counter. If one collective stays in flight
// longer than the timeout without any progress, the rank prints one line
// naming the stage, the step, the collective and the seconds waited, removes
// its temporary outputs (finished files and checkpoints are left as they are)
// and ends the whole job with exit code kExitStalled.
//
// Definition: the stall time is the time since the last progress event while a
// collective is in flight. Progress events are the start and the end of every
// collective and `progress()` calls from compute loops. A rank busy in local
// compute never fires; its peers waiting for it in a collective fire only when
// it computes longer than the timeout between two collectives, so the timeout
// must exceed the longest compute gap between collectives (the default, 300 s,
// is far above any step of segrec's stages).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace segrec {

class Comm;

/// Exit code of a job ended by the stall watchdog (next to ExitCode in error.hpp).
inline constexpr int kExitStalled = 6;

namespace watchdog {

/// Kind of the collective in flight (for the message).
enum class Kind : int {
  kNone = 0,
  kAllreduce,
  kBroadcast,
  kAllgather,
  kAlltoall,
  kBarrier,
  kScan,
  kCommSplit,
  kFileIo  ///< a collective HDF5 or MPI-IO call (IoCall names it)
};
const char* kind_name(Kind k);

/// Marks one MPI collective in flight on this rank (Comm uses it around each call).
class InFlight {
 public:
  InFlight(Kind k, std::uint64_t bytes) noexcept;
  ~InFlight();
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

/// Marks one call into HDF5 or MPI-IO that may wait for the other ranks (a file
/// open, create, flush or close; a collective metadata read or write; a collective
/// dataset transfer). `call` must be a string literal ("H5Dwrite"); the file name is
/// copied (its first 255 bytes). The call's own duration counts as waiting: the
/// timeout must exceed the longest single read or write of one rank.
class IoCall {
 public:
  IoCall(const char* call, const std::string& file) noexcept;
  ~IoCall();
  IoCall(const IoCall&) = delete;
  IoCall& operator=(const IoCall&) = delete;
};

/// A progress event from a compute loop (optional; collectives count already).
void progress() noexcept;
/// Label of the running stage (e.g. "train epoch 3"); rarely called (takes a lock).
void set_stage(const std::string& stage);
/// Step within the stage: `what` must be a string literal ("k-means iteration").
/// Test hook: with SEGREC_TEST_STEP_DELAY_MS=N in the environment each call
/// prints "segrec: test step '<stage>' <what> <step>" to stderr and sleeps N ms,
/// so tests can cut a link in the middle of a stage.
void set_step(const char* what, std::int64_t step) noexcept;

/// What the watchdog knows about this rank now.
struct Snapshot {
  std::string stage;
  const char* step_what = nullptr;  ///< nullptr: no step set in this stage
  std::int64_t step = 0;
  Kind in_flight = Kind::kNone;
  std::uint64_t bytes = 0;        ///< bytes of the collective in flight
  const char* io_call = nullptr;  ///< with Kind::kFileIo: the HDF5 or MPI-IO call
  std::string io_file;            ///< with Kind::kFileIo: its file
  std::uint64_t counter = 0;      ///< progress events so far
};
Snapshot snapshot();
/// The one-line message of a stall seen after `seconds` without progress.
std::string stall_message(const Snapshot& s, double seconds, double timeout);

/// The detection rule, free of threads and clocks (unit-tested with a fake clock).
class Detector {
 public:
  explicit Detector(double timeout_s) : timeout_(timeout_s) {}
  /// One poll at time `now` (seconds, monotonic) seeing the progress counter and
  /// whether a collective is in flight; true when the stall time reached the timeout.
  bool observe(double now, std::uint64_t counter, bool in_flight);
  /// Seconds since the last change of the counter (as of the last observe()).
  double idle(double now) const { return now - since_; }

 private:
  double timeout_;
  bool seen_ = false;
  std::uint64_t last_ = 0;
  double since_ = 0;
};

/// Runs the monitor thread while alive; timeout_s <= 0 disables it. The stage
/// label starts as `stage`. `on_stall` (default: print, remove temporaries,
/// MPI_Abort with kExitStalled, _exit if the abort itself hangs 10 s) gets the
/// message; tests pass their own.
class Scope {
 public:
  using Handler = std::function<void(const std::string& message)>;
  Scope(const Comm& comm, double timeout_s, const std::string& stage, Handler on_stall = {});
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  struct State;
  State* state_ = nullptr;
};

}  // namespace watchdog
}  // namespace segrec
