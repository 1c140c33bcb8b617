// Validation metrics: users scored against held-out items (EvalUsers), their
// NDCG@K and Recall@K sums over the ranks, and ndcg_at.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/model.hpp"
#include "segrec/personalisation/train/data.hpp"

namespace segrec {

// Users scored against held-out items: their fold-in histories and what to find.
struct EvalUsers {
  UserInputs in;                         // fold-in histories (raw weights), dense rows, labels
  std::vector<std::int64_t> rel_ptr{0};  // CSR: relevant items known to the model, sorted
  std::vector<std::int32_t> rel;
  std::vector<std::int64_t> n_rel;    // relevant items per user, unknown items included
  std::vector<std::int32_t> segment;  // label per user (-1: no segments)
  std::int64_t missing = 0;           // listed users absent from the data (global; score 0)
  std::int64_t rows() const { return in.rows(); }
};

// Appends a user: fold-in (item, raw weight) pairs, the sorted known relevant items, their count
// with unknown items included.
void add_eval_user(EvalUsers& e, const TrainData& d, bool dense, std::int64_t i,
                   const std::vector<std::pair<std::int32_t, float>>& fold_in,
                   const std::vector<std::int32_t>& relevant, std::int64_t n_rel);

// The rows of `e` for which keep(row) holds (missing users are not carried over).
template <class Keep>
EvalUsers eval_subset(const EvalUsers& e, Keep keep) {
  EvalUsers out;
  const auto& in = e.in;
  const std::int64_t dd = e.rows() > 0 ? std::ssize(in.dense) / e.rows() : 0;
  for (std::int64_t r = 0; r < e.rows(); ++r) {
    if (!keep(r)) continue;
    out.in.indices.insert(out.in.indices.end(), in.indices.begin() + in.indptr[r],
                          in.indices.begin() + in.indptr[r + 1]);
    out.in.weights.insert(out.in.weights.end(), in.weights.begin() + in.indptr[r],
                          in.weights.begin() + in.indptr[r + 1]);
    out.in.indptr.push_back(std::ssize(out.in.indices));
    out.in.dense.insert(out.in.dense.end(), in.dense.begin() + r * dd,
                        in.dense.begin() + (r + 1) * dd);
    if (!in.segments.empty()) out.in.segments.push_back(in.segments[static_cast<std::size_t>(r)]);
    out.segment.push_back(e.segment[static_cast<std::size_t>(r)]);
    out.rel.insert(out.rel.end(), e.rel.begin() + e.rel_ptr[r], e.rel.begin() + e.rel_ptr[r + 1]);
    out.rel_ptr.push_back(std::ssize(out.rel));
    out.n_rel.push_back(e.n_rel[static_cast<std::size_t>(r)]);
  }
  return out;
}

// Quality sums (collective), 3 per row: NDCG@ndcg_k, Recall@recall_k, users; row 0 holds all
// users, row 1 + s the users of segment s. NDCG's ideal DCG and the recall's denominator use
// min(K, relevant items), unknown items included; listed users absent from the data count as
// users with nothing found.
std::vector<double> quality_sums(const Model& m, const EvalUsers& e, std::int64_t ndcg_k,
                                 std::int64_t recall_k, std::int64_t n_segments, bool heads,
                                 const Comm& comm);

namespace detail {

/// NDCG@k of a ranked list (best first, at most k long) against the sorted
/// relevant items; the ideal DCG covers min(k, |relevant|) hits.
double ndcg_at(const std::vector<std::int32_t>& ranked, const std::vector<std::int32_t>& relevant,
               std::int64_t k);

}  // namespace detail
}  // namespace segrec
