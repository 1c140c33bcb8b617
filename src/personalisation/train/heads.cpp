// Segment heads: after global training, each large enough segment fine-tunes
// its own copy of the top --head-layers layers.
#include <algorithm>
#include <cmath>

#include "segrec/core/error.hpp"
#include "trainer_impl.hpp"

namespace segrec::train_impl {

// Segment heads: after global training, every segment with at least --min-segment-users
// training users fine-tunes its own copy of the top --head-layers layers on its users, all
// ranks together, one segment after another (each segment's batches are keyed by the seed, the
// segment and the user's index among the segment's training users, so the heads do not depend
// on the rank count). Every head epoch is scored on the segment's validation users and the best
// kept; a head that never beats the global layers there is dropped (the segment keeps them).
// Without validation users the last epoch's head is kept.
void Trainer::train_heads(Model& m) {
  const int L = shape_.n_layers();
  const mlp::Layout& lay = net_.layout();
  m.head_layers = p_.head_layers;
  const std::int64_t a = lay.w[L - p_.head_layers], b = lay.emb, hs = b - a;
  std::vector<std::pair<std::int64_t, std::int64_t>> decayed;
  for (int l = L - static_cast<int>(p_.head_layers); l < L; ++l)
    decayed.emplace_back(lay.w[l] - a, lay.w[l] - a + shape_.fan_in(l) * shape_.fan_out(l));
  const std::int64_t k = d_.n_segments;
  std::vector<std::int64_t> counts(static_cast<std::size_t>(k), 0);
  for (const auto i : train_local_) ++counts[static_cast<std::size_t>(d_.segments[i])];
  comm_.allreduce(counts);
  const std::vector<float> base = m.params;
  Model probe = m;
  probe.head_layers = 0;
  probe.heads.clear();
  probe.head_segments.clear();
  std::vector<float> hm(static_cast<std::size_t>(hs)), hv(static_cast<std::size_t>(hs));
  std::vector<float> hbuf(static_cast<std::size_t>(hs) + 1), grad(static_cast<std::size_t>(P_));
  std::vector<std::int64_t> seg_local;
  std::vector<std::pair<std::uint64_t, std::int64_t>> order;
  mlp::Batch<float> bt;
  const auto dropout = static_cast<float>(p_.dropout);
  for (std::int32_t s = 0; s < k; ++s) {
    const std::int64_t N = counts[static_cast<std::size_t>(s)];
    if (N < p_.min_segment_users) continue;
    seg_local.clear();
    for (const auto i : train_local_)
      if (d_.segments[i] == s) seg_local.push_back(i);
    const std::int64_t offset = comm_.exscan_sum(std::ssize(seg_local));
    const std::int64_t bs = std::min(batch_, N), steps = (N + bs - 1) / bs;
    const EvalUsers val = eval_subset(val_eval_, [&](std::int64_t r) {
      return val_eval_.segment[static_cast<std::size_t>(r)] == s;
    });
    const bool has_val = comm_.allreduce_value(val.rows()) > 0;
    const auto score = [&]() {
      const auto q = quality_sums(probe, val, p_.ndcg_k, p_.recall_k, 0, false, comm_);
      return q[2] > 0 ? q[0] / q[2] : 0.0;
    };
    net_.params() = base;
    probe.params = base;
    double best = has_val ? score() : 0.0;
    bool keep = !has_val;
    std::vector<float> best_head(base.begin() + a, base.begin() + b);
    std::fill(hm.begin(), hm.end(), 0.0f);
    std::fill(hv.begin(), hv.end(), 0.0f);
    std::int64_t t = 0;
    for (std::int64_t e = 0; e < p_.head_epochs; ++e) {
      const detail::EpochBatches batches(
          static_cast<std::uint64_t>(N), static_cast<std::uint64_t>(steps),
          hash_keys(p_.seed ^ kTagHead, static_cast<std::uint64_t>(s),
                    static_cast<std::uint64_t>(e)));
      order.clear();
      for (std::size_t j = 0; j < seg_local.size(); ++j) {
        const auto tt = static_cast<std::uint64_t>(offset) + j;
        order.emplace_back(batches.batch(tt) * static_cast<std::uint64_t>(N) + tt, seg_local[j]);
      }
      std::sort(order.begin(), order.end());
      const auto cnt = batches.counts();
      std::size_t cursor = 0;
      for (std::int64_t st = 0; st < steps; ++st) {
        const std::uint64_t end =
            (static_cast<std::uint64_t>(st) + 1) * static_cast<std::uint64_t>(N);
        bt.clear();
        for (; cursor < order.size() && order[cursor].first < end; ++cursor)
          add_train_user(bt, order[cursor].second, kHeadEpochBase + e * k + s);
        if (sampler_)
          sampler_->draw(hash_keys(p_.seed ^ kTagNegatives,
                                   static_cast<std::uint64_t>(kHeadEpochBase + e * k + s),
                                   static_cast<std::uint64_t>(st)),
                         bt);
        const double loss =
            net_.loss_and_grad(bt, dropout, grad.data(), L - static_cast<int>(p_.head_layers));
        std::copy(grad.begin() + a, grad.begin() + b, hbuf.begin());
        hbuf[static_cast<std::size_t>(hs)] = static_cast<float>(loss);
        comm_.allreduce(hbuf);
        if (!std::isfinite(hbuf[static_cast<std::size_t>(hs)]))
          throw DataError("train: the loss is not finite while fine-tuning the head of segment " +
                              std::to_string(s) + "; lower --head-lr",
                          true);
        optimiser_update(opt_, hbuf.data(), net_.params().data() + a, hm.data(), hv.data(), hs,
                         decayed, static_cast<double>(++t),
                         1.0 / static_cast<double>(cnt[static_cast<std::size_t>(st)]), p_.head_lr);
      }
      if (!has_val) continue;
      std::copy(net_.params().begin() + a, net_.params().begin() + b, probe.params.begin() + a);
      const double q = score();
      if (q > best) {
        best = q;
        keep = true;
        best_head.assign(net_.params().begin() + a, net_.params().begin() + b);
      }
    }
    if (!has_val) best_head.assign(net_.params().begin() + a, net_.params().begin() + b);
    if (!keep) continue;
    m.head_segments.push_back(s);
    m.heads.insert(m.heads.end(), best_head.begin(), best_head.end());
  }
  net_.params() = base;
  check_same_params(m.heads, comm_, "after fine-tuning the segment heads");
}

}  // namespace segrec::train_impl
