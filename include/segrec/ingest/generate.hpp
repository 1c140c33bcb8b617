// `segrec generate`: synthetic e-commerce behaviour logs with planted segments.
//
// Every user u (global index) draws everything from an RNG keyed by (seed, u),
// so the output is byte-identical for any rank count. Ranks generate disjoint
// user blocks in bounded rounds and write one shared file in user order;
// memory does not grow with the number of events.
//
// The model. Items are split evenly over categories (each item in exactly one);
// within a category item popularity is Zipf(zipf) over a seed-chosen order.
// Each planted segment prefers 2-3 categories (seed-chosen, spread so that
// segments overlap as little as the category count allows) and has its own
// funnel rates: P(cart | view) in [0.03, 0.30] and P(purchase | cart) in
// [0.2, 0.8], spread over the segments so some are browsers and some heavy
// buyers. A user gets a uniform segment, a lognormal number of views (at least
// one; mean set so that views + carts + purchases average `events_per_user`;
// half of the views in a preferred category follow the segment's own
// popularity order, a rotation of the category's), grouped into
// sessions of about 5 views. A session mostly stays in one category; a share
// `affinity` of the views falls in the segment's categories. Within a session
// events are 1 s..16 min apart (views carry their dwell time, up to 900 s);
// sessions are at least 31 min apart (closer only when the period is too short
// for a user's sessions) and lie in [start, start + days) unless a user's
// sessions alone outlast the period.
// Carts follow the viewed item; the session ends with the purchases of some
// carted items (value = the cart's quantity).
//
// Files (comma-separated, one header line):
//   events: user_id,item_id,category,event,timestamp,value
//           ids "u0000123", "i000045", "c07" (zero-padded, wider when needed),
//           event view|cart|purchase, timestamp integer unix seconds, value
//           dwell seconds (view) or quantity (cart, purchase). Users appear in
//           global index order, each user's rows contiguous and time-ordered.
//   truth:  user_id,segment     (segment 0..segments-1)
//   items:  item_id,category
//
// Noise (--noise F), keyed by (seed, user) on a stream of its own, so the rows
// that survive are exactly rows of the noise-free output: each row is, with
// probability F/2, written twice (exact duplicate); with F/4, written with an
// empty value; with F/4, broken instead of written (value column missing,
// non-numeric timestamp, or empty user id; one of the three at random).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec {

struct GenerateParams {
  std::int64_t users = 10000;   ///< number of users (>= 1)
  std::int64_t items = 2000;    ///< number of items (>= categories, < 2^31)
  int segments = 8;             ///< planted segments (>= 1)
  int categories = 20;          ///< item categories (>= 1)
  double events_per_user = 40;  ///< mean events per user (0 < x <= 10^6)
  double zipf = 1.1;            ///< popularity exponent within a category [0, 10]
  double affinity = 0.85;       ///< share of a user's views in the segment's categories [0, 1]
  double days = 90;             ///< period the timestamps span (> 0)
  double start = 1704067200;    ///< first timestamp, unix seconds (2024-01-01T00:00:00Z); rounded
  double noise = 0;             ///< share of rows duplicated, left without value or broken [0, 0.5]
  std::uint64_t seed = 42;
  std::string events_out;  ///< events CSV (required)
  std::string truth_out;   ///< user_id,segment CSV (optional)
  std::string items_out;   ///< item_id,category CSV (optional)
  /// Users per rank per write round; 0 = automatic (about 32 MiB of text per
  /// round). Bounds memory; the output does not depend on it.
  std::int64_t round_users = 0;

  /// Throws UsageError naming the offending option and value.
  void validate() const;
};

struct GenerateSummary {
  std::int64_t users = 0, items = 0;
  std::int64_t events = 0;          ///< well-formed distinct events (rows - duplicates - broken)
  std::int64_t rows = 0;            ///< data lines of the events file (header excluded)
  std::int64_t duplicates = 0;      ///< extra copies written by the noise
  std::int64_t missing_values = 0;  ///< rows written with an empty value
  std::int64_t broken = 0;          ///< malformed rows written instead of an event
  std::int64_t bytes = 0;           ///< bytes of all files written
};

/// One planted segment, as generate() uses it.
struct PlantedSegment {
  std::vector<int> categories;  ///< preferred categories (2-3, fewer if categories < 3)
  std::vector<double> shares;   ///< share of the in-segment views per category (sum 1)
  double cart_rate = 0;         ///< P(cart | view)
  double purchase_rate = 0;     ///< P(purchase | cart)
};

/// The planted segments for p.seed, p.segments, p.categories (no I/O, no MPI).
std::vector<PlantedSegment> planted_segments(const GenerateParams& p);

/// Collective. Writes the requested files (atomically) and returns global counts.
GenerateSummary generate(const GenerateParams& p, const Comm& comm);

}  // namespace segrec
