// `segrec generate`: synthetic e-commerce behaviour logs with planted segments.
//
// Every user u (global index) draws everything from an RNG keyed by (seed, u),
// so the output is byte-identical for any rank count. Ranks generate disjoint
// user blocks in bounded rounds and write one shared file in user order;
// memory does not grow with the number of events.
//
// The model. Items are split evenly over categories (each item in exactly one);
// within a category item popularity is Zipf(zipf) over a seed-chosen order.
// Every item has a unit price: a category base price (lognormal, median 25,
// clamped to [2, 500]; keyed by seed and category) times an item factor
// (lognormal, sigma 0.45; keyed by seed and item), rounded to cents. The
// items of a category fall into three price tiers (budget, mid, premium: the
// lower, middle and upper third of the category's items by price).
//
// A user gets a uniform segment and a behaviour: an activity (events per user
// relative to `events_per_user`), funnel rates P(cart | view) and
// P(purchase | cart), a price tier with a loyalty (the share of its item draws
// restricted to the tier's items; the rest draw from the whole category), a
// quantity (units per cart line: 1 + geometric, at most 12; mean extra units per user),
// and an active window of the period (recent: it starts in the first 40% of
// the period and its last session ends in the period's last week; lapsed: it
// starts at the beginning and stops after 25%-55% of the period). What the segment decides is set
// by --structure:
//
//   taste      The segment sets only taste: 2-3 preferred categories
//              (seed-chosen, spread so that segments overlap as little as the
//              category count allows: no category is repeated before every one
//              is taken, and no two segments share two categories while another
//              choice avoids it), each user's own shares of them (the
//              segment's shares times U(0.7, 1.3), renormalised), a share
//              `affinity` of the views in them, and in them half of the views
//              follow the segment's own popularity order (a rotation of the
//              category's). The behaviour is drawn per user from one
//              segment-independent distribution: activity lognormal (sigma
//              0.5, mean 1), P(cart | view) U(0.03, 0.30), P(purchase | cart)
//              U(0.2, 0.8), tier, quantity level and recency uniform over
//              their levels.
//   behaviour  Every user has the same taste: categories from one global
//              seed-chosen mixture (lognormal weights, sigma 0.5), items by the category's
//              popularity (no rotation); `affinity` is unused. The segment sets the behaviour: one
//              level per dimension of a grid (activity 0.3 | 1 | 3.3, normalised so that the
//              segments average 1; funnel browse | mid | buy with P(cart | view) 0.04 | 0.11 | 0.26
//              and P(purchase | cart) 0.25 | 0.5 | 0.75; tier budget | mid | premium; quantity
//              single | bulk with 0.25 | 1.5 mean extra units; recency lapsed | recent): 108 codes,
//              ordered by farthest-point selection from a seed-chosen one. The distance counts
//              10 per differing activity, tier or recency level (what a light user's few views
//              show) and 1 per differing funnel or quantity level (seen only through carts), so
//              the first 18 segments differ pairwise in activity, tier or recency and then in as
//              many other dimensions as possible; segment s takes code s mod 108. Within a
//              segment users spread: activity lognormal (sigma 0.2, mean 1), P(cart | view) the
//              level times U(0.7, 1.3), P(purchase | cart) the level + U(-0.1, 0.1), extra units
//              the level times a lognormal (sigma 0.3, mean 1), tier loyalty U(0.8, 0.95), the
//              window as above. A classifier given the segments separates them (5-fold, on the
//              profile's value statistics, 3,000 users, 40 events each: a linear discriminant
//              1.000 / 0.999 / 0.987 for 4 / 8 / 16 segments).
//   both       (default) the segment sets taste as in `taste` and behaviour as
//              in `behaviour`.
//
// A user's number of views is lognormal around the mean that makes its
// expected views + carts + purchases equal to events_per_user times its
// activity (at least one view). Views are grouped into sessions of about 5
// views. A session mostly stays in one category. Within a session
// events are 1 s..16 min apart (views carry their dwell time, up to 900 s);
// sessions are at least 31 min apart (closer only when the window is too short
// for a user's sessions) and lie in the user's window of [start, start + days)
// unless a user's sessions alone outlast it.
// Carts follow the viewed item; the session ends with the purchases of some
// carted items (value = the cart's quantity).
//
// Order (--sequential; src/ingest/generate_sequential.hpp): within a session, each view
// after the first is, with probability --sequence-strength q (default 0.5), the planted
// successor of the session's previous view: the item planted_successors(p, s)[i] for the
// previous item i and the user's segment s (a per-segment cycle over the categories, the
// next category's item at the same place in its popularity order plus a per-(segment,
// category) offset); otherwise it is drawn as above. So a share of at least q of the
// views that follow a view in the same session is the previous item's successor (the
// draws hit it by chance too); the first view of a session does not depend on the
// previous session. Off, the output is unchanged (the extra draw is made only with
// --sequential). Event times are strictly increasing within a user in both cases.
//
// Files (comma-separated, one header line):
//   events: user_id,item_id,category,event,timestamp,value,price
//           ids "u0000123", "i000045", "c07" (zero-padded, wider when needed),
//           event view|cart|purchase, timestamp integer unix seconds, value
//           dwell seconds (view) or quantity (cart, purchase), price the
//           item's unit price with 2 decimals. Users appear in global index
//           order, each user's rows contiguous and time-ordered.
//   truth:  user_id,segment     (segment 0..segments-1)
//   items:  item_id,category,name,price   in item index order; name
//           "<adjective> <category word> #<n>" (n: the item's ordinal in its
//           category; the word from a fixed list of 40, "Books 2" etc. past
//           40 categories; never a comma or a quote).
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

/// What the planted segments differ in (--structure).
enum class GenerateStructure { kTaste, kBehaviour, kBoth };

struct GenerateModes {
  GenerateStructure structure = GenerateStructure::kBoth;
};

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
  std::string structure = "both";  ///< taste | behaviour | both: what segments differ in
  bool sequential = false;         ///< plant item-to-item transitions within sessions
  double sequence_strength = 0.5;  ///< --sequential: P(a view follows its predecessor) [0, 1]
  std::uint64_t seed = 42;
  std::string events_out;  ///< events CSV (required)
  std::string truth_out;   ///< user_id,segment CSV (optional)
  std::string items_out;   ///< item_id,category,name,price CSV (optional)
  /// Users per rank per write round; 0 = automatic (about 32 MiB of text per
  /// round). Bounds memory; the output does not depend on it.
  std::int64_t round_users = 0;

  /// Throws UsageError naming the offending option and value.
  GenerateModes validate() const;
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

/// Levels of the behaviour grid (see the model above).
inline constexpr double kActivityLevels[] = {0.3, 1.0, 3.3};    ///< events multiplier
inline constexpr double kCartLevels[] = {0.04, 0.11, 0.26};     ///< P(cart | view)
inline constexpr double kPurchaseLevels[] = {0.25, 0.5, 0.75};  ///< P(purchase | cart)
inline constexpr double kQuantityExtra[] = {0.25, 1.5};         ///< mean extra units per cart
inline constexpr int kPriceTiers = 3;                           ///< budget, mid, premium
inline constexpr int kRecencyLevels = 2;                        ///< lapsed, recent

/// One planted segment, as generate() uses it. A level of -1 means "drawn per
/// user, independently of the segment" (structure taste); the numbers are then
/// the population means.
struct PlantedSegment {
  std::vector<int> categories;  ///< preferred categories (2-3, fewer if categories < 3;
                                ///< empty under structure behaviour)
  std::vector<double> shares;   ///< share of the in-segment views per category (sum 1)
  int activity_level = -1;      ///< index into kActivityLevels
  int funnel_level = -1;        ///< index into kCartLevels / kPurchaseLevels
  int price_tier = -1;          ///< 0 budget, 1 mid, 2 premium
  int quantity_level = -1;      ///< index into kQuantityExtra
  int recency_level = -1;       ///< 0 lapsed, 1 recent
  double activity = 1;          ///< mean events per user / events_per_user
  double cart_rate = 0;         ///< mean P(cart | view)
  double purchase_rate = 0;     ///< mean P(purchase | cart)
  double quantity_extra = 0;    ///< mean units per cart line minus 1 (before the cap of 12)
};

/// The planted segments for p.seed, p.segments, p.categories and the
/// structure (no I/O, no MPI).
std::vector<PlantedSegment> planted_segments(const GenerateParams& p, const GenerateModes& m);

/// --sequential: the planted successor of every item for users of `segment` (no I/O).
std::vector<std::int32_t> planted_successors(const GenerateParams& p, int segment);

/// Collective. Writes the requested files (atomically) and returns global counts.
GenerateSummary generate(const GenerateParams& p, const Comm& comm);

}  // namespace segrec
