// What a Gaussian mixture fit (`segrec cluster --algorithm gmm`, gmm.hpp) produces besides
// labels and means: its options, weights, covariances, likelihood and BIC.
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <vector>

namespace segrec {

/// --covariance: one full matrix per component, a diagonal per component, or one full
/// matrix shared by all components (tied).
enum class GmmCovariance { kFull, kDiag, kTied };

/// Parsed options of one EM run (KMeansParams::gmm_options()).
struct GmmOptions {
  GmmCovariance covariance = GmmCovariance::kTied;
  /// Added to every variance: reg_covar x (mean over features of the data's variance), so
  /// that it does not depend on the projection's scale.
  double reg_covar = 1e-6;
  double tol = 1e-4;   ///< stop when the mean log-likelihood per user changes by < tol
  int max_iter = 200;  ///< M-steps at most
};

/// A fitted mixture. Identical on every rank (up to summation order in the allreduce).
struct GmmFit {
  bool fitted = false;
  GmmCovariance covariance = GmmCovariance::kTied;
  std::vector<double> weights;  ///< k mixing weights, summing to 1
  Eigen::MatrixXd means;        ///< k x h
  /// Covariances, h x h each (reg included): k of them (full, diag: diagonal matrices) or
  /// one (tied).
  std::vector<Eigen::MatrixXd> covariances;
  double reg = 0;             ///< the absolute amount added to each variance
  double log_likelihood = 0;  ///< total over all users, at the final parameters
  double bic = 0;             ///< -2 log L + parameters x ln(n)
  std::int64_t n_params = 0;  ///< free parameters of the model
  int n_iter = 0;             ///< M-steps after the one from the initial labels
  bool converged = false;
  double seconds = 0;  ///< wall time of the EM run on rank 0
};

/// "full", "diag" or "tied".
std::string covariance_name(GmmCovariance c);

}  // namespace segrec
