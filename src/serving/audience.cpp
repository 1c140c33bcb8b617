// `segrec audience`: the users the model scores highest for given items, chosen
// per rank and merged; the CSV and its segment summary.
#include "segrec/serving/audience.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "segrec/core/error.hpp"
#include "segrec/core/json.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/core/tempfile.hpp"
#include "segrec/ingest/pseudonym.hpp"
#include "segrec/io/textio.hpp"
#include "segrec/personalisation/input_rows.hpp"
#include "segrec/personalisation/mlp.hpp"

namespace segrec {
namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream is(s);
  while (std::getline(is, part, ',')) out.push_back(trim(part));
  if (!s.empty() && s.back() == ',') out.emplace_back();
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// A requested item and where it was named (for messages).
struct Requested {
  std::string id, where;
};

// --items, or --items-file read on rank 0 and broadcast; duplicates dropped.
std::vector<Requested> requested_items(const AudienceParams& p, const Comm& comm) {
  std::vector<Requested> out;
  if (!p.items.empty()) {
    for (const auto& id : split_commas(p.items)) out.push_back({id, "--items"});
  } else {
    std::string text, err;
    if (comm.is_root()) {
      std::ifstream in(p.items_file, std::ios::binary);
      if (!in)
        err = "cannot open the --items-file '" + p.items_file + "'";
      else
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    comm.check_all(err, kExitData);
    comm.broadcast(text);
    std::istringstream is(text);
    std::string line;
    for (std::int64_t no = 1; std::getline(is, line); ++no) {
      line = trim(line);
      if (line.empty() || line[0] == '#') continue;
      out.push_back({line, "line " + std::to_string(no) + " of '" + p.items_file + "'"});
    }
    if (out.empty()) throw DataError("the --items-file '" + p.items_file + "' names no item", true);
  }
  std::unordered_set<std::string> seen;
  std::erase_if(out, [&](const Requested& r) { return !seen.insert(r.id).second; });
  return out;
}

// The network cut to the output columns `items`: the same layers, the output
// layer's weights W_L[:, items] and bias b_L[items]. One parameter vector per
// head group (0: the global layers, h + 1: head h).
struct ColumnNet {
  mlp::Shape shape;
  std::vector<std::vector<float>> params;
  std::unordered_map<std::int32_t, std::size_t> group_of;  // segment -> head group
};

std::vector<float> cut_columns(const mlp::Shape& full_shape, const mlp::Shape& cut,
                               const std::vector<float>& full,
                               std::span<const std::int32_t> items) {
  const mlp::Layout a(full_shape), b(cut);
  std::vector<float> out(static_cast<std::size_t>(b.size));
  const int L = full_shape.n_layers();
  for (int l = 0; l + 1 < L; ++l) {
    const std::int64_t nw = full_shape.fan_in(l) * full_shape.fan_out(l);
    std::copy_n(full.begin() + a.w[l], nw, out.begin() + b.w[l]);
    std::copy_n(full.begin() + a.b[l], full_shape.fan_out(l), out.begin() + b.b[l]);
  }
  const std::int64_t rows = full_shape.fan_in(L - 1), n_out = full_shape.n_out;
  const std::int64_t k = std::ssize(items);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t j = 0; j < k; ++j)
      out[b.w[L - 1] + r * k + j] = full[a.w[L - 1] + r * n_out + items[j]];
  for (std::int64_t j = 0; j < k; ++j) out[b.b[L - 1] + j] = full[a.b[L - 1] + items[j]];
  std::copy(full.begin() + a.emb, full.begin() + a.size, out.begin() + b.emb);
  return out;
}

ColumnNet column_net(const Model& m, std::span<const std::int32_t> items, bool heads) {
  ColumnNet c;
  c.shape = m.shape;
  c.shape.n_out = std::ssize(items);
  c.params.push_back(cut_columns(m.shape, c.shape, m.params, items));
  if (!heads) return c;
  const std::int64_t hs = m.head_size();
  const std::int64_t begin = mlp::Layout(m.shape).w[m.shape.n_layers() - m.head_layers];
  std::vector<float> full = m.params;
  for (std::size_t h = 0; h < m.head_segments.size(); ++h) {
    std::copy_n(m.heads.begin() + static_cast<std::int64_t>(h) * hs, hs, full.begin() + begin);
    c.params.push_back(cut_columns(m.shape, c.shape, full, items));
    c.group_of.emplace(m.head_segments[h], h + 1);
  }
  return c;
}

// Keeps the best n of what it is offered: a heap whose front is the worst kept.
struct Best {
  std::vector<AudienceMember> heap;
  void offer(const AudienceMember& x, std::int64_t n) {
    if (std::ssize(heap) < n) {
      heap.push_back(x);
      std::push_heap(heap.begin(), heap.end(), audience_before);
    } else if (audience_before(x, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), audience_before);
      heap.back() = x;
      std::push_heap(heap.begin(), heap.end(), audience_before);
    }
  }
  std::vector<AudienceMember> sorted() && {
    std::sort_heap(heap.begin(), heap.end(), audience_before);
    return std::move(heap);
  }
};

}  // namespace

// ---- parameters -------------------------------------------------------------------------

void AudienceParams::validate() const {
  require(!model.empty(), "model", model, "give the model.h5 to score with");
  require(!data.empty(), "data", data, "give the dataset.h5 whose users to choose from");
  require(!out.empty(), "out", out, "give the audience CSV to write");
  require(!items.empty() || !items_file.empty(), "items", items,
          "give --items ID[,ID...] or --items-file FILE");
  require_not_both(!items.empty(), "items", !items_file.empty(), "items-file");
  for (const auto& id : split_commas(items))
    require(!id.empty(), "items", items, "holds an empty item id");
  require(top >= 1, "top", top, "must be >= 1");
  require(min_events >= 0, "min-events", min_events, "must be >= 0");
  require(min_report_users >= 1, "min-report-users", min_report_users, "must be >= 1");
  require(block_users >= 1, "block-users", block_users, "must be >= 1");
  if (!segment.empty()) {
    require(!segments.empty(), "segment", segment, "needs --segments segments.h5");
    (void)segment_list();
  }
}

std::vector<std::int32_t> AudienceParams::segment_list() const {
  std::vector<std::int32_t> out;
  if (segment.empty()) return out;
  for (const auto& s : split_commas(segment)) {
    std::size_t used = 0;
    long v = -1;
    try {
      v = std::stol(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used == s.size() && !s.empty() && v >= 0 && v <= INT32_MAX, "segment", segment,
            "must be segment numbers >= 0, comma-separated");
    out.push_back(static_cast<std::int32_t>(v));
  }
  return out;
}

std::string AudienceParams::summary_path() const {
  const bool csv = out.size() >= 4 && out.compare(out.size() - 4, 4, ".csv") == 0;
  return (csv ? out.substr(0, out.size() - 4) : out) + "_summary.json";
}

// ---- scoring and merging ----------------------------------------------------------------

std::vector<std::vector<AudienceMember>> local_audiences(const Model& m, const ServingUsers& u,
                                                         std::span<const std::int32_t> items,
                                                         std::int64_t n, const AudienceFilter& f,
                                                         std::int64_t block_users,
                                                         std::vector<std::int64_t>& eligible) {
  const std::int64_t k = std::ssize(items), rows = u.n_local();
  const auto& s = m.shape;
  const bool heads = u.inputs.segment_heads && m.head_layers > 0 && !m.head_segments.empty();
  const ColumnNet cn = column_net(m, items, heads);
  std::vector<Best> best(static_cast<std::size_t>(k));
  eligible.assign(static_cast<std::size_t>(k), 0);

  // Each row's parameter group (0: the global layers, h + 1: head h); -1: filtered out.
  std::vector<std::int32_t> group(static_cast<std::size_t>(rows), 0);
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int32_t g = u.segment[static_cast<std::size_t>(r)];
    const bool kept = u.known_events[r] >= f.min_events &&
                      (f.segments.empty() ||
                       std::find(f.segments.begin(), f.segments.end(), g) != f.segments.end());
    const auto it = heads ? cn.group_of.find(u.inputs.segments[static_cast<std::size_t>(r)])
                          : cn.group_of.end();
    group[r] = !kept ? -1 : it == cn.group_of.end() ? 0 : static_cast<std::int32_t>(it->second);
  }
  // Slot of each model item among `items` (-1: not requested), for the owned check.
  std::vector<std::int32_t> slot(static_cast<std::size_t>(s.n_out), -1);
  for (std::int64_t c = 0; c < k; ++c) slot[items[c]] = static_cast<std::int32_t>(c);
  std::vector<std::uint8_t> owned(static_cast<std::size_t>(k), 0);

  RowSpec spec;
  spec.history = s.sparse_in > 0;
  spec.log_weight = m.history_weight == "log";
  spec.dense_dim = s.dense_in;
  spec.segments = s.embed_dim > 0;
  const std::vector<float> no_dense(static_cast<std::size_t>(s.dense_in), 0.0f);
  mlp::Network<float> net(cn.shape);
  mlp::Batch<float> bt;
  std::vector<std::pair<std::int32_t, float>> hist;
  std::size_t loaded = cn.params.size();
  // Blocks of block_users users aligned to the global user index, padded with empty
  // rows: a user always sits at the same row of a batch of the same size, so its scores
  // are the same bits at any rank count. A block holding users of several head groups
  // is scored once per group.
  const std::int64_t B = block_users;
  for (std::int64_t g0 = u.first / B * B; g0 < u.first + rows; g0 += B) {
    const std::int64_t r0 = std::max<std::int64_t>(0, g0 - u.first);
    const std::int64_t r1 = std::min(rows, g0 + B - u.first);
    // The last block of the data set is as long as its users (the same at any rank count).
    const std::int64_t size = u.n_users > g0 ? std::min(B, u.n_users - g0) : B;
    for (std::size_t grp = 0; grp < cn.params.size(); ++grp) {
      const auto in_group = [&](std::int64_t r) {
        return group[r] == static_cast<std::int32_t>(grp);
      };
      if (std::find(group.begin() + r0, group.begin() + r1, static_cast<std::int32_t>(grp)) ==
          group.begin() + r1)
        continue;
      if (loaded != grp) net.params() = cn.params[loaded = grp];
      bt.clear();
      for (std::int64_t at = 0; at < size; ++at) {
        const std::int64_t r = g0 + at - u.first;
        const bool real = r >= r0 && r < r1 && in_group(r);
        hist.clear();
        if (real)
          for (std::int64_t q = u.inputs.indptr[r]; q < u.inputs.indptr[r + 1]; ++q)
            hist.emplace_back(u.inputs.indices[q],
                              history_value(u.inputs.weights[q], spec.log_weight));
        close_targets(bt);
        add_input_row(bt, spec, hist, 0.0, 0,
                      !spec.dense_dim ? nullptr
                      : real          ? u.inputs.dense.data() + r * s.dense_in
                                      : no_dense.data(),
                      real && spec.segments ? u.inputs.segments[static_cast<std::size_t>(r)] : 0,
                      0);
      }
      net.forward(bt, 0.0f);
      auto Z = net.logits();  // size x k
      for (std::int64_t r = r0; r < r1; ++r) {
        if (!in_group(r)) continue;
        const auto q0 = u.inputs.indptr[r], q1 = u.inputs.indptr[r + 1];
        if (f.exclude_owned)
          for (auto q = q0; q < q1; ++q)
            if (slot[u.inputs.indices[q]] >= 0) owned[slot[u.inputs.indices[q]]] = 1;
        for (std::int64_t c = 0; c < k; ++c) {
          if (owned[c]) continue;
          ++eligible[c];
          best[c].offer(
              {Z(u.first + r - g0, c), u.segment[static_cast<std::size_t>(r)], u.first + r}, n);
        }
        if (f.exclude_owned)
          for (auto q = q0; q < q1; ++q)
            if (slot[u.inputs.indices[q]] >= 0) owned[slot[u.inputs.indices[q]]] = 0;
      }
    }
  }
  std::vector<std::vector<AudienceMember>> out;
  for (auto& b : best) out.push_back(std::move(b).sorted());
  return out;
}

std::vector<std::vector<AudienceMember>> merge_audiences(
    const std::vector<std::vector<AudienceMember>>& local, std::int64_t n, const Comm& comm) {
  struct Candidate {
    AudienceMember m;
    std::int64_t item;
  };
  std::vector<Candidate> mine;
  for (std::size_t c = 0; c < local.size(); ++c)
    for (const auto& x : local[c]) mine.push_back({x, static_cast<std::int64_t>(c)});
  const std::vector<Candidate> all = comm.allgatherv(mine);
  std::vector<std::vector<AudienceMember>> out(local.size());
  for (const auto& c : all) out[static_cast<std::size_t>(c.item)].push_back(c.m);
  for (auto& v : out) {
    const auto keep = std::min<std::int64_t>(n, std::ssize(v));
    std::partial_sort(v.begin(), v.begin() + keep, v.end(), audience_before);
    v.resize(static_cast<std::size_t>(keep));
  }
  return out;
}

// ---- the summary ----------------------------------------------------------------------------

namespace {

std::string segment_name(std::int32_t g) { return g < 0 ? "none" : std::to_string(g); }

ItemAudience summarise(const std::string& item, std::int64_t eligible,
                       const std::vector<AudienceMember>& members,
                       const std::vector<std::int64_t>& segment_users, std::int64_t users,
                       std::int64_t floor) {
  ItemAudience a;
  a.item = item;
  a.eligible = eligible;
  a.size = std::ssize(members);
  std::vector<std::int64_t> count(segment_users.size(), 0);
  for (const auto& x : members) ++count[static_cast<std::size_t>(x.segment + 1)];
  for (std::size_t g = 0; g < count.size(); ++g) {
    if (count[g] == 0) continue;
    if (count[g] < floor) {
      ++a.pooled_segments;
      a.pooled_users += count[g];
      continue;
    }
    AudienceSegmentRow row;
    row.segment = static_cast<std::int32_t>(g) - 1;
    row.users = count[g];
    row.share = static_cast<double>(count[g]) / static_cast<double>(a.size);
    row.population_share =
        users > 0 ? static_cast<double>(segment_users[g]) / static_cast<double>(users) : 0.0;
    a.segments.push_back(row);
  }
  return a;
}

}  // namespace

std::string AudienceSummary::table() const {
  std::ostringstream os;
  for (const auto& a : items) {
    os << "item " << a.item << ": " << a.size << " users chosen of " << a.eligible << " eligible\n";
    os << "  segment    users  share  share of all users   lift\n";
    for (const auto& r : a.segments) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "  %-8s %7lld %5.1f%% %18.1f%% %6.2f\n",
                    segment_name(r.segment).c_str(), static_cast<long long>(r.users), 100 * r.share,
                    100 * r.population_share,
                    r.population_share > 0 ? r.share / r.population_share : 0.0);
      os << buf;
    }
    if (a.pooled_segments > 0)
      os << "  " << a.pooled_segments << " segment(s) with fewer than " << min_report_users
         << " users of this audience"
         << (a.pooled_users >= min_report_users ? ": " + std::to_string(a.pooled_users) + " users"
                                                : std::string(" (count withheld)"))
         << "\n";
  }
  return os.str();
}

std::string AudienceSummary::json() const {
  std::ostringstream os;
  os << "{\n  \"users\": " << users << ",\n  \"min_report_users\": " << min_report_users
     << ",\n  \"items\": [";
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& a = items[i];
    os << (i ? "," : "") << "\n    {\"item_id\": " << json::str(a.item)
       << ", \"eligible\": " << a.eligible << ", \"size\": " << a.size << ", \"segments\": [";
    for (std::size_t j = 0; j < a.segments.size(); ++j) {
      const auto& r = a.segments[j];
      os << (j ? ", " : "") << "{\"segment\": " << r.segment << ", \"users\": " << r.users
         << ", \"share\": " << json::num(r.share)
         << ", \"population_share\": " << json::num(r.population_share)
         << ", \"lift\": " << json::num(r.population_share > 0 ? r.share / r.population_share : 0.0)
         << "}";
    }
    os << "], \"pooled_segments\": " << a.pooled_segments << ", \"pooled_users\": "
       << (a.pooled_users >= min_report_users ? std::to_string(a.pooled_users) : "null") << "}";
  }
  os << "\n  ]\n}\n";
  return os.str();
}

// ---- the stage ------------------------------------------------------------------------------

AudienceSummary run_audience(const AudienceParams& p, const Comm& comm) {
  p.validate();
  const Model m = read_model(p.model, comm);
  if (m.kind != ModelKind::kMlp)
    throw UsageError("'" + p.model + "' holds a " + to_string(m.kind) +
                     " model; segrec audience needs an mlp model (segrec train --model-kind mlp)");
  // Items first: a wrong id fails before the data set is read.
  const std::vector<Requested> req = requested_items(p, comm);
  std::vector<std::string> ids;
  for (const auto& r : req) ids.push_back(r.id);
  const std::vector<std::int32_t> items = map_items(m, ids);
  for (std::size_t c = 0; c < items.size(); ++c)
    if (items[c] < 0)
      throw DataError("item '" + req[c].id + "' (" + req[c].where + ") is not one of the " +
                          std::to_string(m.item_ids.size()) + " items of the model '" + p.model +
                          "'",
                      true);

  using Clock = std::chrono::steady_clock;
  const auto seconds = [](Clock::time_point a) {
    return fmt("%.3f s", std::chrono::duration<double>(Clock::now() - a).count());
  };
  auto t0 = Clock::now();
  std::int64_t k = m.serving ? m.serving->k : 0;
  const ServingUsers u = prepare_data_users(m, p.model, p.data, p.projection, p.segments, comm, k);
  AudienceFilter f;
  f.min_events = p.min_events;
  f.exclude_owned = p.exclude_owned;
  f.segments = p.segment_list();
  for (auto g : f.segments)
    require(g < k, "segment", p.segment,
            "'" + p.segments + "' has segments 0.." + std::to_string(k - 1));

  progress::note("audience", "users read and prepared in " + seconds(t0));
  t0 = Clock::now();
  std::vector<std::int64_t> eligible;
  const auto local = local_audiences(m, u, items, p.top, f, p.block_users, eligible);
  progress::note("audience", "scored in " + seconds(t0) + " (rank 0's users)");
  t0 = Clock::now();
  const auto chosen = merge_audiences(local, p.top, comm);
  comm.allreduce(eligible);

  AudienceSummary sum;
  sum.users = u.n_users;
  sum.min_report_users = p.min_report_users;
  sum.segment_users.assign(static_cast<std::size_t>(k + 1), 0);
  for (auto g : u.segment) ++sum.segment_users[static_cast<std::size_t>(g + 1)];
  comm.allreduce(sum.segment_users);
  for (std::size_t c = 0; c < items.size(); ++c)
    sum.items.push_back(summarise(ids[c], eligible[c], chosen[c], sum.segment_users, sum.users,
                                  p.min_report_users));

  // User ids of the winners, from their owners in rank order.
  const std::int64_t end = u.first + u.n_local();
  std::string own;
  for (const auto& list : chosen)
    for (const auto& x : list)
      if (x.user >= u.first && x.user < end) {
        own += u.ids[static_cast<std::size_t>(x.user - u.first)];
        own += '\0';
      }
  const std::vector<std::string> gathered = comm.allgather_strings(own);
  const std::vector<std::int64_t> ends = comm.allgatherv(std::vector<std::int64_t>{end});

  std::string err;
  if (comm.is_root()) {
    std::vector<std::size_t> pos(gathered.size(), 0);
    const auto id_of = [&](std::int64_t user) {
      // The owner: the first rank whose block ends after `user`.
      const auto r =
          static_cast<std::size_t>(std::upper_bound(ends.begin(), ends.end(), user) - ends.begin());
      const std::size_t e = gathered[r].find('\0', pos[r]);
      std::string id = gathered[r].substr(pos[r], e - pos[r]);
      pos[r] = e + 1;
      return id;
    };
    std::optional<Pseudonymizer> pseudo;
    if (!p.pseudonymize.empty()) pseudo.emplace(p.pseudonymize);
    std::string text = "item_id,rank,user_id,score,segment\n";
    for (std::size_t c = 0; c < chosen.size(); ++c)
      for (std::size_t j = 0; j < chosen[c].size(); ++j) {
        const auto& x = chosen[c][j];
        const std::string id = id_of(x.user);
        append_csv_field(text, ids[c]);
        text += ',' + std::to_string(j + 1) + ',';
        append_csv_field(text, pseudo ? (*pseudo)(id) : id);
        text += ',' + fmt("%.6g", static_cast<double>(x.score)) + ',' + std::to_string(x.segment) +
                '\n';
        ++sum.rows;
      }
    try {
      write_file_atomically(p.out, text);
      write_file_atomically(p.summary_path(), sum.json());
    } catch (const Error& e) {
      err = e.what();
    }
  }
  comm.check_all(err, kExitIo);
  progress::note("audience", "merged and written in " + seconds(t0));
  sum.rows = comm.allreduce_value(sum.rows);
  return sum;
}

}  // namespace segrec
