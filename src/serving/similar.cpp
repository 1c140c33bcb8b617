// `segrec similar`: exact K nearest users by a ring of blocks, tiled GEMMs and running
// top lists; the CSV written by all ranks in rank order.
#include "segrec/serving/similar.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <unordered_map>
#include <utility>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/ingest/pseudonym.hpp"
#include "segrec/io/companion.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/io/textio.hpp"

namespace segrec {
namespace {

using RowMat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using CMap = Eigen::Map<const RowMat>;

// Candidates kept beyond `top` by GEMM score, rescored exactly: a margin against
// last-bit differences of the GEMM between tilings (rank counts).
constexpr std::int64_t kMargin = 8;

// Running top lists of `rows` query rows: per row a binary heap of at most `cap`
// candidates (GEMM key, global index), the worst at the root; a larger key is better,
// ties go to the smaller index. exact: the candidate's exact score (filled per block).
class TopLists {
 public:
  TopLists(std::int64_t rows, std::int64_t cap)
      : cap_(cap),
        key_(static_cast<std::size_t>(rows * cap)),
        idx_(static_cast<std::size_t>(rows * cap)),
        exact_(static_cast<std::size_t>(rows * cap)),
        size_(static_cast<std::size_t>(rows), 0) {}

  std::int64_t cap() const { return cap_; }
  std::int64_t size(std::int64_t r) const { return size_[static_cast<std::size_t>(r)]; }
  /// Keys below this cannot enter row r (a tie may: check with offer).
  float threshold(std::int64_t r) const {
    return size(r) < cap_ ? -std::numeric_limits<float>::infinity() : key_[base(r)];
  }
  void offer(std::int64_t r, float key, std::int64_t idx) {
    float* k = key_.data() + base(r);
    std::int64_t* ix = idx_.data() + base(r);
    double* ex = exact_.data() + base(r);  // moves with its candidate; set per block
    std::int64_t& n = size_[static_cast<std::size_t>(r)];
    if (n < cap_) {  // sift up
      std::int64_t c = n++;
      while (c > 0) {
        const std::int64_t p = (c - 1) / 2;
        if (!worse(key, idx, k[p], ix[p])) break;
        k[c] = k[p];
        ix[c] = ix[p];
        ex[c] = ex[p];
        c = p;
      }
      k[c] = key;
      ix[c] = idx;
      return;
    }
    if (!worse(k[0], ix[0], key, idx)) return;
    std::int64_t c = 0;  // sift down from the root
    for (;;) {
      std::int64_t ch = 2 * c + 1;
      if (ch >= n) break;
      if (ch + 1 < n && worse(k[ch + 1], ix[ch + 1], k[ch], ix[ch])) ++ch;
      if (!worse(k[ch], ix[ch], key, idx)) break;
      k[c] = k[ch];
      ix[c] = ix[ch];
      ex[c] = ex[ch];
      c = ch;
    }
    k[c] = key;
    ix[c] = idx;
  }
  std::int64_t* index(std::int64_t r) { return idx_.data() + base(r); }
  double* exact(std::int64_t r) { return exact_.data() + base(r); }

 private:
  static bool worse(float ka, std::int64_t ia, float kb, std::int64_t ib) {
    return ka < kb || (ka == kb && ia > ib);
  }
  std::size_t base(std::int64_t r) const { return static_cast<std::size_t>(r * cap_); }
  std::int64_t cap_;
  std::vector<float> key_;
  std::vector<std::int64_t> idx_;
  std::vector<double> exact_;
  std::vector<std::int64_t> size_;
};

// Exact goodness of a pair in double, fixed order (larger is closer): the inner product,
// or minus the squared distance.
double exact_goodness(const float* x, const float* y, std::int64_t dims, bool l2) {
  double s = 0;
  if (l2) {
    for (std::int64_t d = 0; d < dims; ++d) {
      const double t = static_cast<double>(x[d]) - static_cast<double>(y[d]);
      s += t * t;
    }
    return -s;
  }
  for (std::int64_t d = 0; d < dims; ++d)
    s += static_cast<double>(x[d]) * static_cast<double>(y[d]);
  return s;
}

// Offers a row of a score tile (cols values) to list row `row`; column j is global row
// col0 + j; `self` (the query's global row) is skipped. Chunks whose maximum is below the
// list's threshold (nearly all, once the list is full) cost one vectorised max.
void scan_row(const float* s, std::int64_t cols, std::int64_t col0, std::int64_t self,
              std::int64_t row, TopLists& lists) {
  float thr = lists.threshold(row);
  const auto take = [&](std::int64_t j) {
    if (s[j] >= thr && col0 + j != self) {
      lists.offer(row, s[j], col0 + j);
      thr = lists.threshold(row);
    }
  };
  const auto below = [&]<int kW>(std::int64_t j) {
    return Eigen::Map<const Eigen::Matrix<float, kW, 1>>(s + j).maxCoeff() < thr;
  };
  constexpr int kW = 64, kV = 16;
  std::int64_t j = 0;
  for (; j + kW <= cols; j += kW) {
    if (below.template operator()<kW>(j)) continue;
    for (std::int64_t v = j; v < j + kW; v += kV)
      if (!below.template operator()<kV>(v))
        for (std::int64_t t = v; t < v + kV; ++t) take(t);
  }
  for (; j < cols; ++j) take(j);
}

// Rows scaled to unit length (a zero row stays zero). X: n x dims, row-major.
void normalise_rows(std::vector<float>& X, std::int64_t dims) {
  for (std::size_t r = 0; dims > 0 && r < X.size(); r += static_cast<std::size_t>(dims)) {
    double s = 0;
    for (std::int64_t d = 0; d < dims; ++d) s += static_cast<double>(X[r + d]) * X[r + d];
    if (s == 0) continue;
    const double inv = 1.0 / std::sqrt(s);
    for (std::int64_t d = 0; d < dims; ++d)
      X[r + d] = static_cast<float>(static_cast<double>(X[r + d]) * inv);
  }
}

// S (rows x cols, row stride lds) = A (rows x k) B^T (B: cols x k), all row-major.
void gemm_nt(const float* A, const float* B, std::int64_t rows, std::int64_t cols, std::int64_t k,
             float* S, std::int64_t lds) {
#ifdef EIGEN_USE_BLAS
  // Column-major view: S^T (cols x rows) = B^T^T A^T, beta 0 (no clearing pass).
  const int m = static_cast<int>(cols), n = static_cast<int>(rows), kk = static_cast<int>(k),
            ld = static_cast<int>(lds);
  const float one = 1, zero = 0;
  sgemm_("T", "N", &m, &n, &kk, &one, B, &kk, A, &kk, &zero, S, &ld);
#else
  Eigen::Map<RowMat, 0, Eigen::OuterStride<>>(S, rows, cols, Eigen::OuterStride<>(lds)).noalias() =
      CMap(A, rows, k) * CMap(B, cols, k).transpose();
#endif
}

// One visiting block V (m x dims, global rows v0..) against every query row.
struct BlockScorer {
  const float* Q;  // nq x dims, row-major
  std::int64_t nq, dims;
  const std::vector<std::int64_t>& global;  // nq: each query's global row
  bool l2;
  std::int64_t tile_rows, tile_cols;
  TopLists& lists;
  RowMat S;                 // tile_rows x tile_cols scores
  std::vector<float> bias;  // l2: -|v|^2 / 2 per visiting row

  void score(const float* V, std::int64_t m, std::int64_t v0, Request& in_flight,
             progress::Task& task, double& done) {
    if (l2) {
      bias.resize(static_cast<std::size_t>(m));
      for (std::int64_t j = 0; j < m; ++j) {
        float s = 0;
        for (std::int64_t d = 0; d < dims; ++d) s += V[j * dims + d] * V[j * dims + d];
        bias[static_cast<std::size_t>(j)] = -0.5f * s;
      }
    }
    for (std::int64_t c0 = 0; c0 < m; c0 += tile_cols) {
      const std::int64_t tc = std::min(tile_cols, m - c0);
      for (std::int64_t q0 = 0; q0 < nq; q0 += tile_rows) {
        const std::int64_t tr = std::min(tile_rows, nq - q0);
        gemm_nt(Q + q0 * dims, V + c0 * dims, tr, tc, dims, S.data(), S.cols());
        auto St = S.topLeftCorner(tr, tc);
        if (l2) St.rowwise() += Eigen::Map<const Eigen::RowVectorXf>(bias.data() + c0, tc);
        for (std::int64_t i = 0; i < tr; ++i)
          scan_row(S.data() + i * S.cols(), tc, v0 + c0, global[q0 + i], q0 + i, lists);
      }
      (void)in_flight.test();  // lets the next block's transfer progress
      done += static_cast<double>(tc);
      task.update(done);
    }
    // Exact scores of the candidates from this block (each block visits once).
    for (std::int64_t r = 0; r < nq; ++r) {
      const std::int64_t* ix = lists.index(r);
      double* ex = lists.exact(r);
      for (std::int64_t c = 0; c < lists.size(r); ++c)
        if (ix[c] >= v0 && ix[c] < v0 + m)
          ex[c] = exact_goodness(Q + r * dims, V + (ix[c] - v0) * dims, dims, l2);
    }
  }
};

// An id of --query-users and where it came from (for messages).
struct ListedUser {
  std::string id, origin;
};

// The --query-users value: a file (one id a line; blank lines and '#' comments skipped) when one
// of that name exists, else a comma-separated list. Read on rank 0, broadcast.
std::vector<ListedUser> listed_users(const std::string& value, const Comm& comm) {
  std::string text, err;
  std::int32_t is_file = 0;
  if (comm.is_root()) {
    std::ifstream in(value, std::ios::binary);
    if (in) {
      is_file = 1;
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      if (in.bad()) err = "cannot read the --query-users file '" + value + "'";
    }
  }
  comm.check_all(err, kExitIo);
  comm.broadcast(std::span<std::int32_t>(&is_file, 1));
  std::vector<ListedUser> out;
  if (!is_file) {
    for (auto& id : split_list(value)) out.push_back({id, "--query-users"});
    return out;
  }
  comm.broadcast(text);
  std::istringstream is(text);
  std::string line;
  for (std::int64_t no = 1; std::getline(is, line); ++no) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.pop_back();
    const auto b = line.find_first_not_of(" \t");
    if (b == std::string::npos || line[b] == '#') continue;
    out.push_back({line.substr(b), "'" + value + "' line " + std::to_string(no)});
  }
  return out;
}

// Local rows of the listed users (ascending, without repeats). Throws UsageError
// (collective) naming the first listed id that no rank holds.
std::vector<std::int64_t> find_users(const std::vector<ListedUser>& listed,
                                     const std::vector<std::string>& ids,
                                     const std::string& projection, const Comm& comm) {
  std::unordered_map<std::string, std::int64_t> row;
  row.reserve(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) row.emplace(ids[i], static_cast<std::int64_t>(i));
  std::vector<std::int32_t> found(listed.size(), 0);
  std::vector<std::int64_t> rows;
  for (std::size_t i = 0; i < listed.size(); ++i) {
    const auto it = row.find(listed[i].id);
    if (it == row.end()) continue;
    found[i] = 1;
    rows.push_back(it->second);
  }
  comm.allreduce(found);
  for (std::size_t i = 0; i < listed.size(); ++i)
    if (!found[i])
      throw UsageError(
          listed[i].origin + ": no user '" + listed[i].id + "' in '" + projection + "'", true);
  std::sort(rows.begin(), rows.end());
  rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
  return rows;
}

// Ids of the global rows `wanted` (ascending, unique) from their owners: rank q holds
// rows [offsets[q], offsets[q+1]) with ids `own`. Two alltoallv: rows asked, ids sent.
std::vector<std::string> fetch_ids(const std::vector<std::int64_t>& wanted,
                                   const std::vector<std::int64_t>& offsets,
                                   const std::vector<std::string>& own, const Comm& comm) {
  const int P = comm.size(), me = comm.rank();
  std::vector<std::vector<std::int64_t>> ask(static_cast<std::size_t>(P));
  for (std::int64_t g : wanted) {
    const auto q = std::upper_bound(offsets.begin(), offsets.end(), g) - offsets.begin() - 1;
    ask[static_cast<std::size_t>(q)].push_back(g);
  }
  const auto asked = comm.alltoallv(ask);
  std::vector<std::vector<std::int64_t>> lens(static_cast<std::size_t>(P));
  std::vector<std::vector<char>> bytes(static_cast<std::size_t>(P));
  for (int q = 0; q < P; ++q)
    for (std::int64_t g : asked[static_cast<std::size_t>(q)]) {
      const std::string& s =
          own[static_cast<std::size_t>(g - offsets[static_cast<std::size_t>(me)])];
      lens[static_cast<std::size_t>(q)].push_back(static_cast<std::int64_t>(s.size()));
      bytes[static_cast<std::size_t>(q)].insert(bytes[static_cast<std::size_t>(q)].end(), s.begin(),
                                                s.end());
    }
  const auto got_lens = comm.alltoallv(lens);
  const auto got_bytes = comm.alltoallv(bytes);
  std::vector<std::string> out;
  out.reserve(wanted.size());
  for (int q = 0; q < P; ++q) {  // owners in rank order: ascending rows, as `wanted`
    std::size_t at = 0;
    for (std::int64_t n : got_lens[static_cast<std::size_t>(q)]) {
      out.emplace_back(got_bytes[static_cast<std::size_t>(q)].data() + at,
                       static_cast<std::size_t>(n));
      at += static_cast<std::size_t>(n);
    }
  }
  return out;
}

std::string fmt_score(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", v);
  return buf;
}

}  // namespace

// ---- parameters -------------------------------------------------------------------------

SimilarMetric SimilarParams::validate() const {
  require(!projection.empty(), "projection", projection, "give the projection.h5 to read (/H)");
  require(!out.empty(), "out", out, "give the CSV file to write");
  require(top >= 1, "top", top, "must be >= 1");
  require(tile_rows >= 1, "tile-rows", tile_rows, "must be >= 1");
  require(tile_cols >= 1, "tile-cols", tile_cols, "must be >= 1");
  require(pseudonymize.empty() || !users.empty(), "pseudonymize", "<redacted>",
          "only with --query-users (the ids it hashes)");
  return parse_mode<SimilarMetric>(
      metric,
      {{"ip", SimilarMetric::kIp}, {"l2", SimilarMetric::kL2}, {"cosine", SimilarMetric::kCosine}},
      "metric", "must be ip, l2 or cosine");
}

// ---- the kernel ------------------------------------------------------------------------------

Neighbours similar_rows(std::span<const float> X, std::int64_t dims,
                        std::span<const std::int64_t> queries, std::int64_t k, SimilarMetric metric,
                        const Comm& comm, std::int64_t tile_rows, std::int64_t tile_cols) {
  SEGREC_ASSERT(dims >= 1 && std::ssize(X) % dims == 0, "rows of dims values");
  const int P = comm.size(), me = comm.rank();
  const std::int64_t n_local = std::ssize(X) / dims;
  std::vector<std::int64_t> counts = comm.allgatherv(std::vector<std::int64_t>{n_local});
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(P) + 1, 0);
  for (int q = 0; q < P; ++q) offsets[q + 1] = offsets[q] + counts[q];
  const std::int64_t n_total = offsets[P];
  SEGREC_ASSERT(k >= 1 && k < n_total, "1 <= k < rows");
  const bool l2 = metric == SimilarMetric::kL2;

  // Own rows (scaled to unit length for cosine) and the query rows (a copy only for a subset).
  std::vector<float> scaled, picked;
  const float* own = X.data();
  if (metric == SimilarMetric::kCosine) {
    scaled.assign(X.begin(), X.end());
    normalise_rows(scaled, dims);
    own = scaled.data();
  }
  const std::int64_t nq = std::ssize(queries);
  const float* Q = own;
  std::vector<std::int64_t> global(static_cast<std::size_t>(nq));
  for (std::int64_t i = 0; i < nq; ++i) global[i] = offsets[me] + queries[i];
  if (nq != n_local) {  // queries ascend without repeats: all rows iff nq == n_local
    picked.resize(static_cast<std::size_t>(nq * dims));
    for (std::int64_t i = 0; i < nq; ++i)
      std::copy_n(own + queries[i] * dims, dims, picked.data() + i * dims);
    Q = picked.data();
  }
  TopLists lists(nq, std::min(k + kMargin, n_total - 1));
  BlockScorer scorer{
      Q, nq, dims, global, l2, tile_rows, tile_cols, lists, RowMat(tile_rows, tile_cols), {}};

  // The ring: at step s this rank scores the block of rank me - s while the block
  // of rank me - s - 1 arrives.
  const std::int64_t max_block = *std::max_element(counts.begin(), counts.end());
  std::vector<float> buf[2];
  for (auto& b : buf) b.reserve(static_cast<std::size_t>(max_block * dims));
  const float* cur = own;
  std::int64_t cur_rows = n_local;
  progress::Task task("similar", "users scored", static_cast<double>(n_total), "users");
  double done = 0;
  for (int s = 0; s < P; ++s) {
    const int src = ((me - s) % P + P) % P;
    Request in_flight;
    const int next = ((me - s - 1) % P + P) % P;
    std::vector<float>& nb = buf[s % 2];
    if (s + 1 < P) {
      nb.resize(static_cast<std::size_t>(counts[next] * dims));
      in_flight =
          comm.ring_shift(std::span<const float>(cur, static_cast<std::size_t>(cur_rows * dims)),
                          std::span<float>(nb));
    }
    scorer.score(cur, cur_rows, offsets[src], in_flight, task, done);
    in_flight.wait();
    cur = nb.data();
    cur_rows = counts[next];
  }

  // The best k of each list by exact score, ties to the smaller global row.
  Neighbours out;
  out.k = k;
  out.index.resize(static_cast<std::size_t>(nq * k));
  out.score.resize(static_cast<std::size_t>(nq * k));
  std::vector<std::pair<double, std::int64_t>> c;
  for (std::int64_t r = 0; r < nq; ++r) {
    c.clear();
    for (std::int64_t j = 0; j < lists.size(r); ++j)
      c.emplace_back(lists.exact(r)[j], lists.index(r)[j]);
    std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) {
      return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    for (std::int64_t j = 0; j < k; ++j) {
      out.index[static_cast<std::size_t>(r * k + j)] = c[static_cast<std::size_t>(j)].second;
      out.score[static_cast<std::size_t>(r * k + j)] =
          l2 ? -c[static_cast<std::size_t>(j)].first : c[static_cast<std::size_t>(j)].first;
    }
  }
  return out;
}

// ---- the stage ------------------------------------------------------------------------------

SimilarSummary run_similar(const SimilarParams& p, const Comm& comm) {
  const SimilarMetric metric = p.validate();
  SimilarSummary sum;
  const h5::File f = h5::File::open(p.projection, comm, kProjectionFormat);
  UserRowsSpec spec;
  spec.path = p.projection;
  spec.name = "/H";
  spec.cols = -1;
  const auto shape = user_rows_shape(f, spec);
  sum.users = shape[0];
  sum.dims = shape[1];
  require(p.top < sum.users, "top", p.top,
          "must be below the number of users (" + std::to_string(sum.users) + " in '" +
              p.projection + "')");
  const Block b = block_partition(sum.users, comm.size(), comm.rank());
  std::vector<std::string> ids = read_user_ids(f, spec, b);
  const std::vector<float> X = read_user_rows<float>(f, spec, b, comm);
  std::vector<std::int64_t> queries;
  if (p.users.empty()) {
    queries.resize(ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) queries[i] = static_cast<std::int64_t>(i);
  } else {
    std::vector<ListedUser> listed = listed_users(p.users, comm);
    require(!listed.empty(), "query-users", p.users, "lists no user id");
    if (!p.pseudonymize.empty()) {
      const Pseudonymizer pseudo(resolve_secret(p.pseudonymize, "pseudonymize"));
      for (auto& u : listed) u.id = pseudo(u.id);
    }
    queries = find_users(listed, ids, p.projection, comm);
  }

  const auto t0 = std::chrono::steady_clock::now();
  const Neighbours nb = similar_rows(X, sum.dims, queries, p.top, metric, comm);
  sum.seconds_search = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Neighbour ids from their owners.
  std::vector<std::int64_t> wanted = nb.index;
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  std::vector<std::int64_t> offsets(static_cast<std::size_t>(comm.size()) + 1);
  for (int q = 0; q <= comm.size(); ++q)
    offsets[static_cast<std::size_t>(q)] =
        q < comm.size() ? block_partition(sum.users, comm.size(), q).begin : sum.users;
  const std::vector<std::string> names = fetch_ids(wanted, offsets, ids, comm);
  const auto name = [&](std::int64_t g) -> const std::string& {
    return names[static_cast<std::size_t>(std::lower_bound(wanted.begin(), wanted.end(), g) -
                                          wanted.begin())];
  };

  // The CSV in blocks of users: every rank takes part in as many appends as the busiest.
  constexpr std::int64_t kBlock = 4096;
  const std::int64_t nq = std::ssize(queries);
  const std::int64_t blocks = comm.allreduce_value((nq + kBlock - 1) / kBlock, Op::kMax);
  OrderedWriter csv(p.out, comm);
  csv.append(comm.is_root() ? "user_id,rank,neighbour_id,score\n" : "");
  std::string text;
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    text.clear();
    for (std::int64_t r = std::min(nq, blk * kBlock); r < std::min(nq, (blk + 1) * kBlock); ++r)
      for (std::int64_t j = 0; j < p.top; ++j) {
        const std::size_t at = static_cast<std::size_t>(r * p.top + j);
        append_csv_field(text, ids[static_cast<std::size_t>(queries[r])]);
        text += ',' + std::to_string(j + 1) + ',';
        append_csv_field(text, name(nb.index[at]));
        text += ',' + fmt_score(nb.score[at]) + '\n';
      }
    csv.append(text);
  }
  csv.commit();
  const std::int64_t q = comm.allreduce_value(nq);
  sum.queried = q;
  sum.rows = q * p.top;
  return sum;
}

}  // namespace segrec
