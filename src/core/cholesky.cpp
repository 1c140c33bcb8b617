#include "segrec/core/cholesky.hpp"

#include <algorithm>
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
  return ranks > 1 ? 2 * 8 * (n * std::min(panel, n) + 1) : 0;  // two blocks in turn
}

bool cholesky_blocks(double* A, std::int64_t n, const Comm& comm, std::int64_t panel) {
  SEGREC_ASSERT(n >= 0 && panel >= 1, "cholesky_blocks: bad n or panel");
  SEGREC_ASSERT(n <= std::int64_t{2147483647}, "cholesky_blocks: n over LAPACK's int");
  const int p = comm.size(), me = comm.rank();
  if (p == 1 || n <= panel) {  // nothing to share: every rank factors the whole (small) matrix
    return n == 0 || factor_block(A, n, n);
  }
  Eigen::Map<ColMat> M(A, n, n);
  const std::int64_t n_blocks = (n + panel - 1) / panel;
  const auto owner = [&](std::int64_t jb) { return static_cast<int>(jb % p); };
  // bufs[jb % 2]: block jb's L[j0:, j0:j1], column-major, then one status value (1: positive
  // definite). Two, so that block jb + 1 is in flight while block jb updates.
  std::vector<double> bufs[2];
  // Sizes block jb's buffer (its contents are the owner's or the broadcast's); its owner (its
  // columns up to date) factors it into the buffer.
  const auto prepare = [&](std::int64_t jb) {
    const std::int64_t j0 = jb * panel, w = std::min(panel, n - j0), m = n - j0;
    std::vector<double>& buf = bufs[jb % 2];
    buf.resize(static_cast<std::size_t>(m * w + 1));
    if (owner(jb) != me) return;
    bool ok = factor_block(A + j0 * n + j0, w, n);
    if (ok && m > w) {  // rows below: A[j1:, j] L_jj^-T
      const auto Ljj = M.block(j0, j0, w, w).triangularView<Eigen::Lower>();
      auto below = M.block(j0 + w, j0, m - w, w);
      Ljj.transpose().solveInPlace<Eigen::OnTheRight>(below);
      ok = below.allFinite();
    }
    Eigen::Map<ColMat>(buf.data(), m, w) = M.block(j0, j0, m, w);
    buf.back() = ok ? 1.0 : 0.0;
  };
  // A[c0:, c0:c1] -= L[c0:, :] L[c0:c1, :]^T for block cb and the factor block jb in L.
  const auto update = [&](std::int64_t cb, std::int64_t jb, const Eigen::Map<ColMat>& L) {
    const std::int64_t c0 = cb * panel, cw = std::min(panel, n - c0), r = c0 - jb * panel;
    M.block(c0, c0, n - c0, cw).noalias() -=
        L.middleRows(r, n - c0) * L.middleRows(r, cw).transpose();
  };
  prepare(0);
  Request flight = comm.ibroadcast(std::span<double>(bufs[0]), owner(0));
  for (std::int64_t jb = 0; jb < n_blocks; ++jb) {
    flight.wait();
    std::vector<double>& buf = bufs[jb % 2];
    if (buf.back() != 1.0) return false;  // (on every rank; nothing else in flight)
    const std::int64_t j0 = jb * panel, w = std::min(panel, n - j0), m = n - j0;
    const Eigen::Map<ColMat> L(buf.data(), m, w);
    if (me != owner(jb)) {
      M.block(j0, j0, w, w).triangularView<Eigen::Lower>() = L.topRows(w);
      if (m > w) M.block(j0 + w, j0, m - w, w) = L.bottomRows(m - w);
    }
    // Look-ahead: the next block's owner brings it up to date first, factors it and sends it
    // off while every rank updates the rest of its blocks.
    const std::int64_t next = jb + 1;
    if (next < n_blocks) {
      if (owner(next) == me) update(next, jb, L);
      prepare(next);
      flight = comm.ibroadcast(std::span<double>(bufs[next % 2]), owner(next));
    }
    for (std::int64_t cb = next + 1; cb < n_blocks; ++cb)
      if (owner(cb) == me) update(cb, jb, L);
  }
  return true;
}

}  // namespace segrec::linalg
