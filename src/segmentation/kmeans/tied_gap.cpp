// The gap statistic of tied segments (tied_gap.hpp).
#include "segrec/segmentation/kmeans/tied_gap.hpp"

#include <algorithm>

#include "internal.hpp"

namespace segrec {

namespace {
constexpr std::uint64_t kTagTiedGap = 0x544741ULL;  // "TGA"
}  // namespace

TiedGapReference tied_gap_reference(std::int64_t d, std::int64_t n, std::int64_t sample, int sets,
                                    std::uint64_t seed, const Comm& comm) {
  GapReference g;  // N(0, I_d)
  g.mean = Eigen::VectorXd::Zero(d);
  g.factor = Eigen::MatrixXd::Identity(d, d);
  g.rows = std::min(sample, n);
  g.sets = sets;
  g.seed = rng::fold_keys(seed, kTagTiedGap, 0);
  TiedGapReference r;
  for (int b = 0; b < sets; ++b) {
    r.rows.push_back(gap_reference_rows(g, b, comm));
    r.inputs.push_back(tied_input(r.rows.back(), comm));
    r.ld1.push_back(tied_total_log_det(r.inputs.back()));
  }
  return r;
}

GapValue tied_gap_statistic(const TiedGapReference& ref, double ld_k, double ld_1, std::int64_t k,
                            const KMeansParams& p, const KMeansModes& modes, const Comm& comm,
                            const std::function<void()>& set_done) {
  KMeansParams q = gap_reference_params(p);
  std::vector<double> drops;  // ld_k - ld_1 of each set
  for (std::size_t b = 0; b < ref.rows.size(); ++b) {
    const auto m = static_cast<std::int64_t>(ref.inputs[b].n);  // rows over all ranks
    q.seed = rng::fold_keys(p.seed, kTagTiedGap, static_cast<std::uint64_t>(b) + 1);
    const KMeansResult r =
        kmeans_detail::kmeans_prepared(ref.rows[b], std::min(k, m), q, modes, comm, nullptr);
    drops.push_back(pooled_log_det(ref.rows[b], ref.inputs[b], r.labels, r.k, comm) - ref.ld1[b]);
    if (set_done) set_done();
  }
  return gap_of(drops, ld_k - ld_1);
}

bool tied_merges_groups(const std::vector<SweepRow>& rows, std::size_t i) {
  for (std::size_t j = i + 1; j < std::min(rows.size(), i + 1 + kTiedMergeWindow); ++j)
    if (rows[j].quality.gap - rows[i].quality.gap > kTiedMergeRise) return true;
  return false;
}

}  // namespace segrec
