// Comm over MPI_COMM_WORLD: every collective is checked against closed-form
// values that hold for any rank count (the binary runs at 1, 2 and 4 ranks).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "segrec/core/comm.hpp"
#include "segrec/core/error.hpp"

namespace segrec {
namespace {

// Rows owned by rank r in the uneven layouts below: rank 1 has none.
std::int64_t uneven(int r) { return r == 1 ? 0 : r + 2; }

TEST(CommMpi, WorldIdentity) {
  const Comm c = Comm::world();
  EXPECT_TRUE(c.is_mpi());
  EXPECT_NE(c.native(), nullptr);
  EXPECT_GE(c.size(), 1);
  EXPECT_GE(c.rank(), 0);
  EXPECT_LT(c.rank(), c.size());
  EXPECT_EQ(c.is_root(), c.rank() == 0);
  const Comm w = Comm::world_or_serial();
  EXPECT_TRUE(w.is_mpi());
  EXPECT_EQ(w.size(), c.size());
  EXPECT_EQ(w.rank(), c.rank());
  // Ranks agree on the size.
  EXPECT_EQ(c.allreduce_value(1), c.size());
  c.barrier();
}

TEST(CommMpi, AllreduceVectors) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  const std::int64_t tri = std::int64_t{p} * (p + 1) / 2;
  const int n = 37;
  std::vector<double> sum(n), mn(n), mx(n);
  std::vector<std::int64_t> isum(n);
  std::vector<float> fmin(n);
  std::vector<std::uint32_t> umax(n);
  std::vector<std::int32_t> i32(n);
  for (int i = 0; i < n; ++i) {
    sum[i] = mn[i] = mx[i] = double(r + 1) * i;
    isum[i] = std::int64_t{r + 1} * i * (std::int64_t{1} << 33);
    fmin[i] = -float(r + 1) * float(i);
    umax[i] = static_cast<std::uint32_t>((r + 1) * i) + 3000000000u;
    i32[i] = (r % 2 == 0 ? 1 : -1) * (i + r);
  }
  c.allreduce(sum, Op::kSum);
  c.allreduce(mn, Op::kMin);
  c.allreduce(mx, Op::kMax);
  c.allreduce(isum);  // default op is the sum
  c.allreduce(fmin, Op::kMin);
  c.allreduce(umax, Op::kMax);
  c.allreduce(std::span<std::int32_t>(i32), Op::kMin);
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(sum[i], double(tri) * i) << i;
    EXPECT_EQ(mn[i], double(i)) << i;
    EXPECT_EQ(mx[i], double(p) * i) << i;
    EXPECT_EQ(isum[i], tri * i * (std::int64_t{1} << 33)) << i;
    EXPECT_EQ(fmin[i], -float(p) * float(i)) << i;
    EXPECT_EQ(umax[i], static_cast<std::uint32_t>(p * i) + 3000000000u) << i;
    // Odd ranks contribute -(i + r); the smallest is from the largest odd rank.
    int want = i;  // rank 0
    for (int q = 1; q < p; q += 2) want = std::min(want, -(i + q));
    EXPECT_EQ(i32[i], want) << i;
  }
}

// Nonblocking allreduces: several in flight at once, completed out of order, equal the
// closed-form sums; a serial communicator completes at once.
TEST(CommMpi, IallreduceSeveralInFlight) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  std::vector<std::vector<float>> bufs;
  for (int b = 0; b < 5; ++b) {
    std::vector<float> v(static_cast<std::size_t>(1000 + 777 * b));
    for (std::size_t k = 0; k < v.size(); ++k)
      v[k] = static_cast<float>((r + 1) * (b + 1)) + 0.25f * (k % 8);
    bufs.push_back(std::move(v));
  }
  std::vector<Request> reqs;
  for (auto& v : bufs) {
    reqs.push_back(c.iallreduce(std::span<float>(v)));
    for (auto& q : reqs) q.test();
  }
  for (int b = 4; b >= 0; --b) reqs[static_cast<std::size_t>(b)].wait();
  for (auto& q : reqs) EXPECT_FALSE(q.active());
  const float ranks_sum = static_cast<float>(p * (p + 1) / 2);
  for (int b = 0; b < 5; ++b)
    for (std::size_t k = 0; k < bufs[static_cast<std::size_t>(b)].size(); ++k)
      ASSERT_FLOAT_EQ(
          bufs[static_cast<std::size_t>(b)][k],
          ranks_sum * static_cast<float>(b + 1) + static_cast<float>(p) * 0.25f * (k % 8))
          << "buffer " << b << " element " << k;
  std::vector<double> one = {3.0};
  Request serial = Comm().iallreduce(std::span<double>(one));
  EXPECT_FALSE(serial.active());
  EXPECT_EQ(one[0], 3.0);
}

// Reduce-scatter then allgather of uneven blocks (one empty, offsets not starting at 0) equal
// a naive sum; the data outside [offsets.front(), offsets.back()) is untouched.
TEST(CommMpi, ReduceScatterAndAllgatherBlocks) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  std::vector<std::int64_t> off(static_cast<std::size_t>(p) + 1);
  off[0] = 3;
  for (int q = 0; q < p; ++q) off[q + 1] = off[q] + uneven(q) * 5;
  const std::int64_t n = off[p] + 4;
  const auto value = [](int rank, std::int64_t k) { return static_cast<double>(rank * 1000 + k); };
  std::vector<double> data(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k) data[k] = value(r, k);
  c.reduce_scatter(std::span<double>(data), std::span<const std::int64_t>(off));
  for (std::int64_t k = off[r]; k < off[r + 1]; ++k) {
    double want = 0;
    for (int q = 0; q < p; ++q) want += value(q, k);
    ASSERT_EQ(data[k], want) << "element " << k;
  }
  for (std::int64_t k : {std::int64_t{0}, n - 1}) EXPECT_EQ(data[k], value(r, k)) << "outside";
  const std::vector<double> mine(data.begin() + off[r], data.begin() + off[r + 1]);
  // Each rank fills in its block; the gather gives every rank every block.
  std::vector<double> all(static_cast<std::size_t>(n), -7.0);
  std::copy(mine.begin(), mine.end(), all.begin() + off[r]);
  c.allgather_blocks(std::span<double>(all), std::span<const std::int64_t>(off));
  for (std::int64_t k = 0; k < n; ++k) {
    double want = -7.0;
    if (k >= off[0] && k < off[p]) {
      want = 0;
      for (int q = 0; q < p; ++q) want += value(q, k);
    }
    ASSERT_EQ(all[k], want) << "element " << k;
  }
  EXPECT_EQ(c.stats().reduce_scatter_calls > 0, p > 1);  // one rank: nothing to send
  // Floats whose sum depends on the order of the additions: the result is the rank-order sum
  // ((x_0 + x_1) + x_2) + ..., bit for bit, whatever the rank owning the block.
  const auto x = [](int rank, std::int64_t k) {
    const float big[4] = {1e8f, 3.0f, -1e8f, 0.7f};
    return big[(rank + k) % 4] * (1.0f + 0.01f * static_cast<float>(k % 7));
  };
  std::vector<float> fl(static_cast<std::size_t>(n));
  for (std::int64_t k = 0; k < n; ++k) fl[k] = x(r, k);
  c.reduce_scatter(std::span<float>(fl), std::span<const std::int64_t>(off));
  for (std::int64_t k = off[r]; k < off[r + 1]; ++k) {
    // Each term is rounded to float first, as the ranks hold it: through a volatile, so the
    // compiler cannot fuse x's product into the sum (FMA), which would round once less.
    volatile float term = x(0, k);
    float want = term;
    for (int q = 1; q < p; ++q) {
      term = x(q, k);
      want += term;
    }
    ASSERT_EQ(fl[k], want) << "element " << k;
  }
  // Offsets of the wrong length are an error, raised on every rank alike.
  std::vector<std::int64_t> bad = {0, 1};
  if (p != 1) {
    EXPECT_THROW(c.allgather_blocks(std::span<double>(all), std::span<const std::int64_t>(bad)),
                 Error);
  }
}

TEST(CommMpi, AllreduceScalars) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  EXPECT_EQ(c.allreduce_value(r + 1), p * (p + 1) / 2);
  EXPECT_EQ(c.allreduce_value(std::int64_t{r}, Op::kMax), p - 1);
  EXPECT_EQ(c.allreduce_value(std::int64_t{r} - 5, Op::kMin), -5);
  EXPECT_DOUBLE_EQ(c.allreduce_value(0.5 * (r + 1)), 0.25 * p * (p + 1));
  EXPECT_EQ(c.allreduce_value(std::uint64_t{1} << 62, Op::kMax), std::uint64_t{1} << 62);
  EXPECT_EQ(c.allreduce_value(std::uint8_t(200 + r), Op::kMax), std::uint8_t(200 + p - 1));
  EXPECT_EQ(c.allreduce_value(std::uint16_t(r + 1), Op::kSum), std::uint16_t(p * (p + 1) / 2));
}

TEST(CommMpi, AllreduceEigen) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  const double tri = p * (p + 1) / 2.0;
  Eigen::MatrixXd m(3, 4);
  Eigen::ArrayXXf a(2, 5);
  Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1> v(6);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) m(i, j) = (r + 1) * (i * 4 + j);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 5; ++j) a(i, j) = float((r + 1) * (i - j));
  for (int i = 0; i < 6; ++i) v(i) = (r + 1) * i;
  Eigen::MatrixXd m_max = m;
  c.allreduce(m);
  c.allreduce(m_max, Op::kMax);
  c.allreduce(a, Op::kMin);
  c.allreduce(v, Op::kSum);
  EXPECT_EQ(m.rows(), 3);
  EXPECT_EQ(m.cols(), 4);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(m(i, j), tri * (i * 4 + j));
      EXPECT_EQ(m_max(i, j), double(p) * (i * 4 + j));
    }
  // (r+1)(i-j): the minimum is p(i-j) when i-j < 0, else (i-j) from rank 0.
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_EQ(a(i, j), float(i - j < 0 ? p * (i - j) : (i - j)));
  for (int i = 0; i < 6; ++i) EXPECT_EQ(v(i), std::int64_t(tri) * i);
}

TEST(CommMpi, MaxlocTiesGoToSmallestIndex) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  // All ranks tie: smallest index wins, wherever it is (here on the last rank).
  ValueIndex got = c.allreduce_maxloc({7.0, 1000 - r});
  EXPECT_EQ(got.value, 7.0);
  EXPECT_EQ(got.index, 1000 - (p - 1));

  // Odd ranks hold the maximum 10 with indices 100 - r (so the largest odd
  // rank has the smallest index); even ranks hold 5 with tiny indices that
  // must not win.
  got = c.allreduce_maxloc({r % 2 ? 10.0 : 5.0, r % 2 ? 100 - r : r});
  if (p == 1) {
    EXPECT_EQ(got.value, 5.0);
    EXPECT_EQ(got.index, 0);
  } else {
    const int last_odd = (p - 1) % 2 ? p - 1 : p - 2;
    EXPECT_EQ(got.value, 10.0);
    EXPECT_EQ(got.index, 100 - last_odd);
  }

  // Exactly two ranks (the first and the last) share the maximum; the last
  // rank has the smaller index.
  const bool holder = r == 0 || r == p - 1;
  got = c.allreduce_maxloc({holder ? 2.5 : -1.0, r == p - 1 ? 3 : 50 + r});
  EXPECT_EQ(got.value, 2.5);
  EXPECT_EQ(got.index, 3);

  // Negative values and 64-bit indices.
  got = c.allreduce_maxloc({-double(r + 1), (std::int64_t{1} << 40) + r});
  EXPECT_EQ(got.value, -1.0);
  EXPECT_EQ(got.index, std::int64_t{1} << 40);

  // A unique maximum on the last rank.
  got = c.allreduce_maxloc({double(r), 10 * r + 1});
  EXPECT_EQ(got.value, double(p - 1));
  EXPECT_EQ(got.index, 10 * (p - 1) + 1);
}

TEST(CommMpi, ExscanSum) {
  const Comm c = Comm::world();
  const int r = c.rank();
  EXPECT_EQ(c.exscan_sum(r + 1), std::int64_t{r} * (r + 1) / 2);
  const std::int64_t big = std::int64_t{1} << 40;
  EXPECT_EQ(c.exscan_sum(big), big * r);
  EXPECT_EQ(c.exscan_sum(0), 0);
  // Uneven row counts: offsets of a row partition.
  std::int64_t want = 0;
  for (int q = 0; q < r; ++q) want += uneven(q);
  EXPECT_EQ(c.exscan_sum(uneven(r)), want);
}

TEST(CommMpi, BroadcastFromFirstAndLastRank) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank(), last = p - 1;

  std::vector<std::int32_t> v;
  if (r == 0)
    v = {3, 1, 4, 1, 5, 9, 2, 6};
  else
    v.assign(static_cast<std::size_t>(r) * 3, -1);  // wrong size and content elsewhere
  c.broadcast(v);
  EXPECT_EQ(v, (std::vector<std::int32_t>{3, 1, 4, 1, 5, 9, 2, 6}));

  std::vector<double> big;
  if (r == last) {
    big.resize(100000);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = 0.5 * double(i);
  }
  c.broadcast(big, last);
  EXPECT_EQ(big.size(), 100000u);
  bool all_ok = big.size() == 100000u;
  for (std::size_t i = 0; i < big.size(); ++i) all_ok = all_ok && big[i] == 0.5 * double(i);
  EXPECT_TRUE(all_ok);

  // An empty vector from the root empties every rank's vector.
  std::vector<std::int64_t> e(r == 0 ? 0 : 5, 7);
  c.broadcast(e, 0);
  EXPECT_TRUE(e.empty());

  std::string s = r == last ? "from the last rank, with spaces\tand tabs" : std::string(r, 'x');
  c.broadcast(s, last);
  EXPECT_EQ(s, "from the last rank, with spaces\tand tabs");
  std::string es = r == 0 ? "" : "not empty";
  c.broadcast(es);
  EXPECT_EQ(es, "");

  Eigen::MatrixXd m;
  if (r == last) {
    m.resize(4, 3);
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) m(i, j) = 10 * i + j + 0.25;
  } else {
    m = Eigen::MatrixXd::Zero(1, 7);
  }
  c.broadcast(m, last);
  EXPECT_EQ(m.rows(), 4);
  EXPECT_EQ(m.cols(), 3);
  if (m.rows() == 4 && m.cols() == 3) {
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 3; ++j) EXPECT_EQ(m(i, j), 10 * i + j + 0.25);
  }

  Eigen::VectorXf fv;
  if (r == 0) fv = Eigen::VectorXf::LinSpaced(5, 1.f, 5.f);
  c.broadcast(fv);
  EXPECT_EQ(fv, Eigen::VectorXf::LinSpaced(5, 1.f, 5.f));

  std::int64_t span_data[3] = {r, r, r};
  c.broadcast(std::span<std::int64_t>(span_data, 3), last);
  for (auto x : span_data) EXPECT_EQ(x, last);
}

TEST(CommMpi, AllgathervVariableSizes) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  std::vector<std::int64_t> local(static_cast<std::size_t>(uneven(r)));
  for (std::size_t i = 0; i < local.size(); ++i) local[i] = 1000 * r + std::int64_t(i);
  std::vector<std::int64_t> counts;
  const auto all = c.allgatherv(local, &counts);
  std::vector<std::int64_t> want;
  std::vector<std::int64_t> want_counts;
  for (int q = 0; q < p; ++q) {
    want_counts.push_back(uneven(q));
    for (std::int64_t i = 0; i < uneven(q); ++i) want.push_back(1000 * q + i);
  }
  EXPECT_EQ(all, want);
  EXPECT_EQ(counts, want_counts);
  // Without the counts output.
  EXPECT_EQ(c.allgatherv(std::span<const std::int64_t>(local)), want);

  // Every rank empty.
  const std::vector<float> none;
  const auto empty = c.allgatherv(none, &counts);
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(counts, std::vector<std::int64_t>(static_cast<std::size_t>(p), 0));

  // A struct type: counts are in elements, not bytes.
  std::vector<ValueIndex> vi(static_cast<std::size_t>(r % 2 ? 0 : 2));
  for (std::size_t i = 0; i < vi.size(); ++i) vi[i] = {r + 0.5, 10 * r + std::int64_t(i)};
  const auto gvi = c.allgatherv(vi, &counts);
  std::size_t k = 0;
  for (int q = 0; q < p; ++q) {
    EXPECT_EQ(counts[static_cast<std::size_t>(q)], q % 2 ? 0 : 2);
    if (q % 2) continue;
    for (int i = 0; i < 2; ++i, ++k) {
      ASSERT_LT(k, gvi.size());
      EXPECT_EQ(gvi[k].value, q + 0.5);
      EXPECT_EQ(gvi[k].index, 10 * q + i);
    }
  }
  EXPECT_EQ(k, gvi.size());
}

TEST(CommMpi, AllgatherStrings) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  // Rank 0 sends "", rank r sends r copies of 'a' + r.
  const auto got = c.allgather_strings(std::string(static_cast<std::size_t>(r), char('a' + r)));
  ASSERT_EQ(got.size(), static_cast<std::size_t>(p));
  for (int q = 0; q < p; ++q)
    EXPECT_EQ(got[static_cast<std::size_t>(q)],
              std::string(static_cast<std::size_t>(q), char('a' + q)));
  const auto same = c.allgather_strings("x,y");
  EXPECT_EQ(same, std::vector<std::string>(static_cast<std::size_t>(p), "x,y"));
}

// Message from rank s to rank d: s + d values s*1000 + d*100 + i (empty for 0 -> 0).
std::vector<std::int64_t> message(int s, int d) {
  std::vector<std::int64_t> m(static_cast<std::size_t>(s + d));
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = s * 1000 + d * 100 + std::int64_t(i);
  return m;
}

TEST(CommMpi, AlltoallvVariableSizes) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  std::vector<std::vector<std::int64_t>> send(static_cast<std::size_t>(p));
  for (int d = 0; d < p; ++d) send[static_cast<std::size_t>(d)] = message(r, d);
  const auto got = c.alltoallv(send);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(p));
  for (int s = 0; s < p; ++s) EXPECT_EQ(got[static_cast<std::size_t>(s)], message(s, r)) << s;

  // Nothing at all to send.
  const auto none = c.alltoallv(std::vector<std::vector<double>>(static_cast<std::size_t>(p)));
  ASSERT_EQ(none.size(), static_cast<std::size_t>(p));
  for (const auto& m : none) EXPECT_TRUE(m.empty());

  // Only the last rank sends, one value to everybody.
  std::vector<std::vector<float>> one(static_cast<std::size_t>(p));
  if (r == p - 1)
    for (int d = 0; d < p; ++d) one[static_cast<std::size_t>(d)] = {float(d) + 0.5f};
  const auto got1 = c.alltoallv(one);
  for (int s = 0; s < p; ++s) {
    if (s == p - 1)
      EXPECT_EQ(got1[static_cast<std::size_t>(s)], (std::vector<float>{float(r) + 0.5f}));
    else
      EXPECT_TRUE(got1[static_cast<std::size_t>(s)].empty());
  }
}

TEST(CommMpi, AlltoallvFlat) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  std::vector<std::int64_t> flat, send_counts;
  for (int d = 0; d < p; ++d) {
    const auto m = message(r, d);
    flat.insert(flat.end(), m.begin(), m.end());
    send_counts.push_back(static_cast<std::int64_t>(m.size()));
  }
  std::vector<std::int64_t> recv_counts;
  const auto got = c.alltoallv_flat(flat, send_counts, recv_counts);
  std::vector<std::int64_t> want, want_counts;
  for (int s = 0; s < p; ++s) {
    const auto m = message(s, r);
    want.insert(want.end(), m.begin(), m.end());
    want_counts.push_back(static_cast<std::int64_t>(m.size()));
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(recv_counts, want_counts);

  // Doubles, everything empty.
  std::vector<std::int64_t> zero(static_cast<std::size_t>(p), 0);
  const auto none = c.alltoallv_flat(std::vector<double>{}, zero, recv_counts);
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(recv_counts, zero);
}

TEST(CommMpi, CheckAllNoFailure) {
  const Comm c = Comm::world();
  EXPECT_NO_THROW(c.check_all("", kExitData));
}

TEST(CommMpi, CheckAllOneRankFails) {
  const Comm c = Comm::world();
  const int last = c.size() - 1;
  const std::string mine = c.rank() == last ? "rank " + std::to_string(last) + " saw bad data" : "";
  try {
    c.check_all(mine, c.rank() == last ? kExitData : kExitIo);
    ADD_FAILURE() << "check_all did not throw on rank " << c.rank();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "rank " + std::to_string(last) + " saw bad data");
    EXPECT_EQ(e.code(), kExitData);
    EXPECT_TRUE(e.collective());
  }
  // The communicator is still usable afterwards.
  EXPECT_EQ(c.allreduce_value(1), c.size());
}

TEST(CommMpi, CheckAllLowestFailingRankWins) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  // Ranks 1..p-1 fail (rank 0 alone when p == 1), each with its own message and code.
  const int first = std::min(1, p - 1);
  const bool fails = r >= first;
  try {
    c.check_all(fails ? "failure on rank " + std::to_string(r) : "", 10 + r);
    ADD_FAILURE() << "check_all did not throw on rank " << r;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "failure on rank " + std::to_string(first));
    EXPECT_EQ(e.code(), 10 + first);
    EXPECT_TRUE(e.collective());
  }
}

TEST(CommMpi, SplitEvenOdd) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  const int color = r % 2;
  const Comm sub = c.split(color, r);
  EXPECT_TRUE(sub.is_mpi());
  const int want_size = color == 0 ? (p + 1) / 2 : p / 2;
  EXPECT_EQ(sub.size(), want_size);
  EXPECT_EQ(sub.rank(), r / 2);
  int want_sum = 0;
  for (int q = color; q < p; q += 2) want_sum += q;
  EXPECT_EQ(sub.allreduce_value(r), want_sum);
  const auto names = sub.allgather_strings(std::to_string(r));
  EXPECT_EQ(names.size(), static_cast<std::size_t>(want_size));
  for (int i = 0; i < want_size && i < static_cast<int>(names.size()); ++i)
    EXPECT_EQ(names[static_cast<std::size_t>(i)], std::to_string(color + 2 * i));

  // A reversed key reverses the order inside each group.
  const Comm rev = c.split(color, -r);
  EXPECT_EQ(rev.rank(), want_size - 1 - r / 2);
  // One color for all: same as world.
  const Comm all = c.split(0, r);
  EXPECT_EQ(all.size(), p);
  EXPECT_EQ(all.rank(), r);
}

TEST(CommMpi, StatsCountBytes) {
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  c.reset_stats();
  EXPECT_EQ(c.stats().allreduce_bytes, 0u);

  std::vector<double> v(10, 1.0);
  c.allreduce(v);
  EXPECT_EQ(c.stats().allreduce_calls, 1u);
  EXPECT_EQ(c.stats().allreduce_bytes, 80u);
  std::vector<std::int32_t> iv(3, 1);
  c.allreduce(iv, Op::kMax);
  EXPECT_EQ(c.stats().allreduce_calls, 2u);
  EXPECT_EQ(c.stats().allreduce_bytes, 92u);

  // Broadcast bytes are sent by the root only.
  std::int32_t b[5] = {1, 2, 3, 4, 5};
  c.broadcast(std::span<std::int32_t>(b, 5), p - 1);
  EXPECT_EQ(c.stats().bcast_calls, 1u);
  EXPECT_EQ(c.stats().bcast_bytes, r == p - 1 ? 20u : 0u);

  // Allgatherv: this rank's bytes go to the p - 1 others.
  std::vector<std::int64_t> g(static_cast<std::size_t>(uneven(r)), 1);
  (void)c.allgatherv(g);
  EXPECT_EQ(c.stats().gather_calls, 1u);
  EXPECT_EQ(c.stats().gather_bytes, std::uint64_t(8 * uneven(r)) * std::uint64_t(p - 1));

  // Alltoallv: bytes to other ranks only.
  std::vector<std::vector<std::int64_t>> send(static_cast<std::size_t>(p));
  std::uint64_t want = 0;
  for (int d = 0; d < p; ++d) {
    send[static_cast<std::size_t>(d)] = message(r, d);
    if (d != r) want += 8u * std::uint64_t(r + d);
  }
  (void)c.alltoallv(send);
  EXPECT_EQ(c.stats().alltoall_calls, 1u);
  EXPECT_EQ(c.stats().alltoall_bytes, want);

  // Stats are per communicator: a fresh duplicate starts at zero.
  const Comm other = Comm::world();
  EXPECT_EQ(other.stats().allreduce_bytes, 0u);
  EXPECT_EQ(other.stats().alltoall_bytes, 0u);
  c.reset_stats();
  EXPECT_EQ(c.stats().allreduce_calls, 0u);
  EXPECT_EQ(c.stats().bcast_bytes, 0u);
  EXPECT_EQ(c.stats().gather_bytes, 0u);
  EXPECT_EQ(c.stats().alltoall_bytes, 0u);
}

TEST(CommMpi, RingShiftPassesBlocksAround) {
  // Rank r holds block r (uneven sizes, rank 1 empty); after s shifts it holds block r - s.
  const Comm c = Comm::world();
  const int p = c.size(), r = c.rank();
  const auto block = [](int q) {
    std::vector<std::int64_t> v(static_cast<std::size_t>(uneven(q)));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = 1000 * q + static_cast<std::int64_t>(i);
    return v;
  };
  c.reset_stats();
  std::vector<std::int64_t> cur = block(r);
  std::uint64_t sent = 0;
  for (int s = 1; s <= p; ++s) {
    const int from = ((r - s) % p + p) % p;
    std::vector<std::int64_t> next(static_cast<std::size_t>(uneven(from)), -1);
    Request q = c.ring_shift(std::span<const std::int64_t>(cur), std::span<std::int64_t>(next));
    q.wait();
    EXPECT_FALSE(q.active());
    sent += 8u * cur.size();
    cur = std::move(next);
    EXPECT_EQ(cur, block(from)) << "after " << s << " shifts";
  }
  EXPECT_EQ(c.stats().shift_calls, static_cast<std::uint64_t>(p));
  EXPECT_EQ(c.stats().shift_bytes, sent);
}

TEST(CommMpi, BlockPartitionAgreesWithAllgather) {
  // Each rank takes its block of n rows; gathering the blocks gives 0..n-1.
  const Comm c = Comm::world();
  for (std::int64_t n : {0, 1, 3, 10, 101}) {
    const Block b = block_partition(n, c.size(), c.rank());
    std::vector<std::int64_t> mine;
    for (std::int64_t i = b.begin; i < b.end; ++i) mine.push_back(i);
    const auto all = c.allgatherv(mine);
    EXPECT_EQ(all.size(), static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n && i < static_cast<std::int64_t>(all.size()); ++i)
      EXPECT_EQ(all[static_cast<std::size_t>(i)], i);
  }
}

}  // namespace
}  // namespace segrec
