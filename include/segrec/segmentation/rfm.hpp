// RFM (recency, frequency, monetary) values and 1..5 scores per user.
//
// Values, from a user's raw dense statistics (profile.hpp):
//   R = days from the last purchase to the reference time (days_since_purchase); without a
//       purchase type among the event types, from the last event (days_since_last).
//       NaN for a user who never purchased.
//   F = sessions that contain a purchase (purchase_sessions); without a purchase type, sessions.
//   M = monetary (spend); NaN for everyone when the data set has no prices.
// Scores: the cut points e_1 <= ... <= e_4 of each column are its global quintiles
// (exact, core/quantiles.hpp, over the users where it is defined; q = 0.2, 0.4, 0.6, 0.8).
// With c = number of cut points the value exceeds (v > e_j), F and M score 1 + c and R
// scores 5 - c (recent = 5). A user with no R (never purchased) scores R = 1; a column that
// is undefined for every user (M without prices) scores 0 ("not available").
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec {

constexpr int kRfmColumns = 3;  ///< R, F, M
constexpr int kRfmEdges = 4;    ///< quintile cut points per column

/// "recency_days", "frequency", "monetary".
std::vector<std::string> rfm_names();

/// Local. n x 3 RFM values (row-major, NaN undefined) from n x d raw dense rows with
/// column names `names`.
std::vector<float> rfm_values(std::span<const double> dense_raw,
                              const std::vector<std::string>& names);

/// Collective. 3 x 4 cut points (row-major): the global quintiles of each column of the
/// n_local x 3 `values`; NaN where a column is undefined for every user.
std::vector<double> fit_rfm_edges(std::span<const float> values, const Comm& comm);

/// Local. n x 3 scores (0..5, see above) of n x 3 `values` under 3 x 4 `edges`.
std::vector<std::uint8_t> rfm_scores(std::span<const float> values, std::span<const double> edges);

}  // namespace segrec
