// Distributed Gaussian mixture EM (gmm.hpp).
#include "segrec/segmentation/gmm/gmm.hpp"

#include <Eigen/Cholesky>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include "segrec/core/error.hpp"

namespace segrec {

std::string covariance_name(GmmCovariance c) {
  return c == GmmCovariance::kFull ? "full" : c == GmmCovariance::kDiag ? "diag" : "tied";
}

std::int64_t gmm_parameters(GmmCovariance c, std::int64_t k, std::int64_t h) {
  const std::int64_t cov = c == GmmCovariance::kFull   ? k * h * (h + 1) / 2
                           : c == GmmCovariance::kDiag ? k * h
                                                       : h * (h + 1) / 2;
  return k * h + (k - 1) + cov;
}

namespace {

using Eigen::MatrixXd;
using Eigen::VectorXd;

/// The model in the centred frame, ready for the E-step.
struct Model {
  std::vector<double> log_weight;  // k
  MatrixXd mean;                   // k x h (centred frame)
  std::vector<MatrixXd> prec;      // per covariance: L^-1, lower triangular (h x h)
  std::vector<double> log_det;     // per covariance: log det Sigma
  MatrixXd prec_mean;              // tied: k x h rows L^-1 mu_k
};

/// Offsets of the packed statistics buffer.
struct Layout {
  std::int64_t k, h, scatter;  // scatter: doubles of the per-component scatter part
  std::int64_t sums() const { return k; }
  std::int64_t scat() const { return k + k * h; }
  std::int64_t ll() const { return scat() + scatter; }
  std::int64_t size() const { return ll() + 1; }
};

Layout layout(GmmCovariance c, std::int64_t k, std::int64_t h) {
  return {k, h, c == GmmCovariance::kFull ? k * h * h : c == GmmCovariance::kDiag ? k * h : 0};
}

/// Adds one row's statistics with responsibilities r (k) to buf.
void accumulate(const double* x, const double* r, GmmCovariance c, const Layout& L,
                std::vector<double>& buf) {
  const std::int64_t k = L.k, h = L.h;
  for (std::int64_t j = 0; j < k; ++j) {
    const double rj = r[j];
    if (rj == 0) continue;
    buf[j] += rj;
    double* s = buf.data() + L.sums() + j * h;
    for (std::int64_t f = 0; f < h; ++f) s[f] += rj * x[f];
    if (c == GmmCovariance::kFull) {
      double* S = buf.data() + L.scat() + j * h * h;
      for (std::int64_t a = 0; a < h; ++a) {
        const double ra = rj * x[a];
        for (std::int64_t b = 0; b <= a; ++b) S[a * h + b] += ra * x[b];
      }
    } else if (c == GmmCovariance::kDiag) {
      double* S = buf.data() + L.scat() + j * h;
      for (std::int64_t f = 0; f < h; ++f) S[f] += rj * x[f] * x[f];
    }
  }
}

/// M-step on every rank: weights, means, covariances (+ reg) and their Cholesky factors.
/// `total_scatter`: sum_i x_i x_i^T (tied only). Fills fit's weights/means/covariances.
Model m_step(const std::vector<double>& buf, const Layout& L, GmmCovariance c, double n, double reg,
             const MatrixXd& total_scatter, GmmFit& fit) {
  const std::int64_t k = L.k, h = L.h;
  constexpr double kTiny = 10 * std::numeric_limits<double>::epsilon();  // as scikit-learn
  Model m;
  m.log_weight.resize(k);
  m.mean.resize(k, h);
  fit.weights.assign(k, 0);
  std::vector<double> nk(k);
  for (std::int64_t j = 0; j < k; ++j) {
    nk[j] = buf[j] + kTiny;
    fit.weights[j] = nk[j] / n;
    m.log_weight[j] = std::log(fit.weights[j]);
    for (std::int64_t f = 0; f < h; ++f) m.mean(j, f) = buf[L.sums() + j * h + f] / nk[j];
  }
  fit.covariances.clear();
  if (c == GmmCovariance::kTied) {
    MatrixXd S = total_scatter;
    for (std::int64_t j = 0; j < k; ++j)
      S.noalias() -= nk[j] * m.mean.row(j).transpose() * m.mean.row(j);
    S /= n;
    S.diagonal().array() += reg;
    fit.covariances.push_back(S);
  } else {
    for (std::int64_t j = 0; j < k; ++j) {
      MatrixXd S = MatrixXd::Zero(h, h);
      if (c == GmmCovariance::kFull) {
        const double* s = buf.data() + L.scat() + j * h * h;
        for (std::int64_t a = 0; a < h; ++a)
          for (std::int64_t b = 0; b <= a; ++b)
            S(a, b) = S(b, a) = s[a * h + b] / nk[j] - m.mean(j, a) * m.mean(j, b);
      } else {
        const double* s = buf.data() + L.scat() + j * h;
        for (std::int64_t f = 0; f < h; ++f)
          S(f, f) = std::max(0.0, s[f] / nk[j] - m.mean(j, f) * m.mean(j, f));
      }
      S.diagonal().array() += reg;
      fit.covariances.push_back(S);
    }
  }
  for (std::size_t q = 0; q < fit.covariances.size(); ++q) {
    const Eigen::LLT<MatrixXd> llt(fit.covariances[q]);
    const MatrixXd Lf = llt.matrixL();
    if (llt.info() != Eigen::Success || !(Lf.diagonal().array() > 0).all())
      throw DataError("Gaussian mixture: the covariance of component " + std::to_string(q) +
                          " is not positive definite (" + std::to_string(h) +
                          " dims); raise --reg-covar or use --covariance diag or tied",
                      true);
    m.prec.push_back(Lf.triangularView<Eigen::Lower>()
                         .solve(MatrixXd::Identity(h, h))
                         .triangularView<Eigen::Lower>());
    m.log_det.push_back(2 * Lf.diagonal().array().log().sum());
  }
  if (c == GmmCovariance::kTied) m.prec_mean = m.mean * m.prec[0].transpose();
  return m;
}

/// E-step of one row x (centred, h): log p_j(x) + log w_j into lp (k); returns log-sum-exp.
/// px: scratch (h).
double log_probs(const double* x, const Model& m, GmmCovariance c, std::int64_t k, std::int64_t h,
                 double* lp, double* px) {
  const double c0 = static_cast<double>(h) * std::log(2 * std::numbers::pi);
  if (c == GmmCovariance::kTied) {
    const MatrixXd& P = m.prec[0];
    for (std::int64_t a = 0; a < h; ++a) {
      double s = 0;
      for (std::int64_t b = 0; b <= a; ++b) s += P(a, b) * x[b];
      px[a] = s;
    }
  }
  double mx = -std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < k; ++j) {
    double q = 0;
    if (c == GmmCovariance::kTied) {
      for (std::int64_t a = 0; a < h; ++a) {
        const double z = px[a] - m.prec_mean(j, a);
        q += z * z;
      }
    } else if (c == GmmCovariance::kDiag) {
      for (std::int64_t a = 0; a < h; ++a) {
        const double z = (x[a] - m.mean(j, a)) * m.prec[j](a, a);
        q += z * z;
      }
    } else {
      const MatrixXd& P = m.prec[j];
      for (std::int64_t a = 0; a < h; ++a) px[a] = x[a] - m.mean(j, a);
      for (std::int64_t a = 0; a < h; ++a) {
        double z = 0;
        for (std::int64_t b = 0; b <= a; ++b) z += P(a, b) * px[b];
        q += z * z;
      }
    }
    const std::size_t cj = c == GmmCovariance::kTied ? 0 : static_cast<std::size_t>(j);
    lp[j] = m.log_weight[j] - 0.5 * (c0 + m.log_det[cj] + q);
    mx = std::max(mx, lp[j]);
  }
  double s = 0;
  for (std::int64_t j = 0; j < k; ++j) s += std::exp(lp[j] - mx);
  return mx + std::log(s);
}

}  // namespace

GmmFit gmm_em(const MatrixRF& X, std::span<const std::int32_t> init_labels, std::int64_t k,
              const GmmOptions& o, const Comm& comm, std::vector<std::int32_t>& labels) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t nl = X.rows(), hx = X.cols();
  const GmmCovariance c = o.covariance;
  GmmFit fit;
  fit.covariance = c;
  // ---- global mean and variances: one allreduce [sum x | sum x^2 | n]
  const ColumnMoments mom = column_moments(X, comm);
  const double n = mom.n;
  // The mixture lives on the columns that vary (a view zeroes the other block's columns):
  // active[a] = column of X, h of them (all columns when none varies).
  VectorXd mu_all(hx);
  std::vector<std::int64_t> active;
  double var = 0;
  for (std::int64_t f = 0; f < hx; ++f) {
    mu_all[f] = mom.mean[f];
    if (mom.var[f] > 0) {
      active.push_back(f);
      var += mom.var[f];
    }
  }
  if (active.empty())
    for (std::int64_t f = 0; f < hx; ++f) active.push_back(f);
  const auto h = static_cast<std::int64_t>(active.size());
  var /= static_cast<double>(h);
  fit.reg = o.reg_covar * (var > 0 ? var : 1.0);
  // Xc: this rank's rows on the active columns, centred, n_local x h in double (row-major).
  MatrixRD Xc(nl, h);
  for (std::int64_t i = 0; i < nl; ++i)
    for (std::int64_t a = 0; a < h; ++a)
      Xc(i, a) = static_cast<double>(X(i, active[a])) - mu_all[active[a]];

  const Layout L = layout(c, k, h);
  std::vector<double> buf(L.size(), 0.0);
  MatrixXd total_scatter;
  // ---- the first M-step: hard responsibilities from init_labels (+ tied: sum x x^T)
  {
    std::vector<double> r(k, 0.0);
    for (std::int64_t i = 0; i < nl; ++i) {
      const auto l = init_labels[i];
      if (l < 0 || l >= k) throw Error("gmm_em: initial label out of range", kExitOther);
      r[l] = 1;
      accumulate(Xc.row(i).data(), r.data(), c, L, buf);
      r[l] = 0;
    }
    if (c == GmmCovariance::kTied) {
      std::vector<double> s(h * h, 0.0);
      for (std::int64_t i = 0; i < nl; ++i)
        for (std::int64_t a = 0; a < h; ++a)
          for (std::int64_t b = 0; b <= a; ++b) s[a * h + b] += Xc(i, a) * Xc(i, b);
      buf.insert(buf.end(), s.begin(), s.end());
      comm.allreduce(buf);
      total_scatter.resize(h, h);
      for (std::int64_t a = 0; a < h; ++a)
        for (std::int64_t b = 0; b <= a; ++b)
          total_scatter(a, b) = total_scatter(b, a) = buf[L.size() + a * h + b];
      buf.resize(L.size());
    } else {
      comm.allreduce(buf);
    }
  }
  Model m = m_step(buf, L, c, n, fit.reg, total_scatter, fit);
  // ---- EM: E-step (+ statistics), one allreduce, convergence test, M-step
  labels.assign(nl, 0);
  std::vector<double> lp(k), px(h);
  double prev = -std::numeric_limits<double>::infinity();
  for (;;) {
    std::fill(buf.begin(), buf.end(), 0.0);
    double ll = 0;
    for (std::int64_t i = 0; i < nl; ++i) {
      const double* x = Xc.row(i).data();
      const double lse = log_probs(x, m, c, k, h, lp.data(), px.data());
      ll += lse;
      std::int32_t best = 0;
      for (std::int64_t j = 1; j < k; ++j)
        if (lp[j] > lp[best]) best = static_cast<std::int32_t>(j);
      for (std::int64_t j = 0; j < k; ++j) lp[j] = std::exp(lp[j] - lse);
      labels[i] = best;
      accumulate(x, lp.data(), c, L, buf);
    }
    buf[L.ll()] = ll;
    comm.allreduce(buf);
    fit.log_likelihood = buf[L.ll()];
    const double mean_ll = fit.log_likelihood / n;
    if (fit.n_iter > 0 && std::abs(mean_ll - prev) < o.tol) {
      fit.converged = true;
      break;
    }
    if (fit.n_iter >= o.max_iter) break;
    prev = mean_ll;
    m = m_step(buf, L, c, n, fit.reg, total_scatter, fit);
    ++fit.n_iter;
  }
  // ---- back to the data's frame: all columns, constant ones at their value (variance 0)
  fit.means.resize(k, hx);
  for (std::int64_t j = 0; j < k; ++j) fit.means.row(j) = mu_all.transpose();
  for (std::int64_t j = 0; j < k; ++j)
    for (std::int64_t a = 0; a < h; ++a) fit.means(j, active[a]) += m.mean(j, a);
  for (auto& cv : fit.covariances) {
    MatrixXd full = MatrixXd::Zero(hx, hx);
    for (std::int64_t a = 0; a < h; ++a)
      for (std::int64_t b = 0; b < h; ++b) full(active[a], active[b]) = cv(a, b);
    cv = std::move(full);
  }
  fit.n_params = gmm_parameters(c, k, h);
  fit.bic = -2 * fit.log_likelihood + static_cast<double>(fit.n_params) * std::log(n);
  fit.fitted = true;
  fit.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return fit;
}

void apply_mixture(const MatrixRF& X, const GmmFit& fit, KMeansResult& r, const Comm& comm) {
  const std::int64_t k = fit.means.rows(), h = fit.means.cols();
  r.centroids = fit.means;
  std::vector<double> buf(k + 1, 0.0);  // [counts | inertia]
  for (std::int64_t i = 0; i < X.rows(); ++i) {
    const auto l = r.labels[i];
    buf[l] += 1;
    for (std::int64_t f = 0; f < h; ++f) {
      const double d = static_cast<double>(X(i, f)) - fit.means(l, f);
      buf[k] += d * d;
    }
  }
  comm.allreduce(buf);
  r.sizes.assign(k, 0);
  for (std::int64_t j = 0; j < k; ++j) r.sizes[j] = static_cast<std::int64_t>(buf[j]);
  r.inertia = buf[k];
}

}  // namespace segrec
