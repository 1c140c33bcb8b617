// `segrec recommend`: batch and new-user recommendations, cold start, exclusions,
// explanations; one output file written by all ranks in rank order.
#include "segrec/serving/recommend.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>
#include <unordered_map>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/io/companion.hpp"
#include "segrec/io/textio.hpp"
#include "segrec/personalisation/bundle.hpp"
#include "segrec/segmentation/profile.hpp"
#include "segrec/serving/explain.hpp"
#include "segrec/serving/memory.hpp"
#include "segrec/serving/sequence_recommend.hpp"

namespace segrec {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string fmt_score(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", static_cast<double>(v));
  return buf;
}

std::string fmt_ratio(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Item ids of an --exclude file (one per line; blank lines and '#' comments
// skipped), read on rank 0 and broadcast. Returns the per-item flags.
std::vector<std::uint8_t> read_exclusions(const std::string& path, const Model& m,
                                          std::int64_t& known, std::int64_t& unknown,
                                          const Comm& comm) {
  std::vector<std::uint8_t> flags(m.item_ids.size(), 0);
  known = unknown = 0;
  if (path.empty()) return flags;
  std::string text, err;
  if (comm.is_root()) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      err = "cannot open the --exclude file '" + path + "'";
    else
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  comm.check_all(err, kExitData);
  comm.broadcast(text);
  const auto ids = map_items(m, [&] {
    std::vector<std::string> v;
    std::istringstream is(text);
    std::string line;
    while (std::getline(is, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
        line.pop_back();
      const auto b = line.find_first_not_of(" \t");
      if (b == std::string::npos || line[b] == '#') continue;
      v.push_back(line.substr(b));
    }
    return v;
  }());
  for (auto i : ids) {
    if (i < 0) {
      ++unknown;
    } else if (!flags[static_cast<std::size_t>(i)]) {
      flags[static_cast<std::size_t>(i)] = 1;
      ++known;
    }
  }
  return flags;
}

// Copies rows [r0, r1) of `u` into a block of their own.
UserInputs slice(const UserInputs& u, std::int64_t r0, std::int64_t r1, std::int64_t dense_dim) {
  UserInputs b;
  b.indptr.assign(1, 0);
  const std::int64_t q0 = u.indptr[r0], q1 = u.indptr[r1];
  for (std::int64_t r = r0; r < r1; ++r) b.indptr.push_back(u.indptr[r + 1] - q0);
  b.indices.assign(u.indices.begin() + q0, u.indices.begin() + q1);
  b.weights.assign(u.weights.begin() + q0, u.weights.begin() + q1);
  if (dense_dim > 0)
    b.dense.assign(u.dense.begin() + r0 * dense_dim, u.dense.begin() + r1 * dense_dim);
  if (!u.segments.empty()) b.segments.assign(u.segments.begin() + r0, u.segments.begin() + r1);
  b.segment_heads = u.segment_heads;
  return b;
}

std::vector<std::int32_t> order_by_count(const std::int64_t* counts, std::int64_t n) {
  std::vector<std::int32_t> o(static_cast<std::size_t>(n));
  std::iota(o.begin(), o.end(), 0);
  std::stable_sort(o.begin(), o.end(),
                   [counts](std::int32_t a, std::int32_t b) { return counts[a] > counts[b]; });
  return o;
}

bool has_heads(const Model& m) { return m.head_layers > 0 && !m.head_segments.empty(); }

// Segment labels for a model that reads them (embedding or heads). Heads without a
// known segment for every user fall back to the global layers.
void set_segment_inputs(const Model& m, ServingUsers& u) {
  const bool known =
      std::none_of(u.segment.begin(), u.segment.end(), [](std::int32_t g) { return g < 0; });
  if (m.shape.embed_dim > 0 || (has_heads(m) && known)) u.inputs.segments = u.segment;
  if (has_heads(m) && !known) u.inputs.segment_heads = false;
}

// Users of `ds` with the model's inputs. `item_map` sends ds items to model items.
ServingUsers prepare(const Model& m, const Dataset& ds, const std::vector<std::int32_t>& item_map,
                     bool use_bundle) {
  ServingUsers u;
  u.ids = ds.user_ids;
  const std::int64_t rows = ds.n_local(), types = ds.n_types();
  u.known_events.assign(static_cast<std::size_t>(rows), 0);
  std::vector<std::pair<std::int32_t, float>> row;
  for (std::int64_t r = 0; r < rows; ++r) {
    row.clear();
    for (std::int64_t q = ds.indptr[r]; q < ds.indptr[r + 1]; ++q) {
      std::int64_t events = 0;
      for (std::int64_t t = 0; t < types; ++t) events += ds.counts[q * types + t];
      const std::int32_t mi = item_map[static_cast<std::size_t>(ds.indices[q])];
      if (mi < 0) {
        u.unknown_events += events;
        continue;
      }
      u.known_events[r] += events;
      row.emplace_back(mi, ds.weights[q]);
    }
    std::sort(row.begin(), row.end());
    for (const auto& [i, w] : row) {
      u.inputs.indices.push_back(i);
      u.inputs.weights.push_back(w);
    }
    u.inputs.indptr.push_back(static_cast<std::int64_t>(u.inputs.indices.size()));
  }
  u.segment.assign(static_cast<std::size_t>(rows), -1);
  if (use_bundle && m.serving) {
    const ServingParts& b = *m.serving;
    const ProfileBlock prof = profile_block(ds, b.profile);
    std::vector<float> h = project_profiles(b, prof);
    u.segment = nearest_segments(b, h);
    if (m.shape.dense_in > 0) u.inputs.dense = std::move(h);
  }
  set_segment_inputs(m, u);
  return u;
}

void check_model_inputs(const Model& m, const std::string& path, bool have_dense,
                        bool have_segments) {
  const auto& s = m.shape;
  if (m.serving) {
    if (s.dense_in > 0 && s.dense_in != m.serving->dims)
      throw DataError("'" + path + "': the network reads " + std::to_string(s.dense_in) +
                          " projection values but the bundle projects to " +
                          std::to_string(m.serving->dims),
                      true);
    if (s.embed_dim > 0 && s.n_segments < m.serving->k)
      throw DataError("'" + path + "': the network embeds " + std::to_string(s.n_segments) +
                          " segments but the bundle has " + std::to_string(m.serving->k),
                      true);
    return;
  }
  if (s.dense_in > 0 && !have_dense)
    throw UsageError("'" + path +
                     "' reads projections but holds no serving bundle: give --projection, or "
                     "train with --profiles, --projection and --segments");
  if (s.embed_dim > 0 && !have_segments)
    throw UsageError("'" + path +
                     "' reads segments but holds no serving bundle: give --segments, or train "
                     "with --profiles, --projection and --segments");
}

}  // namespace

// ---- parameters -------------------------------------------------------------------------

RecommendParams::Modes RecommendParams::validate() const {
  Modes modes;
  require(!model.empty(), "model", model, "give the model.h5 to recommend with");
  require(!out.empty(), "out", out, "give the recommendations file to write (.csv or .h5)");
  require(top >= 1, "top", top, "must be >= 1");
  require(min_events >= 0, "min-events", min_events, "must be >= 0");
  require(block_users >= 1, "block-users", block_users, "must be >= 1");
  require_not_both(!data.empty(), "data", new_users(), "events");
  require(!data.empty() || new_users(), "data", data,
          "give --data dataset.h5 (users of the run) or --events FILE (new users)");
  if (new_users()) {
    require(projection.empty(), "projection", projection, "only with --data");
    require(segments.empty(), "segments", segments, "only with --data");
    IngestParams ip = events;
    ip.out = out;
    ip.validate();
  }
  require(!(explain && out.size() >= 3 && out.compare(out.size() - 3, 3, ".h5") == 0), "explain",
          "true", "reasons are written to CSV output only");
  require(explain || item_info.empty(), "item-info", item_info,
          "only with --explain (names in the reasons)");
  modes.items_format = parse_items_format(item_info_format);
  return modes;
}

// ---- building blocks ----------------------------------------------------------------------

std::vector<std::int32_t> map_ids(const std::vector<std::string>& from,
                                  const std::vector<std::string>& to) {
  std::unordered_map<std::string, std::int32_t> index;
  index.reserve(to.size());
  for (std::size_t i = 0; i < to.size(); ++i) index.emplace(to[i], static_cast<std::int32_t>(i));
  std::vector<std::int32_t> out(from.size(), -1);
  for (std::size_t i = 0; i < from.size(); ++i) {
    const auto it = index.find(from[i]);
    if (it != index.end()) out[i] = it->second;
  }
  return out;
}

std::vector<std::int32_t> map_items(const Model& m, const std::vector<std::string>& ids) {
  return map_ids(ids, m.item_ids);
}

ServingUsers prepare_new_users(const Model& m, const Dataset& ds,
                               const std::vector<std::int32_t>& item_map) {
  check_model_inputs(m, "model", false, false);
  return prepare(m, ds, item_map, true);
}

ServingUsers prepare_data_users(const Model& m, const std::string& model_path,
                                const std::string& data, const std::string& projection,
                                const std::string& segments, const Comm& comm, std::int64_t& k) {
  check_model_inputs(m, model_path, !projection.empty(), !segments.empty());
  const bool need_bundle =
      m.serving && (segments.empty() || (m.shape.dense_in > 0 && projection.empty()));
  const Dataset ds = read_dataset(data, comm, /*with_log=*/need_bundle);
  check_items(m, ds.item_ids, "'" + data + "'");
  std::vector<std::int32_t> identity(ds.item_ids.size());
  std::iota(identity.begin(), identity.end(), 0);
  ServingUsers u = prepare(m, ds, identity, need_bundle);
  if (ds.has_names()) u.item_names = {ds.item_ids, ds.item_names, {}, {}, {}};
  u.first = ds.user_begin;
  u.n_users = ds.n_users;
  const Block b{ds.user_begin, ds.user_begin + ds.n_local()};
  // Companion files: the data set's users, in its order.
  UserRowsSpec spec;
  spec.users = ds.n_users;
  spec.source = data;
  spec.ids = &ds.user_ids;
  if (!projection.empty() && m.shape.dense_in > 0) {
    const h5::File f = h5::File::open(projection, comm, kProjectionFormat);
    spec.path = projection;
    spec.name = "/H";
    spec.cols = m.shape.dense_in;  // users x the model's dims
    u.inputs.dense = read_user_rows<float>(f, spec, b, comm);
  }
  if (!segments.empty()) {
    const h5::File f = h5::File::open(segments, comm, kSegmentsFormat);
    spec.path = segments;
    spec.name = "/labels";
    spec.cols = 0;
    // -1 (no segment, DBSCAN noise): those users get the global layers and popularity.
    u.segment = read_user_labels(f, spec, b, comm, k, /*allow_unsegmented=*/true);
    u.inputs.segment_heads = true;
    set_segment_inputs(m, u);
  }
  return u;
}

const char* to_string(Source s) {
  switch (s) {
    case Source::kModel:
      return "model";
    case Source::kSegmentPopular:
      return "popular-in-segment";
    case Source::kPopular:
      return "popular";
  }
  return "?";
}

Popularity Popularity::from(const Model& m) {
  Popularity p;
  if (!m.serving) return p;
  const ServingParts& b = *m.serving;
  const std::int64_t n = b.n_items();
  std::vector<std::int64_t> total(static_cast<std::size_t>(n), 0);
  for (std::int64_t g = 0; g < b.k; ++g)
    for (std::int64_t i = 0; i < n; ++i) total[i] += b.item_users[g * n + i];
  p.global = order_by_count(total.data(), n);
  p.rank.assign(static_cast<std::size_t>(n), 0);
  for (std::int64_t j = 0; j < n; ++j) p.rank[p.global[j]] = j + 1;
  for (std::int64_t g = 0; g < b.k; ++g)
    p.segment.push_back(order_by_count(b.item_users.data() + g * n, n));
  return p;
}

RecLists recommend_rows(const Model& m, const ServingUsers& u, std::int64_t r0, std::int64_t r1,
                        std::int64_t n, Source how, std::int64_t min_events,
                        const std::vector<std::uint8_t>& excluded, const Popularity& pop) {
  RecLists out;
  out.n = n;
  const std::int64_t rows = r1 - r0;
  out.items.assign(static_cast<std::size_t>(rows * n), -1);
  out.scores.assign(static_cast<std::size_t>(rows * n), std::numeric_limits<float>::quiet_NaN());
  out.source.assign(static_cast<std::size_t>(rows), how);
  const std::int64_t n_items = std::ssize(m.item_ids);
  const auto in_history = [&](std::int64_t r, std::int32_t i) {
    const auto b = u.inputs.indices.begin() + u.inputs.indptr[r];
    const auto e = u.inputs.indices.begin() + u.inputs.indptr[r + 1];
    return std::binary_search(b, e, i);
  };
  const auto fill_popular = [&](std::int64_t r, Source src) {
    const ServingParts& b = *m.serving;
    const std::int32_t g = u.segment[r];
    const bool seg = src == Source::kSegmentPopular && g >= 0;
    const std::vector<std::int32_t>& order = seg ? pop.segment[g] : pop.global;
    const double users = seg ? static_cast<double>(b.sizes[g]) : static_cast<double>(b.n_users());
    std::int64_t j = 0;
    const std::size_t base = static_cast<std::size_t>((r - r0) * n);
    for (std::int32_t i : order) {
      if (j == n) break;
      if (excluded[i] || in_history(r, i)) continue;
      const double c = seg ? static_cast<double>(b.item_users[g * n_items + i])
                           : static_cast<double>(b.item_total(i));
      out.items[base + j] = i;
      out.scores[base + j] = static_cast<float>(users > 0 ? c / users : 0.0);
      ++j;
    }
    out.source[r - r0] = seg ? Source::kSegmentPopular : Source::kPopular;
  };
  if (how != Source::kModel) {
    SEGREC_ASSERT(!pop.empty(), "popularity needs the serving bundle");
    for (std::int64_t r = r0; r < r1; ++r) fill_popular(r, how);
    return out;
  }
  const std::int64_t n_excluded = std::count(excluded.begin(), excluded.end(), std::uint8_t{1});
  const std::int64_t nn =
      std::min<std::int64_t>(std::max<std::int64_t>(n_items, 1), n + n_excluded);
  const UserInputs block = slice(u.inputs, r0, r1, m.shape.dense_in);
  const TopN top = score_users(m, block, nn);
  for (std::int64_t r = r0; r < r1; ++r) {
    const bool cold = min_events > 0 && u.known_events[r] < min_events && !pop.empty();
    if (cold) {
      fill_popular(r, Source::kSegmentPopular);
      continue;
    }
    std::int64_t j = 0;
    const std::size_t base = static_cast<std::size_t>((r - r0) * n);
    for (std::int64_t c = 0; c < nn && j < n; ++c) {
      const std::int32_t i = top.items[static_cast<std::size_t>((r - r0) * nn + c)];
      if (i < 0) break;
      if (excluded[i]) continue;
      out.items[base + j] = i;
      out.scores[base + j] = top.scores[static_cast<std::size_t>((r - r0) * nn + c)];
      ++j;
    }
  }
  return out;
}

std::string segment_context(const Model& m, std::int32_t item, std::int32_t segment) {
  if (!m.serving) return "";
  const ServingParts& b = *m.serving;
  const std::int64_t n = b.n_items();
  const double all = static_cast<double>(b.n_users());
  const double total = static_cast<double>(b.item_total(item));
  if (segment >= 0 && b.sizes[segment] > 0 && total > 0) {
    const double share = static_cast<double>(b.item_users[segment * n + item]) /
                         static_cast<double>(b.sizes[segment]);
    const double lift = share / (total / all);
    std::string g = "segment " + std::to_string(segment);
    if (!b.descriptions.empty() && !b.descriptions[segment].empty())
      g += " (" + b.descriptions[segment].substr(0, b.descriptions[segment].find(';')) + ")";
    if (lift >= 1.05) return g + " likes it " + fmt_ratio(lift) + "x more than average";
    return g + " holds it " + fmt_ratio(lift) + "x as often as average";
  }
  if (total > 0) return "held by " + fmt_ratio(100.0 * total / all) + "% of users";
  return "new to the training users";
}

// ---- the stage ------------------------------------------------------------------------------

RecommendSummary run_recommend(const RecommendParams& p, const Comm& comm) {
  const RecommendParams::Modes modes = p.validate();
  if (is_sequence_model(p.model, comm)) return recommend_sequence(p, comm);
  const Model m = read_model(p.model, comm);
  RecommendSummary sum;
  sum.bundle = m.serving.has_value();
  const bool h5_out = ends_with(p.out, ".h5");

  ServingUsers u;
  std::int64_t k = m.serving ? m.serving->k : 0;
  if (p.new_users()) {
    check_model_inputs(m, p.model, false, false);
    IngestParams ip = p.events;
    ip.out = p.out;
    const Dataset ds = ingest(ip, comm);
    const auto item_map = map_items(m, ds.item_ids);
    sum.unknown_items = std::count(item_map.begin(), item_map.end(), -1);
    u = prepare(m, ds, item_map, true);
    if (ds.has_names()) u.item_names = {ds.item_ids, ds.item_names, {}, {}, {}};
  } else {
    u = prepare_data_users(m, p.model, p.data, p.projection, p.segments, comm, k);
  }
  const std::vector<std::uint8_t> excluded =
      read_exclusions(p.exclude, m, sum.excluded_items, sum.exclude_unknown, comm);
  const Popularity pop = Popularity::from(m);
  std::vector<std::string> names;  // display names in the reasons
  if (p.explain) {
    if (p.item_info.empty()) {  // the log's own names, else the ids
      names = item_display_names(m, u.item_names.ids.empty() ? nullptr : &u.item_names);
    } else {
      const ItemAttributes attrs = read_items(p.item_info, modes.items_format, comm);
      names = item_display_names(m, &attrs);
    }
  }
  const Explainer explainer(m);

  check_score_memory("recommend", m, u.n_local(), p.block_users, h5_out ? 9.0L * p.top : 0, comm);
  // Blocks: every rank takes part in as many collective appends as the busiest rank.
  const std::int64_t rows = u.n_local();
  const std::int64_t blocks =
      comm.allreduce_value((rows + p.block_users - 1) / p.block_users, Op::kMax);
  std::int64_t written = 0, cold = 0;
  std::vector<std::int64_t> seg_users(static_cast<std::size_t>(k), 0);
  for (auto g : u.segment)
    if (g >= 0 && g < k) ++seg_users[static_cast<std::size_t>(g)];

  std::vector<std::int32_t> all_items;
  std::vector<float> all_scores;
  std::vector<std::uint8_t> all_source;
  // CSV: each rank spools its text to a local temporary file (memory stays at one
  // block), then all ranks copy their spools into the output in rank order.
  std::unique_ptr<OrderedWriter> csv;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> spool(nullptr, &std::fclose);
  std::int64_t spooled = 0;
  if (!h5_out) {
    spool.reset(std::tmpfile());
    comm.check_all(spool ? "" : "cannot create a temporary spool file for '" + p.out + "'",
                   kExitIo);
    csv = std::make_unique<OrderedWriter>(p.out, comm);
    if (comm.is_root())
      csv->append(std::string("user_id,rank,item_id,score,segment,source") +
                  (p.explain ? ",reason\n" : "\n"));
    else
      csv->append("");
  }
  std::string text;
  progress::Task task("recommend", "users scored", static_cast<double>(blocks), "block");
  for (std::int64_t blk = 0; blk < blocks; ++blk) {
    const std::int64_t r0 = std::min(rows, blk * p.block_users);
    const std::int64_t r1 = std::min(rows, r0 + p.block_users);
    text.clear();
    if (r1 > r0) {
      const RecLists L =
          recommend_rows(m, u, r0, r1, p.top, Source::kModel, p.min_events, excluded, pop);
      std::vector<std::vector<ItemExplanation>> why;  // per row of the block (model lists)
      if (p.explain) {
        std::vector<std::uint8_t> skip(L.source.size());
        for (std::size_t q = 0; q < skip.size(); ++q) skip[q] = L.source[q] != Source::kModel;
        why = explainer.explain_rows(u.inputs, r0, r1, L.items, p.top, skip, excluded);
      }
      for (std::int64_t r = r0; r < r1; ++r) {
        if (L.source[r - r0] != Source::kModel) ++cold;
        const std::string seg = std::to_string(u.segment[r]);
        for (std::int64_t j = 0; j < p.top; ++j) {
          const std::size_t at = static_cast<std::size_t>((r - r0) * p.top + j);
          const std::int32_t i = L.items[at];
          if (h5_out) {
            all_items.push_back(i);
            all_scores.push_back(L.scores[at]);
          }
          if (i < 0) continue;
          ++written;
          if (h5_out) continue;
          append_csv_field(text, u.ids[r]);
          text += ',' + std::to_string(j + 1) + ',';
          append_csv_field(text, m.item_ids[i]);
          text += ',' + fmt_score(L.scores[at]) + ',' + seg + ',' + to_string(L.source[r - r0]);
          if (p.explain) {
            const auto& e = why[r - r0];
            std::string reason =
                e.empty() ? std::string(to_string(L.source[r - r0])) : describe(e[j], names);
            const std::string context = segment_context(m, i, u.segment[r]);
            if (!context.empty()) reason += "; " + context;
            text += ',';
            append_csv_field(text, reason);
          }
          text += '\n';
        }
        if (h5_out) all_source.push_back(static_cast<std::uint8_t>(L.source[r - r0]));
      }
    }
    if (spool && !text.empty()) {
      if (std::fwrite(text.data(), 1, text.size(), spool.get()) != text.size())
        throw IoError("cannot write the spool file of '" + p.out + "'");
      spooled += static_cast<std::int64_t>(text.size());
    }
    task.update(static_cast<double>(blk + 1));
  }
  if (csv) {
    if (spool && std::fflush(spool.get()) != 0)
      throw IoError("cannot write the spool file of '" + p.out + "'");
    csv->append_file(spool.get(), spooled);
    csv->commit();
  }
  if (h5_out) {
    h5::File f = h5::File::create(p.out, comm, kRecommendationsFormat);
    for (const char* g : {"/users", "/items", "/recs"}) f.create_group(g);
    f.set_attr("/", "model", p.model);
    f.set_attr("/", "top", p.top);
    f.write_strings("/users/ids", u.ids, true);
    f.write_rows<std::int32_t>("/users/segment", u.segment);
    f.write_rows<std::uint8_t>("/users/source", all_source);
    f.write_strings("/items/ids", m.item_ids, false);
    f.write_rows<std::int32_t>("/recs/items", all_items, p.top);
    f.write_rows<float>("/recs/scores", all_scores, p.top);
    f.commit();
  }
  std::int64_t figures[4] = {rows, written, cold, u.unknown_events};
  comm.allreduce(std::span<std::int64_t>(figures, 4));
  sum.users = figures[0];
  sum.rows = figures[1];
  sum.cold_users = figures[2];
  sum.unknown_events = figures[3];
  comm.allreduce(seg_users);
  sum.segment_users = std::move(seg_users);
  return sum;
}

}  // namespace segrec
