// Comm as a serial communicator (no MPI): every collective is a local copy,
// and block_partition tiles a row range.
#include "segrec/core/comm.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "segrec/core/error.hpp"

namespace segrec {
namespace {

TEST(CommSerial, IdentityAndSplit) {
  const Comm c;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  EXPECT_TRUE(c.is_root());
  EXPECT_FALSE(c.is_mpi());
  EXPECT_EQ(c.native(), nullptr);
  c.barrier();
  const Comm s = c.split(3, 0);
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s.size(), 1);
  EXPECT_FALSE(s.is_mpi());
}

TEST(CommSerial, AllreduceIsIdentity) {
  const Comm c;
  std::vector<double> v = {1.5, -2.0, 3.25};
  for (Op op : {Op::kSum, Op::kMin, Op::kMax}) {
    std::vector<double> w = v;
    c.allreduce(w, op);
    EXPECT_EQ(w, v);
  }
  std::vector<std::int64_t> iv = {7, -8, 1LL << 40};
  c.allreduce(iv, Op::kMax);
  EXPECT_EQ(iv, (std::vector<std::int64_t>{7, -8, 1LL << 40}));
  std::vector<float> empty;
  c.allreduce(empty);
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(c.allreduce_value(42), 42);
  EXPECT_EQ(c.allreduce_value(std::uint64_t{5}, Op::kMin), 5u);
  EXPECT_DOUBLE_EQ(c.allreduce_value(2.5, Op::kMax), 2.5);

  Eigen::MatrixXd m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  const Eigen::MatrixXd before = m;
  c.allreduce(m);
  EXPECT_EQ(m, before);
  Eigen::VectorXf fv = Eigen::VectorXf::LinSpaced(4, 0.f, 3.f);
  c.allreduce(fv, Op::kMin);
  EXPECT_EQ(fv, Eigen::VectorXf::LinSpaced(4, 0.f, 3.f));
}

TEST(CommSerial, MaxlocAndExscan) {
  const Comm c;
  const ValueIndex r = c.allreduce_maxloc({3.5, 17});
  EXPECT_EQ(r.value, 3.5);
  EXPECT_EQ(r.index, 17);
  EXPECT_EQ(c.exscan_sum(123), 0);
}

TEST(CommSerial, BroadcastKeepsData) {
  const Comm c;
  std::vector<int> v = {1, 2, 3};
  c.broadcast(v);
  EXPECT_EQ(v, (std::vector<int>{1, 2, 3}));
  std::string s = "hello";
  c.broadcast(s);
  EXPECT_EQ(s, "hello");
  std::string e;
  c.broadcast(e);
  EXPECT_EQ(e, "");
  Eigen::MatrixXf m = Eigen::MatrixXf::Constant(3, 2, 1.5f);
  c.broadcast(m);
  EXPECT_EQ(m.rows(), 3);
  EXPECT_EQ(m.cols(), 2);
  EXPECT_EQ(m, Eigen::MatrixXf::Constant(3, 2, 1.5f));
}

TEST(CommSerial, GathersAndAlltoall) {
  const Comm c;
  std::vector<std::int64_t> counts;
  const std::vector<double> local = {1, 2, 3};
  EXPECT_EQ(c.allgatherv(local, &counts), local);
  EXPECT_EQ(counts, (std::vector<std::int64_t>{3}));
  const std::vector<double> none;
  EXPECT_TRUE(c.allgatherv(none, &counts).empty());
  EXPECT_EQ(counts, (std::vector<std::int64_t>{0}));
  EXPECT_EQ(c.allgather_strings("abc"), (std::vector<std::string>{"abc"}));
  EXPECT_EQ(c.allgather_strings(""), (std::vector<std::string>{""}));

  const std::vector<std::vector<std::int32_t>> send = {{4, 5, 6}};
  const auto got = c.alltoallv(send);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], (std::vector<std::int32_t>{4, 5, 6}));
  const auto got_empty = c.alltoallv(std::vector<std::vector<std::int32_t>>(1));
  ASSERT_EQ(got_empty.size(), 1u);
  EXPECT_TRUE(got_empty[0].empty());

  std::vector<std::int64_t> rc;
  const auto flat = c.alltoallv_flat(std::vector<std::uint16_t>{9, 8}, {2}, rc);
  EXPECT_EQ(flat, (std::vector<std::uint16_t>{9, 8}));
  EXPECT_EQ(rc, (std::vector<std::int64_t>{2}));
  const auto flat_empty = c.alltoallv_flat(std::vector<std::uint16_t>{}, {0}, rc);
  EXPECT_TRUE(flat_empty.empty());
  EXPECT_EQ(rc, (std::vector<std::int64_t>{0}));

  // Wrong number of send buffers is an internal error, not a crash.
  EXPECT_THROW(c.alltoallv(std::vector<std::vector<int>>(2)), Error);
}

TEST(CommSerial, CheckAll) {
  const Comm c;
  EXPECT_NO_THROW(c.check_all("", kExitData));
  try {
    c.check_all("bad row 7", kExitData);
    FAIL() << "check_all did not throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "bad row 7");
    EXPECT_EQ(e.code(), kExitData);
    EXPECT_TRUE(e.collective());
  }
}

TEST(CommSerial, SendsNoBytes) {
  const Comm c;
  std::vector<double> v(10, 1.0);
  c.allreduce(v);
  c.broadcast(v);
  (void)c.allgatherv(v);
  (void)c.alltoallv(std::vector<std::vector<double>>{v});
  const CommStats& s = c.stats();
  EXPECT_EQ(s.allreduce_bytes, 0u);
  EXPECT_EQ(s.bcast_bytes, 0u);
  EXPECT_EQ(s.gather_bytes, 0u);
  EXPECT_EQ(s.alltoall_bytes, 0u);
}

TEST(CommSerial, WorldOrSerialWithoutMpi) {
  const Comm c = Comm::world_or_serial();
  EXPECT_FALSE(c.is_mpi());
  EXPECT_EQ(c.size(), 1);
}

// ---- block_partition --------------------------------------------------------------

TEST(BlockPartition, TilesEvenly) {
  for (std::int64_t n : {0, 1, 2, 3, 5, 7, 10, 11, 64, 100, 1001}) {
    for (int parts = 1; parts <= 9; ++parts) {
      std::int64_t expect_begin = 0;
      for (int p = 0; p < parts; ++p) {
        const Block b = block_partition(n, parts, p);
        EXPECT_EQ(b.begin, expect_begin) << "n=" << n << " parts=" << parts << " p=" << p;
        EXPECT_GE(b.size(), 0);
        // Even: sizes are floor(n/parts) or ceil(n/parts), larger blocks first.
        const std::int64_t want = n / parts + (p < n % parts ? 1 : 0);
        EXPECT_EQ(b.size(), want) << "n=" << n << " parts=" << parts << " p=" << p;
        expect_begin = b.end;
      }
      EXPECT_EQ(expect_begin, n) << "n=" << n << " parts=" << parts;
    }
  }
}

TEST(BlockPartition, FewerRowsThanParts) {
  // n = 3 over 5 parts: three single rows, then two empty blocks at the end.
  const std::int64_t want[5][2] = {{0, 1}, {1, 2}, {2, 3}, {3, 3}, {3, 3}};
  for (int p = 0; p < 5; ++p) {
    const Block b = block_partition(3, 5, p);
    EXPECT_EQ(b.begin, want[p][0]);
    EXPECT_EQ(b.end, want[p][1]);
  }
  const Block one = block_partition(10, 1, 0);
  EXPECT_EQ(one.begin, 0);
  EXPECT_EQ(one.end, 10);
}

TEST(BlockPartition, LargeCounts) {
  const std::int64_t n = (std::int64_t{1} << 40) + 3;
  const Block last = block_partition(n, 4, 3);
  EXPECT_EQ(last.end, n);
  EXPECT_EQ(last.size(), n / 4);
  EXPECT_EQ(block_partition(n, 4, 0).size(), n / 4 + 1);
  EXPECT_EQ(block_partition(n, 4, 2).begin, 2 * (n / 4 + 1));
}

}  // namespace
}  // namespace segrec
