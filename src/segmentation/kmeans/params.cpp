// Parameters of `segrec cluster`: --k (one value or a sweep), the mode options and the
// numeric checks.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "segrec/core/env.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/segmentation/kmeans/params.hpp"

namespace segrec {
namespace {

bool parse_i64(const std::string& s, std::int64_t& v) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

std::vector<std::int64_t> KMeansParams::k_values() const {
  const std::string rule =
      "give K (>= 1) or a sweep FROM:TO[:STEP] with 2 <= FROM <= TO, STEP >= 1";
  const auto parts = split_list(k, ':');
  std::vector<std::int64_t> v;
  for (const auto& s : parts) {
    std::int64_t x = 0;
    require(parse_i64(s, x), "k", k, rule);
    v.push_back(x);
  }
  require(!v.empty() && v.size() <= 3 &&
              std::count(k.begin(), k.end(), ':') + 1 == static_cast<std::ptrdiff_t>(v.size()),
          "k", k, rule);
  if (v.size() == 1) {
    require(v[0] >= 1, "k", k, rule);
    return v;
  }
  const std::int64_t step = v.size() == 3 ? v[2] : 1;
  require(v[0] >= 2 && v[0] <= v[1] && step >= 1, "k", k, rule);
  require((v[1] - v[0]) / step < 10000, "k", k, "a sweep may hold at most 10000 values");
  std::vector<std::int64_t> out;
  for (std::int64_t x = v[0]; x <= v[1]; x += step) out.push_back(x);
  return out;
}

namespace {

InitMethod parse_init(const std::string& init) {
  const ModeNames<InitMethod> names = {{"k-means++", InitMethod::kKMeansPlusPlus},
                                       {"k-means||", InitMethod::kKMeansParallel},
                                       {"random", InitMethod::kRandom}};
  const std::string rule =
      "use k-means++, k-means||, random, or an existing centroid file (.csv or .h5)";
  const bool named =
      std::any_of(names.begin(), names.end(), [&](const auto& n) { return init == n.first; });
  std::error_code ec;
  if (!named && !init.empty() && std::filesystem::is_regular_file(init, ec))
    return InitMethod::kFile;
  return parse_mode(init, names, "init", rule);
}

const ModeNames<Criterion> kCriteria = {{"auto", Criterion::kAuto},
                                        {"gap", Criterion::kGap},
                                        {"silhouette", Criterion::kSilhouette},
                                        {"db", Criterion::kDaviesBouldin},
                                        {"ch", Criterion::kCalinskiHarabasz},
                                        {"elbow", Criterion::kElbow},
                                        {"bic", Criterion::kBic}};

Criterion parse_pick(const std::string& pick) {
  return parse_mode<Criterion>(pick, kCriteria, "pick",
                               "use auto, gap, silhouette, db, ch, elbow or bic");
}

KMeansKernel parse_kernel(const std::string& kernel) {
#ifdef __AVX512F__
  return parse_mode<KMeansKernel>(kernel,
                                  {{"auto", KMeansKernel::kAuto},
                                   {"fused", KMeansKernel::kFused},
                                   {"gemm", KMeansKernel::kGemm}},
                                  "kernel", "use auto, fused or gemm");
#else
  return parse_mode<KMeansKernel>(
      kernel, {{"auto", KMeansKernel::kAuto}, {"gemm", KMeansKernel::kGemm}}, "kernel",
      "use auto or gemm (this build has no AVX-512 for the fused kernel)");
#endif
}

KMeansAlgorithm parse_algorithm(const std::string& algorithm) {
  return parse_mode<KMeansAlgorithm>(algorithm,
                                     {{"auto", KMeansAlgorithm::kAuto},
                                      {"lloyd", KMeansAlgorithm::kLloyd},
                                      {"hamerly", KMeansAlgorithm::kHamerly},
                                      {"gmm", KMeansAlgorithm::kAuto}},
                                     "algorithm", "use auto, lloyd, hamerly or gmm");
}

}  // namespace

const char* criterion_name(Criterion c) { return mode_name(c, kCriteria).data(); }

bool KMeansParams::use_hamerly(std::int64_t k, std::int64_t h) const {
  KMeansModes m;
  m.algorithm = parse_algorithm(algorithm);
  return m.use_hamerly(k, h);
}

int KMeansParams::resolved_threads() const {
  return threads > 0 ? threads : env::default_threads();
}

KMeansModes KMeansParams::validate() const {
  require(!k.empty(), "k", k, "give the number of segments K or a sweep FROM:TO[:STEP]");
  const auto ks = k_values();
  KMeansModes m;
  m.init = parse_init(init);
  require(init_rounds >= 1, "init-rounds", init_rounds, "must be at least 1");
  require(std::isfinite(oversampling_factor) && oversampling_factor >= 0, "oversampling-factor",
          oversampling_factor, "must be >= 0 (0 means 2k)");
  require(n_init >= 0, "n-init", n_init,
          "must be >= 0 (0: 3 while users * k * dims <= 1e8, else 1)");
  require(max_iter >= 1, "max-iter", max_iter, "must be at least 1");
  require(restart_iters >= 0, "restart-iters", restart_iters,
          "must be >= 0 (0: every restart runs to max-iter)");
  require(swap_tries >= -1 && swap_tries <= 1000, "swap-tries", swap_tries,
          "must be in [-1, 1000] (-1: 5 while users * k * dims <= 1e8, else 0; 0: off)");
  require(std::isfinite(tol) && tol >= 0, "tol", tol, "must be >= 0");
  require(threads >= 0 && threads <= 1024, "threads", threads,
          "must be between 0 ($OMP_NUM_THREADS or 1) and 1024");
  require(silhouette_sample >= 0, "silhouette-sample", silhouette_sample, "must be >= 0");
  require(gap_references >= 2 && gap_references <= 100, "gap-references", gap_references,
          "must be in [2, 100]");
  require(gap_sample >= 100, "gap-sample", gap_sample, "must be at least 100");
  m.pick = parse_pick(pick);
  if (m.pick == Criterion::kSilhouette && ks.size() > 1 && silhouette_sample == 0)
    throw UsageError(
        "--pick silhouette and --silhouette-sample 0 cannot be used together: the "
        "sweep would have no silhouette to pick by (use --pick db or ch)");
  m.shape = parse_mode<ClusterShape>(shape,
                                     {{"auto", ClusterShape::kAuto},
                                      {"spherical", ClusterShape::kSpherical},
                                      {"tied", ClusterShape::kTied}},
                                     "shape", "use auto, spherical or tied");
  m.tied = m.shape == ClusterShape::kTied;
  m.kernel = parse_kernel(kernel);
  m.algorithm = parse_algorithm(algorithm);
  m.gmm = algorithm == "gmm";
  m.gmm_options.covariance = parse_mode<GmmCovariance>(covariance,
                                                       {{"tied", GmmCovariance::kTied},
                                                        {"full", GmmCovariance::kFull},
                                                        {"diag", GmmCovariance::kDiag}},
                                                       "covariance", "use tied, full or diag");
  require(std::isfinite(reg_covar) && reg_covar > 0, "reg-covar", reg_covar, "must be > 0");
  require(std::isfinite(gmm_tol) && gmm_tol >= 0, "gmm-tol", gmm_tol, "must be >= 0");
  require(gmm_max_iter >= 1, "gmm-max-iter", gmm_max_iter, "must be at least 1");
  m.gmm_options.reg_covar = reg_covar;
  m.gmm_options.tol = gmm_tol;
  m.gmm_options.max_iter = gmm_max_iter;
  if (m.pick == Criterion::kBic && !m.gmm)
    throw UsageError("--pick bic needs --algorithm gmm (K-means has no likelihood)");
  if (spherical && m.shape == ClusterShape::kTied)
    throw UsageError(
        "--shape tied and --spherical cannot be used together: tied segments whiten the rows "
        "that --spherical would keep on the unit sphere");
  if (m.gmm && m.shape == ClusterShape::kTied)
    throw UsageError(
        "--shape tied and --algorithm gmm cannot be used together: the mixture has its own "
        "covariance (--covariance tied)");
  require(!(m.init == InitMethod::kFile && ks.size() > 1), "init", init,
          "a centroid file fixes k; it cannot be combined with a --k sweep");
  return m;
}

}  // namespace segrec
