// In-memory inputs for the profile and projection tests: data sets built from
// event lists, and feature matrices with a known spectrum.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Dense>

#include "segrec/core/comm.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/segmentation/project.hpp"

namespace segrec::test {

struct Event {
  int user, item, type;
  double time;
  float value;
};

/// Rows [b.begin, b.end) of the data set holding `events` (global user indices).
inline Dataset make_dataset(std::int64_t n_users, const std::vector<std::string>& items,
                            const std::vector<std::string>& types,
                            const std::vector<double>& weights, std::vector<Event> events,
                            Block b) {
  Dataset ds;
  ds.n_users = n_users;
  ds.user_begin = b.begin;
  ds.item_ids = items;
  ds.event_types = types;
  ds.event_weights = weights;
  ds.event_fill.assign(types.size(), 0.0);
  ds.item_users.assign(items.size(), 0);
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& c) {
    return a.user != c.user ? a.user < c.user : a.time < c.time;
  });
  std::map<std::pair<int, int>, int> seen;
  for (const auto& e : events)
    if (seen.emplace(std::pair{e.user, e.item}, 0).second) ds.item_users[e.item]++;
  ds.indptr = {0};
  ds.log_ptr = {0};
  const auto nt = types.size();
  for (std::int64_t u = b.begin; u < b.end; ++u) {
    ds.user_ids.push_back(std::string("u").append(std::to_string(u)));
    std::map<int, std::pair<float, std::vector<std::uint32_t>>> row;
    double first = 0, last = 0;
    bool any = false;
    for (const auto& e : events) {
      if (e.user != u) continue;
      ds.log_item.push_back(e.item);
      ds.log_type.push_back(static_cast<std::uint8_t>(e.type));
      ds.log_time.push_back(e.time);
      ds.log_value.push_back(e.value);
      auto& r = row[e.item];
      r.second.resize(nt);
      r.first += static_cast<float>(weights[e.type]);
      r.second[e.type]++;
      first = any ? std::min(first, e.time) : e.time;
      last = any ? std::max(last, e.time) : e.time;
      any = true;
    }
    for (const auto& [item, r] : row) {
      ds.indices.push_back(item);
      ds.weights.push_back(r.first);
      ds.counts.insert(ds.counts.end(), r.second.begin(), r.second.end());
    }
    ds.indptr.push_back(static_cast<std::int64_t>(ds.indices.size()));
    ds.log_ptr.push_back(static_cast<std::int64_t>(ds.log_item.size()));
    ds.first_time.push_back(first);
    ds.last_time.push_back(last);
  }
  return ds;
}

/// Random events of `n_users` users over `n_items` items and 3 event types
/// (view, cart, purchase), reproducible from `seed`.
inline std::vector<Event> random_events(int n_users, int n_items, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Event> ev;
  for (int u = 0; u < n_users; ++u) {
    const int n = 1 + static_cast<int>(rng() % 25);
    double t = 1704067200 + static_cast<double>(rng() % (86400 * 20));
    for (int i = 0; i < n; ++i) {
      t += static_cast<double>(rng() % 7200);
      const int r = static_cast<int>(rng() % 10);
      const int type = r < 7 ? 0 : (r < 9 ? 1 : 2);
      // Users prefer items near 7u mod n_items: structure for the projection.
      const int item = static_cast<int>((7 * u + static_cast<int>(rng() % 12)) % n_items);
      ev.push_back({u, item, type, t, static_cast<float>(rng() % 300)});
    }
  }
  return ev;
}

/// A global feature matrix X = [S | F] in float, CSR + row-major dense, with the
/// FeatureBlock view of rows [b.begin, b.end).
struct Matrix {
  std::int64_t n = 0, n_sparse = 0, n_dense = 0;
  std::vector<std::int64_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<float> values, dense;
  // Local slice storage.
  std::vector<std::int64_t> local_ptr;

  Eigen::MatrixXd to_dense() const {
    Eigen::MatrixXd X = Eigen::MatrixXd::Zero(n, n_sparse + n_dense);
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t p = indptr[i]; p < indptr[i + 1]; ++p) X(i, indices[p]) = values[p];
      for (std::int64_t j = 0; j < n_dense; ++j) X(i, n_sparse + j) = dense[i * n_dense + j];
    }
    return X;
  }
  FeatureBlock block(Block b) {
    local_ptr.clear();
    for (std::int64_t i = b.begin; i <= b.end; ++i)
      local_ptr.push_back(indptr[i] - indptr[b.begin]);
    FeatureBlock X;
    X.n_users = n;
    X.n_local = b.size();
    X.n_sparse = n_sparse;
    X.n_dense = n_dense;
    X.indptr = local_ptr;
    X.indices = std::span<const std::int32_t>(indices).subspan(indptr[b.begin], local_ptr.back());
    X.values = std::span<const float>(values).subspan(indptr[b.begin], local_ptr.back());
    X.dense = std::span<const float>(dense).subspan(b.begin * n_dense, b.size() * n_dense);
    return X;
  }
  FeatureBlock all() { return block({0, n}); }
};

/// Sparse part with a decaying spectrum: random entries (density `density`) in
/// column j scaled by decay^j; plus an optional dense part of `n_dense` columns
/// with low-rank structure. Reproducible from `seed`.
inline Matrix decaying_matrix(std::int64_t n, std::int64_t n_sparse, std::int64_t n_dense,
                              double density, double decay, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> unif(0, 1);
  std::normal_distribution<double> normal(0, 1);
  Matrix m;
  m.n = n;
  m.n_sparse = n_sparse;
  m.n_dense = n_dense;
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t j = 0; j < n_sparse; ++j)
      if (unif(rng) < density) {
        m.indices.push_back(static_cast<std::int32_t>(j));
        m.values.push_back(static_cast<float>((0.5 + unif(rng)) * std::pow(decay, double(j))));
      }
    m.indptr.push_back(static_cast<std::int64_t>(m.indices.size()));
    const double a = normal(rng), c = normal(rng);
    for (std::int64_t j = 0; j < n_dense; ++j)
      m.dense.push_back(static_cast<float>(0.6 * a * std::cos(double(j)) +
                                           0.3 * c * std::sin(double(j)) + 0.01 * normal(rng)));
  }
  return m;
}

/// Dense matrix U diag(sigma) V^T (+ a non-zero mean) with sigma_i = 10 decay^i.
inline Matrix dense_spectrum_matrix(std::int64_t n, std::int64_t d, double decay,
                                    std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  Eigen::MatrixXd A(n, d), B(d, d);
  for (auto& x : A.reshaped()) x = normal(rng);
  for (auto& x : B.reshaped()) x = normal(rng);
  const Eigen::MatrixXd U =
      Eigen::HouseholderQR<Eigen::MatrixXd>(A).householderQ() * Eigen::MatrixXd::Identity(n, d);
  const Eigen::MatrixXd V = Eigen::HouseholderQR<Eigen::MatrixXd>(B).householderQ();
  Eigen::VectorXd s(d);
  for (std::int64_t i = 0; i < d; ++i) s[i] = 10 * std::pow(decay, double(i));
  const Eigen::MatrixXd X = U * s.asDiagonal() * V.transpose();
  Matrix m;
  m.n = n;
  m.n_dense = d;
  for (std::int64_t i = 0; i < n; ++i) {
    m.indptr.push_back(0);
    for (std::int64_t j = 0; j < d; ++j)
      m.dense.push_back(static_cast<float>(X(i, j) + 0.5 + 0.1 * double(j)));
  }
  return m;
}

/// Exact PCA of a dense matrix: right singular vectors and singular values of Xc.
inline void exact_pca(const Eigen::MatrixXd& X, Eigen::MatrixXd& V, Eigen::VectorXd& s) {
  const Eigen::MatrixXd Xc = X.rowwise() - X.colwise().mean();
  Eigen::BDCSVD<Eigen::MatrixXd> svd(Xc, Eigen::ComputeThinV);
  V = svd.matrixV();
  s = svd.singularValues();
}

/// Sine of the largest principal angle between span(A) and span(B) (orthonormal columns).
inline double subspace_sin(const Eigen::MatrixXd& A, const Eigen::MatrixXd& B) {
  const Eigen::MatrixXd R = B - A * (A.transpose() * B);
  return Eigen::JacobiSVD<Eigen::MatrixXd>(R).singularValues()(0);
}

}  // namespace segrec::test
