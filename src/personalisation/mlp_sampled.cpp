// The sampled softmax of the output layer (Loss::kSampledSoftmax), shared by the
// one-process step and the item-parallel step (each rank its column range).
//
// Per row u: Z^_u = sum_{i in T_u} exp(z_ui) + sum_{j in S \ T_u} exp(z_uj - c_j), with T_u the
// row's targets (exact terms), S the batch's negatives and c_j their offsets; the loss is
// sum_{i in T_u} x_ui (log Z^_u - z_ui). Cost per row: h x (|S| + |T_u|) instead of h x items.
// GCC 12 reports false "(may be) used uninitialized" warnings inside Eigen's AVX-512 kernels.
#if defined(__GNUC__) && !defined(__clang__)  // a GCC-only warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <cmath>
#include <limits>

#include "segrec/personalisation/mlp.hpp"

namespace segrec::mlp {

template <class T>
double Network<T>::loss_sampled(
    const Batch<T>& bt, const T* Hp, std::int64_t N, const std::vector<std::int64_t>& tp,
    const std::vector<std::int32_t>& ti, const std::vector<T>& tv, std::int64_t c0, std::int64_t c1,
    std::int64_t own0, std::int64_t own1,
    const std::function<void(std::vector<T>&, std::vector<double>&)>& combine, T* gWp,
    std::int64_t ldg, T* gbp, T* dHp) {
  const int L = shape_.n_layers();
  const std::int64_t h = shape_.fan_in(L - 1), n_out = shape_.n_out, nc = c1 - c0;
  const CMatMap Wo(params_.data() + layout_.w[L - 1], h, n_out);
  const CVecMap bo(params_.data() + layout_.b[L - 1], n_out);
  const CMatMap H(Hp, N, h);
  MatMap dH(dHp, N, h);
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();

  // The candidates in range: the negatives (rows [0, ns) of Wt_), then the targets that are not
  // negatives; slot_ maps an item to its row.
  if (std::ssize(slot_) != n_out) slot_.assign(static_cast<std::size_t>(n_out), -1);
  const auto lo = std::lower_bound(bt.neg_idx.begin(), bt.neg_idx.end(), c0);
  const auto hi = std::lower_bound(lo, bt.neg_idx.end(), c1);
  const auto nlo = static_cast<std::int64_t>(lo - bt.neg_idx.begin());
  const auto ns = static_cast<std::int64_t>(hi - lo);
  std::vector<std::int32_t> items(lo, hi);
  for (std::int64_t j = 0; j < ns; ++j) slot_[items[j]] = static_cast<std::int32_t>(j);
  const std::int64_t nnz = tp[static_cast<std::size_t>(N)];
  for (std::int64_t k = 0; k < nnz; ++k)
    if (ti[k] >= c0 && ti[k] < c1 && slot_[ti[k]] < 0) {
      slot_[ti[k]] = static_cast<std::int32_t>(items.size());
      items.push_back(ti[k]);
    }
  const auto nu = std::ssize(items);
  if (Wt_.rows() < nu || Wt_.cols() != h) {
    Wt_.resize(std::max(nu, Wt_.rows()), h);
    gWt_.resize(Wt_.rows(), h);
  }
  std::vector<T> bu(static_cast<std::size_t>(nu));
  for (std::int64_t j = 0; j < nu; ++j) {
    Wt_.row(j) = Wo.col(items[j]).transpose();
    bu[j] = bo(items[j]) - (j < ns ? bt.neg_corr[nlo + j] : T(0));
  }
  const auto Wn = Wt_.topRows(ns);

  // Logits: the negatives (N x ns, a row's own targets masked to -inf), the targets (one per
  // entry of the CSR, in range). Per row the partial maximum, exp sum and targets' x z.
  if (Zc_.rows() < N || Zc_.cols() != ns) Zc_.resize(std::max(N, Zc_.rows()), ns);
  auto Z = Zc_.topRows(N);
  if (ns > 0 && N > 0) {
    Z.noalias() = H * Wn.transpose();
    for (std::int64_t j = 0; j < ns; ++j) Z.col(j).array() += bu[j];
  }
  std::vector<T> zp(static_cast<std::size_t>(nnz), kNegInf);
  std::vector<T> mloc(static_cast<std::size_t>(N), kNegInf);
  std::vector<double> st(static_cast<std::size_t>(2 * N), 0.0);
  const auto mine = [&](std::int64_t k) { return ti[k] >= c0 && ti[k] < c1; };
  for (std::int64_t r = 0; r < N; ++r) {
    auto z = Z.row(r);
    double tz = 0;
    T m = kNegInf;
    for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k) {
      if (!mine(k)) continue;
      const std::int32_t j = slot_[ti[k]];
      zp[k] = H.row(r).dot(Wt_.row(j)) + bo(ti[k]);
      if (j < ns) z(j) = kNegInf;
      tz += static_cast<double>(tv[k]) * static_cast<double>(zp[k]);
      m = std::max(m, zp[k]);
    }
    if (ns > 0) m = std::max(m, z.maxCoeff());
    mloc[r] = m;
    if (m == kNegInf) continue;  // no candidate of this row in range
    double s = 0;
    for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k)
      if (mine(k)) s += std::exp(static_cast<double>(zp[k] - m));
    if (ns > 0) {
      z.array() = (z.array() - m).exp();
      s += static_cast<double>(z.sum());
    }
    st[2 * r] = s;
    st[2 * r + 1] = tz;
  }
  std::vector<T> mx(mloc);
  combine(mx, st);  // rescales st by exp(mloc - mx) where ranks differ

  // dL/dz = tsum exp(z - M) / S - x on every candidate; gradients of Wt_ rows, the bias and H.
  gWt_.topRows(nu).setZero();
  std::vector<T> gbu(static_cast<std::size_t>(nu), T(0));
  double loss = 0;
  for (std::int64_t r = 0; r < N; ++r) {
    auto z = Z.row(r);
    T tsum = 0;
    for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k) tsum += tv[k];
    if (tsum == T(0) || st[2 * r] == 0) {
      if (ns > 0) z.setZero();
      for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k) zp[k] = 0;
      continue;
    }
    const double inv = static_cast<double>(tsum) / st[2 * r];
    if (ns > 0 && mloc[r] != kNegInf)
      z *= static_cast<T>(inv * std::exp(static_cast<double>(mloc[r]) - mx[r]));
    else if (ns > 0)
      z.setZero();
    for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k)
      if (mine(k))
        zp[k] = static_cast<T>(inv * std::exp(static_cast<double>(zp[k] - mx[r]))) - tv[k];
    if (r >= own0 && r < own1)
      loss += static_cast<double>(tsum) * (static_cast<double>(mx[r]) + std::log(st[2 * r])) -
              st[2 * r + 1];
  }
  // Negatives: dense products; targets: one row update each.
  if (N > 0) {
    if (ns > 0) {
      gWt_.topRows(ns).noalias() = Z.transpose() * H;
      dH.noalias() = Z * Wn;
      for (std::int64_t j = 0; j < ns; ++j) gbu[j] = Z.col(j).sum();
    } else {
      dH.setZero();
    }
  }
  for (std::int64_t r = 0; r < N; ++r)
    for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k) {
      if (!mine(k) || zp[k] == T(0)) continue;
      const std::int32_t j = slot_[ti[k]];
      gWt_.row(j).noalias() += zp[k] * H.row(r);
      dH.row(r).noalias() += zp[k] * Wt_.row(j);
      gbu[j] += zp[k];
    }
  // Scatter onto the range's columns; every other column of the range gets zero.
  MatMap gW(gWp, h, ldg);
  VecMap gb(gbp, nc);
  for (std::int64_t i = 0; i < h; ++i) std::fill(gWp + i * ldg, gWp + i * ldg + nc, T(0));
  gb.setZero();
  for (std::int64_t j = 0; j < nu; ++j) {
    const std::int64_t c = items[j] - c0;
    gW.col(c) = gWt_.row(j).transpose();
    gb(c) = gbu[j];
    slot_[items[j]] = -1;
  }
  return loss;
}

template double Network<float>::loss_sampled(
    const Batch<float>&, const float*, std::int64_t, const std::vector<std::int64_t>&,
    const std::vector<std::int32_t>&, const std::vector<float>&, std::int64_t, std::int64_t,
    std::int64_t, std::int64_t,
    const std::function<void(std::vector<float>&, std::vector<double>&)>&, float*, std::int64_t,
    float*, float*);
template double Network<double>::loss_sampled(
    const Batch<double>&, const double*, std::int64_t, const std::vector<std::int64_t>&,
    const std::vector<std::int32_t>&, const std::vector<double>&, std::int64_t, std::int64_t,
    std::int64_t, std::int64_t,
    const std::function<void(std::vector<double>&, std::vector<double>&)>&, double*, std::int64_t,
    double*, double*);

}  // namespace segrec::mlp
