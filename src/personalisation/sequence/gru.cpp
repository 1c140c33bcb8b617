// GCC 12 reports false "(may be) used uninitialized" warnings inside Eigen's
// AVX-512 kernels; they are not about this code.
#if defined(__GNUC__) && !defined(__clang__)  // a GCC-only warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "segrec/personalisation/sequence/gru.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "segrec/core/error.hpp"
#include "segrec/core/random.hpp"

namespace segrec::seq {

namespace {

constexpr std::int64_t kChunk = 1024;  // scored rows per output-layer pass

// Dropout multipliers (rows x D, row-major) as a T matrix expression.
template <class T>
auto drop_mask(const std::vector<float>& m, std::int64_t rows, std::int64_t D) {
  using F = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  return Eigen::Map<const F>(m.data(), rows, D).template cast<T>();
}

}  // namespace

Layout::Layout(const Shape& s) {
  const std::int64_t D = s.dim;
  std::int64_t off = 0;
  item_emb = off;
  off += s.n_items * D;
  type_emb = off;
  off += s.n_types * D;
  gap_emb = off;
  off += s.n_gaps * D;
  wx = off;
  off += D * 3 * D;
  wh = off;
  off += D * 3 * D;
  bx = off;
  off += 3 * D;
  bh = off;
  off += 3 * D;
  out_w = s.tied ? item_emb : off;
  if (!s.tied) off += s.n_items * D;
  out_b = off;
  off += s.n_items;
  size = off;
}

std::vector<std::pair<std::int64_t, std::int64_t>> Layout::decayed() const {
  if (out_w == item_emb) return {{item_emb, bx}};
  return {{item_emb, bx}, {out_w, out_b}};
}

std::uint8_t gap_bucket(double dt) {
  if (std::isnan(dt)) return 0;
  const double b = 1 + std::floor(std::log2(1 + std::max(dt, 0.0)));
  return static_cast<std::uint8_t>(std::min<double>(b, kGapBuckets - 1));
}

Batch Batch::from(const std::vector<std::vector<std::int32_t>>& items,
                  const std::vector<std::vector<std::uint8_t>>& types, bool targets,
                  const std::vector<std::vector<double>>& times) {
  Batch b;
  b.B = static_cast<std::int64_t>(items.size());
  const std::int64_t shift = targets ? 1 : 0;
  for (const auto& w : items) b.T = std::max(b.T, static_cast<std::int64_t>(w.size()) - shift);
  const auto n = static_cast<std::size_t>(b.B * b.T);
  b.item.assign(n, -1);
  b.type.assign(n, 0);
  b.target.assign(n, -1);
  b.len.assign(static_cast<std::size_t>(b.B), 0);
  if (!times.empty()) {
    b.gap.assign(n, 0);
    for (std::size_t w = 0; w < items.size(); ++w)
      if (w >= times.size() || times[w].size() != items[w].size() + 1)
        throw UsageError("sequence: a window needs the time before it and one per event");
  }
  for (std::int64_t w = 0; w < b.B; ++w) {
    const auto& it = items[static_cast<std::size_t>(w)];
    const auto& ty = types[static_cast<std::size_t>(w)];
    const std::int64_t len = static_cast<std::int64_t>(it.size()) - shift;
    b.len[static_cast<std::size_t>(w)] = static_cast<std::int32_t>(std::max<std::int64_t>(len, 0));
    for (std::int64_t t = 0; t < len; ++t) {
      const auto at = static_cast<std::size_t>(t * b.B + w);
      b.item[at] = it[static_cast<std::size_t>(t)];
      b.type[at] = ty[static_cast<std::size_t>(t)];
      if (!times.empty()) {
        const auto& tm = times[static_cast<std::size_t>(w)];
        b.gap[at] =
            gap_bucket(tm[static_cast<std::size_t>(t) + 1] - tm[static_cast<std::size_t>(t)]);
      }
      if (targets) b.target[at] = it[static_cast<std::size_t>(t + 1)];
    }
  }
  return b;
}

std::int64_t Batch::n_targets() const {
  return std::count_if(target.begin(), target.end(), [](std::int32_t v) { return v >= 0; });
}

template <class T>
void GruNet<T>::init(std::uint64_t seed) {
  const std::int64_t D = shape_.dim;
  const double emb = 1.0 / std::sqrt(static_cast<double>(D));
  const auto fill = [&](std::int64_t off, std::int64_t n, double scale, std::uint64_t tag) {
    for (std::int64_t k = 0; k < n; ++k) {
      const double u = rng::unit_uniform(rng::hash_keys(seed, tag, static_cast<std::uint64_t>(k)));
      params_[static_cast<std::size_t>(off + k)] = static_cast<T>((2 * u - 1) * scale);
    }
  };
  fill(layout_.item_emb, shape_.n_items * D, emb, 0x5e01);
  fill(layout_.type_emb, shape_.n_types * D, emb, 0x5e02);
  fill(layout_.gap_emb, shape_.n_gaps * D, emb, 0x5e06);
  fill(layout_.wx, 3 * D * D, emb, 0x5e03);
  fill(layout_.wh, 3 * D * D, emb, 0x5e04);
  if (!shape_.tied) fill(layout_.out_w, shape_.n_items * D, emb, 0x5e05);
  std::fill(params_.begin() + layout_.bx, params_.begin() + layout_.bh + 3 * D, T(0));
  std::fill(params_.begin() + layout_.out_b, params_.end(), T(0));
}

template <class T>
void GruNet<T>::forward(const Batch& b) {
  const std::int64_t D = shape_.dim, B = b.B, TB = b.B * b.T;
  const CMatMap E = W(layout_.item_emb, shape_.n_items, D);
  const CMatMap Ety = W(layout_.type_emb, shape_.n_types, D);
  const CMatMap Eg = W(layout_.gap_emb, shape_.n_gaps, D);
  const bool gaps = shape_.n_gaps > 0;
  if (gaps && std::ssize(b.gap) != TB)
    throw UsageError("sequence: the model reads time gaps; the batch has none");
  X_.setZero(TB, D);
  for (std::int64_t k = 0; k < TB; ++k) {
    const std::int32_t i = b.item[static_cast<std::size_t>(k)];
    if (i < 0) continue;
    X_.row(k) = E.row(i) + Ety.row(b.type[static_cast<std::size_t>(k)]);
    if (gaps) X_.row(k) += Eg.row(b.gap[static_cast<std::size_t>(k)]);
    if (!b.drop_in.empty())
      for (std::int64_t d = 0; d < D; ++d)
        X_(k, d) *= static_cast<T>(b.drop_in[static_cast<std::size_t>(k * D + d)]);
  }
  const CMatMap Wx = W(layout_.wx, D, 3 * D), Wh = W(layout_.wh, D, 3 * D);
  const CMatMap bx = W(layout_.bx, 1, 3 * D), bh = W(layout_.bh, 1, 3 * D);
  GX_.noalias() = X_ * Wx;
  GX_.rowwise() += bx.row(0);
  Z_.resize(TB, D);
  R_.resize(TB, D);
  N_.resize(TB, D);
  NH_.resize(TB, D);
  H_.resize(TB, D);
  Matrix GH(B, 3 * D);
  for (std::int64_t t = 0; t < b.T; ++t) {
    const std::int64_t r0 = t * B;
    if (t == 0) {
      GH = bh.replicate(B, 1);
    } else {
      GH.noalias() = H_.middleRows(r0 - B, B) * Wh;
      GH.rowwise() += bh.row(0);
    }
    auto z = Z_.middleRows(r0, B).array();
    auto r = R_.middleRows(r0, B).array();
    auto n = N_.middleRows(r0, B).array();
    const auto gx = GX_.middleRows(r0, B);
    z = T(1) / (T(1) + (-(gx.leftCols(D).array() + GH.leftCols(D).array())).exp());
    r = T(1) / (T(1) + (-(gx.middleCols(D, D).array() + GH.middleCols(D, D).array())).exp());
    NH_.middleRows(r0, B) = GH.rightCols(D);
    n = (gx.rightCols(D).array() + r * GH.rightCols(D).array()).tanh();
    if (t == 0)
      H_.middleRows(r0, B) = ((T(1) - z) * n).matrix();
    else
      H_.middleRows(r0, B) = ((T(1) - z) * n + z * H_.middleRows(r0 - B, B).array()).matrix();
  }
}

template <class T>
std::vector<std::int64_t> GruNet<T>::target_rows(const Batch& b) const {
  std::vector<std::int64_t> rows;
  for (std::int64_t k = 0; k < b.B * b.T; ++k)
    if (b.target[static_cast<std::size_t>(k)] >= 0) rows.push_back(k);
  return rows;
}

template <class T>
void GruNet<T>::scored_states(const Batch& b, const std::int64_t* rows, std::int64_t m,
                              T* out) const {
  const std::int64_t D = shape_.dim;
  MatMap Hc(out, m, D);
  for (std::int64_t q = 0; q < m; ++q) Hc.row(q) = H_.row(rows[q]);
  if (!b.drop_out.empty())
    for (std::int64_t q = 0; q < m; ++q)
      for (std::int64_t d = 0; d < D; ++d)
        Hc(q, d) *= static_cast<T>(b.drop_out[static_cast<std::size_t>(rows[q] * D + d)]);
}

template <class T>
double GruNet<T>::loss_and_grad(const Batch& b, T* grad) {
  const std::int64_t D = shape_.dim, TB = b.B * b.T, NI = shape_.n_items;
  if (TB == 0) return 0;
  forward(b);
  // Output layer over the positions with a target, in chunks of rows.
  const std::vector<std::int64_t> rows = target_rows(b);
  const CMatMap Wo = W(layout_.out_w, NI, D);
  MatMap dWo(grad + layout_.out_w, NI, D);
  MatMap dbo(grad + layout_.out_b, 1, NI);
  const CMatMap bo = W(layout_.out_b, 1, NI);
  Matrix dH = Matrix::Zero(TB, D);
  double loss = 0;
  Matrix Hc, S, dHc;
  for (std::size_t c0 = 0; c0 < rows.size(); c0 += kChunk) {
    const auto m = static_cast<std::int64_t>(std::min<std::size_t>(kChunk, rows.size() - c0));
    Hc.resize(m, D);
    scored_states(b, rows.data() + c0, m, Hc.data());
    S.noalias() = Hc * Wo.transpose();
    S.rowwise() += bo.row(0);
    for (std::int64_t q = 0; q < m; ++q) {
      auto s = S.row(q).array();
      const T mx = s.maxCoeff();
      s = (s - mx).exp();
      const T sum = s.sum();
      s /= sum;
      const std::int32_t y = b.target[static_cast<std::size_t>(rows[c0 + q])];
      loss -= std::log(std::max<double>(static_cast<double>(s(y)), 1e-300));
      s(y) -= T(1);
    }
    dWo.noalias() += S.transpose() * Hc;
    dbo += S.colwise().sum();
    dHc.noalias() = S * Wo;
    for (std::int64_t q = 0; q < m; ++q) dH.row(rows[c0 + q]) = dHc.row(q);
  }
  if (!b.drop_out.empty()) dH.array() *= drop_mask<T>(b.drop_out, TB, D).array();
  backward(b, dH, grad);
  return loss;
}

template <class T>
double GruNet<T>::loss_and_grad_split(const Batch& b, T* grad, const mlp::ItemExchange<T>& ex,
                                      std::span<const std::int64_t> cols) {
  const int P = ex.size(), me = ex.rank();
  const std::int64_t D = shape_.dim, TB = b.B * b.T, NI = shape_.n_items;
  if (std::ssize(cols) != P + 1 || cols.front() != 0 || cols.back() != NI)
    throw UsageError("sequence: the item-parallel step needs one item range per rank");
  const std::int64_t c0 = cols[static_cast<std::size_t>(me)];
  const std::int64_t nc = cols[static_cast<std::size_t>(me) + 1] - c0;
  if (TB > 0) forward(b);
  // Every rank's scored states, in rank order (Hall: N x D) and their targets (N).
  const std::vector<std::int64_t> rows = target_rows(b);
  const auto n = static_cast<std::int64_t>(rows.size());
  const std::vector<std::int64_t> rows_of = ex.allgatherv(std::span<const std::int64_t>(&n, 1));
  std::vector<std::int64_t> off(static_cast<std::size_t>(P) + 1, 0);
  for (int r = 0; r < P; ++r)
    off[static_cast<std::size_t>(r) + 1] =
        off[static_cast<std::size_t>(r)] + rows_of[static_cast<std::size_t>(r)];
  const std::int64_t N = off.back(), r0 = off[static_cast<std::size_t>(me)];
  for (auto& x : off) x *= D;  // element offsets of each rank's block of Hall and dHall
  Matrix Hall(N, D), dHall = Matrix::Zero(N, D);
  scored_states(b, rows.data(), n, Hall.data() + r0 * D);
  ex.allgather_blocks(std::span<T>(Hall.data(), static_cast<std::size_t>(N * D)),
                      std::span<const std::int64_t>(off));
  std::vector<std::int32_t> y_local(static_cast<std::size_t>(n));
  for (std::int64_t q = 0; q < n; ++q)
    y_local[static_cast<std::size_t>(q)] = b.target[static_cast<std::size_t>(rows[q])];
  const std::vector<std::int32_t> y = ex.allgatherv(std::span<const std::int32_t>(y_local));

  // This rank's items: scores S = Hall Wo[c0:c0+nc]^T + bo (chunks of rows x nc).
  const CMatMap Wo = W(layout_.out_w + c0 * D, nc, D);
  const CMatMap bo = W(layout_.out_b + c0, 1, nc);
  MatMap dWo(grad + layout_.out_w + c0 * D, nc, D);
  MatMap dbo(grad + layout_.out_b + c0, 1, nc);
  double loss = 0;
  Matrix S;
  std::vector<T> mx;
  std::vector<double> sum;
  for (std::int64_t q0 = 0; q0 < N; q0 += kChunk) {
    const std::int64_t m = std::min(kChunk, N - q0);
    const auto Hc = Hall.middleRows(q0, m);
    S.resize(m, nc);
    if (nc > 0) {
      S.noalias() = Hc * Wo.transpose();
      S.rowwise() += bo.row(0);
    }
    // Per row: the maximum over every rank's items, then the sum of exp(s - max).
    mx.assign(static_cast<std::size_t>(m), -std::numeric_limits<T>::infinity());
    for (std::int64_t q = 0; q < m && nc > 0; ++q)
      mx[static_cast<std::size_t>(q)] = S.row(q).maxCoeff();
    ex.allreduce_max(std::span<T>(mx));
    sum.assign(static_cast<std::size_t>(m), 0.0);
    for (std::int64_t q = 0; q < m; ++q) {
      const std::int32_t t = y[static_cast<std::size_t>(q0 + q)];
      if (t >= c0 && t < c0 + nc) loss -= static_cast<double>(S(q, t - c0));  // the target's score
      S.row(q).array() = (S.row(q).array() - mx[static_cast<std::size_t>(q)]).exp();
      sum[static_cast<std::size_t>(q)] = static_cast<double>(S.row(q).sum());
    }
    ex.allreduce_sum(std::span<double>(sum));
    for (std::int64_t q = 0; q < m; ++q) {
      const auto s = sum[static_cast<std::size_t>(q)];
      if (q0 + q >= r0 && q0 + q < r0 + n)  // the row's log-partition, counted by its rank
        loss += std::log(s) + static_cast<double>(mx[static_cast<std::size_t>(q)]);
      S.row(q) *= static_cast<T>(1.0 / s);
      const std::int32_t t = y[static_cast<std::size_t>(q0 + q)];
      if (t >= c0 && t < c0 + nc) S(q, t - c0) -= T(1);
    }
    if (nc > 0) {
      dWo.noalias() += S.transpose() * Hc;
      dbo += S.colwise().sum();
      dHall.middleRows(q0, m).noalias() = S * Wo;
    }
  }
  // Each rank's rows of dHall summed over the ranks' items, back in its positions.
  ex.reduce_scatter(std::span<T>(dHall.data(), static_cast<std::size_t>(N * D)),
                    std::span<const std::int64_t>(off));
  if (TB == 0) return loss;
  Matrix dH = Matrix::Zero(TB, D);
  for (std::int64_t q = 0; q < n; ++q)
    dH.row(rows[static_cast<std::size_t>(q)]) = dHall.row(r0 + q);
  if (!b.drop_out.empty()) dH.array() *= drop_mask<T>(b.drop_out, TB, D).array();
  backward(b, dH, grad);
  return loss;
}

template <class T>
void GruNet<T>::backward(const Batch& b, const Matrix& dH, T* grad) {
  const std::int64_t D = shape_.dim, B = b.B, TB = b.B * b.T, NI = shape_.n_items;
  // Backward through time.
  const CMatMap Wx = W(layout_.wx, D, 3 * D), Wh = W(layout_.wh, D, 3 * D);
  Matrix dGX(TB, 3 * D), dGH(TB, 3 * D);
  Matrix dh_next = Matrix::Zero(B, D), dh(B, D);
  for (std::int64_t t = b.T - 1; t >= 0; --t) {
    const std::int64_t r0 = t * B;
    dh = dH.middleRows(r0, B) + dh_next;
    const auto z = Z_.middleRows(r0, B).array();
    const auto r = R_.middleRows(r0, B).array();
    const auto n = N_.middleRows(r0, B).array();
    const auto dha = dh.array();
    // d(pre-activation) of n, z, r.
    auto dan = dGX.middleRows(r0, B).rightCols(D).array();
    auto daz = dGX.middleRows(r0, B).leftCols(D).array();
    auto dar = dGX.middleRows(r0, B).middleCols(D, D).array();
    dan = dha * (T(1) - z) * (T(1) - n * n);
    if (t > 0)
      daz = dha * (H_.middleRows(r0 - B, B).array() - n) * z * (T(1) - z);
    else
      daz = dha * (-n) * z * (T(1) - z);
    dar = dan * NH_.middleRows(r0, B).array() * r * (T(1) - r);
    dGH.middleRows(r0, B).leftCols(2 * D) = dGX.middleRows(r0, B).leftCols(2 * D);
    dGH.middleRows(r0, B).rightCols(D) = (dan * r).matrix();
    dh_next.noalias() = dGH.middleRows(r0, B) * Wh.transpose();
    dh_next.array() += dha * z;
  }
  MatMap dWx(grad + layout_.wx, D, 3 * D), dWh(grad + layout_.wh, D, 3 * D);
  MatMap dbx(grad + layout_.bx, 1, 3 * D), dbh(grad + layout_.bh, 1, 3 * D);
  dWx.noalias() += X_.transpose() * dGX;
  dbx += dGX.colwise().sum();
  dbh += dGH.colwise().sum();
  if (b.T > 1) dWh.noalias() += H_.topRows(TB - B).transpose() * dGH.bottomRows(TB - B);
  Matrix dX = dGX * Wx.transpose();
  if (!b.drop_in.empty())
    for (std::int64_t k = 0; k < TB; ++k)
      for (std::int64_t d = 0; d < D; ++d)
        dX(k, d) *= static_cast<T>(b.drop_in[static_cast<std::size_t>(k * D + d)]);
  MatMap dE(grad + layout_.item_emb, NI, D), dEt(grad + layout_.type_emb, shape_.n_types, D);
  MatMap dEg(grad + layout_.gap_emb, shape_.n_gaps, D);
  for (std::int64_t k = 0; k < TB; ++k) {
    const std::int32_t i = b.item[static_cast<std::size_t>(k)];
    if (i < 0) continue;
    dE.row(i) += dX.row(k);
    dEt.row(b.type[static_cast<std::size_t>(k)]) += dX.row(k);
    if (shape_.n_gaps > 0) dEg.row(b.gap[static_cast<std::size_t>(k)]) += dX.row(k);
  }
}

template <class T>
typename GruNet<T>::Matrix GruNet<T>::final_states(const Batch& b) {
  const std::int64_t D = shape_.dim;
  Matrix out = Matrix::Zero(b.B, D);
  if (b.B * b.T == 0) return out;
  forward(b);
  for (std::int64_t w = 0; w < b.B; ++w) {
    const std::int32_t len = b.len[static_cast<std::size_t>(w)];
    if (len > 0) out.row(w) = H_.row((len - 1) * b.B + w);
  }
  return out;
}

template <class T>
typename GruNet<T>::Matrix GruNet<T>::scores(const Matrix& H) const {
  const std::int64_t NI = shape_.n_items;
  Matrix S = H * W(layout_.out_w, NI, shape_.dim).transpose();
  S.rowwise() += W(layout_.out_b, 1, NI).row(0);
  return S;
}

template class GruNet<float>;
template class GruNet<double>;

}  // namespace segrec::seq
