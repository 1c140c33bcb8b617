#include "segrec/personalisation/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>
#include <unordered_map>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/personalisation/ease.hpp"
#include "segrec/personalisation/input_rows.hpp"
#include "segrec/personalisation/train/params.hpp"

namespace segrec {

void top_k(const float* z, std::int64_t n, std::int64_t k, std::vector<std::int32_t>& scratch,
           std::vector<std::int32_t>& out) {
  scratch.clear();
  for (std::int64_t i = 0; i < n; ++i)
    if (z[i] > -std::numeric_limits<float>::infinity())
      scratch.push_back(static_cast<std::int32_t>(i));
  const auto better = [z](std::int32_t a, std::int32_t b) {
    return z[a] > z[b] || (z[a] == z[b] && a < b);
  };
  const auto kk = static_cast<std::ptrdiff_t>(std::min<std::int64_t>(k, std::ssize(scratch)));
  std::nth_element(scratch.begin(), scratch.begin() + kk, scratch.end(), better);
  std::sort(scratch.begin(), scratch.begin() + kk, better);
  out.assign(scratch.begin(), scratch.begin() + kk);
}


// ---- model file ------------------------------------------------------------------------------

namespace {

// /mlp: the network's layers, attributes and segment heads.
void write_network(h5::File& f, const Model& m) {
  const mlp::Layout lay(m.shape);
  SEGREC_ASSERT(std::ssize(m.params) == lay.size, "model parameters do not match the shape");
  SEGREC_ASSERT(std::ssize(m.heads) == std::ssize(m.head_segments) * m.head_size(),
                "segment heads do not match the shape");
  f.create_group("/mlp");
  const auto& s = m.shape;
  for (int l = 0; l < s.n_layers(); ++l) {
    const std::string L = std::to_string(l);
    f.write_replicated<float>(
        "/mlp/W" + L,
        std::span<const float>(m.params.data() + lay.w[l],
                               static_cast<std::size_t>(s.fan_in(l) * s.fan_out(l))),
        s.fan_out(l));
    f.write_replicated<float>(
        "/mlp/b" + L,
        std::span<const float>(m.params.data() + lay.b[l], static_cast<std::size_t>(s.fan_out(l))));
  }
  if (s.embed_dim > 0)
    f.write_replicated<float>("/mlp/segment_embedding",
                              std::span<const float>(m.params.data() + lay.emb,
                                                     static_cast<std::size_t>(lay.size - lay.emb)),
                              s.embed_dim);
  f.set_attr("/mlp", "input", m.input);
  f.set_attr("/mlp", "history_weight", m.history_weight);
  f.set_attr("/mlp", "activation", mlp::to_string(s.activation));
  f.set_attr("/mlp", "loss", mlp::to_string(s.loss));
  f.set_attr("/mlp", "hidden", join_sizes(s.hidden));
  f.set_attr("/mlp", "n_layers", static_cast<std::int64_t>(s.n_layers()));
  f.set_attr("/mlp", "sparse_in", s.sparse_in);
  f.set_attr("/mlp", "dense_in", s.dense_in);
  f.set_attr("/mlp", "n_segments", s.n_segments);
  f.set_attr("/mlp", "embed_dim", s.embed_dim);
  f.set_attr("/mlp", "n_items", s.n_out);
  if (m.head_layers > 0 && !m.head_segments.empty()) {
    // Head h's block holds, layer after layer, W_l (fan_in x fan_out) then b_l.
    f.create_group("/mlp/heads");
    f.set_attr("/mlp/heads", "layers", m.head_layers);
    f.write_replicated<std::int32_t>("/mlp/heads/segments",
                                     std::span<const std::int32_t>(m.head_segments));
    const std::int64_t nh = std::ssize(m.head_segments), hs = m.head_size();
    const int L = s.n_layers();
    for (int l = L - static_cast<int>(m.head_layers); l < L; ++l) {
      const std::int64_t w0 = lay.w[l] - lay.w[L - m.head_layers], nw = s.fan_in(l) * s.fan_out(l);
      std::vector<float> W, b;
      for (std::int64_t h = 0; h < nh; ++h) {
        const float* blk = m.heads.data() + h * hs + w0;
        W.insert(W.end(), blk, blk + nw);
        b.insert(b.end(), blk + nw, blk + nw + s.fan_out(l));
      }
      f.write_replicated<float>("/mlp/heads/W" + std::to_string(l), std::span<const float>(W),
                                s.fan_out(l));
      f.write_replicated<float>("/mlp/heads/b" + std::to_string(l), std::span<const float>(b),
                                s.fan_out(l));
    }
  }
}

}  // namespace

void write_model(const std::string& path, const Model& m, const Comm& comm) {
  h5::File f = h5::File::create(path, comm, kModelFormat);
  for (const char* g : {"/items", "/config", "/curves", "/validation"}) f.create_group(g);
  f.write_strings("/items/ids", m.item_ids, false);
  if (m.kind == ModelKind::kMlp)
    write_network(f, m);
  else
    ease::write_linear(f, m, comm);
  for (const auto& [k, v] : m.config) f.set_attr("/config", k, v);
  const auto curve = [&](const char* name, const std::vector<double>& v) {
    f.write_replicated<double>(std::string("/curves/") + name, std::span<const double>(v));
  };
  curve("train_loss", m.train_loss);
  curve("val_ndcg", m.val_ndcg);
  curve("lr", m.lr);
  curve("seconds", m.seconds);
  curve("val_recall", m.val_recall);
  f.set_attr("/validation", "best_epoch", m.best_epoch);
  f.set_attr("/validation", "best_ndcg", m.best_ndcg);
  f.set_attr("/validation", "k", m.ndcg_k);
  f.set_attr("/validation", "n_users", m.n_val_users);
  f.set_attr("/validation", "n_train_users", m.n_train_users);
  f.set_attr("/validation", "recall_k", m.recall_k);
  if (!m.quality.empty()) {
    f.create_group("/validation/quality");
    std::vector<std::string> mode, users;
    std::vector<std::int32_t> seg;
    std::vector<std::int64_t> n;
    std::vector<double> ndcg, recall;
    for (const auto& q : m.quality) {
      mode.push_back(q.mode);
      users.push_back(q.users);
      seg.push_back(q.segment);
      n.push_back(q.n_users);
      ndcg.push_back(q.ndcg);
      recall.push_back(q.recall);
    }
    f.write_strings("/validation/quality/mode", mode, false);
    f.write_strings("/validation/quality/users", users, false);
    f.write_replicated<std::int32_t>("/validation/quality/segment",
                                     std::span<const std::int32_t>(seg));
    f.write_replicated<std::int64_t>("/validation/quality/n_users",
                                     std::span<const std::int64_t>(n));
    f.write_replicated<double>("/validation/quality/ndcg", std::span<const double>(ndcg));
    f.write_replicated<double>("/validation/quality/recall", std::span<const double>(recall));
  }
  if (m.serving) write_serving_parts(f, *m.serving);
  f.commit();
}

namespace {

// /mlp: the network (read_model).
void read_network(const h5::File& f, const std::string& path, Model& m) {
  m.input = f.attr_string("/mlp", "input");
  m.history_weight = f.attr_string("/mlp", "history_weight");
  auto& s = m.shape;
  try {
    s.activation = mlp::parse_activation(f.attr_string("/mlp", "activation"));
    s.loss = mlp::parse_loss(f.attr_string("/mlp", "loss"));
    TrainParams tmp;
    tmp.hidden = f.attr_string("/mlp", "hidden");
    s.hidden = tmp.hidden_sizes();
  } catch (const UsageError& e) {
    throw DataError("'" + path + "': bad network description: " + e.what(), true);
  }
  s.sparse_in = f.attr_int("/mlp", "sparse_in");
  s.dense_in = f.attr_int("/mlp", "dense_in");
  s.n_segments = f.attr_int("/mlp", "n_segments");
  s.embed_dim = f.attr_int("/mlp", "embed_dim");
  s.n_out = f.attr_int("/mlp", "n_items");
  if (s.n_out != std::ssize(m.item_ids) || (s.sparse_in != 0 && s.sparse_in != s.n_out) ||
      f.attr_int("/mlp", "n_layers") != s.n_layers())
    throw DataError("'" + path + "': the network does not match the item list", true);
  try {
    s.check();
  } catch (const UsageError& e) {
    throw DataError("'" + path + "': bad network shape: " + e.what(), true);
  }
  const mlp::Layout lay(s);
  m.params.assign(static_cast<std::size_t>(lay.size), 0.0f);
  const auto load = [&](const std::string& name, std::int64_t off, std::int64_t n) {
    const auto v = f.read_all<float>(name);
    if (std::ssize(v) != n)
      throw DataError("'" + path + "': " + name + " has the wrong size", true);
    if (!std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); }))
      throw DataError("'" + path + "': " + name + " holds non-finite values (damaged file?)", true);
    std::copy(v.begin(), v.end(), m.params.begin() + off);
  };
  for (int l = 0; l < s.n_layers(); ++l) {
    load("/mlp/W" + std::to_string(l), lay.w[l], s.fan_in(l) * s.fan_out(l));
    load("/mlp/b" + std::to_string(l), lay.b[l], s.fan_out(l));
  }
  if (s.embed_dim > 0) load("/mlp/segment_embedding", lay.emb, lay.size - lay.emb);
  if (f.exists("/mlp/heads")) {
    m.head_layers = f.attr_int("/mlp/heads", "layers");
    if (m.head_layers < 1 || m.head_layers > s.n_layers())
      throw DataError("'" + path + "': /mlp/heads has a bad layer count", true);
    m.head_segments = f.read_all<std::int32_t>("/mlp/heads/segments");
    for (auto g : m.head_segments)
      if (g < 0 || (s.n_segments > 0 && g >= s.n_segments))
        throw DataError("'" + path + "': /mlp/heads/segments holds a bad label", true);
    const std::int64_t nh = std::ssize(m.head_segments), hs = m.head_size();
    m.heads.assign(static_cast<std::size_t>(nh * hs), 0.0f);
    const int L = s.n_layers();
    for (int l = L - static_cast<int>(m.head_layers); l < L; ++l) {
      const std::int64_t w0 = lay.w[l] - lay.w[L - m.head_layers], nw = s.fan_in(l) * s.fan_out(l);
      const auto W = f.read_all<float>("/mlp/heads/W" + std::to_string(l));
      const auto b = f.read_all<float>("/mlp/heads/b" + std::to_string(l));
      if (std::ssize(W) != nh * nw || std::ssize(b) != nh * s.fan_out(l))
        throw DataError(
            "'" + path + "': /mlp/heads layer " + std::to_string(l) + " has the wrong size", true);
      for (std::int64_t h = 0; h < nh; ++h) {
        float* blk = m.heads.data() + h * hs + w0;
        std::copy(W.begin() + h * nw, W.begin() + (h + 1) * nw, blk);
        std::copy(b.begin() + h * s.fan_out(l), b.begin() + (h + 1) * s.fan_out(l), blk + nw);
      }
    }
  }
}

}  // namespace

Model read_model(const std::string& path, const Comm& comm) {
  const h5::File f = h5::File::open(path, comm, kModelFormat);
  Model m;
  m.item_ids = f.read_strings("/items/ids", 0, f.shape("/items/ids")[0]);
  if (f.has_attr("/", "model_kind")) {
    try {
      m.kind = parse_model_kind(f.attr_string("/", "model_kind"));
    } catch (const UsageError& e) {
      throw DataError("'" + path + "': bad model kind: " + e.what(), true);
    }
  }
  if (m.kind == ModelKind::kSequence)
    throw DataError("'" + path +
                        "' is a sequence model (segrec train --model-kind sequence); only segrec "
                        "recommend and segrec evaluate serve it",
                    true);
  if (m.kind == ModelKind::kMlp)
    read_network(f, path, m);
  else
    ease::read_linear(f, path, m);
  // The configuration, as written.
  TrainParams names;
  for (const auto& [k, v] : names.config())
    if (f.has_attr("/config", k)) m.config.emplace_back(k, f.attr_string("/config", k));
  m.train_loss = f.read_all<double>("/curves/train_loss");
  m.val_ndcg = f.read_all<double>("/curves/val_ndcg");
  m.lr = f.read_all<double>("/curves/lr");
  m.seconds = f.read_all<double>("/curves/seconds");
  if (f.exists("/curves/val_recall")) m.val_recall = f.read_all<double>("/curves/val_recall");
  if (f.has_attr("/validation", "recall_k")) m.recall_k = f.attr_int("/validation", "recall_k");
  if (f.exists("/validation/quality")) {
    const auto n_rows = f.shape("/validation/quality/ndcg")[0];
    const auto mode = f.read_strings("/validation/quality/mode", 0, n_rows);
    const auto users = f.read_strings("/validation/quality/users", 0, n_rows);
    const auto seg = f.read_all<std::int32_t>("/validation/quality/segment");
    const auto n = f.read_all<std::int64_t>("/validation/quality/n_users");
    const auto nd = f.read_all<double>("/validation/quality/ndcg");
    const auto rc = f.read_all<double>("/validation/quality/recall");
    for (std::int64_t r = 0; r < n_rows; ++r) {
      const auto k = static_cast<std::size_t>(r);
      m.quality.push_back({mode[k], users[k], seg[k], n[k], nd[k], rc[k]});
    }
  }
  m.best_epoch = f.attr_int("/validation", "best_epoch");
  m.best_ndcg = f.attr_double("/validation", "best_ndcg");
  m.ndcg_k = f.attr_int("/validation", "k");
  m.n_val_users = f.attr_int("/validation", "n_users");
  m.n_train_users = f.attr_int("/validation", "n_train_users");
  if (has_serving_parts(f)) m.serving = read_serving_parts(f);
  return m;
}

void check_items(const Model& m, const std::vector<std::string>& item_ids,
                 const std::string& what) {
  if (m.item_ids == item_ids) return;
  std::string detail = std::to_string(m.item_ids.size()) + " items in the model, " +
                       std::to_string(item_ids.size()) + " in " + what;
  for (std::size_t i = 0; i < std::min(m.item_ids.size(), item_ids.size()); ++i)
    if (m.item_ids[i] != item_ids[i]) {
      detail += "; item " + std::to_string(i) + " is '" + m.item_ids[i] + "' in the model and '" +
                item_ids[i] + "' in " + what;
      break;
    }
  throw DataError("the model was trained on other items than " + what + " (" + detail + ")", true);
}

// ---- scoring ---------------------------------------------------------------------------------

std::int64_t Model::head_size() const {
  if (head_layers <= 0) return 0;
  const mlp::Layout lay(shape);
  return lay.emb - lay.w[shape.n_layers() - head_layers];
}

std::string quality_table(const Model& m) {
  if (m.quality.empty()) return "";
  std::ostringstream os;
  char buf[160];
  std::snprintf(buf, sizeof buf, "%-14s %-10s %8s %8s %10s %10s", "mode", "users", "segment",
                "n_users", ("NDCG@" + std::to_string(m.ndcg_k)).c_str(),
                ("Recall@" + std::to_string(m.recall_k)).c_str());
  os << buf << "\n";
  // Overall rows first, then per segment.
  for (const bool per_segment : {false, true})
    for (const auto& q : m.quality) {
      if ((q.segment >= 0) != per_segment) continue;
      std::snprintf(buf, sizeof buf, "%-14s %-10s %8s %8lld %10.4f %10.4f", q.mode.c_str(),
                    q.users.c_str(), q.segment < 0 ? "all" : std::to_string(q.segment).c_str(),
                    static_cast<long long>(q.n_users), q.ndcg, q.recall);
      os << buf << "\n";
    }
  const QualityRow* best = nullptr;
  for (const auto& q : m.quality)
    if (q.segment < 0 && q.users == "validation" && (!best || q.ndcg > best->ndcg)) best = &q;
  if (best) os << "best on the validation users (NDCG@" << m.ndcg_k << "): " << best->mode << "\n";
  return os.str();
}

TopN score_users(const Model& m, const UserInputs& u, std::int64_t n, bool exclude_history) {
  if (m.kind != ModelKind::kMlp) return ease::score_linear(m, u, n, exclude_history);
  require(n >= 1, "top-n", n, "must be >= 1");
  const auto& s = m.shape;
  const std::int64_t rows = u.rows();
  const std::int64_t n_items = s.n_out;
  if (rows < 0 || u.indptr.empty() || u.indptr[0] != 0 ||
      u.indptr.back() != std::ssize(u.indices) || u.weights.size() != u.indices.size())
    throw DataError("score_users: malformed user histories");
  for (auto i : u.indices)
    if (i < 0 || i >= n_items)
      throw DataError("score_users: item index " + std::to_string(i) + " outside the model's " +
                      std::to_string(n_items) + " items");
  if (std::ssize(u.dense) != rows * s.dense_in)
    throw DataError("score_users: the model reads " + std::to_string(s.dense_in) +
                    " projection values per user; got " + std::to_string(u.dense.size()) + " for " +
                    std::to_string(rows) + " users");
  const bool heads = u.segment_heads && m.head_layers > 0 && !m.head_segments.empty();
  if (s.embed_dim > 0 || heads) {
    if (std::ssize(u.segments) != rows)
      throw DataError(std::string("score_users: the model needs a segment label per user") +
                      (s.embed_dim > 0 ? "" : " (or scoring without its segment heads)"));
    for (auto g : u.segments)
      if (g < 0 || (s.n_segments > 0 && g >= s.n_segments))
        throw DataError("score_users: segment label " + std::to_string(g) + " outside [0, " +
                        std::to_string(s.n_segments) + ")");
  }
  mlp::Network<float> net(s);
  net.params() = m.params;
  RowSpec spec;
  spec.history = s.sparse_in > 0;
  spec.log_weight = m.history_weight == "log";
  spec.dense_dim = s.dense_in;
  spec.segments = s.embed_dim > 0;

  // Rows grouped by the head they use (group 0: the global layers), each group in row order.
  const std::int64_t hs = heads ? m.head_size() : 0;
  const std::int64_t head_begin = heads ? mlp::Layout(s).w[s.n_layers() - m.head_layers] : 0;
  std::vector<std::vector<std::int64_t>> groups(1);
  if (heads) {
    std::unordered_map<std::int32_t, std::size_t> group_of;
    for (std::size_t h = 0; h < m.head_segments.size(); ++h)
      group_of.emplace(m.head_segments[h], h + 1);
    groups.resize(m.head_segments.size() + 1);
    for (std::int64_t r = 0; r < rows; ++r) {
      const auto it = group_of.find(u.segments[static_cast<std::size_t>(r)]);
      groups[it == group_of.end() ? 0 : it->second].push_back(r);
    }
  } else {
    groups[0].resize(static_cast<std::size_t>(rows));
    std::iota(groups[0].begin(), groups[0].end(), std::int64_t{0});
  }

  TopN out;
  out.n = n;
  out.items.assign(static_cast<std::size_t>(rows * n), -1);
  out.scores.assign(static_cast<std::size_t>(rows * n), -std::numeric_limits<float>::infinity());
  mlp::Batch<float> bt;
  std::vector<std::pair<std::int32_t, float>> items;
  std::vector<std::int32_t> scratch, ranked;
  constexpr std::int64_t kChunk = 512;
  for (std::size_t grp = 0; grp < groups.size(); ++grp) {
    const auto& list = groups[grp];
    if (list.empty()) continue;
    if (heads) {  // this group's layers in place of the top ones
      const float* src = grp == 0 ? m.params.data() + head_begin
                                  : m.heads.data() + static_cast<std::int64_t>(grp - 1) * hs;
      std::copy(src, src + hs, net.params().begin() + head_begin);
    }
    for (std::size_t j0 = 0; j0 < list.size(); j0 += kChunk) {
      const std::size_t j1 = std::min(list.size(), j0 + kChunk);
      bt.clear();
      for (std::size_t j = j0; j < j1; ++j) {
        const std::int64_t r = list[j];
        items.clear();
        for (std::int64_t k = u.indptr[r]; k < u.indptr[r + 1]; ++k)
          items.emplace_back(u.indices[k], history_value(u.weights[k], spec.log_weight));
        close_targets(bt);
        add_input_row(bt, spec, items, 0.0, 0,
                      spec.dense_dim ? u.dense.data() + r * s.dense_in : nullptr,
                      spec.segments ? u.segments[static_cast<std::size_t>(r)] : 0, 0);
      }
      net.forward(bt, 0.0f);
      auto Z = net.logits();
      for (std::size_t j = j0; j < j1; ++j) {
        const std::int64_t r = list[j];
        float* z = Z.row(static_cast<std::int64_t>(j - j0)).data();
        if (exclude_history)
          for (std::int64_t k = u.indptr[r]; k < u.indptr[r + 1]; ++k)
            z[u.indices[k]] = -std::numeric_limits<float>::infinity();
        top_k(z, n_items, n, scratch, ranked);
        for (std::size_t q = 0; q < ranked.size(); ++q) {
          out.items[static_cast<std::size_t>(r * n) + q] = ranked[q];
          out.scores[static_cast<std::size_t>(r * n) + q] = z[ranked[q]];
        }
      }
    }
  }
  return out;
}

}  // namespace segrec
