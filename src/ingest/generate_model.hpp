// `segrec generate`'s keyed random numbers and its replicated model: items,
// prices, names, price tiers, planted segments. Private to src/ingest/.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "segrec/core/random.hpp"
#include "segrec/ingest/generate.hpp"

namespace segrec::gen {

// Independent streams: one per (seed, purpose, index).
enum Stream : std::uint64_t {
  kItemStream = 1,
  kSegmentStream = 2,
  kUserStream = 3,
  kNoiseStream = 4,
  kTasteStream = 5,
  kCategoryPriceStream = 6,
  kItemPriceStream = 7,
  kNameStream = 8,
  kMixtureStream = 9,
  kGridStream = 10
};

// xoshiro256** seeded through splitmix64 from a hash of (seed, stream, index).
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
    std::uint64_t x = rng::splitmix64(
        seed ^ rng::splitmix64(stream * 0x632be59bd9b4e019ULL ^ rng::splitmix64(index)));
    for (auto& w : s_) w = rng::splitmix64_next(x);
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform in [a, b).
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  /// Uniform integer in [0, n), n >= 1.
  std::int64_t below(std::int64_t n) {
    const auto k = static_cast<std::int64_t>(uniform() * static_cast<double>(n));
    return std::min(k, n - 1);
  }
  /// Standard normal (Box-Muller, the second value cached).
  double normal() {
    if (have_spare_) {
      have_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(1.0 - uniform()));
    const double a = 2.0 * 3.14159265358979323846 * uniform();
    spare_ = r * std::sin(a);
    have_spare_ = true;
    return r * std::cos(a);
  }
  /// Lognormal factor with mean 1: exp(sigma z - sigma^2 / 2).
  double mean_one_lognormal(double sigma) { return std::exp(sigma * normal() - sigma * sigma / 2); }
  /// Failures before the first success, mean `mean` (>= 0).
  std::int64_t geometric(double mean) {
    if (mean <= 0) return 0;
    const double q = mean / (1.0 + mean);  // P(failure)
    return static_cast<std::int64_t>(std::floor(std::log(1.0 - uniform()) / std::log(q)));
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
  double spare_ = 0;
  bool have_spare_ = false;
};

/// Items in a popularity order with the cumulative Zipf shares of that order.
struct ItemList {
  std::vector<std::int32_t> items;  // most popular first
  std::vector<double> cdf;          // cumulative shares, last 1
};

// Items, categories and segments: small, replicated, derived from the seed alone.
struct Model {
  GenerateStructure structure = GenerateStructure::kBoth;
  int user_width = 7;
  std::vector<std::string> item_cols;       // "i000045,c07," per item
  std::vector<std::int64_t> item_cents;     // unit price per item, cents
  std::vector<std::int32_t> item_category;  // per item
  std::vector<std::string> category_ids;    // "c07"
  std::vector<ItemList> category_items;     // per category: all its items
  // Per category and price tier: the tier's items (empty when the category
  // has too few items; the whole category stands in).
  std::vector<std::vector<ItemList>> tier_items;
  std::vector<double> category_mixture;  // cumulative global category shares (behaviour)
  std::vector<PlantedSegment> segments;
  std::vector<std::vector<int>> other_categories;  // per segment: categories not preferred
  // Per segment and preferred category: the segment's own popularity order is
  // a list's order rotated by this many places (mod the list's size).
  std::vector<std::vector<std::int64_t>> taste_shift;
};

/// Decimal digits of v >= 0.
int digits(std::int64_t v);

/// `prefix` followed by v zero-padded to `width` digits ("u0000123").
std::string make_id(char prefix, std::int64_t v, int width);

Model build_model(const GenerateParams& p, const GenerateModes& modes);

/// Category label: a retail word ("Books"), "Books 2" past the word list.
std::string category_label(int category);

/// Item name "<adjective> <category label> #<ordinal>" (no comma, no quote).
std::string item_name(std::uint64_t seed, std::int64_t item, int category, std::int64_t ordinal);

/// Appends cents as "12.34" to o; returns the end.
char* write_price(char* o, std::int64_t cents);

}  // namespace segrec::gen
