#include "segrec/core/cholesky.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "segrec/core/error.hpp"

#ifdef SEGREC_HAVE_OPENBLAS
extern "C" {
// OpenBLAS's LAPACK (Fortran interface; the trailing length of the character argument).
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info, std::size_t);
}
#endif

namespace segrec::linalg {

namespace {

using ColMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using Strided = Eigen::Ref<ColMat, 0, Eigen::OuterStride<> >;

// In-place Cholesky of the lower triangle of the m x m block at a (leading dimension lda).
bool factor_block(double* a, std::int64_t m, std::int64_t lda) {
#ifdef SEGREC_HAVE_OPENBLAS
  const int mi = static_cast<int>(m), ld = static_cast<int>(lda);
  int info = 0;
  dpotrf_("L", &mi, a, &ld, &info, 1);
  return info == 0;
#else
  Eigen::Map<ColMat, 0, Eigen::OuterStride<> > D(a, m, m, Eigen::OuterStride<>(lda));
  Eigen::LLT<Strided> llt(D);
  return llt.info() == Eigen::Success;
#endif
}

}  // namespace

std::int64_t cholesky_scratch_bytes(std::int64_t n, int ranks, std::int64_t panel) {
  return ranks > 1 ? 8 * (n * std::min(panel, n) + 1) : 0;
}

bool cholesky_blocks(double* A, std::int64_t n, const Comm& comm, std::int64_t panel) {
  SEGREC_ASSERT(n >= 0 && panel >= 1, "cholesky_blocks: bad n or panel");
  SEGREC_ASSERT(n <= std::int64_t{2147483647}, "cholesky_blocks: n over LAPACK's int");
  const int p = comm.size(), me = comm.rank();
  if (p == 1 || n <= panel) {  // nothing to share: every rank factors the whole (small) matrix
    const bool ok = n == 0 || factor_block(A, n, n);
    return ok;
  }
  Eigen::Map<ColMat> M(A, n, n);
  // buf: the block's L[j0:, j0:j1], column-major, then one status value (1: positive definite).
  std::vector<double> buf;
  buf.reserve(static_cast<std::size_t>(n * panel + 1));
  const std::int64_t n_blocks = (n + panel - 1) / panel;
  for (std::int64_t jb = 0; jb < n_blocks; ++jb) {
    const std::int64_t j0 = jb * panel, w = std::min(panel, n - j0), m = n - j0;
    const int owner = static_cast<int>(jb % p);
    buf.assign(static_cast<std::size_t>(m * w + 1), 0.0);
    Eigen::Map<ColMat> L(buf.data(), m, w);
    if (me == owner) {
      bool ok = factor_block(A + j0 * n + j0, w, n);
      if (ok && m > w) {  // rows below: A[j1:, j] L_jj^-T
        const auto Ljj = M.block(j0, j0, w, w).triangularView<Eigen::Lower>();
        auto below = M.block(j0 + w, j0, m - w, w);
        Ljj.transpose().solveInPlace<Eigen::OnTheRight>(below);
        ok = below.allFinite();
      }
      L = M.block(j0, j0, m, w);
      buf.back() = ok ? 1.0 : 0.0;
    }
    comm.broadcast(std::span<double>(buf), owner);
    if (buf.back() != 1.0) return false;
    if (me != owner) M.block(j0, j0, m, w).triangularView<Eigen::Lower>() = L.topRows(w);
    if (me != owner && m > w) M.block(j0 + w, j0, m - w, w) = L.bottomRows(m - w);
    // This rank's later blocks: A[c0:, c0:c1] -= L[c0:, :] L[c0:c1, :]^T.
    for (std::int64_t cb = jb + 1; cb < n_blocks; ++cb) {
      if (cb % p != me) continue;
      const std::int64_t c0 = cb * panel, cw = std::min(panel, n - c0), r = c0 - j0;
      M.block(c0, c0, n - c0, cw).noalias() -=
          L.middleRows(r, n - c0) * L.middleRows(r, cw).transpose();
    }
  }
  return true;
}

}  // namespace segrec::linalg
