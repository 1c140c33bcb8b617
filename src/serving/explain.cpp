// Leave-one-out explanations of recommended items (see explain.hpp).
#include "segrec/serving/explain.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <unordered_map>

#include "segrec/core/error.hpp"
#include "segrec/personalisation/input_rows.hpp"

namespace segrec {
namespace {

using explain_detail::Matrix;
using CMap = Eigen::Map<const Matrix>;
using RowVec = Eigen::Matrix<float, 1, Eigen::Dynamic>;
using CRowMap = Eigen::Map<const RowVec>;

void activate(Matrix& A, mlp::Activation a) {
  if (a == mlp::Activation::kRelu)
    A.array() = A.array().max(0.0f);
  else
    A.array() = A.array().tanh();
}

std::string fmt(const char* f, double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

// Row q: the user without history position drops[q] (-1: the full history).
struct Explainer::Pass {
  std::size_t group = 0;
  Matrix top;  ///< rows x width: the output layer's input (hidden), or the logits (linear)
};

// A variant whose full output row gives ranks: listed items `listed` of user row r.
struct Explainer::Pending {
  std::int64_t r = 0;
  std::size_t group = 0;
  RowVec x;  ///< the output layer's input
  std::vector<std::int64_t> listed;
};

Explainer::Explainer(const Model& m, std::int64_t named, std::int64_t shortlist, std::int64_t chunk)
    : m_(m), lay_(m.shape), named_(named), shortlist_(shortlist), chunk_(chunk) {
  SEGREC_ASSERT(named >= 1 && shortlist >= 1 && chunk >= 1,
                "explanations need named, shortlist and chunk >= 1");
  if (m.head_layers > 0 && !m.head_segments.empty()) {
    head_begin_ = lay_.w[m.shape.n_layers() - m.head_layers];
    head_size_ = m.head_size();
  }
}

std::size_t Explainer::group_of(const UserInputs& u, std::int64_t r) const {
  if (head_size_ == 0 || !u.segment_heads || u.segments.empty()) return 0;
  const std::int32_t g = u.segments[static_cast<std::size_t>(r)];
  for (std::size_t h = 0; h < m_.head_segments.size(); ++h)
    if (m_.head_segments[h] == g) return h + 1;
  return 0;
}

const float* Explainer::weights(int l, std::size_t group) const {
  if (group > 0 && lay_.w[l] >= head_begin_)
    return m_.heads.data() + static_cast<std::int64_t>(group - 1) * head_size_ + lay_.w[l] -
           head_begin_;
  return m_.params.data() + lay_.w[l];
}

const float* Explainer::bias(int l, std::size_t group) const {
  if (group > 0 && lay_.b[l] >= head_begin_)
    return m_.heads.data() + static_cast<std::int64_t>(group - 1) * head_size_ + lay_.b[l] -
           head_begin_;
  return m_.params.data() + lay_.b[l];
}

std::int64_t Explainer::history(const UserInputs& u, std::int64_t r) const {
  return m_.shape.sparse_in > 0 ? u.indptr[r + 1] - u.indptr[r] : 0;
}

Explainer::Pass Explainer::run(const UserInputs& u, std::int64_t r,
                               std::span<const std::int64_t> drops) const {
  const mlp::Shape& s = m_.shape;
  const int L = s.n_layers();
  Pass p;
  p.group = group_of(u, r);
  const std::int64_t q0 = u.indptr[r], h = history(u, r);
  const std::int64_t f0 = s.fan_out(0), rows = std::ssize(drops);
  const CMap W0(weights(0, p.group), s.in_dim(), f0);

  // The input part that no history item changes: bias, projection, segment embedding.
  RowVec base = CRowMap(bias(0, p.group), f0);
  if (s.dense_in > 0)
    base.noalias() += CRowMap(u.dense.data() + r * s.dense_in, s.dense_in) *
                      W0.middleRows(s.sparse_in, s.dense_in);
  if (s.embed_dim > 0) {
    const CMap table(m_.params.data() + lay_.emb, s.n_segments, s.embed_dim);
    base.noalias() +=
        table.row(u.segments[static_cast<std::size_t>(r)]) * W0.bottomRows(s.embed_dim);
  }
  // S = sum_k v_k W0[i_k] (before the L2 normalisation of add_input_row).
  const bool log_weight = m_.history_weight == "log";
  std::vector<float> v(static_cast<std::size_t>(h));
  double ss = 0;
  RowVec S = RowVec::Zero(f0);
  for (std::int64_t k = 0; k < h; ++k) {
    v[k] = history_value(u.weights[q0 + k], log_weight);
    ss += static_cast<double>(v[k]) * v[k];
    S.noalias() += v[k] * W0.row(u.indices[q0 + k]);
  }
  const auto inv_norm = [](double x) {
    return static_cast<float>(x > 0 ? 1.0 / std::sqrt(x) : 0.0);
  };
  Matrix A(rows, f0);
  for (std::int64_t q = 0; q < rows; ++q) {
    const std::int64_t k = drops[q];
    if (k < 0) {
      A.row(q) = base + inv_norm(ss) * S;
      continue;
    }
    // Without item k: the other items, normalised by their own norm (none left: 0).
    const double rest = h == 1 ? 0.0 : std::max(0.0, ss - static_cast<double>(v[k]) * v[k]);
    A.row(q) = base + inv_norm(rest) * (S - v[k] * W0.row(u.indices[q0 + k]));
  }
  for (int l = 1; l < L; ++l) {
    activate(A, s.activation);
    if (l + 1 == L) break;  // A is the output layer's input
    Matrix next(rows, s.fan_out(l));
    next.rowwise() = CRowMap(bias(l, p.group), s.fan_out(l));
    next.noalias() += A * CMap(weights(l, p.group), s.fan_in(l), s.fan_out(l));
    A = std::move(next);
  }
  p.top = std::move(A);
  return p;
}

Matrix Explainer::output(std::size_t group, const Matrix& X,
                         std::span<const std::int32_t> cols) const {
  const mlp::Shape& s = m_.shape;
  const int L = s.n_layers();
  const bool all = cols.empty();
  const std::int64_t nc = all ? s.n_out : std::ssize(cols);
  Matrix Z(X.rows(), nc);
  if (L == 1) {  // X holds the logits already
    if (all) return X;
    for (std::int64_t c = 0; c < nc; ++c) Z.col(c) = X.col(cols[c]);
    return Z;
  }
  const CMap W(weights(L - 1, group), s.fan_in(L - 1), s.n_out);
  const float* b = bias(L - 1, group);
  if (all) {
    Z.rowwise() = CRowMap(b, s.n_out);
    Z.noalias() += X * W;
    return Z;
  }
  Matrix Wsel(s.fan_in(L - 1), nc);
  for (std::int64_t c = 0; c < nc; ++c) Wsel.col(c) = W.col(cols[c]);
  Z.noalias() = X * Wsel;
  for (std::int64_t c = 0; c < nc; ++c) Z.col(c).array() += b[cols[c]];
  return Z;
}

// Every output row of X, each row with the layers of its head group: X.rows() x n_out.
Matrix Explainer::outputs(std::span<const std::size_t> groups, const Matrix& X) const {
  Matrix Z(X.rows(), m_.shape.n_out);
  std::vector<std::size_t> seen;
  for (std::size_t g : groups) {
    if (std::find(seen.begin(), seen.end(), g) != seen.end()) continue;
    seen.push_back(g);
    std::vector<std::int64_t> at;
    for (std::size_t q = 0; q < groups.size(); ++q)
      if (groups[q] == g) at.push_back(static_cast<std::int64_t>(q));
    Matrix Xg(std::ssize(at), X.cols());
    for (std::size_t j = 0; j < at.size(); ++j) Xg.row(j) = X.row(at[j]);
    const Matrix Zg = output(g, Xg, {});
    for (std::size_t j = 0; j < at.size(); ++j) Z.row(at[j]) = Zg.row(j);
  }
  return Z;
}

std::vector<ItemExplanation> Explainer::explain_user(const UserInputs& u, std::int64_t r,
                                                     std::span<const std::int32_t> list,
                                                     const std::vector<std::uint8_t>& excluded,
                                                     const Pass& p0, const float* z0,
                                                     std::vector<Pending>& pending) const {
  std::vector<ItemExplanation> out;
  std::vector<std::int32_t> items;
  for (std::int32_t i : list) {
    if (i < 0) break;
    items.push_back(i);
  }
  if (items.empty()) return out;
  const mlp::Shape& s = m_.shape;
  const std::int64_t nc = std::ssize(items), h = history(u, r);
  const auto hist = u.indices.begin() + u.indptr[r];
  const auto hist_end = u.indices.begin() + u.indptr[r + 1];
  const auto candidate = [&](std::int64_t i) {
    return !excluded[i] && !std::binary_search(hist, hist_end, static_cast<std::int32_t>(i));
  };
  // The shortlist: the listed items, then the best other candidates of the full history.
  std::vector<std::int32_t> shortlist = items;
  {
    std::vector<std::int32_t> rest;
    for (std::int32_t i = 0; i < s.n_out; ++i)
      if (candidate(i) && std::find(items.begin(), items.end(), i) == items.end())
        rest.push_back(i);
    const auto k =
        std::min<std::int64_t>(std::ssize(rest), std::max<std::int64_t>(shortlist_ - nc, 0));
    std::partial_sort(
        rest.begin(), rest.begin() + k, rest.end(),
        [&](std::int32_t a, std::int32_t b) { return z0[a] > z0[b] || (z0[a] == z0[b] && a < b); });
    shortlist.insert(shortlist.end(), rest.begin(), rest.begin() + k);
  }
  // Relative scores of the listed items (logit minus the log-sum-exp over the shortlist)
  // of the rows of a pass: rows x nc.
  const auto relative = [&](const Pass& p) {
    const Matrix Zs = output(p.group, p.top, shortlist);
    Matrix rel(Zs.rows(), nc);
    for (std::int64_t q = 0; q < Zs.rows(); ++q) {
      const float mx = Zs.row(q).maxCoeff();
      double sum = 0;
      for (std::int64_t j = 0; j < Zs.cols(); ++j)
        sum += std::exp(static_cast<double>(Zs(q, j) - mx));
      const float lse = mx + static_cast<float>(std::log(sum));
      for (std::int64_t c = 0; c < nc; ++c) rel(q, c) = Zs(q, c) - lse;
    }
    return rel;
  };
  const Matrix rel0 = relative(p0);
  const Matrix logit0 = output(p0.group, p0.top, items);
  // E(k, c): the effect of history position k on listed item c; chunk_ variants a batch.
  Matrix E(h, nc);
  std::vector<std::int64_t> drops;
  for (std::int64_t k0 = 0; k0 < h; k0 += chunk_) {
    const std::int64_t k1 = std::min(h, k0 + chunk_);
    drops.resize(static_cast<std::size_t>(k1 - k0));
    std::iota(drops.begin(), drops.end(), k0);
    const Matrix rel = relative(run(u, r, drops));
    for (std::int64_t k = k0; k < k1; ++k) E.row(k) = rel0.row(0) - rel.row(k - k0);
  }

  // Per item, the history positions with the largest positive effects.
  std::vector<std::int64_t> order(static_cast<std::size_t>(h));
  std::vector<std::int64_t> strongest(static_cast<std::size_t>(nc), -1);
  for (std::int64_t c = 0; c < nc; ++c) {
    ItemExplanation e;
    e.item = items[c];
    e.rank = c + 1;
    e.score = logit0(0, c);
    std::iota(order.begin(), order.end(), std::int64_t{0});
    const auto effect = [&](std::int64_t k) { return E(k, c); };
    const auto n = std::min<std::int64_t>(named_, h);
    std::partial_sort(order.begin(), order.begin() + n, order.end(),
                      [&](std::int64_t a, std::int64_t b) {
                        const float ea = effect(a), eb = effect(b);
                        return ea > eb || (ea == eb && hist[a] < hist[b]);
                      });
    for (std::int64_t j = 0; j < n && effect(order[j]) > 0; ++j)
      e.named.push_back({hist[order[j]], effect(order[j])});
    if (!e.named.empty()) strongest[c] = order[0];
    out.push_back(std::move(e));
  }

  // Ranks without the strongest item: one full output row per distinct variant, left to
  // the caller (batched over users).
  std::vector<std::int64_t> variants;
  for (auto k : strongest)
    if (k >= 0 && std::find(variants.begin(), variants.end(), k) == variants.end())
      variants.push_back(k);
  if (variants.empty()) return out;
  const Pass pv = run(u, r, variants);
  for (std::size_t j = 0; j < variants.size(); ++j) {
    Pending pd{r, pv.group, pv.top.row(static_cast<std::int64_t>(j)), {}};
    for (std::int64_t c = 0; c < nc; ++c)
      if (strongest[c] == variants[j]) pd.listed.push_back(c);
    pending.push_back(std::move(pd));
  }
  return out;
}

std::vector<std::vector<ItemExplanation>> Explainer::explain_rows(
    const UserInputs& u, std::int64_t r0, std::int64_t r1, std::span<const std::int32_t> lists,
    std::int64_t n, std::span<const std::uint8_t> skip,
    const std::vector<std::uint8_t>& excluded) const {
  if (m_.kind != ModelKind::kMlp)
    return explain_linear_rows(m_, named_, u, r0, r1, lists, n, skip, excluded);
  const std::int64_t rows = r1 - r0;
  std::vector<std::vector<ItemExplanation>> out(static_cast<std::size_t>(rows));
  const std::int64_t full_row[1] = {-1};
  // Users in batches: their full-history rows, then their variants' rows, one GEMM per
  // head group each (memory: kBatch x n_items scores).
  constexpr std::int64_t kBatch = 256;
  std::vector<Pass> p0;
  std::vector<std::size_t> groups;
  std::vector<Pending> pending;
  for (std::int64_t b0 = 0; b0 < rows; b0 += kBatch) {
    const std::int64_t b1 = std::min(rows, b0 + kBatch);
    p0.clear();
    groups.clear();
    std::vector<std::int64_t> at;  // batch row of each user (-1: skipped)
    for (std::int64_t q = b0; q < b1; ++q) {
      if (!skip.empty() && skip[q]) {
        at.push_back(-1);
        continue;
      }
      at.push_back(std::ssize(p0));
      p0.push_back(run(u, r0 + q, full_row));
      groups.push_back(p0.back().group);
    }
    if (p0.empty()) continue;
    Matrix X(std::ssize(p0), p0[0].top.cols());
    for (std::size_t j = 0; j < p0.size(); ++j) X.row(j) = p0[j].top.row(0);
    const Matrix z0 = outputs(groups, X);
    pending.clear();
    for (std::int64_t q = b0; q < b1; ++q) {
      if (at[q - b0] < 0) continue;
      out[q] = explain_user(u, r0 + q, lists.subspan(static_cast<std::size_t>(q * n), n), excluded,
                            p0[at[q - b0]], z0.row(at[q - b0]).data(), pending);
    }
    for (std::size_t j0 = 0; j0 < pending.size(); j0 += kBatch) {
      const std::size_t j1 = std::min(pending.size(), j0 + kBatch);
      Matrix V(static_cast<std::int64_t>(j1 - j0), X.cols());
      groups.clear();
      for (std::size_t j = j0; j < j1; ++j) {
        V.row(j - j0) = pending[j].x;
        groups.push_back(pending[j].group);
      }
      const Matrix full = outputs(groups, V);
      for (std::size_t j = j0; j < j1; ++j) {
        const Pending& pd = pending[j];
        const float* z = full.row(j - j0).data();
        const auto hist = u.indices.begin() + u.indptr[pd.r];
        const auto hist_end = u.indices.begin() + u.indptr[pd.r + 1];
        for (std::int64_t c : pd.listed) {
          ItemExplanation& e = out[pd.r - r0][c];
          std::int64_t above = 0;
          for (std::int32_t i = 0; i < m_.shape.n_out; ++i)
            if ((z[i] > z[e.item] || (z[i] == z[e.item] && i < e.item)) && !excluded[i] &&
                !std::binary_search(hist, hist_end, i))
              ++above;
          e.rank_without = above + 1;
        }
      }
    }
  }
  return out;
}

std::vector<ItemExplanation> Explainer::explain(const UserInputs& u, std::int64_t r,
                                                std::span<const std::int32_t> list,
                                                const std::vector<std::uint8_t>& excluded) const {
  return std::move(explain_rows(u, r, r + 1, list, std::ssize(list), {}, excluded)[0]);
}

std::vector<std::string> item_display_names(const Model& m, const ItemAttributes* items) {
  std::vector<std::string> names = m.item_ids;
  if (!items) return names;
  std::unordered_map<std::string, std::size_t> at;
  for (std::size_t i = 0; i < items->ids.size(); ++i) at.emplace(items->ids[i], i);
  for (auto& n : names) {
    const auto it = at.find(n);
    if (it != at.end() && !items->names[it->second].empty()) n = items->names[it->second];
  }
  return names;
}

std::string ordinal(std::int64_t n) {
  const std::int64_t t = n % 100, d = n % 10;
  const char* suffix = (t >= 11 && t <= 13) ? "th"
                       : d == 1             ? "st"
                       : d == 2             ? "nd"
                       : d == 3             ? "rd"
                                            : "th";
  return std::to_string(n) + suffix;
}

std::string describe(const ItemExplanation& e, const std::vector<std::string>& names) {
  std::string out = "ranked " + ordinal(e.rank);
  if (e.named.empty()) return out + "; no history item raised its score";
  out += "; without " + names[e.named[0].item] + " it would be " + ordinal(e.rank_without) +
         (e.linear ? " (score " : " (relative score ") + fmt("%.3g", -e.named[0].effect) + ")";
  for (std::size_t j = 1; j < e.named.size(); ++j)
    out += (j == 1 ? "; also raised by " : ", ") + names[e.named[j].item] + " (" +
           fmt("%.3g", -e.named[j].effect) + ")";
  return out;
}

}  // namespace segrec
