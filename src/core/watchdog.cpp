#include "segrec/core/watchdog.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "segrec/core/comm.hpp"
#include "segrec/core/tempfile.hpp"

namespace segrec::watchdog {
namespace {

// Written by the rank's compute thread, read by the monitor: relaxed atomics.
std::atomic<std::uint64_t> g_counter{0};
std::atomic<int> g_kind{0};
std::atomic<std::uint64_t> g_bytes{0};
std::atomic<const char*> g_step_what{nullptr};
std::atomic<std::int64_t> g_step{0};
std::mutex g_stage_mutex;
std::string g_stage;  // guarded by g_stage_mutex
// The HDF5 / MPI-IO call in flight and its file (set per call, without allocating).
std::atomic<const char*> g_io_call{nullptr};
std::mutex g_io_mutex;
char g_io_file[256] = {};  // guarded by g_io_mutex

int step_delay_ms() {
  static const int ms = [] {
    const char* s = std::getenv("SEGREC_TEST_STEP_DELAY_MS");
    return s ? std::max(0, std::atoi(s)) : 0;
  }();
  return ms;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string human_bytes(std::uint64_t b) {
  char buf[32];
  if (b < 1024)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  else if (b < (1u << 20))
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  return buf;
}

[[noreturn]] void end_job(const std::string& message, int rank) {
  std::fprintf(stderr, "segrec: error (rank %d): %s\n", rank, message.c_str());
  std::fflush(stderr);
  remove_registered_temporaries();
  // MPI_Abort reaches the launcher through the local daemon; should that hang
  // too, leave without it after 10 s (the launcher sees the exit code).
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(10));
    std::_Exit(kExitStalled);
  }).detach();
  MpiEnvironment::abort(kExitStalled);
}

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kNone:
      return "none";
    case Kind::kAllreduce:
      return "allreduce";
    case Kind::kBroadcast:
      return "broadcast";
    case Kind::kAllgather:
      return "allgather";
    case Kind::kAlltoall:
      return "all-to-all";
    case Kind::kBarrier:
      return "barrier";
    case Kind::kScan:
      return "exclusive scan";
    case Kind::kCommSplit:
      return "communicator split";
    case Kind::kFileIo:
      return "collective file I/O";
  }
  return "?";
}

InFlight::InFlight(Kind k, std::uint64_t bytes) noexcept {
  g_bytes.store(bytes, std::memory_order_relaxed);
  g_kind.store(static_cast<int>(k), std::memory_order_relaxed);
  g_counter.fetch_add(1, std::memory_order_relaxed);
}

InFlight::~InFlight() {
  g_kind.store(0, std::memory_order_relaxed);
  g_counter.fetch_add(1, std::memory_order_relaxed);
}

IoCall::IoCall(const char* call, const std::string& file) noexcept {
  {
    std::lock_guard lock(g_io_mutex);
    const std::size_t n = std::min(file.size(), sizeof g_io_file - 1);
    std::memcpy(g_io_file, file.data(), n);
    g_io_file[n] = '\0';
  }
  g_io_call.store(call, std::memory_order_relaxed);
  g_bytes.store(0, std::memory_order_relaxed);
  g_kind.store(static_cast<int>(Kind::kFileIo), std::memory_order_relaxed);
  g_counter.fetch_add(1, std::memory_order_relaxed);
}

IoCall::~IoCall() {
  g_kind.store(0, std::memory_order_relaxed);
  g_counter.fetch_add(1, std::memory_order_relaxed);
}

void progress() noexcept { g_counter.fetch_add(1, std::memory_order_relaxed); }

void set_stage(const std::string& stage) {
  std::lock_guard lock(g_stage_mutex);
  g_stage = stage;
  g_step_what.store(nullptr, std::memory_order_relaxed);
}

void set_step(const char* what, std::int64_t step) noexcept {
  g_step.store(step, std::memory_order_relaxed);
  g_step_what.store(what, std::memory_order_relaxed);
  if (const int ms = step_delay_ms(); ms > 0) {
    std::string stage;
    {
      std::lock_guard lock(g_stage_mutex);
      stage = g_stage;
    }
    std::fprintf(stderr, "segrec: test step '%s' %s %lld\n", stage.c_str(), what,
                 static_cast<long long>(step));
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
}

Snapshot snapshot() {
  Snapshot s;
  {
    std::lock_guard lock(g_stage_mutex);
    s.stage = g_stage;
  }
  s.step_what = g_step_what.load(std::memory_order_relaxed);
  s.step = g_step.load(std::memory_order_relaxed);
  s.in_flight = static_cast<Kind>(g_kind.load(std::memory_order_relaxed));
  s.bytes = g_bytes.load(std::memory_order_relaxed);
  s.counter = g_counter.load(std::memory_order_relaxed);
  if (s.in_flight == Kind::kFileIo) {
    s.io_call = g_io_call.load(std::memory_order_relaxed);
    std::lock_guard lock(g_io_mutex);
    s.io_file = g_io_file;
  }
  return s;
}

std::string stall_message(const Snapshot& s, double seconds, double timeout) {
  std::string m = "stalled: no progress for " + std::to_string(static_cast<long long>(seconds)) +
                  " s (--stall-timeout " + std::to_string(static_cast<long long>(timeout)) +
                  ") in stage '" + (s.stage.empty() ? std::string("?") : s.stage) + "'";
  if (s.step_what) m += ", " + std::string(s.step_what) + " " + std::to_string(s.step);
  if (s.in_flight == Kind::kFileIo)
    m += ", waiting in " + std::string(s.io_call ? s.io_call : "HDF5") + " (collective) on '" +
         s.io_file + "' for the other ranks";
  else if (s.in_flight != Kind::kNone)
    m += ", waiting in " + std::string(kind_name(s.in_flight)) + " (" + human_bytes(s.bytes) +
         ") for the other ranks";
  m += "; a host or its network link is lost or stuck: ending the job (exit " +
       std::to_string(kExitStalled) + ")";
  return m;
}

bool Detector::observe(double now, std::uint64_t counter, bool in_flight) {
  if (!seen_ || counter != last_) {
    seen_ = true;
    last_ = counter;
    since_ = now;
    return false;
  }
  return in_flight && now - since_ >= timeout_;
}

struct Scope::State {
  std::thread thread;
  std::mutex mutex;
  std::condition_variable cv;
  bool stop = false;
};

Scope::Scope(const Comm& comm, double timeout_s, const std::string& stage, Handler on_stall) {
  set_stage(stage);
  if (timeout_s <= 0) return;
  state_ = new State;
  const int rank = comm.rank();
  if (!on_stall) on_stall = [rank](const std::string& msg) { end_job(msg, rank); };
  // Poll often enough to fire within 5% of the timeout, at most once a second.
  const double poll = std::clamp(timeout_s / 20, 0.01, 1.0);
  state_->thread = std::thread([st = state_, timeout_s, poll, on_stall] {
    Detector d(timeout_s);
    std::unique_lock lock(st->mutex);
    while (!st->stop) {
      const double now = now_seconds();
      const Snapshot s = snapshot();
      if (d.observe(now, s.counter, s.in_flight != Kind::kNone)) {
        lock.unlock();
        on_stall(stall_message(s, d.idle(now), timeout_s));
        return;
      }
      st->cv.wait_for(lock, std::chrono::duration<double>(poll));
    }
  });
}

Scope::~Scope() {
  if (!state_) return;
  {
    std::lock_guard lock(state_->mutex);
    state_->stop = true;
  }
  state_->cv.notify_all();
  state_->thread.join();
  delete state_;
}

}  // namespace segrec::watchdog
