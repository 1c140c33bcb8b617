// `segrec generate`: synthetic e-commerce behaviour logs with planted segments.
//
// Every user u (global index) draws everything from an RNG keyed by (seed, u),
// so the output is byte-identical for any rank count. Ranks generate disjoint
// user blocks in bounded rounds and write one shared file in user order;
// memory does not grow with the number of events.
#pragma once

#include <cstdint>
#include <string>

#include "segrec/comm.hpp"

namespace segrec {

struct GenerateParams {
  std::int64_t users = 10000;   ///< number of users (>= 1)
  std::int64_t items = 2000;    ///< number of items (>= categories)
  int segments = 8;             ///< planted segments (>= 1)
  int categories = 20;          ///< item categories (>= 1)
  double events_per_user = 40;  ///< mean events per user (> 0)
  double zipf = 1.1;            ///< popularity exponent within a category (>= 0)
  double affinity = 0.85;       ///< share of a user's views in the segment's categories [0, 1]
  double days = 90;             ///< period the timestamps span (> 0)
  double start = 1704067200;    ///< first timestamp, unix seconds (2024-01-01T00:00:00Z)
  double noise = 0;  ///< share of rows corrupted, duplicated or left without value [0, 0.5]
  std::uint64_t seed = 42;
  std::string events_out;  ///< events CSV (required)
  std::string truth_out;   ///< user_id,segment CSV (optional)
  std::string items_out;   ///< item_id,category CSV (optional)

  /// Throws UsageError naming the offending option and value.
  void validate() const;
};

struct GenerateSummary {
  std::int64_t users = 0, items = 0, events = 0, bytes = 0;
};

/// Collective. Writes the requested files (atomically) and returns global counts.
GenerateSummary generate(const GenerateParams& p, const Comm& comm);

}  // namespace segrec
