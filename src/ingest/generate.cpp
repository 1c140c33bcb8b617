#include "segrec/ingest/generate.hpp"
#include "segrec/core/random.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <optional>

#include "segrec/core/params.hpp"
#include "segrec/io/parse.hpp"
#include "segrec/io/textio.hpp"

namespace segrec {

namespace {

// ---- randomness ------------------------------------------------------------------------

using rng::splitmix64_next;
constexpr std::uint64_t mix(std::uint64_t v) { return rng::splitmix64(v); }

// Independent streams: one per (seed, purpose, index).
enum Stream : std::uint64_t {
  kItemStream = 1,
  kSegmentStream = 2,
  kUserStream = 3,
  kNoiseStream = 4,
  kTasteStream = 5
};

// xoshiro256** seeded through splitmix64 from a hash of (seed, stream, index).
class Rng {
 public:
  Rng(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
    std::uint64_t x = mix(seed ^ mix(stream * 0x632be59bd9b4e019ULL ^ mix(index)));
    for (auto& w : s_) w = splitmix64_next(x);
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

// ---- fixed shape of the behaviour model ----------------------------------------------------

constexpr double kMeanSessionViews = 5;     // views per session (1 + geometric)
constexpr double kSessionStickiness = 0.6;  // P(a view stays in the session's category)
constexpr double kOwnTaste = 0.5;  // P(a view in a preferred category follows the segment's taste)
constexpr double kViewsSigma = 0.5;  // lognormal spread of a user's view count
constexpr double kDwellMedian = 30;  // seconds
constexpr double kDwellSigma = 0.9;
constexpr std::int64_t kMaxDwell = 900;           // seconds; bounds gaps inside a session
constexpr std::int64_t kMaxStep = 30;             // seconds between an event and the next view
constexpr std::int64_t kSessionGap = 31 * 60;     // minimum seconds between sessions
constexpr double kRoundBytes = 32.0 * (1 << 20);  // target text per rank per round
constexpr std::int64_t kMaxRoundUsers = 65536;

enum EventType : std::uint8_t { kView, kCart, kPurchase };
constexpr std::string_view kEventName[] = {"view,", "cart,", "purchase,"};

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

// Items, categories and segments: small, replicated, derived from the seed alone.
struct Model {
  int user_width = 7;
  std::vector<std::string> item_cols;                     // "i000045,c07," per item
  std::vector<std::string> category_ids;                  // "c07"
  std::vector<std::vector<std::int32_t>> category_items;  // per category, most popular first
  std::vector<std::vector<double>> category_cdf;          // cumulative Zipf shares
  std::vector<PlantedSegment> segments;
  std::vector<std::vector<int>> other_categories;  // per segment: categories not preferred
  // Per segment and preferred category: the segment's own popularity order is
  // the category's order rotated by this many places.
  std::vector<std::vector<std::int64_t>> taste_shift;
  std::vector<double> mean_views;  // per segment
};

Model build_model(const GenerateParams& p) {
  Model m;
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
  for (std::size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[static_cast<std::size_t>(r.below(static_cast<std::int64_t>(i)))]);
  m.category_items.resize(C);
  std::vector<int> item_category(order.size());
  for (std::size_t k = 0; k < order.size(); ++k) {
    m.category_items[k % C].push_back(order[k]);
    item_category[static_cast<std::size_t>(order[k])] = static_cast<int>(k % C);
  }
  m.category_cdf.resize(C);
  for (std::size_t c = 0; c < C; ++c) {
    auto& cdf = m.category_cdf[c];
    double sum = 0;
    for (std::size_t k = 0; k < m.category_items[c].size(); ++k) {
      sum += std::pow(static_cast<double>(k + 1), -p.zipf);
      cdf.push_back(sum);
    }
    for (auto& x : cdf) x /= sum;
  }
  m.item_cols.resize(order.size());
  for (std::size_t i = 0; i < order.size(); ++i)
    m.item_cols[i] = make_id('i', static_cast<std::int64_t>(i), item_width) + "," +
                     m.category_ids[static_cast<std::size_t>(item_category[i])] + ",";

  m.segments = planted_segments(p);
  Rng taste(p.seed, kTasteStream, 0);
  for (const auto& s : m.segments) {
    auto& shift = m.taste_shift.emplace_back();
    for (int c : s.categories)
      shift.push_back(taste.below(
          static_cast<std::int64_t>(m.category_items[static_cast<std::size_t>(c)].size())));
    std::vector<int> other;
    for (int c = 0; c < p.categories; ++c)
      if (std::find(s.categories.begin(), s.categories.end(), c) == s.categories.end())
        other.push_back(c);
    m.other_categories.push_back(std::move(other));
    // Expected events per view: 1 + cart + cart * purchase.
    m.mean_views.push_back(p.events_per_user / (1.0 + s.cart_rate + s.cart_rate * s.purchase_rate));
  }
  return m;
}

// ---- one user --------------------------------------------------------------------------

struct Event {
  std::int64_t time;  // seconds from the user's session start, then absolute
  std::int32_t item;
  std::int32_t value;
  std::uint8_t type;
};

struct Session {
  std::size_t first;      // index of its first event
  std::int64_t duration;  // seconds from its first to its last event
};

// Appends text to a growing buffer without per-row allocation.
class Text {
 public:
  char* reserve(std::size_t n) {
    if (used_ + n > buf_.size()) buf_.resize(std::max(buf_.size() * 2, used_ + n));
    return buf_.data() + used_;
  }
  void commit(char* end) { used_ = static_cast<std::size_t>(end - buf_.data()); }
  void add(std::string_view s) {
    char* p = reserve(s.size());
    std::copy(s.begin(), s.end(), p);
    used_ += s.size();
  }
  std::string_view view() const { return {buf_.data(), used_}; }
  void clear() { used_ = 0; }

 private:
  std::string buf_;
  std::size_t used_ = 0;
};

class UserGenerator {
 public:
  UserGenerator(const GenerateParams& p, const Model& m) : p_(p), m_(m) {
    start_ = static_cast<std::int64_t>(std::llround(p.start));
    period_ = static_cast<std::int64_t>(std::floor(p.days * 86400.0));
  }

  /// Appends user g's rows to `events` and its truth row to `truth` (when non-null).
  void run(std::int64_t g, Text& events, Text* truth, GenerateSummary& sum) {
    Rng r(p_.seed, kUserStream, static_cast<std::uint64_t>(g));
    const auto seg = static_cast<std::size_t>(r.below(p_.segments));
    simulate(r, seg);
    place_sessions(r);

    const std::string uid = make_id('u', g, m_.user_width);
    if (truth) {
      char* o = truth->reserve(uid.size() + 16);
      o = std::copy(uid.begin(), uid.end(), o);
      *o++ = ',';
      o = std::to_chars(o, o + 12, seg).ptr;
      *o++ = '\n';
      truth->commit(o);
    }
    std::optional<Rng> noise;
    if (p_.noise > 0) noise.emplace(p_.seed, kNoiseStream, static_cast<std::uint64_t>(g));
    for (const Event& e : ev_) {
      Mode mode = Mode::kClean;
      if (noise) {
        const double u = noise->uniform();
        if (u < p_.noise / 2) {
          mode = Mode::kTwice;
          ++sum.duplicates;
        } else if (u < p_.noise * 0.75) {
          mode = Mode::kNoValue;
          ++sum.missing_values;
        } else if (u < p_.noise) {
          mode = static_cast<Mode>(static_cast<int>(Mode::kNoValueColumn) + noise->below(3));
          ++sum.broken;
        }
      }
      write_row(events, uid, e, mode);
      ++sum.rows;
      if (mode == Mode::kTwice) {
        write_row(events, uid, e, mode);
        ++sum.rows;
      }
    }
    sum.events += static_cast<std::int64_t>(ev_.size());
  }

 private:
  enum class Mode { kClean, kTwice, kNoValue, kNoValueColumn, kBadTime, kNoUser };

  // Events of one user, times relative to each session's start.
  void simulate(Rng& r, std::size_t seg) {
    const PlantedSegment& s = m_.segments[seg];
    const auto& other = m_.other_categories[seg];
    // This user's own shares of the segment's categories (cumulative).
    double cum = 0;
    share_.clear();
    for (double w : s.shares) share_.push_back(cum += w * (0.7 + 0.6 * r.uniform()));
    for (auto& x : share_) x /= cum;
    // A category as (category, index among the preferred ones or -1).
    const auto draw_category = [&]() -> std::pair<int, int> {
      if (other.empty() || r.uniform() < p_.affinity) {
        const double u = r.uniform();
        std::size_t k = 0;
        while (k + 1 < share_.size() && u >= share_[k]) ++k;
        return {s.categories[k], static_cast<int>(k)};
      }
      return {other[static_cast<std::size_t>(r.below(static_cast<std::int64_t>(other.size())))],
              -1};
    };
    const double scale = std::exp(kViewsSigma * r.normal() - kViewsSigma * kViewsSigma / 2);
    const auto n_views = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::floor(m_.mean_views[seg] * scale + r.uniform())));

    ev_.clear();
    sessions_.clear();
    std::int64_t left = n_views;
    while (left > 0) {
      const std::int64_t len = std::min(left, 1 + r.geometric(kMeanSessionViews - 1));
      left -= len;
      const auto session_category = draw_category();
      sessions_.push_back({ev_.size(), 0});
      carts_.clear();
      std::int64_t t = 0;
      for (std::int64_t v = 0; v < len; ++v) {
        const auto [c, pref] =
            r.uniform() < kSessionStickiness ? session_category : draw_category();
        const auto& cdf = m_.category_cdf[static_cast<std::size_t>(c)];
        auto k = std::min<std::size_t>(
            static_cast<std::size_t>(std::upper_bound(cdf.begin(), cdf.end(), r.uniform()) -
                                     cdf.begin()),
            cdf.size() - 1);
        if (pref >= 0 && r.uniform() < kOwnTaste)
          k = (k + static_cast<std::size_t>(m_.taste_shift[seg][static_cast<std::size_t>(pref)])) %
              cdf.size();
        const std::int32_t item = m_.category_items[static_cast<std::size_t>(c)][k];
        const auto dwell = std::clamp<std::int64_t>(
            std::llround(kDwellMedian * std::exp(kDwellSigma * r.normal())), 1, kMaxDwell);
        ev_.push_back({t, item, static_cast<std::int32_t>(dwell), kView});
        t += dwell;
        if (r.uniform() < s.cart_rate) {
          const double u = r.uniform();
          const std::int32_t qty = u < 0.8 ? 1 : (u < 0.95 ? 2 : 3);
          ev_.push_back({t, item, qty, kCart});
          carts_.push_back(ev_.size() - 1);
        }
        if (v + 1 < len) t += 1 + r.below(kMaxStep);
      }
      // Checkout: some carted items are bought, in cart order.
      for (std::size_t ci : carts_) {
        if (r.uniform() >= s.purchase_rate) continue;
        const Event cart = ev_[ci];
        t += 5 + r.below(60);
        ev_.push_back({t, cart.item, cart.value, kPurchase});
      }
      sessions_.back().duration = ev_.back().time;
    }
  }

  // Spreads the sessions over the period: gaps of at least kSessionGap, the
  // slack distributed as sorted uniform offsets. Makes event times absolute.
  // A period too short for the gaps shrinks them (to 1 s at least).
  void place_sessions(Rng& r) {
    const auto n = static_cast<std::int64_t>(sessions_.size());
    std::int64_t busy = 0;
    for (const auto& s : sessions_) busy += s.duration;
    std::int64_t gap = kSessionGap;
    if (n > 1 && busy + (n - 1) * gap > period_ - 1)
      gap = std::max<std::int64_t>(1, (period_ - 1 - busy) / (n - 1));
    const std::int64_t slack = std::max<std::int64_t>(0, period_ - 1 - busy - (n - 1) * gap);
    offsets_.resize(sessions_.size());
    for (auto& o : offsets_) o = r.below(slack + 1);
    std::sort(offsets_.begin(), offsets_.end());
    std::int64_t before = 0;  // durations and gaps of the earlier sessions
    for (std::size_t k = 0; k < sessions_.size(); ++k) {
      const std::int64_t base = start_ + offsets_[k] + before;
      const std::size_t end = k + 1 < sessions_.size() ? sessions_[k + 1].first : ev_.size();
      for (std::size_t i = sessions_[k].first; i < end; ++i) ev_[i].time += base;
      before += sessions_[k].duration + gap;
    }
  }

  void write_row(Text& out, std::string_view uid, const Event& e, Mode mode) {
    const std::string& cols = m_.item_cols[static_cast<std::size_t>(e.item)];
    const std::string_view name = kEventName[e.type];
    char* o = out.reserve(uid.size() + cols.size() + name.size() + 48);
    if (mode != Mode::kNoUser) o = std::copy(uid.begin(), uid.end(), o);
    *o++ = ',';
    o = std::copy(cols.begin(), cols.end(), o);
    o = std::copy(name.begin(), name.end(), o);
    if (mode == Mode::kBadTime) {
      constexpr std::string_view kBad = "n/a";
      o = std::copy(kBad.begin(), kBad.end(), o);
    } else {
      o = std::to_chars(o, o + 20, e.time).ptr;
    }
    if (mode != Mode::kNoValueColumn) {
      *o++ = ',';
      if (mode != Mode::kNoValue) o = std::to_chars(o, o + 12, e.value).ptr;
    }
    *o++ = '\n';
    out.commit(o);
  }

  const GenerateParams& p_;
  const Model& m_;
  std::int64_t start_ = 0, period_ = 0;
  std::vector<double> share_;
  std::vector<Event> ev_;
  std::vector<Session> sessions_;
  std::vector<std::size_t> carts_;
  std::vector<std::int64_t> offsets_;
};

}  // namespace

void GenerateParams::validate() const {
  require(users >= 1, "users", users, "must be at least 1");
  require(categories >= 1, "categories", categories, "must be at least 1");
  require(items >= categories && items <= 2147483647, "items", items,
          "must be at least --categories (" + std::to_string(categories) + ") and below 2^31");
  require(segments >= 1, "segments", segments, "must be at least 1");
  require(events_per_user > 0 && events_per_user <= 1e6, "events-per-user", events_per_user,
          "must be in (0, 10^6]");
  require(zipf >= 0 && zipf <= 10, "zipf", zipf, "must be in [0, 10]");
  require(affinity >= 0 && affinity <= 1, "affinity", affinity, "must be in [0, 1]");
  require(start >= 0 && start < parse::kMaxUnixSeconds, "start", start,
          "must be unix seconds in [0, 7258118400)");
  require(days > 0 && start + days * 86400.0 <= parse::kMaxUnixSeconds && days * 86400.0 >= 1,
          "days", days, "must be positive, at least a second, and end before the year 2200");
  require(noise >= 0 && noise <= 0.5, "noise", noise, "must be in [0, 0.5]");
  require(!events_out.empty(), "events", events_out, "give the events CSV to write");
  require(truth_out != events_out, "truth", truth_out, "must differ from --events");
  require(items_out != events_out, "items-out", items_out, "must differ from --events");
  require(items_out.empty() || items_out != truth_out, "items-out", items_out,
          "must differ from --truth");
  require(round_users >= 0, "round-users", round_users, "must be 0 (automatic) or positive");
}

std::vector<PlantedSegment> planted_segments(const GenerateParams& p) {
  Rng r(p.seed, kSegmentStream, 0);
  const int C = p.categories, S = p.segments;
  // Categories are dealt from successive shuffled decks, so segments share a
  // category only once every category is taken.
  std::vector<int> deck;
  std::size_t next = 0;
  const auto shuffle_deck = [&] {
    deck.resize(static_cast<std::size_t>(C));
    std::iota(deck.begin(), deck.end(), 0);
    for (std::size_t i = deck.size(); i > 1; --i)
      std::swap(deck[i - 1], deck[static_cast<std::size_t>(r.below(static_cast<std::int64_t>(i)))]);
    next = 0;
  };
  shuffle_deck();
  // Buyer levels: one per stratum of [0, 1), strata in a seed-chosen order.
  std::vector<int> level_rank(static_cast<std::size_t>(S));
  std::iota(level_rank.begin(), level_rank.end(), 0);
  for (std::size_t i = level_rank.size(); i > 1; --i)
    std::swap(level_rank[i - 1],
              level_rank[static_cast<std::size_t>(r.below(static_cast<std::int64_t>(i)))]);

  std::vector<PlantedSegment> out(static_cast<std::size_t>(S));
  for (int s = 0; s < S; ++s) {
    auto& seg = out[static_cast<std::size_t>(s)];
    const int k = std::min(C, r.uniform() < 0.5 ? 2 : 3);
    while (static_cast<int>(seg.categories.size()) < k) {
      if (next == deck.size()) shuffle_deck();
      const int c = deck[next++];
      if (std::find(seg.categories.begin(), seg.categories.end(), c) == seg.categories.end())
        seg.categories.push_back(c);
    }
    double total = 0;
    for (int j = 0; j < k; ++j) total += seg.shares.emplace_back(0.5 + r.uniform());
    for (auto& w : seg.shares) w /= total;
    const double a = (level_rank[static_cast<std::size_t>(s)] + r.uniform()) / S;
    const double b = (level_rank[static_cast<std::size_t>(s)] + r.uniform()) / S;
    seg.cart_rate = 0.03 + 0.27 * a;
    seg.purchase_rate = 0.2 + 0.6 * b;
  }
  return out;
}

GenerateSummary generate(const GenerateParams& p, const Comm& comm) {
  p.validate();
  const Model m = build_model(p);
  GenerateSummary sum;

  // All outputs are opened before anything is written, and committed at the end.
  OrderedWriter events_w(p.events_out, comm);
  std::optional<OrderedWriter> truth_w, items_w;
  if (!p.truth_out.empty()) truth_w.emplace(p.truth_out, comm);
  if (!p.items_out.empty()) items_w.emplace(p.items_out, comm);

  Text events, truth;
  if (items_w) {  // small: written by rank 0
    if (comm.is_root()) {
      events.add("item_id,category\n");
      for (const auto& cols : m.item_cols) {
        events.add(std::string_view(cols).substr(0, cols.size() - 1));
        events.add("\n");
      }
    }
    items_w->append(events.view());
  }

  // Rounds: round k covers the next `per_round * size` users in global order,
  // block-partitioned over the ranks, so the rank-ordered appends keep the file
  // in user order; every rank runs the same number of rounds.
  const double bytes_per_user = 24 + p.events_per_user * 44;
  const std::int64_t per_round =
      p.round_users > 0
          ? p.round_users
          : std::clamp<std::int64_t>(static_cast<std::int64_t>(kRoundBytes / bytes_per_user), 1,
                                     kMaxRoundUsers);
  const std::int64_t chunk = per_round * comm.size();
  const std::int64_t rounds = std::max<std::int64_t>(1, (p.users + chunk - 1) / chunk);

  UserGenerator gen(p, m);
  for (std::int64_t k = 0; k < rounds; ++k) {
    events.clear();
    truth.clear();
    if (k == 0 && comm.is_root()) {
      events.add("user_id,item_id,category,event,timestamp,value\n");
      if (truth_w) truth.add("user_id,segment\n");
    }
    const std::int64_t first = k * chunk;
    const Block mine = block_partition(std::min(chunk, p.users - first), comm.size(), comm.rank());
    const std::int64_t b = first + mine.begin, e = first + mine.end;
    for (std::int64_t g = b; g < e; ++g) gen.run(g, events, truth_w ? &truth : nullptr, sum);
    events_w.append(events.view());
    if (truth_w) truth_w->append(truth.view());
  }
  events_w.commit();
  sum.bytes += events_w.bytes_written();
  for (auto* w : {truth_w ? &*truth_w : nullptr, items_w ? &*items_w : nullptr}) {
    if (!w) continue;
    w->commit();
    sum.bytes += w->bytes_written();
  }

  std::vector<std::int64_t> counts = {sum.events, sum.rows, sum.duplicates, sum.missing_values,
                                      sum.broken};
  comm.allreduce(counts);
  sum.users = p.users;
  sum.items = p.items;
  sum.events = counts[0] - counts[4];
  sum.rows = counts[1];
  sum.duplicates = counts[2];
  sum.missing_values = counts[3];
  sum.broken = counts[4];
  return sum;
}

}  // namespace segrec
