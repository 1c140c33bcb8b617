// GCC 12 reports false "(may be) used uninitialized" warnings inside Eigen's
// AVX-512 kernels (GEMM for double; the _mm512_undefined_* operands of its
// vectorised exp); they are not about this code.
#if defined(__GNUC__) && !defined(__clang__)  // a GCC-only warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"

#include "segrec/personalisation/mlp.hpp"
#include "segrec/core/random.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"

namespace segrec::mlp {

Activation parse_activation(const std::string& s) {
  if (s == "relu") return Activation::kRelu;
  if (s == "tanh") return Activation::kTanh;
  require(false, "activation", s, "use relu or tanh");
  return Activation::kRelu;
}

Loss parse_loss(const std::string& s) {
  if (s == "softmax") return Loss::kSoftmax;
  if (s == "bce") return Loss::kBce;
  if (s == "sampled-softmax") return Loss::kSampledSoftmax;
  require(false, "loss", s, "use softmax, sampled-softmax or bce");
  return Loss::kSoftmax;
}

std::string to_string(Activation a) { return a == Activation::kRelu ? "relu" : "tanh"; }
std::string to_string(Loss l) {
  return l == Loss::kSoftmax ? "softmax" : l == Loss::kBce ? "bce" : "sampled-softmax";
}

void Shape::check() const {
  require(n_out > 0, "data", n_out, "the network needs at least one item to predict");
  require(sparse_in >= 0 && dense_in >= 0 && in_dim() > 0, "input", in_dim(),
          "the network needs a non-empty input");
  for (auto h : hidden) require(h > 0, "hidden", h, "every hidden layer needs at least one unit");
  require(embed_dim >= 0 && n_segments >= 0 && (n_segments > 0) == (embed_dim > 0),
          "segment-embedding", embed_dim, "a segment embedding needs segments and a width > 0");
  require(loss != Loss::kSampledSoftmax || !hidden.empty(), "loss", "sampled-softmax",
          "the sampled softmax needs a hidden layer (--hidden)");
}

Layout::Layout(const Shape& s) {
  std::int64_t off = 0;
  for (int l = 0; l < s.n_layers(); ++l) {
    w.push_back(off);
    off += s.fan_in(l) * s.fan_out(l);
    b.push_back(off);
    off += s.fan_out(l);
  }
  emb = off;
  off += s.n_segments * s.embed_dim;
  size = off;
}

std::vector<std::pair<std::int64_t, std::int64_t>> Layout::decayed_ranges(const Shape& s) const {
  std::vector<std::pair<std::int64_t, std::int64_t>> r;
  for (int l = 0; l < s.n_layers(); ++l) r.emplace_back(w[l], w[l] + s.fan_in(l) * s.fan_out(l));
  if (size > emb) r.emplace_back(emb, size);
  return r;
}

template <class T>
Network<T>::Network(const Shape& shape) : shape_(shape), layout_(shape) {
  shape_.check();
  params_.assign(static_cast<std::size_t>(layout_.size), T(0));
  A_.resize(static_cast<std::size_t>(shape_.n_layers()));
  H_.resize(shape_.hidden.size());
  M_.resize(shape_.hidden.size());
  G_.resize(shape_.hidden.size());
}

template <class T>
void Network<T>::init(std::uint64_t seed) {
  // Box-Muller from two uniforms hashed from (seed, index).
  auto normal = [seed](std::int64_t index) {
    const std::uint64_t h =
        hash_keys(seed, 0x6d6c702d696e6974ULL, static_cast<std::uint64_t>(index));
    const double u1 = 1.0 - unit_uniform(h);  // (0, 1]
    const double u2 = unit_uniform(splitmix64(h));
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  };
  std::fill(params_.begin(), params_.end(), T(0));
  for (int l = 0; l < shape_.n_layers(); ++l) {
    const double fi = static_cast<double>(shape_.fan_in(l));
    const double fo = static_cast<double>(shape_.fan_out(l));
    const double sd =
        shape_.activation == Activation::kRelu ? std::sqrt(2.0 / fi) : std::sqrt(2.0 / (fi + fo));
    const std::int64_t n = shape_.fan_in(l) * shape_.fan_out(l);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t k = layout_.w[l] + i;
      params_[static_cast<std::size_t>(k)] = static_cast<T>(sd * normal(k));
    }
  }
  if (shape_.embed_dim > 0) {
    const double sd = 1.0 / std::sqrt(static_cast<double>(shape_.embed_dim));
    for (std::int64_t k = layout_.emb; k < layout_.size; ++k)
      params_[static_cast<std::size_t>(k)] = static_cast<T>(sd * normal(k));
  }
}

template <class T>
void Network<T>::reserve_rows(std::int64_t rows) {
  if (rows <= capacity_) return;
  capacity_ = rows;
  for (int l = 0; l < shape_.n_layers(); ++l) A_[l].resize(capacity_, shape_.fan_out(l));
  for (std::size_t l = 0; l < shape_.hidden.size(); ++l) {
    G_[l].resize(capacity_, shape_.hidden[l]);
    H_[l].resize(0, 0);  // allocated on first use with dropout
    M_[l].resize(0, 0);
  }
  if (shape_.embed_dim > 0) Emb_.resize(capacity_, shape_.embed_dim);
}

template <class T>
void Network<T>::forward(const Batch<T>& bt, T dropout) {
  forward_impl(bt, dropout, /*output_bias=*/true);
}

// With output_bias false (and a hidden layer), the output layer's bias is left
// for the loss to add row by row, while each row is in cache.
template <class T>
void Network<T>::forward_impl(const Batch<T>& bt, T dropout, bool output_bias, bool skip_output,
                              const T* sparse_part) {
  const int L = shape_.n_layers();
  bias_pending_ = false;
  const std::int64_t n = bt.rows;
  rows_ = n;
  reserve_rows(n);
  if (n == 0) return;

  // Layer 0: bias, then the sparse, dense and embedding parts of the input.
  {
    auto A = A_[0].topRows(n);
    const auto b0 = b(0).transpose();
    for (std::int64_t r = 0; r < n; ++r) A.row(r) = b0;
    const CMatMap W0(params_.data() + layout_.w[0], shape_.in_dim(), shape_.fan_out(0));
    if (sparse_part != nullptr) {
      A.noalias() += CMatMap(sparse_part, n, shape_.fan_out(0));
    } else if (shape_.sparse_in > 0) {
      for (std::int64_t r = 0; r < n; ++r) {
        auto Ar = A.row(r);
        for (std::int64_t k = bt.in_ptr[r]; k < bt.in_ptr[r + 1]; ++k)
          Ar.noalias() += bt.in_val[k] * W0.row(bt.in_idx[k]);
      }
    }
    if (shape_.dense_in > 0) {
      const CMatMap X(bt.dense.data(), n, shape_.dense_in);
      A.noalias() += X * W0.middleRows(shape_.sparse_in, shape_.dense_in);
    }
    if (shape_.embed_dim > 0) {
      auto E = Emb_.topRows(n);
      const auto table = embedding();
      for (std::int64_t r = 0; r < n; ++r) E.row(r) = table.row(bt.segment[r]);
      A.noalias() += E * W0.bottomRows(shape_.embed_dim);
    }
  }

  for (int l = 0; l + 1 < L; ++l) {
    auto S = A_[l].topRows(n);
    if (shape_.activation == Activation::kRelu)
      S.array() = S.array().max(T(0));
    else
      S.array() = S.array().tanh();
    const Matrix* in = &A_[l];
    if (dropout > 0) {
      const std::int64_t w = shape_.hidden[l];
      if (M_[l].rows() < capacity_) {
        M_[l].resize(capacity_, w);
        H_[l].resize(capacity_, w);
      }
      const T scale = T(1) / (T(1) - dropout);
      const double p = static_cast<double>(dropout);
      for (std::int64_t r = 0; r < n; ++r) {
        const std::uint64_t k = splitmix64(hash_keys(bt.key[r], static_cast<std::uint64_t>(l)));
        for (std::int64_t u = 0; u < w; ++u)
          M_[l](r, u) =
              unit_uniform(splitmix64(k ^ static_cast<std::uint64_t>(u))) >= p ? scale : T(0);
      }
      H_[l].topRows(n).array() = S.array() * M_[l].topRows(n).array();
      in = &H_[l];
    }
    if (skip_output && l + 2 == L) break;
    auto Anext = A_[l + 1].topRows(n);
    if (l + 2 == L && !output_bias) {
      Anext.noalias() = in->topRows(n) * W(l + 1);
      bias_pending_ = true;
      continue;
    }
    const auto bn = b(l + 1).transpose();
    for (std::int64_t r = 0; r < n; ++r) Anext.row(r) = bn;
    Anext.noalias() += in->topRows(n) * W(l + 1);
  }
}

template <class T>
double Network<T>::loss_softmax(const Batch<T>& bt, T* gb_out) {
  auto Z = out_().topRows(rows_);
  const auto bias = b(shape_.n_layers() - 1).transpose();
  const bool want_grad = gb_out != nullptr;
  double total = 0;
  for (std::int64_t r = 0; r < rows_; ++r) {
    auto z = Z.row(r);
    if (bias_pending_) z += bias;
    T tsum = 0;
    double tz = 0;
    for (std::int64_t k = bt.tgt_ptr[r]; k < bt.tgt_ptr[r + 1]; ++k) {
      tsum += bt.tgt_val[k];
      tz += static_cast<double>(bt.tgt_val[k]) * static_cast<double>(z(bt.tgt_idx[k]));
    }
    if (tsum == T(0)) {
      if (want_grad) z.setZero();
      continue;
    }
    const T m = z.maxCoeff();
    T s;
    if (want_grad) {
      z.array() = (z.array() - m).exp();
      s = z.sum();
      z *= tsum / s;
      for (std::int64_t k = bt.tgt_ptr[r]; k < bt.tgt_ptr[r + 1]; ++k)
        z(bt.tgt_idx[k]) -= bt.tgt_val[k];
      if (bias_pending_) VecMap(gb_out, shape_.n_out) += z.transpose();
    } else {
      s = (z.array() - m).exp().sum();
    }
    total +=
        static_cast<double>(tsum) * (static_cast<double>(m) + std::log(static_cast<double>(s))) -
        tz;
  }
  return total;
}

template <class T>
double Network<T>::loss_bce(const Batch<T>& bt, T* gb_out) {
  auto Z = out_().topRows(rows_);
  const auto bias = b(shape_.n_layers() - 1).transpose();
  const bool want_grad = gb_out != nullptr;
  double total = 0;
  for (std::int64_t r = 0; r < rows_; ++r) {
    auto z = Z.row(r);
    if (bias_pending_) z += bias;
    double tz = 0;
    for (std::int64_t k = bt.tgt_ptr[r]; k < bt.tgt_ptr[r + 1]; ++k)
      tz += static_cast<double>(bt.tgt_val[k]) * static_cast<double>(z(bt.tgt_idx[k]));
    // softplus(z) = max(z, 0) + log1p(exp(-|z|))
    const T sp = (z.array().max(T(0)) + (-z.array().abs()).exp().log1p()).sum();
    total += static_cast<double>(sp) - tz;
    if (want_grad) {
      z.array() = T(1) / (T(1) + (-z.array()).exp());
      for (std::int64_t k = bt.tgt_ptr[r]; k < bt.tgt_ptr[r + 1]; ++k)
        z(bt.tgt_idx[k]) -= bt.tgt_val[k];
      if (bias_pending_) VecMap(gb_out, shape_.n_out) += z.transpose();
    }
  }
  return total;
}

template <class T>
double Network<T>::loss_and_grad(const Batch<T>& bt, T dropout, T* grad, int first_layer,
                                 const GradReady* buckets) {
  if (shape_.loss == Loss::kSampledSoftmax) {
    // The output layer only on the candidates: its input, then the sampled loss on every column.
    const int L = shape_.n_layers();
    const std::int64_t h = shape_.fan_in(L - 1), n = bt.rows;
    forward_impl(bt, dropout, /*output_bias=*/false, /*skip_output=*/true);
    const T* H = n > 0 ? top_input(dropout).data() : nullptr;
    if (dHall_.rows() < n || dHall_.cols() != h) dHall_.resize(std::max(n, dHall_.rows()), h);
    std::vector<T> scratch;
    if (grad == nullptr) scratch.resize(static_cast<std::size_t>((h + 1) * shape_.n_out));
    T* gW = grad ? grad + layout_.w[L - 1] : scratch.data();
    T* gb = grad ? grad + layout_.b[L - 1] : scratch.data() + h * shape_.n_out;
    const double loss = loss_sampled(
        bt, H, n, bt.tgt_ptr, bt.tgt_idx, bt.tgt_val, 0, shape_.n_out, 0, n,
        [](std::vector<T>&, std::vector<double>&) {}, gW, shape_.n_out, gb, dHall_.data());
    if (grad == nullptr) return loss;
    if (first_layer == 0) announce(buckets, layout_.w[L - 1], layout_.b[L - 1] + shape_.n_out);
    if (first_layer > L - 2) return loss;
    if (n > 0) {
      G_[L - 2].topRows(n) = dHall_.topRows(n);
      hidden_grad(L - 2, n, dropout);
    }
    backward(bt, dropout, grad, /*output_bias_done=*/false, first_layer,
             first_layer == 0 ? buckets : nullptr, L - 2, false);
    return loss;
  }
  forward_impl(bt, dropout, /*output_bias=*/false);
  // The loss adds the output bias per row and, with a gradient, sums its gradient there.
  T* gb = grad ? grad + layout_.b[shape_.n_layers() - 1] : nullptr;
  if (gb && bias_pending_) std::fill(gb, gb + shape_.n_out, T(0));
  const bool pending = bias_pending_;
  const double loss = shape_.loss == Loss::kSoftmax ? loss_softmax(bt, gb) : loss_bce(bt, gb);
  if (grad)
    backward(bt, dropout, grad, /*output_bias_done=*/pending, first_layer,
             first_layer == 0 ? buckets : nullptr, shape_.n_layers() - 1, false);
  return loss;
}

// The CSR rows (ptr, idx, val) of every rank's slice, concatenated in rank order.
template <class T>
static void gather_csr(const ItemExchange<T>& ex, std::int64_t n,
                       const std::vector<std::int64_t>& ptr, const std::vector<std::int32_t>& idx,
                       const std::vector<T>& val, std::vector<std::int64_t>& ptr_all,
                       std::vector<std::int32_t>& idx_all, std::vector<T>& val_all) {
  const std::int64_t nnz = ptr[static_cast<std::size_t>(n)];
  std::vector<std::int64_t> len(static_cast<std::size_t>(n));
  for (std::int64_t r = 0; r < n; ++r) len[r] = ptr[r + 1] - ptr[r];
  const auto len_all = ex.allgatherv(std::span<const std::int64_t>(len));
  idx_all = ex.allgatherv(std::span<const std::int32_t>(idx.data(), nnz));
  val_all = ex.allgatherv(std::span<const T>(val.data(), nnz));
  ptr_all.assign(len_all.size() + 1, 0);
  for (std::size_t r = 0; r < len_all.size(); ++r) ptr_all[r + 1] = ptr_all[r] + len_all[r];
}

template <class T>
double Network<T>::loss_and_grad_split(const Batch<T>& bt, T dropout, T* grad, T* grad_out,
                                       const ItemExchange<T>& ex,
                                       std::span<const std::int64_t> cols,
                                       std::span<const std::int64_t> in_rows) {
  const int L = shape_.n_layers(), P = ex.size(), me = ex.rank();
  const bool split_in = !in_rows.empty();
  if (L < 2 || std::ssize(cols) != P + 1 || cols.front() != 0 || cols.back() != shape_.n_out ||
      (split_in && (std::ssize(in_rows) != P + 1 || in_rows.front() != 0 ||
                    in_rows.back() != shape_.sparse_in || shape_.sparse_in == 0)))
    throw UsageError(
        "mlp: the item-parallel step needs a hidden layer and one column range per rank");
  const std::int64_t h = shape_.hidden.back(), n = bt.rows;
  const std::int64_t c0 = cols[me], nc = cols[me + 1] - c0;
  // Runs a collective, adding its time (waiting for the other ranks included) to comm_seconds_.
  const auto timed = [this](auto&& collective) {
    const auto t0 = std::chrono::steady_clock::now();
    collective();
    comm_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };

  // The global batch: rows_of[r] rows from rank r, in rank order.
  std::vector<std::int64_t> rows_of;
  timed([&] { rows_of = ex.allgatherv(std::span<const std::int64_t>(&n, 1)); });
  std::vector<std::int64_t> row_off(static_cast<std::size_t>(P) + 1, 0);
  for (int r = 0; r < P; ++r) row_off[r + 1] = row_off[r] + rows_of[r];
  const std::int64_t N = row_off[P], r0 = row_off[me];
  const auto elem_off = [&](std::int64_t width) {
    std::vector<std::int64_t> o(row_off);
    for (auto& x : o) x *= width;
    return o;
  };

  // The sparse input split by items too: rank r holds W0's rows [in_rows[r], in_rows[r + 1]),
  // adds their part of X W0 for the whole batch and reduce-scatters it to the rows' owners.
  const std::int64_t h0 = shape_.fan_out(0);
  const std::int64_t i0 = split_in ? in_rows[me] : 0, i1 = split_in ? in_rows[me + 1] : 0;
  const auto in_off = elem_off(h0);
  std::vector<std::int64_t> xp;
  std::vector<std::int32_t> xi;
  std::vector<T> xv;
  if (split_in) {
    timed([&] { gather_csr(ex, n, bt.in_ptr, bt.in_idx, bt.in_val, xp, xi, xv); });
    if (Pin_.rows() < N) Pin_.resize(N, h0);
    auto X0 = Pin_.topRows(N);
    X0.setZero();
    const CMatMap W0(params_.data() + layout_.w[0], shape_.in_dim(), h0);
    for (std::int64_t r = 0; r < N; ++r)
      for (std::int64_t k = xp[r]; k < xp[r + 1]; ++k)
        if (xi[k] >= i0 && xi[k] < i1) X0.row(r).noalias() += xv[k] * W0.row(xi[k]);
    timed([&] {
      ex.reduce_scatter(std::span<T>(Pin_.data(), static_cast<std::size_t>(N * h0)),
                        std::span<const std::int64_t>(in_off));
    });
  }
  forward_impl(bt, dropout, /*output_bias=*/false, /*skip_output=*/true,
               split_in ? Pin_.data() + r0 * h0 : nullptr);

  // Every rank's rows of the last hidden layer (N x h) ...
  const auto hoff = elem_off(h);
  if (Hall_.rows() < N) Hall_.resize(N, h);
  if (n > 0) Hall_.middleRows(r0, n) = top_input(dropout).topRows(n);
  timed([&] {
    ex.allgather_blocks(std::span<T>(Hall_.data(), static_cast<std::size_t>(N * h)),
                        std::span<const std::int64_t>(hoff));
  });
  const auto Hall = Hall_.topRows(N);
  // ... and their targets (CSR over the N rows).
  std::vector<std::int64_t> tp;
  std::vector<std::int32_t> ti;
  std::vector<T> tv;
  timed([&] { gather_csr(ex, n, bt.tgt_ptr, bt.tgt_idx, bt.tgt_val, tp, ti, tv); });
  const auto mine = [&](std::int64_t k) { return ti[k] >= c0 && ti[k] < c0 + nc; };

  if (dHall_.rows() < N) dHall_.resize(N, h);
  auto dH = dHall_.topRows(N);
  double loss = 0;
  if (shape_.loss == Loss::kSampledSoftmax) {
    // The batch's negatives in this rank's columns and the targets there; the per-row maxima
    // and sums are combined over the ranks as for the softmax below.
    const auto combine = [&](std::vector<T>& mx, std::vector<double>& st) {
      const std::vector<T> mloc(mx);
      timed([&] { ex.allreduce_max(std::span<T>(mx)); });
      for (std::int64_t r = 0; r < N; ++r)
        st[2 * r] =
            st[2 * r] > 0 ? st[2 * r] * std::exp(static_cast<double>(mloc[r]) - mx[r]) : 0.0;
      timed([&] { ex.allreduce_sum(std::span<double>(st)); });
    };
    loss = loss_sampled(bt, Hall_.data(), N, tp, ti, tv, c0, c0 + nc, r0, r0 + n, combine, grad_out,
                        nc, grad_out + h * nc, dHall_.data());
  } else {
    // This rank's columns of the logits: Z = Hall W_out[:, cols] + b_out[cols] (N x nc).
    if (Zc_.rows() < N || Zc_.cols() != nc) Zc_.resize(std::max(N, Zc_.rows()), nc);
    auto Z = Zc_.topRows(N);
    const CMatMap Wo(params_.data() + layout_.w[L - 1], h, shape_.n_out);
    const auto Wc = Wo.middleCols(c0, nc);
    const auto bc = b(L - 1).segment(c0, nc).transpose();
    if (nc > 0 && N > 0) {
      Z.noalias() = Hall * Wc;
      Z.rowwise() += bc;
    }

    // Loss and dL/dz on this rank's columns; gb sums dL/dz over the rows (in row order, as in
    // backward(), while each row is in cache).
    MatMap gW(grad_out, h, nc);
    VecMap gb(grad_out + h * nc, nc);
    gb.setZero();
    if (shape_.loss == Loss::kSoftmax) {
      // Per row, in one pass over this rank's columns: the local maximum m_r, z <- exp(z - m_r),
      // their sum s_r and the targets' sum x z. Then the global maximum M and the global sum
      // S = sum over ranks of s_r exp(m_r - M): two allreduces of N values, no second pass.
      std::vector<T> mloc(static_cast<std::size_t>(N), -std::numeric_limits<T>::infinity());
      std::vector<double> st(static_cast<std::size_t>(2 * N), 0.0);  // (s_r, x z) per row
      for (std::int64_t r = 0; r < N && nc > 0; ++r) {
        auto z = Z.row(r);
        double tz = 0;
        for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k)
          if (mine(k)) tz += static_cast<double>(tv[k]) * static_cast<double>(z(ti[k] - c0));
        mloc[r] = z.maxCoeff();
        z.array() = (z.array() - mloc[r]).exp();
        st[2 * r] = static_cast<double>(z.sum());
        st[2 * r + 1] = tz;
      }
      std::vector<T> mx(mloc);
      timed([&] { ex.allreduce_max(std::span<T>(mx)); });
      for (std::int64_t r = 0; r < N; ++r)
        st[2 * r] *= nc > 0 ? std::exp(static_cast<double>(mloc[r]) - mx[r]) : 0.0;
      timed([&] { ex.allreduce_sum(std::span<double>(st)); });
      for (std::int64_t r = 0; r < N; ++r) {
        auto z = Z.row(r);
        T tsum = 0;
        for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k) tsum += tv[k];
        if (tsum == T(0)) {
          z.setZero();
          continue;
        }
        if (nc > 0) {
          z *= static_cast<T>(static_cast<double>(tsum) *
                              std::exp(static_cast<double>(mloc[r]) - mx[r]) / st[2 * r]);
          for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k)
            if (mine(k)) z(ti[k] - c0) -= tv[k];
          gb += z.transpose();
        }
        if (r >= r0 && r < r0 + n)
          loss += static_cast<double>(tsum) * (static_cast<double>(mx[r]) + std::log(st[2 * r])) -
                  st[2 * r + 1];
      }
    } else {
      for (std::int64_t r = 0; r < N; ++r) {
        auto z = Z.row(r);
        double tz = 0;
        for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k)
          if (mine(k)) tz += static_cast<double>(tv[k]) * static_cast<double>(z(ti[k] - c0));
        const T sp = (z.array().max(T(0)) + (-z.array().abs()).exp().log1p()).sum();
        loss += static_cast<double>(sp) - tz;
        z.array() = T(1) / (T(1) + (-z.array()).exp());
        for (std::int64_t k = tp[r]; k < tp[r + 1]; ++k)
          if (mine(k)) z(ti[k] - c0) -= tv[k];
        gb += z.transpose();
      }
    }

    // The output layer's gradient on this rank's columns is complete: the whole batch is here.
    if (N > 0)
      gW.noalias() = Hall.transpose() * Z;
    else
      gW.setZero();
    // dL/dH of every row from this rank's columns, summed over the ranks onto the rows' owners.
    if (nc > 0)
      dH.noalias() = Z * Wc.transpose();
    else
      dH.setZero();
  }
  timed([&] {
    ex.reduce_scatter(std::span<T>(dHall_.data(), static_cast<std::size_t>(N * h)),
                      std::span<const std::int64_t>(hoff));
  });
  if (n > 0) {
    G_[L - 2].topRows(n) = dH.middleRows(r0, n);
    hidden_grad(L - 2, n, dropout);
  }
  backward(bt, dropout, grad, /*output_bias_done=*/false, 0, nullptr, L - 2, split_in);
  if (split_in) {
    // W0's rows of this rank from the whole batch's dL/dA0 (gathered into Pin_).
    if (n > 0) Pin_.middleRows(r0, n) = A_[0].topRows(n);
    timed([&] {
      ex.allgather_blocks(std::span<T>(Pin_.data(), static_cast<std::size_t>(N * h0)),
                          std::span<const std::int64_t>(in_off));
    });
    MatMap gW0(grad + layout_.w[0], shape_.in_dim(), h0);
    gW0.middleRows(i0, i1 - i0).setZero();
    for (std::int64_t r = 0; r < N; ++r)
      for (std::int64_t k = xp[r]; k < xp[r + 1]; ++k)
        if (xi[k] >= i0 && xi[k] < i1) gW0.row(xi[k]).noalias() += xv[k] * Pin_.row(r);
  }
  return loss;
}

template <class T>
void Network<T>::announce(const GradReady* buckets, std::int64_t begin, std::int64_t end) {
  if (buckets == nullptr || !buckets->ready) return;
  const std::int64_t step = std::max<std::int64_t>(1, buckets->bucket_elems);
  for (std::int64_t a = begin; a < end; a += step) buckets->ready(a, std::min(end, a + step));
}

template <class T>
void Network<T>::hidden_grad(int j, std::int64_t n, T dropout) {
  auto G = G_[j].topRows(n);
  if (dropout > 0) G.array() *= M_[j].topRows(n).array();
  auto S = A_[j].topRows(n);  // the activation; becomes dL/dA_j
  if (shape_.activation == Activation::kRelu)
    S.array() = (S.array() > T(0)).select(G.array(), T(0));
  else
    S.array() = G.array() * (T(1) - S.array().square());
}

template <class T>
void Network<T>::backward(const Batch<T>& bt, T dropout, T* grad, bool output_bias_done,
                          int first_layer, const GradReady* buckets, int top, bool sparse_split) {
  const int L = shape_.n_layers();
  const std::int64_t n = rows_;
  first_layer = std::clamp(first_layer, 0, top);
  // Layer l's block [W_l, b_l] is contiguous in the flat layout.
  const auto layer_end = [&](int l) { return layout_.b[l] + shape_.fan_out(l); };
  if (n == 0) {
    const std::int64_t from = first_layer == 0 && sparse_split
                                  ? shape_.sparse_in * shape_.fan_out(0)
                                  : layout_.w[first_layer];
    std::fill(grad + from, grad + layer_end(top), T(0));
    if (first_layer == 0) std::fill(grad + layout_.emb, grad + layout_.size, T(0));
    for (int l = top; l >= first_layer; --l) announce(buckets, layout_.w[l], layer_end(l));
    announce(buckets, layout_.emb, layout_.size);
    return;
  }
  for (int l = top; l >= first_layer; --l) {
    const std::int64_t fi = shape_.fan_in(l), fo = shape_.fan_out(l);
    const auto dA = A_[l].topRows(n);  // dL/d(pre-activation of layer l), n x fo
    MatMap gW(grad + layout_.w[l], fi, fo);
    VecMap gb(grad + layout_.b[l], fo);
    if (!(output_bias_done && l == L - 1)) {
      gb.setZero();
      for (std::int64_t r = 0; r < n; ++r) gb += dA.row(r).transpose();
    }
    if (l > 0) {
      const Matrix& in = dropout > 0 ? H_[l - 1] : A_[l - 1];
      gW.noalias() = in.topRows(n).transpose() * dA;
      announce(buckets, layout_.w[l], layer_end(l));
      if (l == first_layer) break;  // the layers below are frozen
      G_[l - 1].topRows(n).noalias() = dA * W(l).transpose();
      hidden_grad(l - 1, n, dropout);
      continue;
    }
    // Layer 0: the sparse rows of W0 get X^T dA as a scatter of row updates.
    if (shape_.sparse_in > 0 && !sparse_split) {
      std::fill(gW.data(), gW.data() + shape_.sparse_in * fo, T(0));
      for (std::int64_t r = 0; r < n; ++r) {
        const auto dr = dA.row(r);
        for (std::int64_t k = bt.in_ptr[r]; k < bt.in_ptr[r + 1]; ++k)
          gW.row(bt.in_idx[k]).noalias() += bt.in_val[k] * dr;
      }
    }
    if (shape_.dense_in > 0) {
      const CMatMap X(bt.dense.data(), n, shape_.dense_in);
      gW.middleRows(shape_.sparse_in, shape_.dense_in).noalias() = X.transpose() * dA;
    }
    if (shape_.embed_dim > 0) {
      const std::int64_t E = shape_.embed_dim;
      auto Eb = Emb_.topRows(n);
      gW.bottomRows(E).noalias() = Eb.transpose() * dA;
      // dL/d(embedding rows) = dA W0e^T, scattered onto the table.
      Eb.noalias() = dA * W(0).bottomRows(E).transpose();
      MatMap gE(grad + layout_.emb, shape_.n_segments, E);
      gE.setZero();
      for (std::int64_t r = 0; r < n; ++r) gE.row(bt.segment[r]) += Eb.row(r);
    }
    announce(buckets, layout_.w[0], layer_end(0));
    announce(buckets, layout_.emb, layout_.size);
  }
}

template class Network<float>;
template class Network<double>;

}  // namespace segrec::mlp
