// `segrec similar`: the K most similar users of every user (or of listed users), exact.
//
// Vectors: the projection h_u (projection.h5 /H, f32 n_users x h). Each rank holds its block
// of users; the blocks pass around the ranks in a ring (Comm::ring_shift, the next block in
// flight while the current one is scored), one GEMM per (query tile, visiting tile) pair into
// a bounded score tile, and a running top-K per user. Memory per rank: its block, two
// visiting blocks (4 h max_block bytes each), one score tile and the top lists.
//
// Determinism: candidates are kept by their GEMM score (ties to the smaller global index);
// the kept ones are rescored exactly (double, fixed order) and the best `top` of those, ties to
// the smaller global index, are the answer: the same at any rank count.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec {

/// --metric: inner product (larger is closer), squared Euclidean distance (smaller is
/// closer; the score written is the squared distance, as faiss IndexFlatL2), cosine
/// (inner product of the rows scaled to unit length; a zero row has cosine 0 with all).
enum class SimilarMetric { kIp, kL2, kCosine };

struct SimilarParams {
  std::string projection;     ///< projection.h5 (/H) (required)
  std::string metric = "ip";  ///< ip | l2 | cosine
  std::int64_t top = 10;      ///< neighbours per user (1 <= top < users)
  std::string users;          ///< FILE (one id a line) or ID,ID,...: only these users ("" = all)
  /// The --query-users ids are raw ids, hashed with this key as `ingest --pseudonymize` did
  /// ("" = ids as stored). KEY, env:NAME or file:PATH.
  std::string pseudonymize;
  std::string out;                ///< similar.csv (required)
  std::int64_t tile_rows = 256;   ///< query rows per score tile
  std::int64_t tile_cols = 1024;  ///< visiting rows per score tile

  /// Throws UsageError naming the option and the value; returns the metric.
  SimilarMetric validate() const;
};

/// Neighbours of a set of query rows: rows x k, best first.
struct Neighbours {
  std::int64_t k = 0;
  std::vector<std::int64_t> index;  ///< global row of each neighbour
  std::vector<double> score;        ///< exact score (inner product, squared distance, cosine)
};

/// Collective. X: this rank's rows (n_local x dims, row-major), the ranks' rows in rank order
/// forming the global rows. `queries`: local rows (ascending) to answer for. k: 1 <= k <
/// global rows. Returns queries.size() x k neighbours (the query itself excluded).
Neighbours similar_rows(std::span<const float> X, std::int64_t dims,
                        std::span<const std::int64_t> queries, std::int64_t k, SimilarMetric metric,
                        const Comm& comm, std::int64_t tile_rows = 256,
                        std::int64_t tile_cols = 1024);

struct SimilarSummary {
  std::int64_t users = 0;     ///< users in the projection
  std::int64_t queried = 0;   ///< users answered for
  std::int64_t rows = 0;      ///< lines written (queried x top)
  std::int64_t dims = 0;      ///< vector length
  double seconds_search = 0;  ///< the ring (GEMMs and top lists), rank 0's clock
};

/// Collective. `segrec similar`: reads the projection, answers, writes the CSV
/// (user_id,rank,neighbour_id,score) through a temporary file and a rename.
SimilarSummary run_similar(const SimilarParams& p, const Comm& comm);

}  // namespace segrec
