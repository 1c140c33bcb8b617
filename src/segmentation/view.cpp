// Views of a projection: interest, value, combined (view.hpp).
#include "segrec/segmentation/view.hpp"

#include <cmath>
#include <numeric>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/segmentation/kmeans/gap.hpp"
#include "segrec/segmentation/kmeans/tied.hpp"

namespace segrec {

const char* to_string(ClusterView v) {
  switch (v) {
    case ClusterView::kAuto:
      return "auto";
    case ClusterView::kInterest:
      return "interest";
    case ClusterView::kValue:
      return "value";
    case ClusterView::kCombined:
      return "combined";
    case ClusterView::kAll:
      break;
  }
  return "all";
}

ClusterView ViewParams::validate() const {
  const ClusterView v = parse_mode<ClusterView>(view,
                                                {{"auto", ClusterView::kAuto},
                                                 {"interest", ClusterView::kInterest},
                                                 {"value", ClusterView::kValue},
                                                 {"combined", ClusterView::kCombined}},
                                                "view", "use auto, interest, value or combined");
  require(std::isfinite(value_share) && value_share > 0 && value_share < 1, "value-share",
          value_share, "must be in (0, 1)");
  return v;
}

void ViewTransform::apply(float* row, std::int64_t h) const {
  const std::int64_t ni = std::min(interest_dims, h);
  double ss = 0;
  if (normalise_interest)
    for (std::int64_t j = 0; j < ni; ++j) ss += static_cast<double>(row[j]) * row[j];
  const double si = interest_weight * (normalise_interest && ss > 0 ? 1.0 / std::sqrt(ss) : 1.0);
  for (std::int64_t j = 0; j < ni; ++j) row[j] = static_cast<float>(row[j] * si);
  for (std::int64_t j = ni; j < h; ++j) row[j] = static_cast<float>(row[j] * value_weight);
  if (!whitened()) return;
  SEGREC_ASSERT(whitening.rows() == h && whitening.cols() == h, "whitening of ", whitening.rows(),
                " dims for rows of ", h);
  const Eigen::VectorXd x = Eigen::Map<const Eigen::VectorXf>(row, h).cast<double>();
  Eigen::Map<Eigen::VectorXf>(row, h) = (whitening * x).cast<float>();
}

void ViewTransform::apply(MatrixRF& X) const {
  if (view == ClusterView::kAll && !whitened()) return;
  for (Eigen::Index i = 0; i < X.rows(); ++i) apply(X.row(i).data(), X.cols());
}

namespace {

std::string whitening_path(const std::string& group) {
  return group == "/" ? "/whitening" : group + "/whitening";
}

ViewTransform make(ClusterView v, const ViewParams& vp, const MatrixRF& X, std::int64_t ni,
                   std::int64_t nv, const Comm& comm) {
  ViewTransform t;
  t.interest_dims = ni;
  t.value_dims = nv;
  if (v == ClusterView::kAll) return t;
  t.normalise_interest = v != ClusterView::kValue;
  t.interest_weight = v == ClusterView::kValue ? 0.0 : 1.0;
  t.value_weight = v == ClusterView::kInterest ? 0.0 : 1.0;
  t.view = v;
  if (v == ClusterView::kCombined) {
    MatrixRF Y = X;
    ViewTransform only = t;
    only.value_weight = 1;
    only.apply(Y);
    // Total variance of each block (sum of its columns' population variances).
    const ColumnMoments m = column_moments(Y, comm);
    const double vi = std::accumulate(m.var.begin(), m.var.begin() + ni, 0.0);
    const double vv = std::accumulate(m.var.begin() + ni, m.var.begin() + ni + nv, 0.0);
    t.value_weight = vv > 0 ? std::sqrt(vp.value_share / (1 - vp.value_share) * vi / vv) : 0.0;
  }
  return t;
}

}  // namespace

ViewTransform resolve_view(ClusterView view, const ViewParams& vp, const MatrixRF& X,
                           std::int64_t interest_dims, std::int64_t value_dims,
                           std::int64_t probe_k, const KMeansParams& p, const KMeansModes& modes,
                           const Comm& comm) {
  const std::int64_t ni = interest_dims, nv = value_dims;
  if (nv <= 0 || ni <= 0 || ni + nv != X.cols()) {
    // One block: the whole row, as projected (older projections, --dense-weight 0, ...).
    ViewTransform t = make(ClusterView::kAll, vp, X, X.cols(), 0, comm);
    return t;
  }
  if (view != ClusterView::kAuto) return make(view, vp, X, ni, nv, comm);
  const std::int64_t n = comm.allreduce_value(static_cast<std::int64_t>(X.rows()));
  const std::int64_t k = std::max<std::int64_t>(2, std::min(probe_k, n));
  // gap of a candidate view's K-means at k; tied: of its tied segments (tied.hpp).
  const auto probe_gap = [&](ClusterView v, bool tied) {
    const ViewTransform t = make(v, vp, X, ni, nv, comm);
    MatrixRF Y = X;
    t.apply(Y);
    KMeansParams q = p;
    q.n_init = 1;
    q.swap_tries = 0;  // the thresholds below were measured on fits without merge-split moves
    q.progress_stage = "view probe";
    if (modes.init == InitMethod::kFile) q.init = "k-means++";  // (the file's k is not probe_k)
    KMeansResult r;
    if (tied) {  // a tied fit depends on its start: restarts as the sweep's (tied.hpp)
      q.n_init = p.n_init;
      Y = tied_kmeans_restarts(Y, tied_input(Y, comm), k, r, q, q.validate(), comm).Z;
    } else {
      r = kmeans(Y, k, q, comm);
    }
    const GapReference ref = gap_reference(Y, p.gap_sample, p.gap_references, p.seed, comm);
    return gap_statistic(ref, r.inertia, n, k, q, modes, comm).gap;
  };
  const double gi = probe_gap(ClusterView::kInterest, false);
  const double gv = probe_gap(ClusterView::kValue, false);
  const double hi = std::max(gi, gv), lo = std::min(gi, gv);
  ClusterView pick = gi >= gv ? ClusterView::kInterest : ClusterView::kValue;
  if (hi > 0 && lo >= kCombineRatio * hi) pick = ClusterView::kCombined;
  // Both blocks have groups: is the value block's far stronger once measured with the tied
  // segments it would be clustered with? Then the weaker interest block would only blur it.
  double gv_tied = std::numeric_limits<double>::quiet_NaN();
  const bool tied = !modes.gmm && !p.spherical && modes.shape != ClusterShape::kSpherical;
  if (pick == ClusterView::kCombined && tied) {
    gv_tied = probe_gap(ClusterView::kValue, true);
    if (gi * kValueOverInterest <= gv_tied) pick = ClusterView::kValue;
  }
  ViewTransform t = make(pick, vp, X, ni, nv, comm);
  t.gap_interest = gi;
  t.gap_value = gv;
  t.gap_value_tied = gv_tied;
  t.probe_k = k;
  return t;
}

void write_view(h5::File& f, const std::string& group, const ViewTransform& v) {
  f.set_attr(group, "view", v.name());
  f.set_attr(group, "interest_dims", v.interest_dims);
  f.set_attr(group, "value_dims", v.value_dims);
  f.set_attr(group, "normalise_interest", static_cast<std::int64_t>(v.normalise_interest));
  f.set_attr(group, "interest_weight", v.interest_weight);
  f.set_attr(group, "value_weight", v.value_weight);
  f.set_attr(group, "gap_interest", v.gap_interest);
  f.set_attr(group, "gap_value", v.gap_value);
  f.set_attr(group, "gap_value_tied", v.gap_value_tied);
  f.set_attr(group, "view_probe_k", v.probe_k);
  if (v.whitened())
    f.write_replicated<double>(
        whitening_path(group),
        std::span<const double>(v.whitening.data(), static_cast<std::size_t>(v.whitening.size())),
        v.whitening.cols());
}

ViewTransform read_view(const h5::File& f, const std::string& group) {
  ViewTransform v;
  if (!f.has_attr(group, "view")) return v;
  const std::string name = f.attr_string(group, "view");
  bool known = false;
  for (const ClusterView c :
       {ClusterView::kAll, ClusterView::kInterest, ClusterView::kValue, ClusterView::kCombined})
    if (name == to_string(c)) {
      v.view = c;
      known = true;
    }
  v.interest_dims = f.attr_int(group, "interest_dims");
  v.value_dims = f.attr_int(group, "value_dims");
  v.normalise_interest = f.attr_int(group, "normalise_interest") != 0;
  v.interest_weight = f.attr_double(group, "interest_weight");
  v.value_weight = f.attr_double(group, "value_weight");
  const bool ok = known && v.interest_dims >= 0 && v.value_dims >= 0 &&
                  std::isfinite(v.interest_weight) && std::isfinite(v.value_weight);
  if (!ok) throw DataError("'" + f.path() + "': inconsistent view attributes", true);
  if (const std::string w = whitening_path(group); f.exists(w)) {
    const auto shape = f.shape(w);
    const auto values = f.read_all<double>(w);
    const std::int64_t h = v.interest_dims + v.value_dims;
    if (shape.size() != 2 || shape[0] != shape[1] || (h > 0 && shape[0] != h) ||
        std::ssize(values) != shape[0] * shape[1])
      throw DataError(
          "'" + f.path() + "': " + w + " is not " + std::to_string(h) + " x " + std::to_string(h),
          true);
    v.whitening = Eigen::Map<const MatrixRD>(values.data(), shape[0], shape[1]);
    if (!v.whitening.allFinite())
      throw DataError("'" + f.path() + "': " + w + " holds NaN or Inf", true);
  }
  return v;
}

}  // namespace segrec
