// Cholesky factorisation A = L L^T of a symmetric positive definite matrix held whole on every
// rank, with its flops split over the ranks (right-looking, by column blocks).
//
//   A: n x n doubles, column-major, lower triangle read; the same on every rank.
//   Column blocks of `panel` columns are dealt round-robin: block b belongs to rank b mod p.
//   For each block j in order: its owner factors the diagonal block (LAPACK dpotrf, panel^3/3
//   flops) and solves the rows below it (L[j1:, j] = A[j1:, j] L_jj^-T), and broadcasts
//   L[j0:, j] ((n - j0) x panel doubles); every rank then updates only its own later blocks,
//   A[c0:, c] -= L[c0:, j] L[c, j]^T (GEMM). Look-ahead: the owner of block j + 1 updates it
//   first, factors it and starts its broadcast before updating its other blocks, so that no
//   rank waits for a block's factorisation. Per rank about n^3 / (3 p) flops, n^2 / 2 doubles
//   received, two blocks of n x panel doubles of scratch.
// On return every rank holds the whole factor L in the lower triangle of A (the strict upper
// triangle is scratch). One rank: LAPACK's dpotrf on the whole matrix.
#pragma once

#include <cstdint>

#include "segrec/core/comm.hpp"

namespace segrec::linalg {

/// Columns per block of cholesky_blocks (the broadcast unit and the GEMM's inner size).
inline constexpr std::int64_t kCholeskyPanel = 256;

/// Collective. Factors A in place (see above). Returns false on every rank, with A's contents
/// unspecified, when A is not positive definite (a non-positive or non-finite pivot).
bool cholesky_blocks(double* A, std::int64_t n, const Comm& comm,
                     std::int64_t panel = kCholeskyPanel);

/// Bytes of scratch cholesky_blocks allocates on each rank: 0 on one rank.
std::int64_t cholesky_scratch_bytes(std::int64_t n, int ranks, std::int64_t panel = kCholeskyPanel);

}  // namespace segrec::linalg
