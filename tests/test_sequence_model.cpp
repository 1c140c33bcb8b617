// The sequence model's network: the gradient of every parameter block (item and type
// embeddings, the GRU cell's input and recurrent weights and biases, the output
// embedding and bias) against central finite differences, in double; padding that
// changes nothing; windows that read only their own past.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

#include "segrec/core/error.hpp"
#include "segrec/personalisation/model.hpp"
#include "segrec/personalisation/sequence/gru.hpp"
#include "segrec/personalisation/sequence/train.hpp"
#include "segrec/personalisation/train.hpp"
#include "sequence_fixture.hpp"

namespace segrec::seq {
namespace {

// Three windows of lengths 5, 2 and 4 (padded to 4 inputs), two event types.
Batch small_batch() {
  return Batch::from({{0, 3, 5, 1, 6}, {2, 4}, {6, 6, 1, 0}},
                     {{0, 1, 0, 0, 1}, {1, 0}, {0, 0, 1, 1}}, true);
}

// Every block's analytic gradient against central differences on `b` (double); tied: the
// item embedding also scores the output; gaps: the batch's gap buckets are embedded.
void check_gradient(const Batch& b, bool tied = false, bool gaps = false) {
  const Shape s{7, 2, 3, tied, gaps ? kGapBuckets : 0};
  GruNet<double> net(s);
  net.init(11);
  // Non-zero biases so that their paths are exercised too.
  const Layout& L = net.layout();
  for (std::int64_t k = L.bx; k < L.bh + 3 * s.dim; ++k)
    net.params()[static_cast<std::size_t>(k)] = 0.1 * std::sin(static_cast<double>(k));
  for (std::int64_t k = L.out_b; k < L.size; ++k)
    net.params()[static_cast<std::size_t>(k)] = 0.2 * std::cos(static_cast<double>(k));
  std::vector<double> grad(static_cast<std::size_t>(L.size), 0.0), dummy(grad.size());
  const double loss = net.loss_and_grad(b, grad.data());
  EXPECT_GT(loss, 0);
  const struct {
    const char* name;
    std::int64_t begin, end;
  } blocks[] = {{"item embedding", L.item_emb, L.type_emb},
                {"type embedding", L.type_emb, L.gap_emb},
                {"gap embedding", L.gap_emb, L.wx},
                {"GRU Wx", L.wx, L.wh},
                {"GRU Wh", L.wh, L.bx},
                {"GRU bx", L.bx, L.bh},
                {"GRU bh", L.bh, L.bh + 3 * s.dim},
                {"output embedding", tied ? L.out_b : L.out_w, L.out_b},
                {"output bias", L.out_b, L.size}};
  const double h = 1e-6;
  for (const auto& blk : blocks) {
    if (blk.begin == blk.end) continue;  // tied: no output embedding block
    double worst = 0;
    std::int64_t nonzero = 0;
    for (std::int64_t k = blk.begin; k < blk.end; ++k) {
      auto& w = net.params()[static_cast<std::size_t>(k)];
      const double w0 = w;
      w = w0 + h;
      const double lp = net.loss_and_grad(b, dummy.data());
      w = w0 - h;
      const double lm = net.loss_and_grad(b, dummy.data());
      w = w0;
      const double fd = (lp - lm) / (2 * h);
      const double g = grad[static_cast<std::size_t>(k)];
      worst = std::max(worst, std::abs(fd - g) / std::max(1.0, std::abs(fd)));
      nonzero += std::abs(g) > 1e-9;
    }
    EXPECT_LT(worst, 1e-7) << blk.name;
    EXPECT_GT(nonzero, 0) << blk.name << ": no gradient at all";
  }
}

TEST(SequenceGru, GradientMatchesFiniteDifferencesForEveryBlock) {
  const Batch b = small_batch();
  ASSERT_EQ(b.T, 4);
  ASSERT_EQ(b.n_targets(), 4 + 1 + 3);
  check_gradient(b);
}

// The output scored with the input item embedding: one block takes both gradients.
TEST(SequenceGru, TiedEmbeddingGradient) {
  const Shape s{7, 2, 3, true};
  const Layout L(s);
  EXPECT_EQ(L.out_w, L.item_emb);
  EXPECT_EQ(L.size, Layout(Shape{7, 2, 3}).size - 7 * 3);
  check_gradient(small_batch(), true);
}

// Gap buckets: none before a user's first event, log2 steps of the time unit, capped.
TEST(SequenceGru, GapBuckets) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const struct {
    double dt;
    int bucket;
  } rows[] = {{nan, 0}, {-5, 1},    {0, 1},      {0.5, 1},    {1, 2},    {2, 2},
              {3, 3},   {3600, 12}, {86400, 17}, {3.2e7, 25}, {1e12, 31}};
  for (const auto& r : rows) EXPECT_EQ(gap_bucket(r.dt), r.bucket) << r.dt;
  // A window of the last 2 of 4 events reads the third one's gap from the second.
  EXPECT_EQ(window_times({10, 20, 40, 100}, 2), (std::vector<double>{20, 40, 100}));
  const auto all = window_times({10, 20}, 2);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_TRUE(std::isnan(all[0]));
  // Batch::from (time-major): window 0 starts a user's log, window 1 follows an event at 0.
  const Batch b = Batch::from({{1, 2, 3}, {4, 5}}, {{0, 0, 0}, {0, 0}}, false,
                              {{nan, 100, 101, 4000}, {0, 3600, 3601}});
  EXPECT_EQ(b.gap, (std::vector<std::uint8_t>{0, 12, 2, 2, 12, 0}));
  // One time per event plus the one before the window, or a clear refusal.
  EXPECT_THROW(Batch::from({{1, 2}}, {{0, 0}}, false, {{0, 1}}), UsageError);
}

// The time-gap embedding's gradient, with every other block, on windows with times.
TEST(SequenceGru, GapEmbeddingGradient) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Batch b =
      Batch::from({{0, 3, 5, 1, 6}, {2, 4}, {6, 6, 1, 0}}, {{0, 1, 0, 0, 1}, {1, 0}, {0, 0, 1, 1}},
                  true, {{nan, 0, 1, 5, 5, 600}, {30, 90, 4000}, {nan, 7, 8, 1e5, 2e6}});
  ASSERT_EQ(b.gap.size(), static_cast<std::size_t>(b.B * b.T));
  check_gradient(b, false, true);
  check_gradient(b, true, true);
  // The model with a gap input refuses a batch without times.
  GruNet<double> net(Shape{7, 2, 3, false, kGapBuckets});
  std::vector<double> g(static_cast<std::size_t>(net.layout().size));
  EXPECT_THROW(net.loss_and_grad(small_batch(), g.data()), UsageError);
}

// With input and output dropout masks (a third of the features dropped, the rest scaled
// by 1.5) the gradient is still exact, and the masks change the loss.
TEST(SequenceGru, GradientWithDropoutMasks) {
  Batch b = small_batch();
  const std::size_t n = static_cast<std::size_t>(b.B * b.T * 3);
  for (std::size_t k = 0; k < n; ++k) {
    b.drop_in.push_back(k % 3 == 1 ? 0.0f : 1.5f);
    b.drop_out.push_back(k % 3 == 2 ? 0.0f : 1.5f);
  }
  check_gradient(b);
  GruNet<double> net(Shape{7, 2, 3});
  net.init(11);
  std::vector<double> g(static_cast<std::size_t>(net.layout().size));
  EXPECT_GT(std::abs(net.loss_and_grad(b, g.data()) - net.loss_and_grad(small_batch(), g.data())),
            1e-3);
}

// Padding a window (a longer window in the batch) changes neither its loss nor its
// states, and a window's state at position t reads only its events up to t.
TEST(SequenceGru, PaddingAndCausality) {
  const Shape s{7, 2, 4};
  GruNet<double> net(s);
  net.init(3);
  std::vector<double> g(static_cast<std::size_t>(net.layout().size));
  const double alone = net.loss_and_grad(Batch::from({{2, 4, 1}}, {{1, 0, 0}}, true), g.data());
  const double both = net.loss_and_grad(
      Batch::from({{2, 4, 1}, {0, 1, 2, 3, 4, 5}}, {{1, 0, 0}, {0, 0, 0, 0, 0, 0}}, true),
      g.data());
  const double other =
      net.loss_and_grad(Batch::from({{0, 1, 2, 3, 4, 5}}, {{0, 0, 0, 0, 0, 0}}, true), g.data());
  EXPECT_NEAR(both, alone + other, 1e-12);
  const auto h1 = net.final_states(Batch::from({{2, 4}}, {{1, 0}}, false));
  const auto h2 =
      net.final_states(Batch::from({{2, 4}, {5, 5, 5, 5}}, {{1, 0}, {0, 0, 0, 0}}, false));
  EXPECT_LT((h1.row(0) - h2.row(0)).norm(), 1e-14);
  // Scores are h . E_out^T + b_out.
  const auto S = net.scores(h1);
  const Layout& L = net.layout();
  double s3 = net.params()[static_cast<std::size_t>(L.out_b + 3)];
  for (std::int64_t d = 0; d < 4; ++d)
    s3 += h1(0, d) * net.params()[static_cast<std::size_t>(L.out_w + 3 * 4 + d)];
  EXPECT_NEAR(S(0, 3), s3, 1e-12);
}

// Training windows cover every event: each event but a user's first is a target exactly
// once (windows of at most L + 1 events from the last one back), and a validation user's
// last event is held out of training while its earlier events train.
TEST(SequenceTrain, WindowsMakeEveryEventButTheFirstATargetOnce) {
  const Dataset d = testing_seq::chain_log(40, 30);
  TrainParams p;
  p.model_kind = "sequence";
  p.seq_dim = 4;
  p.max_len = 6;
  p.batch_size = 8;
  p.epochs = 1;
  p.val_users = 0;
  p.checkpoint_every = 0;
  std::int64_t windows = 0;
  for (std::int64_t u = 0; u < d.n_users; ++u)
    windows += (d.log_ptr[u + 1] - d.log_ptr[u] - 1 + p.max_len - 1) / p.max_len;
  const std::int64_t targets = d.log_ptr.back() - d.n_users;
  const SeqTrainResult all = train_sequence(p, d, Comm());
  EXPECT_EQ(all.targets_per_epoch, targets);
  EXPECT_EQ(all.steps_per_epoch, (windows + 7) / 8);
  EXPECT_EQ(all.model.n_train_users, d.n_users);
  p.val_users = 0.3;
  const SeqTrainResult val = train_sequence(p, d, Comm());
  EXPECT_GT(val.model.n_val_users, 5);
  EXPECT_EQ(val.targets_per_epoch, targets - val.model.n_val_users);
  EXPECT_EQ(val.model.n_train_users, d.n_users);
}

// Planted order: trained on the same users, the sequence model predicts each held-out
// user's last event (from the events before it) far better than the bag-of-items MLP.
TEST(SequenceQuality, PredictsThePlantedNextItemFarBetterThanTheBagModel) {
  const std::int64_t n_items = 30;
  const Dataset train_log = testing_seq::chain_log(300, n_items, 0);
  const Dataset test_log = testing_seq::chain_log(100, n_items, 1);
  // The held-out users: the events before the last, and the last.
  std::vector<std::vector<std::int32_t>> prefix;
  std::vector<std::vector<std::uint8_t>> types;
  std::vector<std::vector<double>> times;
  std::vector<std::int32_t> target;
  for (std::int64_t u = 0; u < test_log.n_local(); ++u) {
    const auto b = test_log.log_ptr[u], e = test_log.log_ptr[u + 1];
    prefix.emplace_back(test_log.log_item.begin() + b, test_log.log_item.begin() + e - 1);
    types.emplace_back(test_log.log_type.begin() + b, test_log.log_type.begin() + e - 1);
    times.emplace_back(test_log.log_time.begin() + b, test_log.log_time.begin() + e - 1);
    target.push_back(test_log.log_item[static_cast<std::size_t>(e - 1)]);
  }
  const auto n_test = static_cast<double>(target.size());

  TrainParams sp;
  sp.model_kind = "sequence";
  sp.seq_dim = 24;
  sp.max_len = 10;
  sp.batch_size = 30;
  sp.epochs = 25;
  sp.seq_lr = 1e-2;
  sp.val_users = 0;
  sp.checkpoint_every = 0;
  const SeqTrainResult seq = train_sequence(sp, train_log, Comm());
  GruNet<float> net(seq.model.shape);
  net.params() = seq.model.params;
  for (auto& w : prefix)
    if (std::ssize(w) > sp.max_len) w.erase(w.begin(), w.end() - sp.max_len);
  for (std::size_t u = 0; u < types.size(); ++u) {
    types[u].erase(types[u].begin(), types[u].end() - std::ssize(prefix[u]));
    times[u] = window_times(times[u], prefix[u].size());
  }
  const auto S = net.scores(net.final_states(Batch::from(prefix, types, false, times)));
  double seq_hits = 0;
  for (std::size_t u = 0; u < target.size(); ++u) {
    Eigen::Index best = 0;
    S.row(static_cast<Eigen::Index>(u)).maxCoeff(&best);
    seq_hits += best == target[u];
  }

  // The bag model: the MLP over each user's items (the same users), scored from the
  // items before the last.
  TrainData bag;
  bag.n_users = train_log.n_users;
  bag.item_ids = train_log.item_ids;
  bag.user_ids = train_log.user_ids;
  for (std::int64_t u = 0; u < train_log.n_local(); ++u) {
    std::vector<std::int32_t> items(train_log.log_item.begin() + train_log.log_ptr[u],
                                    train_log.log_item.begin() + train_log.log_ptr[u + 1]);
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    for (auto i : items) {
      bag.indices.push_back(i);
      bag.weights.push_back(1.0f);
    }
    bag.indptr.push_back(std::ssize(bag.indices));
  }
  TrainParams bp;
  bp.hidden = "64";
  bp.batch_size = 30;
  bp.epochs = 25;
  bp.lr = 3e-3;
  bp.val_users = 0;
  bp.checkpoint_every = 0;
  const TrainResult bag_model = train(bp, bag, Comm());
  UserInputs in;
  for (const auto& w : prefix) {
    std::vector<std::int32_t> items = w;
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    for (auto i : items) {
      in.indices.push_back(i);
      in.weights.push_back(1.0f);
    }
    in.indptr.push_back(std::ssize(in.indices));
  }
  const TopN top = score_users(bag_model.model, in, 1, /*exclude_history=*/false);
  double bag_hits = 0;
  for (std::size_t u = 0; u < target.size(); ++u) bag_hits += top.items[u] == target[u];
  std::printf("next-item HR@1 on %g held-out users: sequence %.3f, bag MLP %.3f\n", n_test,
              seq_hits / n_test, bag_hits / n_test);
  EXPECT_GT(seq_hits / n_test, 0.7);  // the planted successor follows 9 times in 10
  EXPECT_GT(seq_hits, 2 * bag_hits + 0.2 * n_test);
}

}  // namespace
}  // namespace segrec::seq
