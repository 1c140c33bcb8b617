// Stall watchdog: the detection rule with a fake clock, and the monitor thread
// with small timeouts and a handler that records instead of ending the process.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "segrec/core/comm.hpp"
#include "segrec/core/watchdog.hpp"

namespace segrec::watchdog {
namespace {

TEST(WatchdogDetector, FiresOnlyWhenACollectiveWaitsPastTheTimeout) {
  Detector d(20);
  EXPECT_FALSE(d.observe(0, 5, true));     // first sight: the clock starts
  EXPECT_FALSE(d.observe(19.9, 5, true));  // in flight, not yet 20 s
  EXPECT_TRUE(d.observe(20.0, 5, true));   // exactly the timeout
  EXPECT_TRUE(d.observe(50.0, 5, true));
  EXPECT_DOUBLE_EQ(d.idle(50.0), 50.0);
}

TEST(WatchdogDetector, LocalComputeBetweenCollectivesNeverFires) {
  Detector d(20);
  EXPECT_FALSE(d.observe(0, 1, false));
  // Hours of compute with no collective in flight: no stall.
  EXPECT_FALSE(d.observe(1000, 1, false));
  EXPECT_FALSE(d.observe(7200, 1, false));
  // The next collective starts (counter moves): its wait is measured from now.
  EXPECT_FALSE(d.observe(7201, 2, true));
  EXPECT_FALSE(d.observe(7220, 2, true));
  EXPECT_TRUE(d.observe(7221, 2, true));
}

TEST(WatchdogDetector, EveryProgressEventRestartsTheClock) {
  Detector d(10);
  std::uint64_t c = 0;
  // A collective completes every 9 s for a long run: never 10 s without progress.
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(d.observe(9.0 * i, ++c, true)) << i;
  EXPECT_FALSE(d.observe(9.0 * 99 + 9.99, c, true));
  EXPECT_TRUE(d.observe(9.0 * 99 + 10, c, true));
  // A progress() bump from a compute loop counts as progress too.
  EXPECT_FALSE(d.observe(2000, c + 1, true));
}

TEST(WatchdogMessage, NamesStageStepCollectiveAndSeconds) {
  Snapshot s;
  s.stage = "cluster";
  s.step_what = "k-means iteration";
  s.step = 7;
  s.in_flight = Kind::kAllreduce;
  s.bytes = 4096;
  const std::string m = stall_message(s, 21.4, 20);
  EXPECT_NE(m.find("no progress for 21 s"), std::string::npos) << m;
  EXPECT_NE(m.find("--stall-timeout 20"), std::string::npos) << m;
  EXPECT_NE(m.find("stage 'cluster', k-means iteration 7"), std::string::npos) << m;
  EXPECT_NE(m.find("waiting in allreduce (4.0 KiB)"), std::string::npos) << m;
  EXPECT_NE(m.find("exit 6"), std::string::npos) << m;
  s.step_what = nullptr;
  s.in_flight = Kind::kNone;
  EXPECT_EQ(stall_message(s, 3, 2).find("iteration"), std::string::npos);
}

TEST(WatchdogSnapshot, StageResetsStepAndInFlightIsTracked) {
  set_stage("train epoch 2");
  set_step("step", 12);
  Snapshot s = snapshot();
  EXPECT_EQ(s.stage, "train epoch 2");
  ASSERT_NE(s.step_what, nullptr);
  EXPECT_STREQ(s.step_what, "step");
  EXPECT_EQ(s.step, 12);
  EXPECT_EQ(s.in_flight, Kind::kNone);
  const std::uint64_t c0 = s.counter;
  {
    const InFlight f(Kind::kBroadcast, 100);
    s = snapshot();
    EXPECT_EQ(s.in_flight, Kind::kBroadcast);
    EXPECT_EQ(s.bytes, 100u);
    EXPECT_EQ(s.counter, c0 + 1);
  }
  s = snapshot();
  EXPECT_EQ(s.in_flight, Kind::kNone);
  EXPECT_EQ(s.counter, c0 + 2);
  progress();
  EXPECT_EQ(snapshot().counter, c0 + 3);
  set_stage("cluster");
  EXPECT_EQ(snapshot().step_what, nullptr);
}

// Records the first stall message; waits for it with a generous bound.
struct Recorder {
  std::mutex m;
  std::condition_variable cv;
  std::string message;
  int calls = 0;
  Scope::Handler handler() {
    return [this](const std::string& msg) {
      std::lock_guard lock(m);
      message = msg;
      ++calls;
      cv.notify_all();
    };
  }
  bool wait(double seconds) {
    std::unique_lock lock(m);
    return cv.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return calls > 0; });
  }
};

TEST(WatchdogScope, ACollectiveStuckInFlightFiresWithTheLabels) {
  Recorder r;
  const Comm serial;
  {
    const Scope scope(serial, 0.05, "cluster", r.handler());
    set_step("k-means iteration", 3);
    const InFlight f(Kind::kAllreduce, 2048);
    ASSERT_TRUE(r.wait(60)) << "the watchdog did not fire";
  }
  EXPECT_EQ(r.calls, 1);
  EXPECT_NE(r.message.find("stage 'cluster', k-means iteration 3, waiting in allreduce"),
            std::string::npos)
      << r.message;
}

TEST(WatchdogScope, IdleOrComputingRankNeverFires) {
  Recorder r;
  const Comm serial;
  {
    const Scope scope(serial, 0.02, "train", r.handler());
    // 20 timeouts of "local compute" (nothing in flight): no stall by definition.
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }
  EXPECT_EQ(r.calls, 0) << r.message;
}

TEST(WatchdogScope, ZeroTimeoutStartsNoMonitor) {
  Recorder r;
  const Comm serial;
  {
    const Scope scope(serial, 0, "cluster", r.handler());
    const InFlight f(Kind::kAllreduce, 8);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(r.calls, 0);
  EXPECT_EQ(snapshot().stage, "cluster");
}

TEST(WatchdogIoCall, NamesTheCallAndTheFile) {
  set_stage("ingest");
  const std::uint64_t c0 = snapshot().counter;
  Snapshot s;
  {
    const IoCall call("H5Dwrite", "out/dataset.h5");
    s = snapshot();
    EXPECT_EQ(s.in_flight, Kind::kFileIo);
    ASSERT_NE(s.io_call, nullptr);
    EXPECT_STREQ(s.io_call, "H5Dwrite");
    EXPECT_EQ(s.io_file, "out/dataset.h5");
    EXPECT_EQ(s.counter, c0 + 1);
  }
  EXPECT_EQ(snapshot().in_flight, Kind::kNone);
  EXPECT_EQ(snapshot().counter, c0 + 2);
  const std::string m = stall_message(s, 12.5, 10);
  EXPECT_NE(m.find("no progress for 12 s (--stall-timeout 10) in stage 'ingest', waiting in "
                   "H5Dwrite (collective) on 'out/dataset.h5' for the other ranks"),
            std::string::npos)
      << m;
  // A long name is cut, not overflowed.
  const IoCall call("H5Fopen", std::string(1000, 'x'));
  EXPECT_EQ(snapshot().io_file, std::string(255, 'x'));
}

TEST(WatchdogScope, AnHdf5CallStuckInFlightFires) {
  Recorder r;
  const Comm serial;
  {
    const Scope scope(serial, 0.05, "project", r.handler());
    const IoCall call("H5Fclose", "h.h5");
    ASSERT_TRUE(r.wait(60)) << "the watchdog did not fire";
  }
  EXPECT_NE(r.message.find("waiting in H5Fclose (collective) on 'h.h5'"), std::string::npos)
      << r.message;
}

}  // namespace
}  // namespace segrec::watchdog
