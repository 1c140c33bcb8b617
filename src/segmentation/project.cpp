#include "segrec/segmentation/project.hpp"
#include "segrec/segmentation/project_blocks.hpp"
#include "segrec/core/random.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <Eigen/SVD>

#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/core/watchdog.hpp"
#include "segrec/segmentation/memory.hpp"
#include "segrec/segmentation/profile.hpp"

namespace segrec {

namespace {

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using RowMatF = RowMat<float>;
using RowMatD = RowMat<double>;

constexpr std::int64_t kRowBlock = 2048;  // rows per block of the Gram and R^{-1} updates

// Progress inside a pass over the data: called with the local rows done, every
// kProgressRows rows (reports only).
using RowsDone = std::function<void(std::int64_t)>;
constexpr std::int64_t kProgressRows = 4096;

// ---- randomness keyed by (seed, stream, feature index) ------------------------------------

using rng::mix13;

// SplitMix64 stream of one feature: the same numbers whichever rank draws them.
class FeatureRng {
 public:
  FeatureRng(std::uint64_t seed, std::uint64_t stream, std::int64_t feature)
      : state_(mix13(mix13(seed ^ (stream * 0x9E3779B97F4A7C15ULL)) +
                     static_cast<std::uint64_t>(feature))) {}
  std::uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ULL;
    return mix13(state_);
  }
  /// Uniform in (0, 1).
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  /// Standard normal (Box-Muller, both values used).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double a = 2.0 * M_PI * uniform();
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  std::uint64_t state_;
  double spare_ = 0;
  bool has_spare_ = false;
};

constexpr std::uint64_t kStreamGaussian = 1, kStreamSparse = 2;

// Omega: D x k, N(0, 1) entries; row j drawn from feature j's stream.
template <class T>
RowMat<T> gaussian_test_matrix(std::int64_t D, std::int64_t k, std::uint64_t seed) {
  RowMat<T> M(D, k);
  for (std::int64_t j = 0; j < D; ++j) {
    FeatureRng rng(seed, kStreamGaussian, j);
    for (std::int64_t c = 0; c < k; ++c) M(j, c) = static_cast<T>(rng.normal());
  }
  return M;
}

// ---- products with the centred matrix -----------------------------------------------------

Eigen::Map<const RowMatF> dense_part(const FeatureBlock& X) {
  return Eigen::Map<const RowMatF>(X.dense.data(), X.n_local, X.n_dense);
}

// Column sums and sums of squares of X over all users (one allreduce of 2D doubles):
// the mean, and the total variance ||Xc||_F^2 = sum_j (ss_j - N mu_j^2).
void moments(const FeatureBlock& X, const Comm& comm, Eigen::VectorXd& mean, double& total) {
  const std::int64_t D = X.n_features();
  std::vector<double> buf(static_cast<std::size_t>(2 * D), 0.0);
  for (std::int64_t p = 0; p < X.indptr[X.n_local]; ++p) {
    const double v = X.values[p];
    buf[X.indices[p]] += v;
    buf[D + X.indices[p]] += v * v;
  }
  for (std::int64_t i = 0; i < X.n_local; ++i)
    for (std::int64_t j = 0; j < X.n_dense; ++j) {
      const double v = X.dense[i * X.n_dense + j];
      buf[X.n_sparse + j] += v;
      buf[D + X.n_sparse + j] += v * v;
    }
  comm.allreduce(buf);
  const double n = static_cast<double>(X.n_users);
  mean.resize(D);
  total = 0;
  for (std::int64_t j = 0; j < D; ++j) {
    mean[j] = buf[j] / n;
    total += std::max(0.0, buf[D + j] - n * mean[j] * mean[j]);
  }
}

// Y = Xc M = X M - 1 (mu^T M); M: D x k, Y: n_local x k (row-major, T).
template <class T>
void times(const FeatureBlock& X, const RowMat<T>& M, const Eigen::VectorXd& mu, RowMat<T>& Y,
           const RowsDone& rows_done = {}) {
  const std::int64_t k = M.cols();
  Y.setZero(X.n_local, k);
  const T* __restrict m = M.data();
  for (std::int64_t i = 0; i < X.n_local; ++i) {
    if (rows_done && i % kProgressRows == 0 && i > 0) rows_done(i);
    T* __restrict y = Y.data() + i * k;
    for (std::int64_t p = X.indptr[i]; p < X.indptr[i + 1]; ++p) {
      const T v = static_cast<T>(X.values[p]);
      const T* __restrict mr = m + static_cast<std::int64_t>(X.indices[p]) * k;
      for (std::int64_t c = 0; c < k; ++c) y[c] += v * mr[c];
    }
  }
  if (X.n_dense > 0 && X.n_local > 0)
    Y.noalias() += dense_part(X).template cast<T>() * M.bottomRows(X.n_dense);
  // Rank-1 centring correction, mu^T M in double.
  Eigen::RowVectorXd muM = Eigen::RowVectorXd::Zero(k);
  for (std::int64_t j = 0; j < M.rows(); ++j)
    if (mu[j] != 0) muM += mu[j] * M.row(j).template cast<double>();
  Y.rowwise() -= muM.cast<T>();
}

// Z = Xc^T Y = X^T Y - mu (1^T Y): D x k, replicated. Local product, then ONE
// allreduce of the (D + 1) x k block [X^T Y ; 1^T Y] in double.
template <class T>
RowMatD transpose_times(const FeatureBlock& X, const RowMat<T>& Y, const Eigen::VectorXd& mu,
                        const Comm& comm, PcaStats& st, const RowsDone& rows_done = {}) {
  const std::int64_t k = Y.cols(), D = X.n_features();
  RowMat<T> Zs = RowMat<T>::Zero(X.n_sparse, k);
  T* __restrict z = Zs.data();
  for (std::int64_t i = 0; i < X.n_local; ++i) {
    if (rows_done && i % kProgressRows == 0 && i > 0) rows_done(i);
    const T* __restrict y = Y.data() + i * k;
    for (std::int64_t p = X.indptr[i]; p < X.indptr[i + 1]; ++p) {
      const T v = static_cast<T>(X.values[p]);
      T* __restrict zr = z + static_cast<std::int64_t>(X.indices[p]) * k;
      for (std::int64_t c = 0; c < k; ++c) zr[c] += v * y[c];
    }
  }
  RowMatD B(D + 1, k);
  B.topRows(X.n_sparse) = Zs.template cast<double>();
  if (X.n_dense > 0) {
    if (X.n_local > 0) {
      const RowMat<T> Zd = dense_part(X).transpose().template cast<T>() * Y;
      B.middleRows(X.n_sparse, X.n_dense) = Zd.template cast<double>();
    } else {
      B.middleRows(X.n_sparse, X.n_dense).setZero();
    }
  }
  B.row(D).setZero();
  for (std::int64_t i = 0; i < X.n_local; ++i) B.row(D) += Y.row(i).template cast<double>();
  const auto before = comm.stats().allreduce_bytes;
  comm.allreduce(B);
  st.xt_pass_bytes = comm.stats().allreduce_bytes - before;
  st.xt_products++;
  RowMatD Z = B.topRows(D);
  Z.noalias() -= mu * B.row(D);
  return Z;
}

// Orthonormal basis (D x k) of the columns of a replicated block: Householder QR.
Eigen::MatrixXd orth_replicated(const RowMatD& Z) {
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(Z);
  return qr.householderQ() * Eigen::MatrixXd::Identity(Z.rows(), Z.cols());
}

// Each column's largest-|.| entry (first on ties) made positive.
void fix_signs(Eigen::MatrixXd& W) {
  for (Eigen::Index c = 0; c < W.cols(); ++c) {
    Eigen::Index best = 0;
    for (Eigen::Index j = 1; j < W.rows(); ++j)
      if (std::fabs(W(j, c)) > std::fabs(W(best, c))) best = j;
    if (W.rows() > 0 && W(best, c) < 0) W.col(c) = -W.col(c);
  }
}

// Largest block of the randomized SVD solved by one-sided Jacobi; above it, BDCSVD.
constexpr std::int64_t kJacobiMaxBlock = 256;

// Clamps dims to the number of features (with a warning); throws on empty inputs.
std::int64_t checked_dims(const FeatureBlock& X, std::int64_t dims, ProjectionModel& m) {
  require(dims >= 1, "dims", dims, "must be >= 1");
  if (X.n_users < 1) throw DataError("no users to project", true);
  if (X.n_features() < 1) throw DataError("the profiles have no features", true);
  if (dims > X.n_features()) {
    m.warnings.push_back("--dims " + std::to_string(dims) + " is more than the " +
                         std::to_string(X.n_features()) + " features; using " +
                         std::to_string(X.n_features()));
    dims = X.n_features();
  }
  return dims;
}

template <class T>
ProjectionModel rsvd(const FeatureBlock& X, const PcaOptions& o, const Comm& comm) {
  ProjectionModel m;
  m.method = "pca";
  const std::int64_t H = checked_dims(X, o.dims, m);
  const std::int64_t D = X.n_features();
  // k = H + p rounded up to whole 64-byte SIMD vectors: the extra columns are free
  // in the products and only add oversampling.
  constexpr std::int64_t simd = 64 / static_cast<std::int64_t>(sizeof(T));
  const std::int64_t k = std::min(D, (H + o.oversampling + simd - 1) / simd * simd);
  PcaStats& st = m.stats;
  st.block = k;
  const auto bytes0 = comm.stats().allreduce_bytes;

  moments(X, comm, m.mean, m.total_variance);

  // Passes over the data: X Omega, then (X^T, X) per power iteration, then X^T Q.
  progress::Task task("project", "PCA", static_cast<double>(2 + 2 * o.power_iterations), "pass");
  const auto passed = [&] { task.update(st.x_products + st.xt_products, {}, true); };
  // Inside a pass: this rank's rows done (rank 0's are reported).
  const auto n_rows = static_cast<double>(std::max<std::int64_t>(X.n_local, 1));
  const RowsDone rows = [&](std::int64_t r) {
    const auto at = static_cast<double>(st.x_products + st.xt_products);
    task.update_part(at + static_cast<double>(r) / n_rows,
                     {at + 1, "rows", static_cast<double>(r), n_rows});
  };
  RowMat<T> Y;
  times(X, gaussian_test_matrix<T>(D, k, o.seed), m.mean, Y, rows);
  st.x_products++;
  passed();
  for (std::int64_t it = 0; it < o.power_iterations; ++it) {
    watchdog::set_step("power iteration", it + 1);
    const RowMat<T> Z =
        orth_replicated(transpose_times(X, Y, m.mean, comm, st, rows)).template cast<T>();
    passed();
    times(X, Z, m.mean, Y, rows);
    st.x_products++;
    passed();
  }
  cholesky_qr2(Y, comm, &st);
  // B^T = Xc^T Q (D x k) = Qb R;  R = Ur S Vr^T  =>  right singular vectors Qb Ur.
  const RowMatD Bt = transpose_times(X, Y, m.mean, comm, st, rows);
  passed();
  const Eigen::HouseholderQR<Eigen::MatrixXd> qr(Bt);
  const Eigen::MatrixXd R = qr.matrixQR().topRows(k).template triangularView<Eigen::Upper>();
  // R: k x D. One-sided Jacobi is the most accurate, but its cost grows fast with k;
  // divide and conquer keeps a block of thousands (dims near the feature count) to seconds.
  Eigen::MatrixXd U;
  Eigen::VectorXd sv;
  if (k <= kJacobiMaxBlock) {
    const Eigen::JacobiSVD<Eigen::MatrixXd> svd(R, Eigen::ComputeFullU);
    U = svd.matrixU();
    sv = svd.singularValues();
  } else {
    const Eigen::BDCSVD<Eigen::MatrixXd> svd(R, Eigen::ComputeFullU);
    U = svd.matrixU();
    sv = svd.singularValues();
  }
  Eigen::MatrixXd Ur = Eigen::MatrixXd::Zero(D, H);
  Ur.topRows(k) = U.leftCols(H);
  m.components = qr.householderQ() * Ur;
  fix_signs(m.components);
  m.singular_values = sv.head(H);
  m.explained_variance_ratio =
      m.total_variance > 0 ? Eigen::VectorXd(m.singular_values.array().square() / m.total_variance)
                           : Eigen::VectorXd::Zero(H);
  st.total_bytes = comm.stats().allreduce_bytes - bytes0;
  return m;
}

}  // namespace

// ---- CholeskyQR2 ----------------------------------------------------------------------------

template <class T>
int cholesky_qr2(RowMat<T>& Y, const Comm& comm, PcaStats* stats) {
  const std::int64_t n = Y.rows(), k = Y.cols();
  const double u = std::numeric_limits<T>::epsilon() / 2;  // unit roundoff of Y
  int shifted = 0;
  for (int pass = 0; pass < (shifted ? 3 : 2); ++pass) {
    // G = Y^T Y: float blocks of rows, summed in double, then allreduced.
    Eigen::MatrixXd G = Eigen::MatrixXd::Zero(k, k);
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> Gb(k, k);
    for (std::int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
      const std::int64_t rows = std::min(kRowBlock, n - r0);
      Gb.setZero();
      Gb.template selfadjointView<Eigen::Lower>().rankUpdate(Y.middleRows(r0, rows).transpose());
      G += Gb.template cast<double>();
    }
    G = G.template selfadjointView<Eigen::Lower>();
    comm.allreduce(G);
    if (stats) stats->gram_allreduces++;
    // Scale to unit diagonal (zero columns keep scale 1), then Cholesky; shift
    // when it fails or the Gram matrix is too ill-conditioned for precision u.
    Eigen::VectorXd s(k);
    for (std::int64_t i = 0; i < k; ++i) s[i] = G(i, i) > 0 ? std::sqrt(G(i, i)) : 1.0;
    const Eigen::MatrixXd Gs = s.cwiseInverse().asDiagonal() * G * s.cwiseInverse().asDiagonal();
    double shift = 0;
    Eigen::LLT<Eigen::MatrixXd> llt;
    for (int attempt = 0;; ++attempt) {
      llt.compute(Gs + shift * Eigen::MatrixXd::Identity(k, k));
      bool ok = llt.info() == Eigen::Success;
      if (ok) {
        const Eigen::VectorXd dl = llt.matrixLLT().diagonal();
        ok = dl.minCoeff() * dl.minCoeff() > static_cast<double>(k) * u;
      }
      if (ok || attempt > 60) break;
      shift = shift == 0 ? 11.0 * static_cast<double>(k * k) * u : 2 * shift;
    }
    if (shift > 0) {
      shifted++;
      if (stats) stats->shifted++;
    }
    // R = L^T diag(s); Y <- Y R^{-1}.
    const Eigen::MatrixXd Rt = Eigen::MatrixXd(llt.matrixU()) * s.asDiagonal();
    const Eigen::MatrixXd Rinv =
        Rt.template triangularView<Eigen::Upper>().solve(Eigen::MatrixXd::Identity(k, k));
    const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> Ri = Rinv.template cast<T>();
    RowMat<T> tmp;
    for (std::int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
      const std::int64_t rows = std::min(kRowBlock, n - r0);
      tmp.noalias() = Y.middleRows(r0, rows) * Ri.template triangularView<Eigen::Upper>();
      Y.middleRows(r0, rows) = tmp;
    }
  }
  return shifted;
}

template int cholesky_qr2<float>(RowMatF&, const Comm&, PcaStats*);
template int cholesky_qr2<double>(RowMatD&, const Comm&, PcaStats*);

// ---- public entry points ----------------------------------------------------------------------

ProjectModes ProjectParams::validate() const {
  require(!profiles.empty(), "profiles", profiles, "give the profiles file to read");
  require(!out.empty(), "out", out, "give the projection file to write");
  require(dims >= 1, "dims", dims, "must be >= 1");
  require(value_dims >= -1, "value-dims", value_dims, "must be >= 0 (or -1: automatic)");
  ProjectModes m;
  m.method = parse_mode<ProjectionMethod>(
      method, {{"pca", ProjectionMethod::kPca}, {"random", ProjectionMethod::kRandom}}, "method",
      "use pca or random");
  require(oversampling >= 0 && oversampling <= 100000, "oversampling", oversampling,
          "must be in [0, 100000]");
  require(power_iterations >= 0 && power_iterations <= 1000, "power-iterations", power_iterations,
          "must be in [0, 1000]");
  m.precision = parse_mode<ProjectionPrecision>(
      precision, {{"float", ProjectionPrecision::kFloat}, {"double", ProjectionPrecision::kDouble}},
      "precision", "use float or double");
  return m;
}

ProjectionModel randomized_pca(const FeatureBlock& X, const PcaOptions& o, const Comm& comm) {
  return o.double_precision ? rsvd<double>(X, o, comm) : rsvd<float>(X, o, comm);
}

ProjectionModel random_projection(const FeatureBlock& X, std::int64_t dims, std::uint64_t seed,
                                  const Comm& comm) {
  ProjectionModel m;
  m.method = "random";
  const std::int64_t H = checked_dims(X, dims, m);
  const std::int64_t D = X.n_features();
  const auto bytes0 = comm.stats().allreduce_bytes;
  moments(X, comm, m.mean, m.total_variance);
  // Li, Hastie & Church: +-sqrt(s) with probability 1/(2s) each, s = sqrt(D);
  // scaled by 1/sqrt(H) so that ||W^T x|| ~ ||x||.
  const double s = std::sqrt(static_cast<double>(D));
  const double val = std::sqrt(s) / std::sqrt(static_cast<double>(H));
  m.components = Eigen::MatrixXd::Zero(D, H);
  for (std::int64_t j = 0; j < D; ++j) {
    FeatureRng rng(seed, kStreamSparse, j);
    for (std::int64_t c = 0; c < H; ++c) {
      const double r = rng.uniform() * s;  // < 1/2: +, < 1: -
      if (r < 0.5)
        m.components(j, c) = val;
      else if (r < 1.0)
        m.components(j, c) = -val;
    }
  }
  // Variance captured along each direction: ||Xc w||^2 / ||w||^2.
  const std::vector<float> h = project_rows(X, m);
  std::vector<double> ss(static_cast<std::size_t>(H), 0.0);
  for (std::int64_t i = 0; i < X.n_local; ++i)
    for (std::int64_t c = 0; c < H; ++c) {
      const double v = h[i * H + c];
      ss[c] += v * v;
    }
  comm.allreduce(ss);
  m.singular_values.resize(H);
  m.explained_variance_ratio.resize(H);
  for (std::int64_t c = 0; c < H; ++c) {
    const double w2 = m.components.col(c).squaredNorm();
    const double var = w2 > 0 ? ss[c] / w2 : 0.0;
    m.singular_values[c] = std::sqrt(var);
    m.explained_variance_ratio[c] = m.total_variance > 0 ? var / m.total_variance : 0.0;
  }
  m.stats.total_bytes = comm.stats().allreduce_bytes - bytes0;
  return m;
}

std::vector<float> project_rows(const FeatureBlock& X, const ProjectionModel& m) {
  const RowMatF W = m.components.cast<float>();
  RowMatF Hl;
  times(X, W, m.mean, Hl);
  return std::vector<float>(Hl.data(), Hl.data() + Hl.size());
}

ProjectSummary run_project(const ProjectParams& p, const Comm& comm) {
  const ProjectModes modes = p.validate();
  using clock = std::chrono::steady_clock;
  const auto seconds = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  const auto t0 = clock::now();
  const Profiles prof = read_profiles(p.profiles, comm, /*with_raw=*/false);
  check_project_memory(prof, p, comm);
  const ProfileBlock& b = prof.rows;
  FeatureBlock X;
  X.n_users = b.n_users;
  X.n_local = b.n_local();
  X.n_sparse = prof.model.n_items();
  X.n_dense = prof.model.n_dense();
  X.indptr = b.indptr;
  X.indices = b.indices;
  X.values = b.values;
  X.dense = b.dense_values;

  // Clamped and said before any work, not after a solve sized by the request.
  std::int64_t dims = p.dims;
  std::string clamped;
  const std::int64_t n_projected = projected_features(X, prof.model.dense_block, p.value_dims);
  if (dims > n_projected && n_projected >= 1) {
    clamped = "--dims " + std::to_string(dims) + " is more than the " +
              std::to_string(n_projected) + " features; using " + std::to_string(n_projected);
    progress::warning("project", clamped);
    dims = n_projected;
  }
  ProjectSummary s;
  const auto t1 = clock::now();
  const BlockFitter fitter = [&](const FeatureBlock& Xb, std::int64_t d) {
    if (modes.method == ProjectionMethod::kRandom) return random_projection(Xb, d, p.seed, comm);
    PcaOptions o;
    o.dims = d;
    o.oversampling = p.oversampling;
    o.power_iterations = p.power_iterations;
    o.seed = p.seed;
    o.double_precision = modes.precision == ProjectionPrecision::kDouble;
    return randomized_pca(Xb, o, comm);
  };
  BlockFit fitted =
      fit_blocks(X, prof.model.dense_block, dims, p.value_dims, fitter);
  s.model = std::move(fitted.model);
  s.interest_dims = fitted.interest_dims;
  s.value_dims = fitted.value_dims;
  if (!clamped.empty()) s.model.warnings.push_back(clamped);
  const ProjectionModel& m = s.model;
  const std::int64_t H = m.components.cols(), D = X.n_features();
  const auto t2 = clock::now();
  const std::vector<float> h = project_rows(X, m);
  const auto t3 = clock::now();

  h5::File f = h5::File::create(p.out, comm, kProjectionFormat);
  f.create_group("/users");
  f.set_attr("/", "method", m.method);
  f.set_attr("/", "dims", H);
  f.set_attr("/", "oversampling", p.oversampling);
  f.set_attr("/", "power_iterations", p.power_iterations);
  f.set_attr("/", "profiles", p.profiles);
  f.set_attr("/", "precision", p.precision);
  f.set_attr("/", "seed", static_cast<std::int64_t>(p.seed));
  f.set_attr("/", "total_variance", m.total_variance);
  f.set_attr("/", "n_users", b.n_users);
  f.set_attr("/", "interest_dims", s.interest_dims);
  f.set_attr("/", "value_dims", s.value_dims);
  f.write_strings("/users/ids", b.user_ids, true);
  const RowMatF W = m.components.cast<float>();
  f.write_replicated<float>("/W", std::span<const float>(W.data(), W.size()), H);
  f.write_replicated<double>("/mean", std::span<const double>(m.mean.data(), m.mean.size()));
  f.write_replicated<double>("/singular_values", std::span<const double>(m.singular_values.data(),
                                                                         m.singular_values.size()));
  f.write_replicated<double>("/explained_variance_ratio",
                             std::span<const double>(m.explained_variance_ratio.data(),
                                                     m.explained_variance_ratio.size()));
  f.write_rows<float>("/H", h, H);
  f.commit();
  const auto t4 = clock::now();

  s.read_s = seconds(t0, t1);
  s.fit_s = seconds(t1, t2);
  s.project_s = seconds(t2, t3);
  s.write_s = seconds(t3, t4);
  s.users = b.n_users;
  s.features = D;
  s.dims = H;
  return s;
}

}  // namespace segrec
