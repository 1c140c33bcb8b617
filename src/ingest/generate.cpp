#include "segrec/ingest/generate.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <optional>

#include "generate_model.hpp"
#include "generate_sequential.hpp"
#include "segrec/core/params.hpp"
#include "segrec/io/parse.hpp"
#include "segrec/io/textio.hpp"

namespace segrec {

namespace {

using gen::kNoiseStream;
using gen::kUserStream;
using gen::make_id;
using gen::Model;
using gen::Rng;

// ---- fixed shape of the behaviour model ----------------------------------------------------

constexpr double kMeanSessionViews = 5;     // views per session (1 + geometric)
constexpr double kSessionStickiness = 0.6;  // P(a view stays in the session's category)
constexpr double kOwnTaste = 0.5;  // P(a view in a preferred category follows the segment's taste)
constexpr double kTasteViewsSigma = 0.5;      // lognormal spread of a user's view count (taste)
constexpr double kBehaviourViewsSigma = 0.2;  // ... around its segment's activity (behaviour)
constexpr double kQuantitySigma = 0.3;        // lognormal spread of a user's extra units
constexpr std::int64_t kMaxExtraUnits = 11;   // units per cart line: 1..12
constexpr double kDwellMedian = 30;           // seconds
constexpr double kDwellSigma = 0.9;
constexpr std::int64_t kMaxDwell = 900;        // seconds; bounds gaps inside a session
constexpr std::int64_t kMaxStep = 30;          // seconds between an event and the next view
constexpr std::int64_t kSessionGap = 31 * 60;  // minimum seconds between sessions
constexpr std::int64_t kLastWeek =
    7 * 86400;  // a recent user's last session: seconds before the end
constexpr double kRoundBytes = 32.0 * (1 << 20);  // target text per rank per round
constexpr std::int64_t kMaxRoundUsers = 65536;

enum EventType : std::uint8_t { kView, kCart, kPurchase };
constexpr std::string_view kEventName[] = {"view,", "cart,", "purchase,"};

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
    if (p.sequential) seq_.emplace(p, m);
    start_ = static_cast<std::int64_t>(std::llround(p.start));
    period_ = static_cast<std::int64_t>(std::floor(p.days * 86400.0));
  }

  /// Appends user g's rows to `events` and its truth row to `truth` (when non-null).
  void run(std::int64_t g, Text& events, Text* truth, GenerateSummary& sum) {
    Rng r(p_.seed, kUserStream, static_cast<std::uint64_t>(g));
    const auto seg = static_cast<std::size_t>(r.below(p_.segments));
    draw_behaviour(r, m_.segments[seg]);
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

  // The user's behaviour: the segment's levels (behaviour, both) or draws
  // independent of the segment (taste), with the spread within a segment.
  void draw_behaviour(Rng& r, const PlantedSegment& s) {
    double extra = 0;
    bool recent = false;
    if (s.activity_level < 0) {
      activity_ = 1;
      views_sigma_ = kTasteViewsSigma;
      cart_rate_ = r.uniform(0.03, 0.30);
      purchase_rate_ = r.uniform(0.2, 0.8);
      tier_ = static_cast<int>(r.below(kPriceTiers));
      extra = kQuantityExtra[r.below(2)];
      recent = r.below(kRecencyLevels) == 1;
    } else {
      activity_ = s.activity;
      views_sigma_ = kBehaviourViewsSigma;
      cart_rate_ = s.cart_rate * r.uniform(0.7, 1.3);
      purchase_rate_ = s.purchase_rate + r.uniform(-0.1, 0.1);
      tier_ = s.price_tier;
      extra = s.quantity_extra;
      recent = s.recency_level == 1;
    }
    // Share of views in the user's price tier: planted tiers are kept more firmly.
    loyalty_ = s.activity_level < 0 ? r.uniform(0.6, 0.9) : r.uniform(0.8, 0.95);
    extra_units_ = extra * r.mean_one_lognormal(kQuantitySigma);
    // Active window, as shares of the period.
    recent_ = recent;
    window_begin_ = recent ? r.uniform(0, 0.4) : 0.0;
    window_end_ = recent ? 1.0 : r.uniform(0.25, 0.55);
  }

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
      if (s.categories.empty()) {  // structure behaviour: the global mixture
        const auto& mix = m_.category_mixture;
        const auto c = std::upper_bound(mix.begin(), mix.end(), r.uniform()) - mix.begin();
        return {static_cast<int>(std::min<std::ptrdiff_t>(c, std::ssize(mix) - 1)), -1};
      }
      if (other.empty() || r.uniform() < p_.affinity) {
        const double u = r.uniform();
        std::size_t k = 0;
        while (k + 1 < share_.size() && u >= share_[k]) ++k;
        return {s.categories[k], static_cast<int>(k)};
      }
      return {other[static_cast<std::size_t>(r.below(static_cast<std::int64_t>(other.size())))],
              -1};
    };
    // Expected events per view: 1 + cart + cart * purchase.
    const double mean_views = p_.events_per_user * activity_ /
                              (1.0 + cart_rate_ + cart_rate_ * purchase_rate_) *
                              r.mean_one_lognormal(views_sigma_);
    const auto n_views =
        std::max<std::int64_t>(1, static_cast<std::int64_t>(std::floor(mean_views + r.uniform())));

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
      std::int32_t prev = -1;  // the session's previous view
      for (std::int64_t v = 0; v < len; ++v) {
        if (seq_ && prev >= 0 && r.uniform() < p_.sequence_strength) {
          prev = seq_->successor(seg, prev);
          add_view(r, prev, t, v + 1 < len);
          continue;
        }
        const auto [c, pref] =
            r.uniform() < kSessionStickiness ? session_category : draw_category();
        // The user's price tier (share `loyalty`) or the whole category.
        const auto& tiers = m_.tier_items[static_cast<std::size_t>(c)];
        const gen::ItemList& list = !tiers.empty() && r.uniform() < loyalty_
                                        ? tiers[static_cast<std::size_t>(tier_)]
                                        : m_.category_items[static_cast<std::size_t>(c)];
        const auto& cdf = list.cdf;
        auto k = std::min<std::size_t>(
            static_cast<std::size_t>(std::upper_bound(cdf.begin(), cdf.end(), r.uniform()) -
                                     cdf.begin()),
            cdf.size() - 1);
        if (pref >= 0 && r.uniform() < kOwnTaste)
          k = (k + static_cast<std::size_t>(m_.taste_shift[seg][static_cast<std::size_t>(pref)])) %
              cdf.size();
        prev = list.items[k];
        add_view(r, prev, t, v + 1 < len);
      }
      // Checkout: some carted items are bought, in cart order.
      for (std::size_t ci : carts_) {
        if (r.uniform() >= purchase_rate_) continue;
        const Event cart = ev_[ci];
        t += 5 + r.below(60);
        ev_.push_back({t, cart.item, cart.value, kPurchase});
      }
      sessions_.back().duration = ev_.back().time;
    }
  }

  // A view of `item` at t (with its dwell time and maybe a cart); advances t past it.
  void add_view(Rng& r, std::int32_t item, std::int64_t& t, bool more) {
    const auto dwell = std::clamp<std::int64_t>(
        std::llround(kDwellMedian * std::exp(kDwellSigma * r.normal())), 1, kMaxDwell);
    ev_.push_back({t, item, static_cast<std::int32_t>(dwell), kView});
    t += dwell;
    if (r.uniform() < cart_rate_) {
      const auto qty =
          static_cast<std::int32_t>(1 + std::min(r.geometric(extra_units_), kMaxExtraUnits));
      ev_.push_back({t, item, qty, kCart});
      carts_.push_back(ev_.size() - 1);
    }
    if (more) t += 1 + r.below(kMaxStep);
  }

  // Spreads the sessions over the user's window of the period: gaps of at
  // least kSessionGap, the slack distributed as sorted uniform offsets. Makes
  // event times absolute. A window too short for the gaps shrinks them (to 1 s
  // at least).
  void place_sessions(Rng& r) {
    const auto n = static_cast<std::int64_t>(sessions_.size());
    const auto first =
        static_cast<std::int64_t>(std::floor(window_begin_ * static_cast<double>(period_)));
    const std::int64_t span = std::max<std::int64_t>(
        1, std::min(period_, static_cast<std::int64_t>(
                                 std::floor(window_end_ * static_cast<double>(period_)))) -
               first);
    std::int64_t busy = 0;
    for (const auto& s : sessions_) busy += s.duration;
    std::int64_t gap = kSessionGap;
    if (n > 1 && busy + (n - 1) * gap > span - 1)
      gap = std::max<std::int64_t>(1, (span - 1 - busy) / (n - 1));
    const std::int64_t slack = std::max<std::int64_t>(0, span - 1 - busy - (n - 1) * gap);
    offsets_.resize(sessions_.size());
    for (auto& o : offsets_) o = r.below(slack + 1);
    std::sort(offsets_.begin(), offsets_.end());
    // A recent user's last session ends in the last week of its window.
    if (recent_ && n > 0) {
      const std::int64_t before_last = n > 1 ? offsets_[offsets_.size() - 2] : 0;
      offsets_.back() = std::max(before_last, slack - r.below(std::min(slack, kLastWeek) + 1));
    }
    std::int64_t before = 0;  // durations and gaps of the earlier sessions
    for (std::size_t k = 0; k < sessions_.size(); ++k) {
      const std::int64_t base = start_ + first + offsets_[k] + before;
      const std::size_t end = k + 1 < sessions_.size() ? sessions_[k + 1].first : ev_.size();
      for (std::size_t i = sessions_[k].first; i < end; ++i) ev_[i].time += base;
      before += sessions_[k].duration + gap;
    }
  }

  void write_row(Text& out, std::string_view uid, const Event& e, Mode mode) {
    const std::string& cols = m_.item_cols[static_cast<std::size_t>(e.item)];
    const std::string_view name = kEventName[e.type];
    char* o = out.reserve(uid.size() + cols.size() + name.size() + 72);
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
    *o++ = ',';
    o = gen::write_price(o, m_.item_cents[static_cast<std::size_t>(e.item)]);
    *o++ = '\n';
    out.commit(o);
  }

  const GenerateParams& p_;
  const Model& m_;
  std::optional<gen::Sequence> seq_;  // --sequential
  std::int64_t start_ = 0, period_ = 0;
  // The current user's behaviour (draw_behaviour).
  double activity_ = 1, views_sigma_ = kTasteViewsSigma, cart_rate_ = 0, purchase_rate_ = 0;
  double loyalty_ = 0, extra_units_ = 0, window_begin_ = 0, window_end_ = 1;
  int tier_ = 0;
  bool recent_ = true;
  std::vector<double> share_;
  std::vector<Event> ev_;
  std::vector<Session> sessions_;
  std::vector<std::size_t> carts_;
  std::vector<std::int64_t> offsets_;
};

}  // namespace

GenerateModes GenerateParams::validate() const {
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
  require(sequence_strength >= 0 && sequence_strength <= 1, "sequence-strength", sequence_strength,
          "must be in [0, 1]");
  require(!events_out.empty(), "events", events_out, "give the events CSV to write");
  require(truth_out != events_out, "truth", truth_out, "must differ from --events");
  require(items_out != events_out, "items-out", items_out, "must differ from --events");
  require(items_out.empty() || items_out != truth_out, "items-out", items_out,
          "must differ from --truth");
  require(round_users >= 0, "round-users", round_users, "must be 0 (automatic) or positive");
  GenerateModes m;
  m.structure = parse_mode<GenerateStructure>(structure,
                                              {{"taste", GenerateStructure::kTaste},
                                               {"behaviour", GenerateStructure::kBehaviour},
                                               {"both", GenerateStructure::kBoth}},
                                              "structure", "use taste, behaviour or both");
  return m;
}

GenerateSummary generate(const GenerateParams& p, const Comm& comm) {
  const GenerateModes modes = p.validate();
  const Model m = gen::build_model(p, modes);
  GenerateSummary sum;

  // All outputs are opened before anything is written, and committed at the end.
  OrderedWriter events_w(p.events_out, comm);
  std::optional<OrderedWriter> truth_w, items_w;
  if (!p.truth_out.empty()) truth_w.emplace(p.truth_out, comm);
  if (!p.items_out.empty()) items_w.emplace(p.items_out, comm);

  Text events, truth;
  if (items_w) {  // small: written by rank 0
    if (comm.is_root()) {
      events.add("item_id,category,name,price\n");
      std::vector<std::int64_t> ordinal(m.category_ids.size());  // per category: items so far
      for (std::size_t i = 0; i < m.item_cols.size(); ++i) {
        const int c = m.item_category[i];
        events.add(m.item_cols[i]);
        events.add(gen::item_name(p.seed, static_cast<std::int64_t>(i), c,
                                  ++ordinal[static_cast<std::size_t>(c)]));
        char* o = events.reserve(32);
        *o++ = ',';
        o = gen::write_price(o, m.item_cents[i]);
        *o++ = '\n';
        events.commit(o);
      }
    }
    items_w->append(events.view());
  }

  // Rounds: round k covers the next `per_round * size` users in global order,
  // block-partitioned over the ranks, so the rank-ordered appends keep the file
  // in user order; every rank runs the same number of rounds.
  const double bytes_per_user = 24 + p.events_per_user * 52;
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
      events.add("user_id,item_id,category,event,timestamp,value,price\n");
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
