#include "segrec/personalisation/train/validation.hpp"

#include <algorithm>
#include <cmath>

namespace segrec {

namespace detail {

// NDCG@k of a ranked list against a sorted set of relevant items.
double ndcg_at(const std::vector<std::int32_t>& ranked, const std::vector<std::int32_t>& relevant,
               std::int64_t k) {
  double dcg = 0, idcg = 0;
  for (std::size_t r = 0; r < ranked.size(); ++r)
    if (std::binary_search(relevant.begin(), relevant.end(), ranked[r]))
      dcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
  const auto ideal = std::min<std::int64_t>(k, std::ssize(relevant));
  for (std::int64_t r = 0; r < ideal; ++r) idcg += 1.0 / std::log2(static_cast<double>(r) + 2.0);
  return idcg > 0 ? dcg / idcg : 0.0;
}

}  // namespace detail

// Appends a user: fold-in (item, raw weight) pairs, the sorted known relevant items, their count
// with unknown items included.
void add_eval_user(EvalUsers& e, const TrainData& d, bool dense, std::int64_t i,
                   const std::vector<std::pair<std::int32_t, float>>& fold_in,
                   const std::vector<std::int32_t>& relevant, std::int64_t n_rel) {
  for (const auto& [item, w] : fold_in) {
    e.in.indices.push_back(item);
    e.in.weights.push_back(w);
  }
  e.in.indptr.push_back(std::ssize(e.in.indices));
  if (dense)
    e.in.dense.insert(e.in.dense.end(), d.dense.begin() + i * d.dense_dim,
                      d.dense.begin() + (i + 1) * d.dense_dim);
  const std::int32_t seg = d.segments.empty() ? -1 : d.segments[static_cast<std::size_t>(i)];
  if (!d.segments.empty()) e.in.segments.push_back(seg);
  e.segment.push_back(seg);
  e.rel.insert(e.rel.end(), relevant.begin(), relevant.end());
  e.rel_ptr.push_back(std::ssize(e.rel));
  e.n_rel.push_back(n_rel);
}

// Quality sums (collective), 3 per row: NDCG@ndcg_k, Recall@recall_k, users; row 0 holds all
// users, row 1 + s the users of segment s. NDCG's ideal DCG and the recall's denominator use
// min(K, relevant items), unknown items included; listed users absent from the data count as
// users with nothing found.
std::vector<double> quality_sums(const Model& m, const EvalUsers& e, std::int64_t ndcg_k,
                                 std::int64_t recall_k, std::int64_t n_segments, bool heads,
                                 const Comm& comm) {
  std::vector<double> sums(static_cast<std::size_t>(3 * (n_segments + 1)), 0.0);
  const std::int64_t n = std::max(ndcg_k, recall_k);
  constexpr std::int64_t kChunk = 32768;  // users per score_users call (one network copy each)
  const auto& in = e.in;
  const std::int64_t dd = e.rows() > 0 ? std::ssize(in.dense) / e.rows() : 0;
  UserInputs part;
  for (std::int64_t r0 = 0; r0 < e.rows(); r0 += kChunk) {
    const std::int64_t r1 = std::min(e.rows(), r0 + kChunk);
    const auto a = in.indptr[r0], b = in.indptr[r1];
    part.indptr.assign(1, 0);
    for (std::int64_t r = r0; r < r1; ++r) part.indptr.push_back(in.indptr[r + 1] - a);
    part.indices.assign(in.indices.begin() + a, in.indices.begin() + b);
    part.weights.assign(in.weights.begin() + a, in.weights.begin() + b);
    part.dense.assign(in.dense.begin() + r0 * dd, in.dense.begin() + r1 * dd);
    part.segments.clear();
    if (!in.segments.empty())
      part.segments.assign(in.segments.begin() + r0, in.segments.begin() + r1);
    part.segment_heads = heads;
    const TopN top = score_users(m, part, n);
    for (std::int64_t r = r0; r < r1; ++r) {
      const auto rb = e.rel.begin() + e.rel_ptr[r], re = e.rel.begin() + e.rel_ptr[r + 1];
      const std::int64_t n_rel = e.n_rel[static_cast<std::size_t>(r)];
      double dcg = 0, idcg = 0, hits = 0;
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int32_t item = top.items[static_cast<std::size_t>((r - r0) * n + j)];
        if (item < 0 || !std::binary_search(rb, re, item)) continue;
        if (j < ndcg_k) dcg += 1.0 / std::log2(static_cast<double>(j) + 2.0);
        if (j < recall_k) hits += 1;
      }
      for (std::int64_t j = 0; j < std::min(ndcg_k, n_rel); ++j)
        idcg += 1.0 / std::log2(static_cast<double>(j) + 2.0);
      const double nd = idcg > 0 ? dcg / idcg : 0.0;
      const double rc = n_rel > 0 ? hits / static_cast<double>(std::min(recall_k, n_rel)) : 0.0;
      const std::int32_t seg = e.segment[static_cast<std::size_t>(r)];
      const auto add = [&](std::int64_t row) {
        sums[static_cast<std::size_t>(3 * row)] += nd;
        sums[static_cast<std::size_t>(3 * row + 1)] += rc;
        sums[static_cast<std::size_t>(3 * row + 2)] += 1;
      };
      add(0);
      if (seg >= 0 && seg < n_segments) add(std::int64_t{seg} + 1);
    }
  }
  comm.allreduce(sums);
  sums[2] += static_cast<double>(e.missing);
  return sums;
}

}  // namespace segrec
