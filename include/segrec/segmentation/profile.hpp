// `segrec profile`: one feature vector per user, x_u = [sparse | dense].
//
// Sparse part (one entry per item the user touched):
//   w_ui   = sum of the user's event weights on item i (event type weights of
//            the data set), each event scaled by 2^(-age / half_life) when time
//            decay is on; age is measured from the data set's last timestamp.
//   x_ui   = log1p(w_ui) * idf_i,  idf_i = log(N_users / users with item i),
//   then the row is L2-normalised (norm 1; an empty row stays empty).
// Dense part (behavioural statistics, names in dense_statistic_names()):
//   events per type, distinct items, active days (distinct UTC days), sessions
//   (a gap of more than 30 minutes starts a new one), mean value per type,
//   conversion ratios (cart/view, purchase/view), days since the last event;
//   with a purchase type (purchase, buy, transaction) among the event types:
//     purchase_sessions    sessions that contain a purchase (frequency)
//     days_since_purchase  days from the last purchase (undefined without one)
//   with prices (a per-event price, else the item's price; dataset.hpp):
//     monetary    sum of unit price x value (value = quantity) over the user's purchases,
//                 or over all events when no event type is a purchase type; events of
//                 unknown price add nothing (0 without any)
//     mean_price  mean unit price of the user's events of known price (price tier)
//   with item prices and categories:
//     price_position  mean over the user's events of the item's price percentile within its
//                     category (item_price_positions; in (0, 1), 0.5 = the category's median):
//                     price tier net of the category's price level, which taste sets
//   with cart and purchase types: ratio:purchase/cart = (purchases + 0.5) / (carts + 1), the
//   smoothed cart-to-purchase conversion (defined for every user).
//   and, with item categories (--item-categories, else the data set's), the share of
//   the user's events per category.
//   Each column belongs to a block, ProfileModel::dense_block (dense_blocks): the category
//   shares are "interest" (0); the value block (1) holds one volume (the count of each
//   event type that is not a ratio's numerator), the funnel ratios, the mean values per
//   type, the recency and the price tier, each once; "descriptive" (2) are the statistics
//   that restate those (distinct items, active days, sessions, purchase sessions, days since
//   purchase, monetary, the counts behind a ratio, purchase/view given purchase/cart,
//   mean_price given price_position): kept for reports and RFM, left out of the projection,
//   where redundant activity counts would take the value block's components.
//   Heavy-tailed statistics go through sign(x) log1p(|x|) first, the category shares
//   through sqrt (the variance-stabilising transform of a proportion: a share estimated from
//   n events has variance p (1 - p) / n, its square root about 1 / (4 n) whatever p, so a
//   light user's noise does not swamp the small shares; the Hellinger embedding), then every
//   column is standardised with global mean and std (the square-rooted shares with one
//   std, the root mean of their variances, which keeps their relative scales); undefined statistics
//   (zero denominator) become 0, i.e. the global mean. The part is scaled by
//   dense_weight.
//
// The constants (idf, item and event-type dictionaries, means, stds, weights,
// reference time) form a ProfileModel, stored in profiles.h5, so that new users
// are profiled exactly like the training users (profile_block).
// File schema (format "segrec-profiles", version 1), users in data set order:
//   /users/ids string[n_users]       /items/ids string[n_items]   /items/idf f64[n_items]
//   /sparse/indptr i64[n_users+1]    /sparse/indices i32[nnz]     /sparse/values f32[nnz]
//   /dense/names string[d]           /dense/raw f32[n_users x d] (NaN = undefined)
//   /dense/values f32[n_users x d]   /dense/mean, /dense/std f64[d]
//   /dense/log1p u8[d]               1 = sign(x) log1p(|x|) applied before standardising
//   /event_types/names, /event_types/weights  the event weights used
//   /dense/block u8[d]               0 = interest, 1 = value, 2 = descriptive (dense_blocks)
//   /items/category i32[n_items], /categories/names  only with item categories
//   /items/price_position f64[n_items]  only with item prices and categories (NaN = none)
//   /rfm/values f32[n_users x 3]     R (days), F (sessions), M (spend); NaN undefined (rfm.hpp)
//   /rfm/scores u8[n_users x 3]      1..5 (0 = not available)
//   /rfm/edges f64[3 x 4]            quintile cut points per column; attribute names
//   attributes on "/": n_users, n_items, dense_weight, half_life_days, reference_time, dataset
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"

namespace segrec {

struct ProfileParams {
  std::string data;  ///< dataset.h5 to read (required)
  std::string out;   ///< profiles.h5 to write (required)
  /// Half-life of the exponential time decay of event weights, days; 0 = no decay (>= 0).
  double half_life_days = 0;
  /// Scale of the dense part; negative = auto, 0.5 / sqrt(d). Each standardised
  /// column has unit variance, so the dense row has squared norm about d before
  /// scaling and about 0.25 after: half the norm of the sparse row (1), about a
  /// fifth of the total variance. Behaviour then shapes the components without
  /// swamping what users bought and viewed.
  double dense_weight = -1;
  std::string item_categories;  ///< optional CSV item_id,category (with header): category shares

  /// Throws UsageError naming the offending option and value.
  void validate() const;
};

/// Constants that turn a Dataset block into profiles (fitted once, stored, reused).
struct ProfileModel {
  std::vector<std::string> item_ids;        ///< n_items: sparse column order
  std::vector<double> idf;                  ///< n_items
  std::vector<std::string> event_types;     ///< n_types
  std::vector<double> event_weights;        ///< n_types
  std::vector<std::int32_t> item_category;  ///< n_items, -1 = none; empty without categories
  std::vector<std::string> categories;      ///< category names, sorted
  std::vector<std::string> dense_names;     ///< d
  std::vector<std::uint8_t> dense_log;      ///< d: kDense* transform before standardising
  std::vector<std::uint8_t> dense_block;    ///< d: kBlockInterest | kBlockValue | kBlockDescriptive
  /// n_items: price percentile within the item's category (item_price_positions); empty
  /// without item prices and categories.
  std::vector<double> item_price_position;
  bool prices = false;                        ///< monetary and mean_price columns present
  std::vector<double> rfm_edges;              ///< 3 x 4 RFM cut points (rfm.hpp); empty = none
  std::vector<double> dense_mean, dense_std;  ///< d: of the transformed statistic
  double dense_weight = 0;
  double half_life_days = 0;
  double reference_time = 0;  ///< unix seconds: "now" for decay and recency
  std::int64_t n_users = 0;   ///< users the model was fitted on

  std::int64_t n_items() const { return static_cast<std::int64_t>(item_ids.size()); }
  std::int64_t n_dense() const { return static_cast<std::int64_t>(dense_names.size()); }
};

/// This rank's rows of the profiles.
struct ProfileBlock {
  std::int64_t n_users = 0;     ///< global
  std::int64_t user_begin = 0;  ///< global index of the first local user
  std::vector<std::string> user_ids;
  // Sparse part, CSR n_local x n_items, columns ascending, indptr[0] = 0.
  std::vector<std::int64_t> indptr{0};
  std::vector<std::int32_t> indices;
  std::vector<float> values;
  std::vector<float> dense_raw;          ///< n_local x d, row-major; NaN = undefined
  std::vector<float> dense_values;       ///< n_local x d, row-major; standardised * dense_weight
  std::vector<float> rfm_values;         ///< n_local x 3: R days, F sessions, M; NaN undefined
  std::vector<std::uint8_t> rfm_scores;  ///< n_local x 3: 1..5, 0 = not available

  std::int64_t n_local() const { return static_cast<std::int64_t>(user_ids.size()); }
};

struct Profiles {
  ProfileModel model;
  ProfileBlock rows;
};

/// Transforms of the dense columns before standardising (ProfileModel::dense_log, stored as
/// /dense/log1p: files from before kDenseSqrt hold only 0 and 1).
inline constexpr std::uint8_t kDenseLinear = 0;  ///< ratios, positions
inline constexpr std::uint8_t kDenseLog1p = 1;   ///< heavy-tailed: sign(x) log1p(|x|)
inline constexpr std::uint8_t kDenseSqrt = 2;    ///< category shares: sqrt(x), x in [0, 1]
/// x through transform `code`.
double dense_transform(std::uint8_t code, double x);
/// Whether every code is one of kDense* (what a file read back may hold).
bool known_dense_transforms(const std::vector<std::uint8_t>& codes);

/// Names of the dense statistics for these event types and categories (and the price
/// columns when `prices`, price_position when also `price_position`), in column order.
/// Sets `log` (same length) to each column's transform (kDense*).
std::vector<std::string> dense_statistic_names(const std::vector<std::string>& event_types,
                                               const std::vector<std::string>& categories,
                                               std::vector<std::uint8_t>* log = nullptr,
                                               bool prices = false, bool price_position = false);

/// Blocks of the dense columns (ProfileModel::dense_block).
inline constexpr std::uint8_t kBlockInterest = 0;     ///< with the items: category shares
inline constexpr std::uint8_t kBlockValue = 1;        ///< the projection's value block
inline constexpr std::uint8_t kBlockDescriptive = 2;  ///< reports and RFM only, not projected

/// Block of each dense column by its name (the rule in the header comment).
std::vector<std::uint8_t> dense_blocks(const std::vector<std::string>& names);

/// Price percentile of each item within its category: (n_below + n_equal / 2) / n_c over
/// the n_c items of the category with a known price (n_equal counts the item itself), so
/// a category of one item gives 0.5. NaN without a category (-1) or a finite price.
/// price, category: n_items.
std::vector<double> item_price_positions(const std::vector<double>& price,
                                         const std::vector<std::int32_t>& category);

/// Item categories from a CSV with header (columns item_id and category, any order;
/// delimiter detected). Returns, per item of `item_ids`, an index into `categories`
/// (sorted names of the categories that occur), -1 for items not listed. Items in the
/// file but not in `item_ids` are ignored. Collective: rank 0 reads, all parse.
std::vector<std::int32_t> read_item_categories(const std::string& path,
                                               const std::vector<std::string>& item_ids,
                                               std::vector<std::string>& categories,
                                               const Comm& comm);

/// Collective. Fits the constants on a data set: idf (one allreduce of item counts),
/// the reference time (global last timestamp) and the dense means and stds (one
/// allreduce of sums), whether the data set has prices, and the RFM cut points (rfm.hpp).
/// `categories`/`item_category` as from read_item_categories (may be empty).
ProfileModel fit_profile_model(const Dataset& ds, const ProfileParams& p,
                               std::vector<std::string> categories,
                               std::vector<std::int32_t> item_category, const Comm& comm);

/// Local (no communication). Profiles the users of `ds` with the constants of `m`.
/// Items and event types are matched by id and name: events on items or of types
/// that `m` does not know are ignored. Ages are clamped at 0 (events after
/// m.reference_time count as current).
ProfileBlock profile_block(const Dataset& ds, const ProfileModel& m);

/// Collective. Writes profiles.h5 atomically.
void write_profiles(const std::string& path, const ProfileModel& m, const ProfileBlock& b,
                    const std::string& dataset_path, const Comm& comm);

/// Collective. Reads the constants of a profiles file.
ProfileModel read_profile_model(const h5::File& f);

/// Collective. Reads the constants and an even block of users per rank;
/// `with_raw` = false skips /dense/raw.
Profiles read_profiles(const std::string& path, const Comm& comm, bool with_raw = false);

struct ProfileSummary {
  std::int64_t users = 0, items = 0, nnz = 0, dense = 0;
  double dense_weight = 0;
};

/// Collective. `segrec profile`: read the data set, fit, profile, write.
ProfileSummary run_profile(const ProfileParams& p, const Comm& comm);

}  // namespace segrec
