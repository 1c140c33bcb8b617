// Explanations of the linear models (ease, popularity): exact leave-one-out effects.
#include <algorithm>
#include <limits>
#include <numeric>

#include "segrec/personalisation/input_rows.hpp"
#include "segrec/serving/explain.hpp"

namespace segrec {

std::vector<std::vector<ItemExplanation>> explain_linear_rows(
    const Model& m, std::int64_t named, const UserInputs& u, std::int64_t r0, std::int64_t r1,
    std::span<const std::int32_t> lists, std::int64_t n, std::span<const std::uint8_t> skip,
    const std::vector<std::uint8_t>& excluded) {
  const std::int64_t n_items = std::ssize(m.item_ids);
  const bool ease = m.kind == ModelKind::kEase;
  const bool log_weight = m.history_weight == "log";
  std::vector<std::vector<ItemExplanation>> out(static_cast<std::size_t>(r1 - r0));
  std::vector<float> z(static_cast<std::size_t>(n_items));
  std::vector<std::int64_t> order;
  for (std::int64_t r = r0; r < r1; ++r) {
    if (!skip.empty() && skip[static_cast<std::size_t>(r - r0)]) continue;
    const std::int64_t h0 = u.indptr[r], h = u.indptr[r + 1] - h0;
    const auto hist = u.indices.begin() + h0, hist_end = u.indices.begin() + h0 + h;
    const auto value = [&](std::int64_t k) { return history_value(u.weights[h0 + k], log_weight); };
    const auto row = [&](std::int64_t k) {  // B's row of history position k
      return m.item_item.data() + std::int64_t{hist[k]} * n_items;
    };
    // z = x_u B (popularity: the counts).
    if (ease) {
      std::fill(z.begin(), z.end(), 0.0f);
      for (std::int64_t k = 0; k < h; ++k) {
        const float v = value(k);
        const float* b = row(k);
        for (std::int64_t j = 0; j < n_items; ++j) z[j] += v * b[j];
      }
    } else {
      z = m.item_scores;
    }
    const auto candidate = [&](std::int32_t i) {
      return !excluded[i] && !std::binary_search(hist, hist_end, i);
    };
    auto& list_out = out[static_cast<std::size_t>(r - r0)];
    for (std::int64_t c = 0; c < n; ++c) {
      const std::int32_t item = lists[static_cast<std::size_t>((r - r0) * n + c)];
      if (item < 0) break;
      ItemExplanation e;
      e.item = item;
      e.rank = c + 1;
      e.score = z[item];
      e.linear = true;
      if (ease && h > 0) {
        const auto effect = [&](std::int64_t k) { return value(k) * row(k)[item]; };
        order.resize(static_cast<std::size_t>(h));
        std::iota(order.begin(), order.end(), std::int64_t{0});
        const auto k = std::min<std::int64_t>(named, h);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](std::int64_t a, std::int64_t b) {
                            const float ea = effect(a), eb = effect(b);
                            return ea > eb || (ea == eb && hist[a] < hist[b]);
                          });
        for (std::int64_t j = 0; j < k && effect(order[j]) > 0; ++j)
          e.named.push_back({hist[order[j]], effect(order[j])});
      }
      if (!e.named.empty()) {  // the rank among the same candidates without named[0]
        const std::int64_t k0 = order[0];
        const float v = value(k0);
        const float* b = row(k0);
        const float zc = z[item] - v * b[item];
        std::int64_t above = 0;
        for (std::int32_t i = 0; i < n_items; ++i) {
          const float zi = z[i] - v * b[i];
          if ((zi > zc || (zi == zc && i < item)) && candidate(i)) ++above;
        }
        e.rank_without = above + 1;
      }
      list_out.push_back(std::move(e));
    }
  }
  return out;
}

}  // namespace segrec
