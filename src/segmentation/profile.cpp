#include "segrec/segmentation/profile.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <sstream>
#include <unordered_map>

#include "segrec/core/params.hpp"
#include "segrec/io/parse.hpp"
#include "segrec/segmentation/memory.hpp"
#include "segrec/segmentation/rfm.hpp"

namespace segrec {

namespace {

constexpr double kSecondsPerDay = 86400;
constexpr double kSessionGapSeconds = 30 * 60;  // a longer gap starts a new session
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool name_in(const std::string& name, std::initializer_list<const char*> names) {
  const std::string l = parse::lower(name);
  for (const char* n : names)
    if (l == n) return true;
  return false;
}
bool is_view(const std::string& t) { return name_in(t, {"view", "pv", "click"}); }
bool is_cart(const std::string& t) { return name_in(t, {"cart", "add_to_cart"}); }
bool is_purchase(const std::string& t) { return name_in(t, {"purchase", "buy", "transaction"}); }

double signed_log1p(double x) { return std::copysign(std::log1p(std::fabs(x)), x); }

// Where each statistic sits in a dense row (the order of dense_statistic_names).
struct DenseLayout {
  std::int64_t n_types = 0, n_categories = 0;
  bool cart_ratio = false, purchase_ratio = false, purchase_cart = false, purchase = false,
       prices = false, position = false;
  std::int64_t events() const { return 0; }  // + type
  std::int64_t distinct_items() const { return n_types; }
  std::int64_t active_days() const { return n_types + 1; }
  std::int64_t sessions() const { return n_types + 2; }
  std::int64_t mean_value() const { return n_types + 3; }  // + type
  std::int64_t cart_view() const { return 2 * n_types + 3; }
  std::int64_t purchase_view() const { return cart_view() + (cart_ratio ? 1 : 0); }
  std::int64_t purchase_cart_ratio() const { return purchase_view() + (purchase_ratio ? 1 : 0); }
  std::int64_t days_since_last() const { return purchase_cart_ratio() + (purchase_cart ? 1 : 0); }
  std::int64_t purchase_sessions() const { return days_since_last() + 1; }
  std::int64_t days_since_purchase() const { return purchase_sessions() + 1; }
  std::int64_t monetary() const { return days_since_last() + 1 + (purchase ? 2 : 0); }
  std::int64_t mean_price() const { return monetary() + 1; }
  std::int64_t price_position() const { return monetary() + (prices ? 2 : 0); }
  std::int64_t category_share() const { return price_position() + (position ? 1 : 0); }  // + c
  std::int64_t size() const { return category_share() + n_categories; }

  DenseLayout(const std::vector<std::string>& types, std::int64_t categories, bool with_prices,
              bool with_position) {
    n_types = static_cast<std::int64_t>(types.size());
    n_categories = categories;
    prices = with_prices;
    position = with_prices && with_position;
    bool view = false, cart = false;
    for (const auto& t : types) {
      view |= is_view(t);
      cart |= is_cart(t);
      purchase |= is_purchase(t);
    }
    cart_ratio = view && cart;
    purchase_ratio = view && purchase;
    purchase_cart = cart && purchase;
  }
};

// Unit price of event e of `ds` (the event's own price, else its item's); NaN unknown.
struct PriceOf {
  const Dataset& ds;
  bool any() const { return !ds.log_price.empty() || !ds.item_price.empty(); }
  double operator()(std::int64_t e, std::int32_t item) const {
    if (!ds.log_price.empty()) {
      const double p = ds.log_price[static_cast<std::size_t>(e)];
      if (std::isfinite(p)) return p;
    }
    if (!ds.item_price.empty()) return ds.item_price[static_cast<std::size_t>(item)];
    return kNaN;
  }
};

// Index of each of `from` in `to` (-1 when absent); identity when equal.
std::vector<std::int32_t> match_names(const std::vector<std::string>& from,
                                      const std::vector<std::string>& to) {
  std::vector<std::int32_t> out(from.size());
  if (from == to) {
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  std::unordered_map<std::string, std::int32_t> pos;
  pos.reserve(to.size());
  for (std::size_t i = 0; i < to.size(); ++i) pos.emplace(to[i], static_cast<std::int32_t>(i));
  for (std::size_t i = 0; i < from.size(); ++i) {
    const auto it = pos.find(from[i]);
    out[i] = it == pos.end() ? -1 : it->second;
  }
  return out;
}

// Local intermediate of profiling: decayed interaction weights per (user, model item)
// before idf, and the raw statistics.
struct RawRows {
  std::vector<std::int64_t> indptr{0};
  std::vector<std::int32_t> items;  // model item index, ascending within a row
  std::vector<double> weights;      // > 0
  std::vector<double> dense;        // n_local x d, NaN = undefined
};

RawRows compute_raw(const Dataset& ds, const ProfileModel& m) {
  const std::int64_t n = ds.n_local();
  if (static_cast<std::int64_t>(ds.log_ptr.size()) != n + 1)
    throw DataError("the profile needs the data set's event log (log/indptr has the wrong size)");
  // Price columns by name: a model read from elsewhere (a serving bundle) has no flag.
  const auto named = [&m](const char* name) {
    return std::find(m.dense_names.begin(), m.dense_names.end(), name) != m.dense_names.end();
  };
  const bool model_prices = m.prices || named("monetary");
  const DenseLayout L(m.event_types, static_cast<std::int64_t>(m.categories.size()), model_prices,
                      named("price_position"));
  const std::int64_t d = L.size();
  SEGREC_ASSERT(d == m.n_dense(), "dense layout ", d, " != model ", m.n_dense());
  const PriceOf price_of{ds};
  const bool prices = L.prices && price_of.any();
  if ((!ds.log_price.empty() && ds.log_price.size() != ds.log_time.size()) ||
      (!ds.item_price.empty() && ds.item_price.size() != ds.item_ids.size()))
    throw DataError("the data set's prices do not match its events or items");

  const auto item_map = match_names(ds.item_ids, m.item_ids);
  const auto type_map = match_names(ds.event_types, m.event_types);
  std::vector<char> view(m.event_types.size()), cart(view.size()), purchase(view.size());
  for (std::size_t t = 0; t < view.size(); ++t) {
    view[t] = is_view(m.event_types[t]);
    cart[t] = is_cart(m.event_types[t]);
    purchase[t] = is_purchase(m.event_types[t]);
  }
  const bool decay = m.half_life_days > 0;
  const double decay_rate = decay ? 1.0 / (m.half_life_days * kSecondsPerDay) : 0;
  const bool categories = !m.categories.empty() && !m.item_category.empty();
  const bool positions = L.position && m.item_price_position.size() == m.item_ids.size();

  RawRows r;
  r.indptr.reserve(static_cast<std::size_t>(n + 1));
  r.dense.assign(static_cast<std::size_t>(n * d), kNaN);
  std::vector<std::pair<std::int32_t, double>> acc;  // (model item, weight) of one user
  std::vector<std::int32_t> seen_items;
  std::vector<std::int64_t> days;
  std::vector<std::pair<double, char>> times;  // (time, purchase) of one user
  std::vector<double> count(view.size()), value_sum(view.size());
  std::vector<double> cat(m.categories.size());

  for (std::int64_t u = 0; u < n; ++u) {
    acc.clear();
    seen_items.clear();
    times.clear();
    std::fill(count.begin(), count.end(), 0.0);
    std::fill(value_sum.begin(), value_sum.end(), 0.0);
    std::fill(cat.begin(), cat.end(), 0.0);
    double cat_total = 0, spend = 0, price_sum = 0, priced = 0, position_sum = 0, positioned = 0;
    for (std::int64_t e = ds.log_ptr[u]; e < ds.log_ptr[u + 1]; ++e) {
      const std::int32_t t = type_map.at(ds.log_type[e]);
      if (t < 0) continue;  // event type unknown to the model
      const std::int32_t item = ds.log_item[e];
      if (item < 0 || item >= static_cast<std::int32_t>(item_map.size()))
        throw DataError("event log item index " + std::to_string(item) + " out of range");
      const std::int32_t mi = item_map[item];
      const double time = ds.log_time[e];
      count[t] += 1;
      value_sum[t] += ds.log_value[e];
      seen_items.push_back(item);
      times.emplace_back(time, purchase[t]);
      if (prices) {
        const double unit = price_of(e, item);
        if (std::isfinite(unit)) {
          price_sum += unit;
          priced += 1;
          if (purchase[t] || !L.purchase) spend += unit * ds.log_value[e];
        }
      }
      if (mi < 0) continue;  // item unknown to the model: behaviour only
      if (positions && std::isfinite(m.item_price_position[mi])) {
        position_sum += m.item_price_position[mi];
        positioned += 1;
      }
      double w = m.event_weights[t];
      if (decay) w *= std::exp2(-std::max(0.0, m.reference_time - time) * decay_rate);
      acc.emplace_back(mi, w);
      if (categories && m.item_category[mi] >= 0) {
        cat[m.item_category[mi]] += 1;
        cat_total += 1;
      }
    }
    // Sparse: summed weight per item, positive sums only.
    std::sort(acc.begin(), acc.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 0; i < acc.size();) {
      std::size_t j = i;
      double w = 0;
      for (; j < acc.size() && acc[j].first == acc[i].first; ++j) w += acc[j].second;
      if (w > 0) {
        r.items.push_back(acc[i].first);
        r.weights.push_back(w);
      }
      i = j;
    }
    r.indptr.push_back(static_cast<std::int64_t>(r.items.size()));

    // Dense statistics.
    double* x = r.dense.data() + u * d;
    double total = 0, views = 0, carts = 0, buys = 0;
    for (std::size_t t = 0; t < count.size(); ++t) {
      x[L.events() + static_cast<std::int64_t>(t)] = count[t];
      if (count[t] > 0) x[L.mean_value() + static_cast<std::int64_t>(t)] = value_sum[t] / count[t];
      total += count[t];
      if (view[t]) views += count[t];
      if (cart[t]) carts += count[t];
      if (purchase[t]) buys += count[t];
    }
    std::sort(seen_items.begin(), seen_items.end());
    x[L.distinct_items()] =
        static_cast<double>(std::unique(seen_items.begin(), seen_items.end()) - seen_items.begin());
    if (!std::is_sorted(times.begin(), times.end())) std::sort(times.begin(), times.end());
    days.clear();
    double sessions = 0, buy_sessions = 0, last_buy = kNaN;
    bool session_buys = false;
    for (std::size_t i = 0; i < times.size(); ++i) {
      const double ti = times[i].first;
      days.push_back(static_cast<std::int64_t>(std::floor(ti / kSecondsPerDay)));
      if (i == 0 || ti - times[i - 1].first > kSessionGapSeconds) {
        sessions += 1;
        session_buys = false;
      }
      if (times[i].second) {
        if (!session_buys) buy_sessions += 1;
        session_buys = true;
        last_buy = ti;
      }
    }
    x[L.active_days()] =
        static_cast<double>(std::unique(days.begin(), days.end()) - days.begin());  // sorted
    x[L.sessions()] = sessions;
    if (L.cart_ratio && views > 0) x[L.cart_view()] = carts / views;
    if (L.purchase_ratio && views > 0) x[L.purchase_view()] = buys / views;
    if (L.purchase_cart) x[L.purchase_cart_ratio()] = (buys + 0.5) / (carts + 1);
    if (total > 0)
      x[L.days_since_last()] =
          std::max(0.0, m.reference_time - times.back().first) / kSecondsPerDay;
    if (L.purchase) {
      x[L.purchase_sessions()] = buy_sessions;
      if (!std::isnan(last_buy))
        x[L.days_since_purchase()] = std::max(0.0, m.reference_time - last_buy) / kSecondsPerDay;
    }
    if (prices) {
      x[L.monetary()] = spend;
      if (priced > 0) x[L.mean_price()] = price_sum / priced;
    }
    if (L.position && positioned > 0) x[L.price_position()] = position_sum / positioned;
    if (cat_total > 0)
      for (std::size_t c = 0; c < cat.size(); ++c)
        x[L.category_share() + static_cast<std::int64_t>(c)] = cat[c] / cat_total;
  }
  return r;
}

ProfileBlock finish(const Dataset& ds, const ProfileModel& m, const RawRows& r) {
  const std::int64_t n = ds.n_local(), d = m.n_dense();
  ProfileBlock b;
  b.n_users = ds.n_users;
  b.user_begin = ds.user_begin;
  b.user_ids = ds.user_ids;
  b.indptr.reserve(static_cast<std::size_t>(n + 1));
  b.indices.reserve(r.items.size());
  b.values.reserve(r.items.size());
  std::vector<double> row;
  for (std::int64_t u = 0; u < n; ++u) {
    row.clear();
    for (std::int64_t p = r.indptr[u]; p < r.indptr[u + 1]; ++p) {
      const double v = std::log1p(r.weights[p]) * m.idf[r.items[p]];
      if (v > 0) {
        b.indices.push_back(r.items[p]);
        row.push_back(v);
      }
    }
    double ss = 0;
    for (double v : row) ss += v * v;
    const double inv = ss > 0 ? 1.0 / std::sqrt(ss) : 0.0;
    for (double v : row) b.values.push_back(static_cast<float>(v * inv));
    b.indptr.push_back(static_cast<std::int64_t>(b.indices.size()));
  }
  b.dense_raw.resize(static_cast<std::size_t>(n * d));
  b.dense_values.resize(static_cast<std::size_t>(n * d));
  for (std::int64_t i = 0; i < n * d; ++i) {
    const double x = r.dense[i];
    const std::int64_t j = i % d;
    b.dense_raw[i] = static_cast<float>(x);
    if (std::isnan(x)) {
      b.dense_values[i] = 0.0f;  // undefined: the global mean
    } else {
      const double t = dense_transform(m.dense_log[j], x);
      b.dense_values[i] =
          static_cast<float>((t - m.dense_mean[j]) / m.dense_std[j] * m.dense_weight);
    }
  }
  if (m.rfm_edges.size() == kRfmColumns * kRfmEdges) {
    b.rfm_values = rfm_values(r.dense, m.dense_names);
    b.rfm_scores = rfm_scores(b.rfm_values, m.rfm_edges);
  }
  return b;
}

// Fits the model and returns the raw rows it was fitted on (reused by run_profile).
ProfileModel fit(const Dataset& ds, const ProfileParams& p, std::vector<std::string> categories,
                 std::vector<std::int32_t> item_category, const Comm& comm, RawRows& raw) {
  ProfileModel m;
  m.item_ids = ds.item_ids;
  m.event_types = ds.event_types;
  m.event_weights = ds.event_weights;
  m.event_weights.resize(m.event_types.size(), 1.0);
  m.categories = std::move(categories);
  m.item_category = std::move(item_category);
  SEGREC_ASSERT(m.item_category.empty() || m.item_category.size() == m.item_ids.size());
  // Prices: a rank without events may hold no price column, so all ranks agree first.
  const int local_prices = !ds.log_price.empty() || !ds.item_price.empty() ? 1 : 0;
  m.prices = comm.allreduce_value(local_prices, Op::kMax) > 0;
  // Item prices and categories are replicated: every rank computes the same positions.
  if (!ds.item_price.empty() && !m.item_category.empty()) {
    m.item_price_position = item_price_positions(ds.item_price, m.item_category);
    if (std::none_of(m.item_price_position.begin(), m.item_price_position.end(),
                     [](double x) { return std::isfinite(x); }))
      m.item_price_position.clear();
  }
  m.dense_names = dense_statistic_names(m.event_types, m.categories, &m.dense_log, m.prices,
                                        !m.item_price_position.empty());
  m.dense_block = dense_blocks(m.dense_names);
  m.half_life_days = p.half_life_days;
  m.n_users = ds.n_users;

  // Reference time: the global last timestamp (falls back to users' last_time).
  double t = -std::numeric_limits<double>::infinity();
  for (double x : ds.log_time) t = std::max(t, x);
  for (double x : ds.last_time) t = std::max(t, x);
  t = comm.allreduce_value(t, Op::kMax);
  m.reference_time = std::isfinite(t) ? t : 0.0;

  // Until the idf is known, every item counts; finish() is not called before that.
  m.idf.assign(m.item_ids.size(), 1.0);
  const std::int64_t d = m.n_dense();
  m.dense_mean.assign(static_cast<std::size_t>(d), 0.0);
  m.dense_std.assign(static_cast<std::size_t>(d), 1.0);
  raw = compute_raw(ds, m);

  // One allreduce: [users per item (n_items) | sum, sum of squares, count per statistic].
  const std::size_t ni = m.item_ids.size(), nd = static_cast<std::size_t>(d);
  std::vector<double> buf(ni + 3 * nd, 0.0);
  for (auto i : raw.items) buf[static_cast<std::size_t>(i)] += 1;
  for (std::int64_t u = 0; u < ds.n_local(); ++u)
    for (std::size_t j = 0; j < nd; ++j) {
      const double x = raw.dense[static_cast<std::size_t>(u) * nd + j];
      if (std::isnan(x)) continue;
      const double v = dense_transform(m.dense_log[j], x);
      buf[ni + j] += v;
      buf[ni + nd + j] += v * v;
      buf[ni + 2 * nd + j] += 1;
    }
  comm.allreduce(buf);
  const double n_users = static_cast<double>(ds.n_users);
  for (std::size_t i = 0; i < ni; ++i) m.idf[i] = buf[i] > 0 ? std::log(n_users / buf[i]) : 0.0;
  double sqrt_var_sum = 0, n_sqrt = 0;  // over the square-rooted shares that are defined
  for (std::size_t j = 0; j < nd; ++j) {
    const double c = buf[ni + 2 * nd + j];
    if (c <= 0) continue;  // never defined: every value is imputed (0)
    const double mean = buf[ni + j] / c;
    const double var = std::max(0.0, buf[ni + nd + j] / c - mean * mean);
    const double sd = std::sqrt(var);
    m.dense_mean[j] = mean;
    // A constant column carries no information: std 1 keeps it at 0.
    m.dense_std[j] = sd > 1e-12 * std::max(1.0, std::fabs(mean)) ? sd : 1.0;
    if (m.dense_log[j] == kDenseSqrt) {
      sqrt_var_sum += var;
      n_sqrt += 1;
    }
  }
  // The square-rooted shares keep their relative scales (the point of the transform): one
  // std for all of them, the root mean of their variances, so the block's total variance
  // is still one per column.
  const double pooled = n_sqrt > 0 ? std::sqrt(sqrt_var_sum / n_sqrt) : 0.0;
  if (pooled > 1e-12)
    for (std::size_t j = 0; j < nd; ++j)
      if (m.dense_log[j] == kDenseSqrt) m.dense_std[j] = pooled;
  m.dense_weight = p.dense_weight >= 0 ? p.dense_weight : 0.5 / std::sqrt(static_cast<double>(d));
  m.rfm_edges = fit_rfm_edges(rfm_values(raw.dense, m.dense_names), comm);
  return m;
}

}  // namespace

void ProfileParams::validate() const {
  require(!data.empty(), "data", data, "give the dataset file to read");
  require(!out.empty(), "out", out, "give the profiles file to write");
  require(std::isfinite(half_life_days) && half_life_days >= 0, "half-life-days", half_life_days,
          "must be finite and >= 0 (0 = no time decay)");
  require(std::isfinite(dense_weight), "dense-weight", dense_weight,
          "must be a finite number (negative = auto)");
}

double dense_transform(std::uint8_t code, double x) {
  switch (code) {
    case kDenseLog1p:
      return signed_log1p(x);
    case kDenseSqrt:
      return std::sqrt(std::max(0.0, x));
    default:
      return x;
  }
}

bool known_dense_transforms(const std::vector<std::uint8_t>& codes) {
  return std::all_of(codes.begin(), codes.end(), [](std::uint8_t c) { return c <= kDenseSqrt; });
}

std::vector<std::string> dense_statistic_names(const std::vector<std::string>& event_types,
                                               const std::vector<std::string>& categories,
                                               std::vector<std::uint8_t>* log, bool prices,
                                               bool price_position) {
  const DenseLayout L(event_types, static_cast<std::int64_t>(categories.size()), prices,
                      price_position);
  std::vector<std::string> names(static_cast<std::size_t>(L.size()));
  std::vector<std::uint8_t> lg(names.size(), 0);
  auto set = [&](std::int64_t i, std::string name, std::uint8_t transform) {
    names[static_cast<std::size_t>(i)] = std::move(name);
    lg[static_cast<std::size_t>(i)] = transform;
  };
  for (std::int64_t t = 0; t < L.n_types; ++t) {
    set(L.events() + t, "events:" + event_types[t], kDenseLog1p);
    set(L.mean_value() + t, "mean_value:" + event_types[t], kDenseLog1p);
  }
  set(L.distinct_items(), "distinct_items", kDenseLog1p);
  set(L.active_days(), "active_days", kDenseLog1p);
  set(L.sessions(), "sessions", kDenseLog1p);
  if (L.cart_ratio) set(L.cart_view(), "ratio:cart/view", kDenseLinear);
  if (L.purchase_ratio) set(L.purchase_view(), "ratio:purchase/view", kDenseLinear);
  if (L.purchase_cart) set(L.purchase_cart_ratio(), "ratio:purchase/cart", kDenseLinear);
  set(L.days_since_last(), "days_since_last", kDenseLog1p);
  if (L.purchase) {
    set(L.purchase_sessions(), "purchase_sessions", kDenseLog1p);
    set(L.days_since_purchase(), "days_since_purchase", kDenseLog1p);
  }
  if (L.prices) {
    set(L.monetary(), "monetary", kDenseLog1p);
    set(L.mean_price(), "mean_price", kDenseLog1p);
  }
  if (L.position) set(L.price_position(), "price_position", kDenseLinear);
  for (std::int64_t c = 0; c < L.n_categories; ++c)
    set(L.category_share() + c, "category_share:" + categories[c], kDenseSqrt);
  if (log) *log = std::move(lg);
  return names;
}

std::vector<std::uint8_t> dense_blocks(const std::vector<std::string>& names) {
  const auto has = [&names](const char* n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  const bool purchase_ratio = has("ratio:purchase/cart") || has("ratio:purchase/view");
  std::vector<std::uint8_t> out(names.size(), kBlockValue);
  for (std::size_t j = 0; j < names.size(); ++j) {
    const std::string& n = names[j];
    if (n.rfind("category_share:", 0) == 0) {
      out[j] = kBlockInterest;
    } else if (n == "distinct_items" || n == "active_days" || n == "sessions" ||
               n == "purchase_sessions" || n == "days_since_purchase" || n == "monetary" ||
               (n == "mean_price" && has("price_position")) ||
               (n == "ratio:purchase/view" && has("ratio:purchase/cart"))) {
      out[j] = kBlockDescriptive;
    } else if (n.rfind("events:", 0) == 0) {
      const std::string t = n.substr(7);
      if ((is_cart(t) && has("ratio:cart/view")) || (is_purchase(t) && purchase_ratio))
        out[j] = kBlockDescriptive;
    }
  }
  return out;
}

std::vector<double> item_price_positions(const std::vector<double>& price,
                                         const std::vector<std::int32_t>& category) {
  SEGREC_ASSERT(price.size() == category.size(), "prices ", price.size(), " != categories ",
                category.size());
  std::vector<double> out(price.size(), kNaN);
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < price.size(); ++i)
    if (category[i] >= 0 && std::isfinite(price[i])) order.push_back(i);
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::pair(category[a], price[a]) < std::pair(category[b], price[b]);
  });
  for (std::size_t c0 = 0; c0 < order.size();) {  // one category: [c0, c1)
    std::size_t c1 = c0;
    while (c1 < order.size() && category[order[c1]] == category[order[c0]]) ++c1;
    const double n = static_cast<double>(c1 - c0);
    for (std::size_t r0 = c0; r0 < c1;) {  // one price: [r0, r1)
      std::size_t r1 = r0;
      while (r1 < c1 && price[order[r1]] == price[order[r0]]) ++r1;
      const double below = static_cast<double>(r0 - c0), equal = static_cast<double>(r1 - r0);
      for (std::size_t r = r0; r < r1; ++r) out[order[r]] = (below + 0.5 * equal) / n;
      r0 = r1;
    }
    c0 = c1;
  }
  return out;
}

std::vector<std::int32_t> read_item_categories(const std::string& path,
                                               const std::vector<std::string>& item_ids,
                                               std::vector<std::string>& categories,
                                               const Comm& comm) {
  std::string text, err;
  if (comm.is_root()) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      err = "cannot read --item-categories file '" + path + "'";
    } else {
      std::ostringstream os;
      os << in.rdbuf();
      text = os.str();
    }
  }
  comm.check_all(err, kExitData);
  comm.broadcast(text);

  auto fail = [&](const std::string& msg) { throw DataError("'" + path + "': " + msg, true); };
  std::vector<std::string_view> fields;
  std::string scratch, delim;
  int col_item = -1, col_cat = -1;
  std::map<std::string, std::string> cat_of;  // item id -> category
  std::size_t pos = 0;
  for (std::int64_t line_no = 1; pos < text.size(); ++line_no) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string_view line =
        parse::strip_line(std::string_view(text).substr(pos, end - pos), line_no == 1);
    pos = end + 1;
    if (line.empty()) continue;
    if (delim.empty()) delim = parse::detect_delimiter(line);
    if (!parse::split(line, delim, fields, scratch))
      fail("line " + std::to_string(line_no) + ": unbalanced quotes");
    if (col_item < 0) {  // header
      for (std::size_t i = 0; i < fields.size(); ++i) {
        const std::string h = parse::lower(fields[i]);
        if (col_item < 0 && (h == "item_id" || h == "item" || h == "itemid"))
          col_item = static_cast<int>(i);
        else if (col_cat < 0 && (h == "category" || h == "category_id" || h == "cat"))
          col_cat = static_cast<int>(i);
      }
      if (col_item < 0 || col_cat < 0)
        fail("the header needs columns item_id and category, got '" + std::string(line) + "'");
      continue;
    }
    if (static_cast<int>(fields.size()) <= std::max(col_item, col_cat))
      fail("line " + std::to_string(line_no) + ": too few fields");
    std::string item(fields[col_item]), cat(fields[col_cat]);
    if (cat.empty()) continue;
    const auto [it, fresh] = cat_of.emplace(item, cat);
    if (!fresh && it->second != cat)
      fail("line " + std::to_string(line_no) + ": item '" + item + "' is in two categories ('" +
           it->second + "' and '" + cat + "')");
  }
  if (col_item < 0) fail("no header line (expected item_id,category)");

  std::vector<std::int32_t> out(item_ids.size(), -1);
  std::map<std::string, std::int32_t> cat_index;
  for (std::size_t i = 0; i < item_ids.size(); ++i) {
    const auto it = cat_of.find(item_ids[i]);
    if (it != cat_of.end()) cat_index.emplace(it->second, 0);
  }
  categories.clear();
  for (auto& [name, idx] : cat_index) {
    idx = static_cast<std::int32_t>(categories.size());
    categories.push_back(name);
  }
  for (std::size_t i = 0; i < item_ids.size(); ++i) {
    const auto it = cat_of.find(item_ids[i]);
    if (it != cat_of.end()) out[i] = cat_index.at(it->second);
  }
  return out;
}

ProfileModel fit_profile_model(const Dataset& ds, const ProfileParams& p,
                               std::vector<std::string> categories,
                               std::vector<std::int32_t> item_category, const Comm& comm) {
  RawRows raw;
  return fit(ds, p, std::move(categories), std::move(item_category), comm, raw);
}

ProfileBlock profile_block(const Dataset& ds, const ProfileModel& m) {
  return finish(ds, m, compute_raw(ds, m));
}

// ---- profiles.h5 ---------------------------------------------------------------------------

void write_profiles(const std::string& path, const ProfileModel& m, const ProfileBlock& b,
                    const std::string& dataset_path, const Comm& comm) {
  const std::int64_t d = m.n_dense();
  h5::File f = h5::File::create(path, comm, kProfilesFormat);
  for (const char* g : {"/users", "/items", "/sparse", "/dense", "/event_types"}) f.create_group(g);
  f.set_attr("/", "n_users", b.n_users);
  f.set_attr("/", "n_items", m.n_items());
  f.set_attr("/", "dense_weight", m.dense_weight);
  f.set_attr("/", "half_life_days", m.half_life_days);
  f.set_attr("/", "reference_time", m.reference_time);
  f.set_attr("/", "dataset", dataset_path);
  f.write_strings("/users/ids", b.user_ids, true);
  f.write_strings("/items/ids", m.item_ids, false);
  f.write_replicated<double>("/items/idf", m.idf);

  // Global CSR pointer: local rows shifted by the entries of earlier ranks; the
  // last rank adds the final end.
  const std::int64_t base = comm.exscan_sum(b.indptr.back());
  std::vector<std::int64_t> ptr(b.indptr.begin(), b.indptr.end() - 1);
  for (auto& x : ptr) x += base;
  if (comm.rank() == comm.size() - 1) ptr.push_back(b.indptr.back() + base);
  f.write_rows<std::int64_t>("/sparse/indptr", ptr);
  f.write_rows<std::int32_t>("/sparse/indices", b.indices);
  f.write_rows<float>("/sparse/values", b.values);

  f.write_strings("/dense/names", m.dense_names, false);
  f.write_rows<float>("/dense/raw", b.dense_raw, d);
  f.write_rows<float>("/dense/values", b.dense_values, d);
  f.write_replicated<double>("/dense/mean", m.dense_mean);
  f.write_replicated<double>("/dense/std", m.dense_std);
  f.write_replicated<std::uint8_t>("/dense/log1p", m.dense_log);
  f.write_replicated<std::uint8_t>("/dense/block", m.dense_block);
  f.write_strings("/event_types/names", m.event_types, false);
  f.write_replicated<double>("/event_types/weights", m.event_weights);
  if (!m.categories.empty()) {
    f.create_group("/categories");
    f.write_strings("/categories/names", m.categories, false);
    f.write_replicated<std::int32_t>("/items/category", m.item_category);
  }
  if (!m.item_price_position.empty())
    f.write_replicated<double>("/items/price_position", m.item_price_position);
  if (m.rfm_edges.size() == kRfmColumns * kRfmEdges) {
    f.create_group("/rfm");
    f.write_rows<float>("/rfm/values", b.rfm_values, kRfmColumns);
    f.write_rows<std::uint8_t>("/rfm/scores", b.rfm_scores, kRfmColumns);
    f.write_replicated<double>("/rfm/edges", m.rfm_edges, kRfmEdges);
    std::string names;
    for (const auto& n : rfm_names()) names += (names.empty() ? "" : ",") + n;
    f.set_attr("/rfm", "names", names);
  }
  f.commit();
}

ProfileModel read_profile_model(const h5::File& f) {
  ProfileModel m;
  const auto strings = [&](const std::string& name) {
    return f.read_strings(name, 0, f.shape(name)[0]);
  };
  m.n_users = f.attr_int("/", "n_users");
  m.dense_weight = f.attr_double("/", "dense_weight");
  m.half_life_days = f.attr_double("/", "half_life_days");
  m.reference_time = f.attr_double("/", "reference_time");
  m.item_ids = strings("/items/ids");
  m.idf = f.read_all<double>("/items/idf");
  m.dense_names = strings("/dense/names");
  m.dense_mean = f.read_all<double>("/dense/mean");
  m.dense_std = f.read_all<double>("/dense/std");
  m.dense_log = f.read_all<std::uint8_t>("/dense/log1p");
  // Older files: no block column (derived from the names), no RFM.
  m.dense_block = f.exists("/dense/block") ? f.read_all<std::uint8_t>("/dense/block")
                                           : dense_blocks(m.dense_names);
  m.prices =
      std::find(m.dense_names.begin(), m.dense_names.end(), "monetary") != m.dense_names.end();
  if (f.exists("/rfm")) m.rfm_edges = f.read_all<double>("/rfm/edges");
  m.event_types = strings("/event_types/names");
  m.event_weights = f.read_all<double>("/event_types/weights");
  if (f.exists("/categories")) {
    m.categories = strings("/categories/names");
    m.item_category = f.read_all<std::int32_t>("/items/category");
  }
  if (f.exists("/items/price_position"))
    m.item_price_position = f.read_all<double>("/items/price_position");
  const auto ni = m.item_ids.size(), d = m.dense_names.size();
  const bool ok = f.attr_int("/", "n_items") == m.n_items() && m.idf.size() == ni &&
                  m.dense_mean.size() == d && m.dense_std.size() == d && m.dense_log.size() == d &&
                  m.dense_block.size() == d && known_dense_transforms(m.dense_log) &&
                  (m.rfm_edges.empty() || m.rfm_edges.size() == kRfmColumns * kRfmEdges) &&
                  m.event_weights.size() == m.event_types.size() &&
                  (m.item_category.empty() || m.item_category.size() == ni) &&
                  (m.item_price_position.empty() || m.item_price_position.size() == ni) &&
                  f.shape("/users/ids")[0] == m.n_users &&
                  f.shape("/sparse/indptr")[0] == m.n_users + 1;
  if (!ok) throw DataError("'" + f.path() + "': inconsistent profile shapes", true);
  return m;
}

Profiles read_profiles(const std::string& path, const Comm& comm, bool with_raw) {
  const h5::File f = h5::File::open(path, comm, kProfilesFormat);
  Profiles p;
  p.model = read_profile_model(f);
  ProfileBlock& b = p.rows;
  const std::int64_t d = p.model.n_dense();
  b.n_users = p.model.n_users;
  const Block blk = block_partition(b.n_users, comm.size(), comm.rank());
  b.user_begin = blk.begin;
  b.user_ids = f.read_strings("/users/ids", blk.begin, blk.size());
  const std::int64_t nnz = f.shape("/sparse/indices")[0];
  b.indptr = f.read_rows<std::int64_t>("/sparse/indptr", blk.begin, blk.size() + 1);
  const std::int64_t base = b.indptr.front();
  for (auto& x : b.indptr) x -= base;
  bool ok = base >= 0 && base + b.indptr.back() <= nnz;
  for (std::size_t i = 1; ok && i < b.indptr.size(); ++i) ok = b.indptr[i] >= b.indptr[i - 1];
  comm.check_all(ok ? "" : "'" + path + "': corrupt /sparse/indptr", kExitData);
  b.indices = f.read_rows<std::int32_t>("/sparse/indices", base, b.indptr.back());
  b.values = f.read_rows<float>("/sparse/values", base, b.indptr.back());
  std::string err;
  for (auto i : b.indices)
    if (i < 0 || i >= p.model.n_items()) {
      err = "'" + path + "': item index " + std::to_string(i) + " out of range";
      break;
    }
  comm.check_all(err, kExitData);
  const auto dense_shape = f.shape("/dense/values");
  if (dense_shape.size() != 2 || dense_shape[0] != b.n_users || dense_shape[1] != d)
    throw DataError("'" + path + "': /dense/values is not n_users x d", true);
  b.dense_values = f.read_rows<float>("/dense/values", blk.begin, blk.size());
  if (with_raw) b.dense_raw = f.read_rows<float>("/dense/raw", blk.begin, blk.size());
  if (!p.model.rfm_edges.empty()) {
    b.rfm_values = f.read_rows<float>("/rfm/values", blk.begin, blk.size());
    b.rfm_scores = f.read_rows<std::uint8_t>("/rfm/scores", blk.begin, blk.size());
    if (b.rfm_values.size() != static_cast<std::size_t>(blk.size() * kRfmColumns) ||
        b.rfm_scores.size() != b.rfm_values.size())
      throw DataError("'" + path + "': /rfm is not n_users x 3", true);
  }
  return p;
}

ProfileSummary run_profile(const ProfileParams& p, const Comm& comm) {
  p.validate();
  const Dataset ds = read_dataset(p.data, comm, /*with_log=*/true);
  std::vector<std::string> categories;
  std::vector<std::int32_t> item_category;
  if (!p.item_categories.empty()) {
    item_category = read_item_categories(p.item_categories, ds.item_ids, categories, comm);
  } else if (!ds.categories.empty() && ds.item_category.size() == ds.item_ids.size()) {
    categories = ds.categories;  // the data set's own categories
    item_category = ds.item_category;
  }
  check_profile_memory(ds, std::ssize(categories), comm);
  RawRows raw;
  const ProfileModel m = fit(ds, p, std::move(categories), std::move(item_category), comm, raw);
  const ProfileBlock b = finish(ds, m, raw);
  write_profiles(p.out, m, b, p.data, comm);
  ProfileSummary s;
  s.users = ds.n_users;
  s.items = m.n_items();
  s.nnz = comm.allreduce_value(static_cast<std::int64_t>(b.indices.size()));
  s.dense = m.n_dense();
  s.dense_weight = m.dense_weight;
  return s;
}

}  // namespace segrec
