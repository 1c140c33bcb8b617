// `segrec evaluate`: top-N quality of a model on held-out users, with baselines.
//
// Fold-in users are served like new users (profile -> project -> nearest centroid
// -> score; history excluded). For every user with test items, and each K:
//   Recall@K  = hits in the top K / min(K, |test|)
//   NDCG@K    = DCG@K / ideal DCG over min(K, |test|) hits, DCG = sum_r hit_r / log2(r + 2)
//   HitRate@K = 1 when the top K hold a test item
// and, per system, MRR = mean 1 / rank of the first hit within the top max(K) (0 when
// none), catalogue coverage@K = distinct items in some top-K list / catalogue size, and
// novelty@K = mean training-popularity rank (1 = most popular) of the recommended items.
// The definitions are those of topn_quality.py (recall, NDCG); test items the model
// does not know count in |test| and are never hit; users with test items but no fold-in
// events get empty lists (they count as misses), as in topn_quality.py.
// Full ranking (next-item evaluation, e.g. on a `split --temporal-last` split with one
// target per user): every list ranks all items the model knows (history excluded; never
// sampled negatives); r = 1-based rank of the best-ranked known test item, then
//   HR@N = [r <= N], NDCG@N = [r <= N] / log2(r + 1), MRR = 1 / r   (N = --rank-k, 10)
// averaged over the users with test items (0 for a user whose test items are unknown or
// unranked). With one target these are the usual leave-one-out metrics; with several,
// HR@N equals HitRate@N and NDCG@N counts the first hit only. The lists are then as long
// as the catalogue (a full sort per user and system); --rank-k 0 ranks the top max(K) only.
// Systems: global popularity and popularity within the user's segment (from the
// training counts in the model's bundle), then each mode the model holds (model_modes),
// then "served": the model with recommend's cold-start rule (--min-events).
// A sequence model (kind "sequence") reads each user's fold-in events in time order and
// ranks every item: see evaluate_sequence.hpp.
// Users are partitioned over ranks by ingest (the same user id lands on the same rank
// in the fold-in and test files); metric sums are allreduced.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/ingest/ingest.hpp"
#include "segrec/personalisation/model.hpp"

namespace segrec {

struct EvaluateParams {
  std::string model;  ///< model.h5 (required)
  /// --foldin: the fold-in file and the reading options shared with --test.
  IngestParams foldin;
  std::string test;                ///< test events (same format)
  std::string k = "10,20,50,100";  ///< cut-offs K
  std::string json;                ///< write the metrics as JSON here ("" = none)
  /// Also evaluate the policy of `segrec recommend`: users with fewer known fold-in
  /// events get their segment's popular items (system "served"; 0 = off).
  std::int64_t min_events = 3;
  std::int64_t block_users = 4096;  ///< users scored per block (fewer with a large catalogue)
  std::int64_t rank_k = 10;         ///< N of the full-ranking HR@N and NDCG@N (0 = no full ranking)

  /// Throws UsageError naming the option and the value.
  void validate() const;
  std::vector<std::int64_t> k_list() const;
};

/// Metrics of one system (or one system on one segment).
struct SystemMetrics {
  std::string name;
  std::int64_t users = 0;
  std::vector<double> recall, ndcg, hitrate;  ///< per K
  std::vector<double> coverage, novelty;      ///< per K (whole run only)
  double mrr = 0;
  double full_hr = 0, full_ndcg = 0, full_mrr = 0;  ///< full ranking, at rank_k
};

struct EvaluateResult {
  std::vector<std::int64_t> k;
  std::int64_t rank_k = 10;               ///< N of the full-ranking HR@N, NDCG@N
  std::int64_t users = 0;                 ///< users with test items (global)
  std::int64_t users_without_foldin = 0;  ///< of them, users with no fold-in events
  std::int64_t unknown_test_items = 0;    ///< test (user, item) pairs the model does not know
  std::int64_t n_items = 0;
  std::vector<SystemMetrics> systems;
  /// per_segment[g][s]: system s on the users of segment g (g = k: no segment).
  std::vector<std::vector<SystemMetrics>> per_segment;

  std::string table() const;  ///< human-readable, with the per-segment breakdown
  std::string to_json() const;
};

/// The scoring modes a model holds, each evaluated as its own system: "model" (as
/// trained, with its segment heads), and "model-global-head" for a model with heads.
std::vector<std::string> model_modes(const Model& m);

/// Local. Adds one ranked list's metrics to sums: recall, ndcg, hit per K, then
/// the reciprocal rank (within the list). `ranked` best first (-1 padding);
/// `test` the sorted known test items; `n_test` |test| with unknown items.
void add_list_metrics(const std::vector<std::int32_t>& ranked,
                      const std::vector<std::int32_t>& test, std::int64_t n_test,
                      const std::vector<std::int64_t>& k, double* sums);

/// Local. Adds one full ranking's HR@k, NDCG@k and reciprocal rank (of the first item of
/// `ranked` in the sorted `test`; nothing when none is) to sums[0..2].
void add_full_rank_metrics(const std::vector<std::int32_t>& ranked,
                           const std::vector<std::int32_t>& test, std::int64_t k, double* sums);

/// Doubles of one system's metric sums for nk cut-offs: recall, ndcg, hit per K, the
/// reciprocal-rank sum and the user count, then the full-ranking HR, NDCG and RR sums.
inline std::size_t metric_sums_size(std::size_t nk) { return 3 * nk + 5; }

/// Users ranked per block: full-length lists of at most about 2^22 entries.
inline constexpr std::int64_t kFullListCells = std::int64_t{1} << 22;

/// The means of one system's sums (metric_sums_size(nk) doubles); coverage and novelty empty.
SystemMetrics metrics_from(const std::string& name, const double* sums, std::size_t nk);

/// The fold-in and the test events of `segrec evaluate`, both ingested with the fold-in's
/// options (nothing written). Collective.
struct EvaluateData {
  Dataset foldin, test;
};
EvaluateData read_evaluate_data(const EvaluateParams& p, const Comm& comm);

/// Collective. `segrec evaluate`.
EvaluateResult run_evaluate(const EvaluateParams& p, const Comm& comm);

}  // namespace segrec
