// RFM values from the dense statistics, global quintile cut points, 1..5 scores.
#include "segrec/segmentation/rfm.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "segrec/core/error.hpp"
#include "segrec/core/quantiles.hpp"

namespace segrec {

std::vector<std::string> rfm_names() { return {"recency_days", "frequency", "monetary"}; }

std::vector<float> rfm_values(std::span<const double> dense_raw,
                              const std::vector<std::string>& names) {
  const auto find = [&](const char* name) -> std::int64_t {
    const auto it = std::find(names.begin(), names.end(), name);
    return it == names.end() ? -1 : static_cast<std::int64_t>(it - names.begin());
  };
  const bool purchase = find("purchase_sessions") >= 0;
  const std::int64_t cols[kRfmColumns] = {
      find(purchase ? "days_since_purchase" : "days_since_last"),
      find(purchase ? "purchase_sessions" : "sessions"), find("monetary")};
  const auto d = static_cast<std::int64_t>(names.size());
  const std::int64_t n = d > 0 ? static_cast<std::int64_t>(dense_raw.size()) / d : 0;
  std::vector<float> out(static_cast<std::size_t>(n * kRfmColumns),
                         std::numeric_limits<float>::quiet_NaN());
  for (std::int64_t u = 0; u < n; ++u)
    for (int j = 0; j < kRfmColumns; ++j)
      if (cols[j] >= 0)
        out[static_cast<std::size_t>(u * kRfmColumns + j)] =
            static_cast<float>(dense_raw[static_cast<std::size_t>(u * d + cols[j])]);
  return out;
}

std::vector<double> fit_rfm_edges(std::span<const float> values, const Comm& comm) {
  const std::size_t n = values.size() / kRfmColumns;
  const double probs[kRfmEdges] = {0.2, 0.4, 0.6, 0.8};
  std::vector<double> edges;
  std::vector<double> col(n);
  for (int j = 0; j < kRfmColumns; ++j) {
    for (std::size_t u = 0; u < n; ++u) col[u] = values[u * kRfmColumns + j];
    const auto q = exact_quantiles(col, probs, comm);
    edges.insert(edges.end(), q.begin(), q.end());
  }
  return edges;
}

std::vector<std::uint8_t> rfm_scores(std::span<const float> values, std::span<const double> edges) {
  SEGREC_ASSERT(edges.size() == kRfmColumns * kRfmEdges, "RFM edges: ", edges.size());
  const std::size_t n = values.size() / kRfmColumns;
  std::vector<std::uint8_t> out(values.size(), 0);
  for (int j = 0; j < kRfmColumns; ++j) {
    const double* e = edges.data() + j * kRfmEdges;
    if (std::isnan(e[0])) continue;  // undefined for every user: 0
    for (std::size_t u = 0; u < n; ++u) {
      const double v = values[u * kRfmColumns + j];
      int c = 0;
      for (int i = 0; i < kRfmEdges; ++i) c += v > e[i] ? 1 : 0;
      std::uint8_t s = 0;
      if (std::isnan(v))
        s = 1;  // never purchased: least recent
      else
        s = static_cast<std::uint8_t>(j == 0 ? 5 - c : 1 + c);
      out[u * kRfmColumns + j] = s;
    }
  }
  return out;
}

}  // namespace segrec
