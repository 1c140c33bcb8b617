// Random mini-batches for the network's tests (one process and MPI).
#pragma once

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "segrec/personalisation/mlp.hpp"

namespace segrec::testing_mlp {

// A network's layers for the gradient tests: input parts, hidden widths, activation, loss and
// hidden dropout.
struct GradCase {
  const char* name;
  std::int64_t sparse_in, dense_in, n_segments, embed_dim;
  std::vector<std::int64_t> hidden;
  mlp::Activation act;
  mlp::Loss loss;
  double dropout;

  mlp::Shape shape(std::int64_t n_out) const {
    mlp::Shape s;
    s.sparse_in = sparse_in;
    s.dense_in = dense_in;
    s.n_segments = n_segments;
    s.embed_dim = embed_dim;
    s.hidden = hidden;
    s.n_out = n_out;
    s.activation = act;
    s.loss = loss;
    return s;
  }
};

// A random batch for the shape: sparse rows of 0..4 items, dense rows, labels, targets.
inline mlp::Batch<double> random_batch(const mlp::Shape& s, std::int64_t rows,
                                       std::mt19937_64& rng) {
  std::uniform_real_distribution<double> U(-1, 1), P(0.2, 1.5);
  mlp::Batch<double> b;
  b.rows = rows;
  for (std::int64_t r = 0; r < rows; ++r) {
    if (s.sparse_in > 0) {
      std::set<std::int32_t> items;
      const auto k = static_cast<int>(rng() % 5);
      for (int j = 0; j < k; ++j) items.insert(static_cast<std::int32_t>(rng() % s.sparse_in));
      for (auto i : items) {
        b.in_idx.push_back(i);
        b.in_val.push_back(P(rng));
      }
    }
    b.in_ptr.push_back(static_cast<std::int64_t>(b.in_idx.size()));
    for (std::int64_t j = 0; j < s.dense_in; ++j) b.dense.push_back(U(rng));
    if (s.embed_dim > 0) b.segment.push_back(static_cast<std::int32_t>(rng() % s.n_segments));
    std::set<std::int32_t> tg;
    const auto k = 1 + static_cast<int>(rng() % 3);
    for (int j = 0; j < k; ++j) tg.insert(static_cast<std::int32_t>(rng() % s.n_out));
    for (auto i : tg) {
      b.tgt_idx.push_back(i);
      b.tgt_val.push_back(s.loss == mlp::Loss::kBce ? 1.0 : P(rng));
    }
    b.tgt_ptr.push_back(static_cast<std::int64_t>(b.tgt_idx.size()));
    b.key.push_back(rng());
  }
  // Sampled softmax: about half the items as shared negatives (some of them targets) with
  // offsets in [-1, 1].
  if (s.loss == mlp::Loss::kSampledSoftmax)
    for (std::int32_t i = 0; i < s.n_out; ++i)
      if (rng() % 2 == 0) {
        b.neg_idx.push_back(i);
        b.neg_corr.push_back(U(rng));
      }
  return b;
}

// Rows [a, b) of a batch.
inline mlp::Batch<double> slice_rows(const mlp::Batch<double>& x, std::int64_t a, std::int64_t b) {
  mlp::Batch<double> y;
  y.rows = b - a;
  for (std::int64_t r = a; r < b; ++r) {
    for (std::int64_t k = x.in_ptr[r]; k < x.in_ptr[r + 1]; ++k) {
      y.in_idx.push_back(x.in_idx[k]);
      y.in_val.push_back(x.in_val[k]);
    }
    y.in_ptr.push_back(static_cast<std::int64_t>(y.in_idx.size()));
    const auto dense =
        static_cast<std::int64_t>(x.dense.size()) / std::max<std::int64_t>(1, x.rows);
    y.dense.insert(y.dense.end(), x.dense.begin() + r * dense, x.dense.begin() + (r + 1) * dense);
    if (!x.segment.empty()) y.segment.push_back(x.segment[r]);
    for (std::int64_t k = x.tgt_ptr[r]; k < x.tgt_ptr[r + 1]; ++k) {
      y.tgt_idx.push_back(x.tgt_idx[k]);
      y.tgt_val.push_back(x.tgt_val[k]);
    }
    y.tgt_ptr.push_back(static_cast<std::int64_t>(y.tgt_idx.size()));
    y.key.push_back(x.key[r]);
  }
  y.neg_idx = x.neg_idx;
  y.neg_corr = x.neg_corr;
  return y;
}

}  // namespace segrec::testing_mlp
