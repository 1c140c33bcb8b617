#include "generate_model.hpp"

#include <array>
#include <charconv>
#include <limits>
#include <numeric>
#include <string_view>

namespace segrec {
namespace gen {
namespace {

constexpr double kBasePriceMedian = 25;  // category base price: lognormal, clamped
constexpr double kBasePriceSigma = 1.1;
constexpr double kMinBasePrice = 2, kMaxBasePrice = 500;
constexpr double kItemPriceSigma = 0.45;  // item factor on its category's base price
constexpr double kMixtureSigma = 0.5;     // spread of the global category shares

constexpr std::array<std::string_view, 40> kCategoryWords = {
    "Books",       "Coffee",       "Running shoes", "Tea",         "Toys",         "Garden tools",
    "Kitchenware", "Headphones",   "Laptops",       "Smartphones", "Cameras",      "Board games",
    "Video games", "Jackets",      "Jeans",         "Sneakers",    "Watches",      "Jewellery",
    "Cosmetics",   "Skin care",    "Perfume",       "Vitamins",    "Pet food",     "Baby care",
    "Bicycles",    "Camping gear", "Yoga mats",     "Furniture",   "Lamps",        "Bedding",
    "Cookware",    "Snacks",       "Wine",          "Stationery",  "Art supplies", "Music",
    "Films",       "Car parts",    "Power tools",   "Luggage"};

constexpr std::array<std::string_view, 24> kAdjectives = {
    "Classic",   "Deluxe",   "Compact", "Organic", "Premium", "Basic",  "Ultra", "Vintage",
    "Eco",       "Smart",    "Pro",     "Mini",    "Family",  "Travel", "Urban", "Essential",
    "Signature", "Everyday", "Limited", "Sport",   "Soft",    "Bold",   "Fresh", "Grand"};

// The behaviour grid: activity, funnel, price tier, quantity, recency.
constexpr std::array<int, 5> kRadix = {3, 3, kPriceTiers, 2, kRecencyLevels};
using Code = std::array<int, 5>;
constexpr std::array<double, 5> kVisible = {10, 1, 10, 1, 10};  // weight of a differing level

template <class T>
void shuffle(std::vector<T>& v, Rng& r) {
  for (std::size_t i = v.size(); i > 1; --i)
    std::swap(v[i - 1], v[static_cast<std::size_t>(r.below(static_cast<std::int64_t>(i)))]);
}

// Every code of the grid, ordered by farthest-point selection from a
// seed-chosen first code. Distance: 10 per differing dimension that shows at
// every activity level (activity, price tier, recency: a few views reveal
// them), 1 per differing funnel or quantity level (seen only through carts,
// which a light user rarely makes), plus a tenth of the sum of
// |level difference| / (levels - 1) (so extremes win ties); remaining ties go
// to the earlier code in a seed-chosen order. So the first 18 segments differ
// pairwise in activity, tier or recency.
std::vector<Code> grid_order(std::uint64_t seed) {
  std::vector<Code> codes;
  for (int a = 0; a < kRadix[0]; ++a)
    for (int b = 0; b < kRadix[1]; ++b)
      for (int c = 0; c < kRadix[2]; ++c)
        for (int d = 0; d < kRadix[3]; ++d)
          for (int e = 0; e < kRadix[4]; ++e) codes.push_back({a, b, c, d, e});
  Rng r(seed, kGridStream, 0);
  shuffle(codes, r);
  const auto dist = [](const Code& x, const Code& y) {
    double s = 0;
    for (std::size_t d = 0; d < x.size(); ++d)
      s += (x[d] != y[d]) * kVisible[d] +
           0.1 * std::abs(x[d] - y[d]) / static_cast<double>(kRadix[d] - 1);
    return s;
  };
  std::vector<Code> out;
  std::vector<double> nearest(codes.size(), std::numeric_limits<double>::infinity());
  std::vector<bool> used(codes.size(), false);
  std::size_t pick = 0;
  for (std::size_t n = 0; n < codes.size(); ++n) {
    used[pick] = true;
    out.push_back(codes[pick]);
    double best = -1;
    for (std::size_t i = 0; i < codes.size(); ++i) {
      if (used[i]) continue;
      nearest[i] = std::min(nearest[i], dist(codes[i], codes[pick]));
      if (nearest[i] > best) best = nearest[i];
    }
    for (std::size_t i = 0; i < codes.size(); ++i)
      if (!used[i] && nearest[i] == best) {
        pick = i;
        break;
      }
  }
  return out;
}

}  // namespace

int digits(std::int64_t v) {
  int d = 1;
  while (v >= 10) {
    v /= 10;
    ++d;
  }
  return d;
}

// `prefix` followed by v zero-padded to `width` digits.
std::string make_id(char prefix, std::int64_t v, int width) {
  std::string s(static_cast<std::size_t>(width) + 1, '0');
  s[0] = prefix;
  for (std::size_t i = s.size() - 1; v > 0; --i, v /= 10) s[i] = static_cast<char>('0' + v % 10);
  return s;
}

std::string category_label(int category) {
  const auto n = static_cast<int>(kCategoryWords.size());
  std::string s(kCategoryWords[static_cast<std::size_t>(category % n)]);
  if (category >= n) {
    s += ' ';
    s += std::to_string(category / n + 1);
  }
  return s;
}

std::string item_name(std::uint64_t seed, std::int64_t item, int category, std::int64_t ordinal) {
  Rng r(seed, kNameStream, static_cast<std::uint64_t>(item));
  std::string s(kAdjectives[static_cast<std::size_t>(r.below(kAdjectives.size()))]);
  s += ' ';
  s += category_label(category);
  s += " #";
  s += std::to_string(ordinal);
  return s;
}

char* write_price(char* o, std::int64_t cents) {
  o = std::to_chars(o, o + 20, cents / 100).ptr;
  *o++ = '.';
  *o++ = static_cast<char>('0' + cents % 100 / 10);
  *o++ = static_cast<char>('0' + cents % 10);
  return o;
}

Model build_model(const GenerateParams& p, const GenerateModes& modes) {
  Model m;
  m.structure = modes.structure;
  m.user_width = std::max(7, digits(p.users - 1));
  const int item_width = std::max(6, digits(p.items - 1));
  const int cat_width = std::max(2, digits(p.categories - 1));
  const auto C = static_cast<std::size_t>(p.categories);
  for (int c = 0; c < p.categories; ++c) m.category_ids.push_back(make_id('c', c, cat_width));

  // A seed-chosen order of the items; position k goes to category k % C with
  // popularity rank k / C, so categories are even and popular items scattered.
  std::vector<std::int32_t> order(static_cast<std::size_t>(p.items));
  std::iota(order.begin(), order.end(), 0);
  Rng r(p.seed, kItemStream, 0);
  shuffle(order, r);
  m.category_items.resize(C);
  m.item_category.resize(order.size());
  for (std::size_t k = 0; k < order.size(); ++k) {
    m.category_items[k % C].items.push_back(order[k]);
    m.item_category[static_cast<std::size_t>(order[k])] = static_cast<std::int32_t>(k % C);
  }

  // Prices: category base times item factor, in cents.
  std::vector<double> base(C);
  for (std::size_t c = 0; c < C; ++c) {
    Rng b(p.seed, kCategoryPriceStream, c);
    base[c] = std::clamp(kBasePriceMedian * std::exp(kBasePriceSigma * b.normal()), kMinBasePrice,
                         kMaxBasePrice);
  }
  m.item_cents.resize(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    Rng f(p.seed, kItemPriceStream, i);
    const double price =
        base[static_cast<std::size_t>(m.item_category[i])] * std::exp(kItemPriceSigma * f.normal());
    m.item_cents[i] = std::max<std::int64_t>(1, std::llround(price * 100));
  }

  // Popularity shares, and per category the price tiers (thirds of its items
  // by price, ties by index) keeping the popularity order.
  m.tier_items.resize(C);
  std::vector<std::int32_t> by_price;
  std::vector<int> tier_of(order.size());
  const auto close = [](ItemList& l) {
    const double sum = l.cdf.empty() ? 1 : l.cdf.back();
    for (auto& x : l.cdf) x /= sum;
  };
  for (std::size_t c = 0; c < C; ++c) {
    auto& all = m.category_items[c];
    const std::size_t n = all.items.size();
    by_price = all.items;
    std::sort(by_price.begin(), by_price.end(), [&](std::int32_t a, std::int32_t b) {
      const auto pa = m.item_cents[static_cast<std::size_t>(a)];
      const auto pb = m.item_cents[static_cast<std::size_t>(b)];
      return pa != pb ? pa < pb : a < b;
    });
    for (std::size_t k = 0; k < n; ++k)
      tier_of[static_cast<std::size_t>(by_price[k])] = static_cast<int>(k * kPriceTiers / n);
    auto& tiers = m.tier_items[c];
    if (n >= static_cast<std::size_t>(kPriceTiers)) tiers.resize(kPriceTiers);
    double sum = 0;
    for (std::size_t k = 0; k < n; ++k) {
      const double w = std::pow(static_cast<double>(k + 1), -p.zipf);
      all.cdf.push_back(sum += w);
      if (tiers.empty()) continue;
      auto& t = tiers[static_cast<std::size_t>(tier_of[static_cast<std::size_t>(all.items[k])])];
      t.items.push_back(all.items[k]);
      t.cdf.push_back((t.cdf.empty() ? 0 : t.cdf.back()) + w);
    }
    close(all);
    for (auto& t : tiers) close(t);
  }

  m.item_cols.resize(order.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    m.item_cols[i] = make_id('i', static_cast<std::int64_t>(i), item_width) + "," +
                     m.category_ids[static_cast<std::size_t>(m.item_category[i])] + ",";

  // The global category mixture (structure behaviour).
  Rng mix(p.seed, kMixtureStream, 0);
  double total = 0;
  for (std::size_t c = 0; c < C; ++c)
    m.category_mixture.push_back(total += mix.mean_one_lognormal(kMixtureSigma));
  for (auto& x : m.category_mixture) x /= total;

  m.segments = planted_segments(p, modes);
  Rng taste(p.seed, kTasteStream, 0);
  for (const auto& s : m.segments) {
    auto& shift = m.taste_shift.emplace_back();
    for (int c : s.categories)
      shift.push_back(taste.below(
          static_cast<std::int64_t>(m.category_items[static_cast<std::size_t>(c)].items.size())));
    std::vector<int> other;
    for (int c = 0; c < p.categories; ++c)
      if (std::find(s.categories.begin(), s.categories.end(), c) == s.categories.end())
        other.push_back(c);
    m.other_categories.push_back(std::move(other));
  }
  return m;
}

}  // namespace gen

std::vector<PlantedSegment> planted_segments(const GenerateParams& p, const GenerateModes& m) {
  gen::Rng r(p.seed, gen::kSegmentStream, 0);
  const int C = p.categories, S = p.segments;
  std::vector<PlantedSegment> out(static_cast<std::size_t>(S));
  const bool taste = m.structure != GenerateStructure::kBehaviour;
  const bool behaviour = m.structure != GenerateStructure::kTaste;
  if (taste) {
    // Categories are dealt from successive shuffled decks, so segments share a
    // category only once every category is taken; and a card that would give a
    // segment a pair of categories an earlier segment already holds is passed
    // over while another card allows it, so two segments share at most one
    // category where the category count allows (16 segments in 20 categories).
    // Deck: the cards still to deal are deck[next, end); a fresh shuffled deck
    // is appended when they run out or none of them fits.
    std::vector<int> deck;
    std::size_t next = 0;
    std::vector<char> paired(static_cast<std::size_t>(C) * static_cast<std::size_t>(C), 0);
    const auto pair_at = [&](int a, int b) -> char& {
      return paired[static_cast<std::size_t>(a) * static_cast<std::size_t>(C) +
                    static_cast<std::size_t>(b)];
    };
    const auto append_deck = [&] {
      std::vector<int> fresh(static_cast<std::size_t>(C));
      std::iota(fresh.begin(), fresh.end(), 0);
      gen::shuffle(fresh, r);
      deck.erase(deck.begin(), deck.begin() + static_cast<std::ptrdiff_t>(next));
      next = 0;
      deck.insert(deck.end(), fresh.begin(), fresh.end());
    };
    append_deck();
    for (auto& seg : out) {
      const int k = std::min(C, r.uniform() < 0.5 ? 2 : 3);
      const auto in_segment = [&](int c) {
        return std::find(seg.categories.begin(), seg.categories.end(), c) != seg.categories.end();
      };
      const auto fits = [&](int c) {
        if (in_segment(c)) return false;
        return std::none_of(seg.categories.begin(), seg.categories.end(),
                            [&](int b) { return pair_at(c, b) != 0; });
      };
      const auto search = [&](const auto& pred) {
        return std::find_if(deck.begin() + static_cast<std::ptrdiff_t>(next), deck.end(), pred);
      };
      while (static_cast<int>(seg.categories.size()) < k) {
        auto pick = search(fits);
        if (pick == deck.end() && deck.size() - next < static_cast<std::size_t>(C)) {
          append_deck();  // one more full deck to search before giving up the pair rule
          pick = search(fits);
        }
        if (pick == deck.end()) pick = search([&](int c) { return !in_segment(c); });
        if (pick == deck.end()) {  // every remaining card is in the segment: a fresh deck is not
          append_deck();
          pick = search([&](int c) { return !in_segment(c); });
        }
        std::iter_swap(deck.begin() + static_cast<std::ptrdiff_t>(next), pick);
        seg.categories.push_back(deck[next++]);
      }
      for (std::size_t a = 0; a < seg.categories.size(); ++a)
        for (std::size_t b = 0; b < seg.categories.size(); ++b)
          if (a != b) pair_at(seg.categories[a], seg.categories[b]) = 1;
      double total = 0;
      for (int j = 0; j < k; ++j) total += seg.shares.emplace_back(0.5 + r.uniform());
      for (auto& w : seg.shares) w /= total;
    }
  }
  if (!behaviour) {  // population means of the per-user draws
    for (auto& seg : out) {
      seg.cart_rate = (0.03 + 0.30) / 2;
      seg.purchase_rate = (0.2 + 0.8) / 2;
      seg.quantity_extra = (kQuantityExtra[0] + kQuantityExtra[1]) / 2;
    }
    return out;
  }
  const std::vector<gen::Code> codes = gen::grid_order(p.seed);
  double activity = 0;
  for (int s = 0; s < S; ++s) {
    auto& seg = out[static_cast<std::size_t>(s)];
    const gen::Code& c = codes[static_cast<std::size_t>(s) % codes.size()];
    seg.activity_level = c[0];
    seg.funnel_level = c[1];
    seg.price_tier = c[2];
    seg.quantity_level = c[3];
    seg.recency_level = c[4];
    seg.cart_rate = kCartLevels[c[1]];
    seg.purchase_rate = kPurchaseLevels[c[1]];
    seg.quantity_extra = kQuantityExtra[c[3]];
    activity += kActivityLevels[c[0]];
  }
  for (auto& seg : out)
    seg.activity = kActivityLevels[seg.activity_level] / (activity / static_cast<double>(S));
  return out;
}

}  // namespace segrec
