// EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): an item-item matrix in
// closed form, and the popularity baseline; scoring users with either.
//
//   G = X^T X                           n x n, X: training users x items (history values)
//   P = (G + lambda I)^-1
//   B = I - P diag(1 / diag(P))         i.e. B_ij = -P_ij / P_jj, diag(B) = 0
//   score(u) = x_u B                    (popularity: score = the item's training count)
//
// How the ranks share the work (the rule, docs/personalisation.md "EASE"):
// - G: each rank sums x_u x_u^T over its own users; one allreduce gives every rank G.
// - Cholesky G + lambda I = L L^T by column blocks (core/cholesky.hpp): blocks of 256
//   columns dealt round-robin, each factored by its owner and broadcast, each rank updating
//   only its own later blocks: n^3 / (3 p) flops per rank, and every rank then holds all of L
//   (one rank: dpotrf, threaded by OpenBLAS with the rank's threads, or, when none are
//   given, its share of the node's CPUs: blas::NodeThreads).
// - P by panels of 128 columns, dealt to the ranks as a snake (0, 1, ..., p-1, p-1, ..., 0,
//   0, 1, ...: each rank gets wide and narrow trailing triangles alike): a panel's part on
//   and below the diagonal is P[a:, panel] = L_a^-T (L_a^-1 E) with L_a = L[a:, a:] (two
//   triangular solves, 2 (n - a)^2 x 128 flops, so that column j costs about 2 (n - j)^2
//   flops and all of P 2 n^3 / 3, as LAPACK's dpotri). Then each panel is broadcast from
//   its owner (as rows, P being symmetric), which completes P on every rank. With one rank
//   dpotri does it. Per rank: n^3 / (3 p) (factor) + 2 n^3 / (3 p) (inverse) flops.
// - Every rank forms the whole B (it scores its own validation users with it); model.h5
//   stores B row-partitioned by block_partition.
// Memory per rank (bytes_per_rank): G and the factor (reused for P) in doubles, two B in
// floats (the best so far and the next lambda's), one panel's right-hand sides and, on more
// than one rank, the factor's two broadcast blocks: 24 n^2 + 8 x (128 + 512) n bytes,
// refused over --max-memory-per-rank (default: the machine's memory): 16 GiB per rank fit
// about 26,000 items, 64 GiB about 53,000.
#pragma once

#include <cstdint>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/personalisation/model.hpp"

namespace segrec::ease {

/// The rank that solves the inverse's panel q (columns [128 q, 128 q + 128)) on p ranks.
int panel_owner(std::int64_t q, int p);

/// Triangular-solve flops of the panels rank `rank` of p solves for n items.
double rank_flops(std::int64_t n, int p, int rank);

/// Bytes one rank allocates to solve EASE for n items on p ranks (the largest over the ranks).
std::int64_t bytes_per_rank(std::int64_t n, int p);

/// Throws DataError (one line naming the item count and the limit) when
/// bytes_per_rank(n, p) exceeds `budget` bytes.
void check_memory(std::int64_t n, int p, std::int64_t budget);

/// Collective. G = X^T X over the local users `rows` (CSR indptr/indices/values;
/// values already the history values), summed over the ranks: n x n, row-major, doubles,
/// its upper triangle (i <= j) only (G is symmetric; the strict lower triangle is zero).
std::vector<double> gram(std::int64_t n, const std::vector<std::int64_t>& indptr,
                         const std::vector<std::int32_t>& indices, const std::vector<float>& values,
                         const std::vector<std::int64_t>& rows, const Comm& comm);

/// Collective. B for one lambda > 0 from G (n x n, row-major, upper triangle read, as gram
/// gives it): n x n floats, row-major, zero diagonal, on every rank. Throws DataError when
/// G + lambda I is not positive definite. G is factored in place: pass std::move(G) when
/// it is not needed again (the last lambda), a copy otherwise.
std::vector<float> solve(std::vector<double> G, std::int64_t n, double lambda, const Comm& comm);

/// The geometric lambda grid tried on the validation users when --l2 is auto.
std::vector<double> default_grid();

/// The linear shape n_items -> n_items (no hidden layer) that ease and popularity models
/// carry in Model::shape, so that serving reads their inputs as the MLP's history.
mlp::Shape linear_shape(std::int64_t n_items);

/// Collective. model.h5's part of an ease or popularity model (write_model / read_model):
/// the root attribute model_kind, /ease/B row-partitioned by block_partition, or
/// /popularity/scores. read_linear throws DataError naming the file on a bad shape.
void write_linear(h5::File& f, const Model& m, const Comm& comm);
void read_linear(const h5::File& f, const std::string& path, Model& m);

/// Top-N of an EASE or popularity model (score_users dispatches here for them).
TopN score_linear(const Model& m, const UserInputs& users, std::int64_t n, bool exclude_history);

}  // namespace segrec::ease
