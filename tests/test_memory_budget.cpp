// check_memory: the refusal line (stage, bytes per rank item by item, the limit, the hint),
// the limit's default and reset, and shapes too large for 64-bit products.
#include "segrec/core/memory_budget.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "segrec/core/comm.hpp"
#include "segrec/core/error.hpp"

namespace segrec {
namespace {

// Restores the limit a test changed.
struct LimitGuard {
  std::int64_t saved = memory_per_rank();
  ~LimitGuard() { set_memory_per_rank(saved); }
};

TEST(MemoryBudget, RefusesWithOneLine) {
  const LimitGuard g;
  set_memory_per_rank(std::int64_t{2} << 20);  // 2 MiB
  MemoryNeed need;
  need.add("parameters", 300000, sizeof(float))   // 1.1 MiB
      .add("moments", 2 * 300000, sizeof(float))  // 2.3 MiB
      .add("tiny", 10);                           // under 1% of the total: not listed
  EXPECT_EQ(need.bytes(), 3600010.0L);
  try {
    check_memory(Comm(), "train", need, "use more ranks");
    FAIL() << "not refused";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "train: needs 3.4 MiB per rank (parameters 1.1 MiB, moments 2.3 MiB), over the "
                 "2.0 MiB allowed by --max-memory-per-rank; use more ranks");
    EXPECT_EQ(e.code(), kExitUsage);
  }
}

TEST(MemoryBudget, WithinTheLimitPasses) {
  const LimitGuard g;
  set_memory_per_rank(std::int64_t{4} << 20);
  EXPECT_NO_THROW(check_memory(Comm(), "cluster", (std::int64_t{4} << 20), "-"));
  EXPECT_THROW(check_memory(Comm(), "cluster", (std::int64_t{4} << 20) + 1, "-"), UsageError);
}

TEST(MemoryBudget, DefaultAndNoLimit) {
  const LimitGuard g;
  EXPECT_GT(memory_per_rank(), 0);  // physical memory
  set_memory_per_rank(0);           // off
  EXPECT_EQ(memory_per_rank(), INT64_MAX);
  MemoryNeed huge;
  huge.add("rows", 1e15L, 8).add("negative", -5, 8);  // 8 PB: no overflow; negatives count 0
  EXPECT_EQ(huge.bytes(), 8e15L);
  set_memory_per_rank(std::int64_t{1} << 40);
  try {
    check_memory(Comm(), "profile", huge, "use more ranks");
    FAIL() << "not refused";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "profile: needs 7.1 PiB per rank (rows 7.1 PiB), over the 1.0 TiB allowed by "
                 "--max-memory-per-rank; use more ranks");
  }
}

}  // namespace
}  // namespace segrec
