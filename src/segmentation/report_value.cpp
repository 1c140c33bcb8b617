// Revenue shares, RFM means and category lifts per segment.
#include "segrec/segmentation/report_value.hpp"

#include <algorithm>
#include <cmath>

#include "segrec/core/error.hpp"

namespace segrec {

void segment_values(std::span<const std::int32_t> labels, const LocalStats& st,
                    std::vector<SegmentSummary>& segs, SegmentValue& overall, const Comm& comm) {
  constexpr int kW = 12;  // per segment: [sum, count] x 3 values | [sum, count] x 3 scores
  const auto k = static_cast<std::int64_t>(segs.size());
  const std::size_t n = labels.size();
  SEGREC_ASSERT(st.rfm_values.size() == 3 * n && st.rfm_scores.size() == 3 * n,
                "RFM rows and labels differ");
  std::vector<double> buf(static_cast<std::size_t>((k + 1) * kW), 0.0);  // row k: all users
  for (std::size_t u = 0; u < n; ++u)
    for (std::int64_t row : {static_cast<std::int64_t>(labels[u]), k}) {
      if (row < 0) continue;  // -1: in no segment, counted in the overall row only
      double* b = buf.data() + row * kW;
      for (int j = 0; j < 3; ++j) {
        const double v = st.rfm_values[3 * u + j];
        if (!std::isnan(v)) {
          b[2 * j] += v;
          b[2 * j + 1] += 1;
        }
        const std::uint8_t sc = st.rfm_scores[3 * u + j];
        if (sc > 0) {
          b[6 + 2 * j] += sc;
          b[6 + 2 * j + 1] += 1;
        }
      }
    }
  comm.allreduce(buf);
  const auto fill = [&](std::int64_t row, SegmentValue& v, bool means) {
    const double* b = buf.data() + row * kW;
    const double* all = buf.data() + k * kW;
    if (all[5] > 0) {  // monetary is defined for someone: the data set has prices
      v.revenue = b[4];
      v.revenue_share = all[4] > 0 ? b[4] / all[4] : 0.0;
    }
    if (!means) return;
    for (int j = 0; j < 3; ++j) {
      if (b[2 * j + 1] > 0) v.mean[j] = b[2 * j] / b[2 * j + 1];
      if (b[6 + 2 * j + 1] > 0) v.mean_score[j] = b[6 + 2 * j] / b[6 + 2 * j + 1];
    }
  };
  for (std::int64_t s = 0; s < k; ++s) fill(s, segs[s].value, segs[s].described);
  fill(k, overall, true);
}

void category_lifts(std::span<const std::int32_t> labels, const Dataset& data,
                    std::vector<SegmentSummary>& segs, const Comm& comm) {
  const auto C = static_cast<std::int64_t>(data.categories.size());
  if (C == 0 || data.item_category.size() != data.item_ids.size()) return;
  const auto k = static_cast<std::int64_t>(segs.size());
  const std::int64_t nt = data.n_types();
  const bool counted = nt > 0 && data.counts.size() == data.indices.size() * nt;
  // Events per (segment, category); row k: users in no segment (label -1).
  std::vector<double> buf(static_cast<std::size_t>((k + 1) * C), 0.0);
  for (std::int64_t u = 0; u < data.n_local(); ++u)
    for (std::int64_t e = data.indptr[u]; e < data.indptr[u + 1]; ++e) {
      const std::int32_t c = data.item_category[data.indices[e]];
      if (c < 0 || c >= C) continue;
      double events = 1;
      if (counted) {
        events = 0;
        for (std::int64_t t = 0; t < nt; ++t) events += data.counts[e * nt + t];
      }
      buf[(labels[u] >= 0 ? labels[u] : k) * C + c] += events;
    }
  comm.allreduce(buf);
  std::vector<double> global(static_cast<std::size_t>(C), 0.0);
  double global_total = 0;
  for (std::int64_t s = 0; s <= k; ++s)
    for (std::int64_t c = 0; c < C; ++c) {
      global[c] += buf[s * C + c];
      global_total += buf[s * C + c];
    }
  for (std::int64_t s = 0; s < k; ++s) {
    if (!segs[s].described) continue;
    double total = 0;
    for (std::int64_t c = 0; c < C; ++c) total += buf[s * C + c];
    if (total <= 0) continue;
    std::vector<CategoryLift> lifts;
    for (std::int64_t c = 0; c < C; ++c) {
      if (buf[s * C + c] <= 0) continue;
      CategoryLift cl;
      cl.name = data.categories[c];
      cl.share = buf[s * C + c] / total;
      cl.global_share = global[c] / global_total;
      cl.lift = cl.share / cl.global_share;
      lifts.push_back(cl);
    }
    std::stable_sort(lifts.begin(), lifts.end(), [](const CategoryLift& a, const CategoryLift& b) {
      return a.lift != b.lift ? a.lift > b.lift : a.share > b.share;
    });
    if (lifts.size() > static_cast<std::size_t>(kTopCategories)) lifts.resize(kTopCategories);
    segs[s].categories = std::move(lifts);
  }
}

}  // namespace segrec
