// Progress reporter: formats, the JSON event log, throttling and verbosity, and
// the environment helpers.
#include "segrec/core/progress.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "scratch_dir.hpp"
#include "segrec/core/blas.hpp"
#include "segrec/core/env.hpp"
#include "segrec/core/error.hpp"

namespace segrec::progress {
namespace {

namespace fs = std::filesystem;

std::string scratch(const std::string& name) {
  const fs::path p = fs::path(testing_tmp::scratch_dir("progress")) / name;
  fs::remove(p);
  return p.string();
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

struct ResetReporter : ::testing::Test {
  void TearDown() override { reset(); }
};

TEST(ProgressFormat, Bytes) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(5.0 * (1 << 30)), "5.0 GiB");
}

TEST(ProgressFormat, Duration) {
  EXPECT_EQ(format_duration(0.5), "0.50 s");
  EXPECT_EQ(format_duration(12.4), "12 s");
  EXPECT_EQ(format_duration(125), "2m05s");
  EXPECT_EQ(format_duration(3 * 3600 + 7 * 60 + 9), "3h07m");
  EXPECT_EQ(format_duration(std::numeric_limits<double>::infinity()), "?");
  EXPECT_EQ(format_duration(-1), "?");
}

TEST(ProgressFormat, JsonString) {
  EXPECT_EQ(json_string("a\"b\\c\nd\te"), "\"a\\\"b\\\\c\\nd\\te\"");
  EXPECT_EQ(json_string(std::string("\x01", 1)), "\"\\u0001\"");
}

TEST_F(ResetReporter, DiscardsEverythingUntilConfigured) {
  EXPECT_FALSE(Task::active());
  testing::internal::CaptureStderr();
  {
    Task t("kmeans", "k=3", 10, "iter", true);
    t.update(1, {{"inertia", 1.0}}, true);
  }
  note("ingest", "read 1 s");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST_F(ResetReporter, JsonLogHasOneObjectPerEvent) {
  const std::string path = scratch("progress_events.jsonl");
  Options o;
  o.verbosity = Verbosity::kQuiet;  // the log does not depend on the console level
  o.json_path = path;
  o.ranks = 4;
  o.threads = 2;
  o.command = "cluster";
  o.job_id = "777_3";
  o.terminal = 0;
  o.interval = 1e6;  // throttled updates never due: only milestones and forced events
  configure(o);
  testing::internal::CaptureStderr();
  {
    Task t("kmeans", "k=3", 300, "iter", true);
    t.update(1, {{"inertia", 12.5}, {"changed", 100}, {"shift", std::nan("")}}, true);
    t.update(2, {{"inertia", 10.0}, {"changed", 3}, {"shift", 0.25}}, true);
    t.update(2.5, {});  // not a milestone and not due: not logged
  }
  finish(0, {"out/segments.h5", "out/segments.csv"}, 12.34);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");  // --quiet: nothing on the console

  const auto l = lines_of(path);
  ASSERT_EQ(l.size(), 6u);
  EXPECT_TRUE(contains(l[0], "\"event\":\"start\"")) << l[0];
  EXPECT_TRUE(contains(l[0], "\"command\":\"cluster\"")) << l[0];
  EXPECT_TRUE(contains(l[0], "\"threads\":2")) << l[0];
  EXPECT_TRUE(contains(l[1], "\"event\":\"task_begin\"")) << l[1];
  EXPECT_TRUE(contains(l[2], "\"event\":\"progress\"")) << l[2];
  EXPECT_TRUE(contains(l[2], "\"stage\":\"kmeans\"")) << l[2];
  EXPECT_TRUE(contains(l[2], "\"step\":1,")) << l[2];
  EXPECT_TRUE(contains(l[2], "\"metrics\":{\"inertia\":12.5,\"changed\":100,\"shift\":null}"))
      << l[2];
  EXPECT_TRUE(contains(l[3], "\"step\":2,")) << l[3];
  EXPECT_TRUE(contains(l[4], "\"event\":\"task_end\"")) << l[4];
  EXPECT_TRUE(contains(l[4], "\"step\":2.5,")) << l[4];
  EXPECT_TRUE(contains(l[5], "\"event\":\"end\"")) << l[5];
  EXPECT_TRUE(contains(l[5], "\"exit_code\":0")) << l[5];
  EXPECT_TRUE(contains(l[5], "\"outputs\":[\"out/segments.h5\",\"out/segments.csv\"]")) << l[5];
  EXPECT_TRUE(contains(l[5], "\"peak_rss_mib\":12.3")) << l[5];
  for (const auto& line : l) {
    EXPECT_EQ(line.front(), '{');
    EXPECT_EQ(line.back(), '}');
    EXPECT_TRUE(contains(line, "\"ranks\":4,")) << line;
    EXPECT_TRUE(contains(line, "\"job_id\":\"777_3\"")) << line;
    EXPECT_TRUE(contains(line, "\"elapsed_s\":")) << line;
  }
}

TEST_F(ResetReporter, NonRootWritesNothing) {
  const std::string path = scratch("progress_nonroot.jsonl");
  Options o;
  o.root = false;
  o.json_path = path;
  o.terminal = 0;
  o.interval = 1e-9;
  configure(o);
  testing::internal::CaptureStderr();
  {
    Task t("train", "", 5, "epoch");
    t.update(1, {{"loss", 1.0}}, true);
  }
  finish(0, {}, 1);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(ResetReporter, PlainLinesInBatchLogs) {
  Options o;
  o.terminal = 0;
  o.interval = 1e-9;  // every update is due
  configure(o);
  testing::internal::CaptureStderr();
  {  // one after the other (nested tasks: see below)
    Task t("train", "", 4, "epoch");
    t.update(1, {{"loss", 2.5}, {"samples/s", 1000}}, true);
  }
  {
    Task b("ingest", "reading events", 4096, "B");
    b.update(1024, {{"rows/s", 2.5e6}});
  }
  {
    Task k("kmeans", "k=5", 300, "iter", true);
    k.update(7, {{"inertia", 3.25}}, true);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(err, "] train  epoch 1/4 (25%)  ETA ")) << err;
  EXPECT_TRUE(contains(err, "  loss 2.5  samples/s 1000\n")) << err;
  EXPECT_TRUE(contains(err, "ingest: reading events  1.0 KiB / 4.0 KiB (25%)  ETA ")) << err;
  EXPECT_TRUE(contains(err, "/s  rows/s 2.5M\n")) << err;
  EXPECT_TRUE(contains(err, "kmeans: k=5  iter 7 (max 300)  inertia 3.25")) << err;
  EXPECT_FALSE(contains(err, "(max 300) (")) << "no percentage for an upper bound: " << err;
  EXPECT_TRUE(contains(err, "done in")) << "a shown task reports its end: " << err;
  EXPECT_FALSE(contains(err, "\r")) << "no terminal control in a batch log";
}

TEST(ProgressEta, StepsOverAllEpochs) {
  // 3 epochs of 100 steps: step 1 (0.01 epoch) seen at 0.1 s, step 30 at 3.0 s: 0.1 epoch/s
  // from the first update on, so 2.7 epochs are left: 27 s.
  EXPECT_NEAR(eta_seconds(3, 0, 0.01, 0.1, 0.30, 3.0), 27.0, 1e-9);
  // Within 0.5 s of the first update the rate counts from the start: 0.3 epoch in 0.6 s.
  EXPECT_NEAR(eta_seconds(3, 0, 0.01, 0.3, 0.30, 0.6), 2.7 / 0.5, 1e-9);
  // A resumed run (from epoch 2.5) counts only what it did itself: 0.2 epoch in 0.4 s.
  EXPECT_NEAR(eta_seconds(10, 2.5, 2.6, 0.2, 2.7, 0.4), 7.3 / 0.5, 1e-9);
  // No estimate: unknown total, finished, nothing done yet.
  EXPECT_TRUE(std::isnan(eta_seconds(0, 0, 1, 0.1, 2, 5)));
  EXPECT_TRUE(std::isnan(eta_seconds(3, 0, 1, 0.1, 3, 5)));
  EXPECT_TRUE(std::isnan(eta_seconds(3, 1, -1, -1, 1, 5)));
}

TEST_F(ResetReporter, PartLinesShowThePositionInsideAUnit) {
  Options o;
  o.terminal = 0;
  o.interval = 1e-9;
  configure(o);
  testing::internal::CaptureStderr();
  {
    Task t("train", "", 3, "epoch");
    t.update_part(0.25, {1, "step", 25, 100}, {{"samples/s", 500}});
    t.update_part(1.5, {2, "step", 50, 100}, {{"samples/s", 510}});
    t.update(2, {{"loss", 1.5}}, true);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(err, "] train  epoch 1/3  step 25/100 (8%)  ETA ")) << err;
  EXPECT_TRUE(contains(err, "] train  epoch 2/3  step 50/100 (50%)  ETA ")) << err;
  EXPECT_TRUE(contains(err, "  samples/s 510\n")) << err;
  EXPECT_TRUE(contains(err, "] train  epoch 2/3 (67%)  ETA ")) << "whole units again: " << err;
}

TEST_F(ResetReporter, InnerTasksNameTheOuterTasksProgress) {
  Options o;
  o.terminal = 0;
  o.interval = 1e-9;
  configure(o);
  testing::internal::CaptureStderr();
  {
    Task sweep("cluster", "k sweep", 4, "k");
    {
      Task k("kmeans", "k=3", 300, "iter", true);
      k.update(1, {{"inertia", 2.0}}, true);  // the sweep has no position yet
    }
    sweep.update_part(1.5, {2, "run", 2, 4});
    {
      Task k("kmeans", "k=3", 300, "iter", true);
      k.update(2, {{"inertia", 1.0}}, true);
    }
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(err, "] kmeans: k=3  iter 1 (max 300)  inertia 2\n")) << err;
  EXPECT_TRUE(contains(err, "] cluster: k sweep  k 2/4  run 2/4 (38%)  ETA ")) << err;
  EXPECT_TRUE(
      contains(err, "] kmeans: k=3  iter 2 (max 300)  inertia 1  | cluster: k sweep 38%, ETA "))
      << err;
  EXPECT_TRUE(contains(err, "] kmeans: k=3  done in ")) << "no outer figures at the end: " << err;
}

TEST_F(ResetReporter, BatchLogIsThrottled) {
  Options o;
  o.terminal = 0;
  o.interval = 1e6;  // nothing is due within the test
  configure(o);
  testing::internal::CaptureStderr();
  {
    Task t("kmeans", "k=5", 300, "iter", true);
    for (int i = 1; i <= 50; ++i) t.update(i, {{"inertia", 1.0 / i}}, true);
    Task s("train", "", 10, "epoch");
    for (double i = 1; i <= 50; ++i)
      s.update_part(i / 100.0, {1, "step", i, 100}, {{"samples/s", i}});
  }
  note("ingest", "read 1 s");  // --verbose only
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

TEST_F(ResetReporter, VerbosePrintsEveryMilestone) {
  Options o;
  o.verbosity = Verbosity::kVerbose;
  o.terminal = 0;
  o.interval = 1e6;
  configure(o);
  testing::internal::CaptureStderr();
  {
    Task t("project", "PCA", 4, "pass");
    for (int i = 1; i <= 4; ++i) t.update(i, {}, true);
  }
  note("ingest", "shuffle 2 s");
  const std::string err = testing::internal::GetCapturedStderr();
  for (const char* want : {"pass 1/4", "pass 2/4", "pass 3/4", "pass 4/4", "ingest: shuffle 2 s"})
    EXPECT_TRUE(contains(err, want)) << want << " in " << err;
}

TEST_F(ResetReporter, TerminalRedrawsOneLine) {
  Options o;
  o.terminal = 1;
  configure(o);
  testing::internal::CaptureStderr();
  {
    Task t("train", "", 10, "epoch");
    t.update(5, {{"loss", 1.5}}, true);
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(err, "\r\033[K[##########..........] train  epoch 5/10 (50%)")) << err;
  EXPECT_EQ(err.find('\n'), std::string::npos) << "the line is cleared, not scrolled: " << err;
}

TEST_F(ResetReporter, UnwritableLogIsAnIoError) {
  Options o;
  o.json_path = "/nonexistent-dir/x/events.jsonl";
  EXPECT_THROW(configure(o), Error);
}

// Unsets the named variables for a test's scope and puts back what they held.
class UnsetEnv {
 public:
  explicit UnsetEnv(std::initializer_list<const char*> names) {
    for (const char* n : names) {
      const char* v = std::getenv(n);
      saved_.push_back({n, v != nullptr, v ? v : ""});
      ::unsetenv(n);
    }
  }
  ~UnsetEnv() {
    for (const auto& e : saved_)
      if (e.set)
        ::setenv(e.name.c_str(), e.value.c_str(), 1);
      else
        ::unsetenv(e.name.c_str());
  }
  UnsetEnv(const UnsetEnv&) = delete;
  UnsetEnv& operator=(const UnsetEnv&) = delete;

 private:
  struct Saved {
    std::string name;
    bool set;
    std::string value;
  };
  std::vector<Saved> saved_;
};

TEST(Environment, ThreadsFromOmpThenSlurm) {
  const UnsetEnv env_vars({"OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"});
  EXPECT_EQ(env::default_threads(), 1);
  ::setenv("SLURM_CPUS_PER_TASK", "6", 1);
  EXPECT_EQ(env::default_threads(), 6);
  ::setenv("OMP_NUM_THREADS", "3", 1);
  EXPECT_EQ(env::default_threads(), 3);
  EXPECT_STREQ(env::default_threads_source(), "OMP_NUM_THREADS");
  ::setenv("OMP_NUM_THREADS", "3x", 1);  // not a number: ignored
  EXPECT_EQ(env::default_threads(), 6);
  EXPECT_STREQ(env::default_threads_source(), "SLURM_CPUS_PER_TASK");
  ::setenv("SLURM_CPUS_PER_TASK", "0", 1);
  EXPECT_EQ(env::default_threads(), 1);
}

// BLAS threads for a rank's share of its node: affinity CPUs over the node's ranks, >= 1;
// NodeThreads applies it only where no thread count was given, and restores the count.
TEST(Environment, NodeShareOfTheCpus) {
  EXPECT_EQ(blas::node_share(2, 1), 2);
  EXPECT_EQ(blas::node_share(16, 4), 4);
  EXPECT_EQ(blas::node_share(16, 3), 5);
  EXPECT_EQ(blas::node_share(1, 1), 1);  // bound to one core
  EXPECT_EQ(blas::node_share(2, 4), 1);  // oversubscribed
  EXPECT_EQ(blas::node_share(8, 0), 1);
  EXPECT_GE(env::affinity_cpus(), 1);
  const int before = blas::threads();
  const UnsetEnv env_vars({"OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK", "OPENBLAS_NUM_THREADS"});
  {
    const blas::NodeThreads t(1);  // nothing given: this process's CPUs (one rank on the node)
#ifdef SEGREC_HAVE_OPENBLAS
    EXPECT_EQ(t.threads(), blas::node_share(env::affinity_cpus(), 1));
#endif
    EXPECT_EQ(blas::threads(), t.threads());
  }
  EXPECT_EQ(blas::threads(), before);
  ::setenv("OMP_NUM_THREADS", "1", 1);  // given: the count stays
  {
    const blas::NodeThreads t(1);
    EXPECT_EQ(t.threads(), before);
  }
}

TEST(Environment, JobId) {
  const UnsetEnv env_vars({"SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID"});
  EXPECT_EQ(env::job_id(), "");
  ::setenv("SLURM_JOB_ID", "4242", 1);
  EXPECT_EQ(env::job_id(), "4242");
  ::setenv("SLURM_ARRAY_TASK_ID", "7", 1);
  EXPECT_EQ(env::job_id(), "4242_7");
}

}  // namespace
}  // namespace segrec::progress
