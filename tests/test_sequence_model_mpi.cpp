// The sequence model trained data-parallel: the item-parallel step's loss and gradient against
// the whole batch in one process (double), the same model at any rank count as in a single
// process (rank invariance), and a run stopped and resumed from its checkpoint against an
// uninterrupted one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>

#include "rank_checks.hpp"
#include "scratch_dir.hpp"
#include "segrec/core/error.hpp"
#include "segrec/personalisation/sequence/train.hpp"
#include "segrec/personalisation/train/item_exchange.hpp"
#include "sequence_fixture.hpp"

namespace segrec {
namespace {

namespace fs = std::filesystem;
using testing_ranks::expect_curves_match;
using testing_ranks::expect_same_on_every_rank;
using testing_ranks::rel_diff;
using testing_seq::block_of;
using testing_seq::chain_log;

std::string tmp_dir(const Comm& c) { return testing_tmp::scratch_dir("sequence_mpi", c); }

TrainParams base_params() {
  TrainParams p;
  p.model_kind = "sequence";
  p.seq_dim = 8;
  p.max_len = 6;
  p.batch_size = 24;
  p.epochs = 3;
  p.val_users = 0.15;
  p.patience = 0;
  p.checkpoint_every = 0;
  p.ndcg_k = 10;
  p.recall_k = 5;
  p.seq_lr = 1e-2;
  p.seed = 9;
  return p;
}

// Windows w = 0..8 (lengths 1 to 6 events, items of 7, two types) with dropout masks keyed by
// (window, position, feature); rank r takes windows w with w % size == r, but the last rank's
// go to rank 0 when there are several. The item-parallel step (output rows split 7 ways unevenly)
// gives the whole batch's loss (the shares' sum) and, summed over the ranks, its gradient (each
// rank adds only its own output rows); with separate and with tied output embeddings.
TEST(SequenceMpi, ItemSplitStepEqualsTheWholeBatch) {
  const Comm world = Comm::world();
  const int P = world.size(), me = world.rank();
  seq::Shape shape{7, 2, 3};
  const auto batch_of = [&](const std::vector<int>& ws) {
    std::vector<std::vector<std::int32_t>> items;
    std::vector<std::vector<std::uint8_t>> types;
    for (const int w : ws) {
      items.emplace_back();
      types.emplace_back();
      for (int t = 0; t < 2 + w % 5; ++t) {
        items.back().push_back((3 * w + 5 * t) % 7);
        types.back().push_back(static_cast<std::uint8_t>((w + t) % 2));
      }
    }
    seq::Batch b = seq::Batch::from(items, types, true);
    const std::int64_t D = shape.dim;
    b.drop_in.assign(static_cast<std::size_t>(b.B * b.T * D), 0.0f);
    b.drop_out = b.drop_in;
    for (std::int64_t k = 0; k < b.B; ++k)
      for (std::int64_t t = 0; t < b.T; ++t)
        for (std::int64_t d = 0; d < D; ++d) {
          const auto at = static_cast<std::size_t>((t * b.B + k) * D + d);
          const int h = ws[static_cast<std::size_t>(k)] * 31 + static_cast<int>(t * D + d);
          b.drop_in[at] = h % 4 == 1 ? 0.0f : 1.25f;
          b.drop_out[at] = h % 5 == 2 ? 0.0f : 1.25f;
        }
    return b;
  };
  std::vector<int> all, mine;
  for (int w = 0; w < 9; ++w) {
    all.push_back(w);
    const int owner = P > 1 && w % P == P - 1 ? 0 : w % P;  // the last rank scores nothing
    if (owner == me) mine.push_back(w);
  }
  const std::vector<std::int64_t> cols = {0, 1, 1, 4, 7};  // P = 4; fewer ranks below
  std::vector<std::int64_t> c(static_cast<std::size_t>(P) + 1);
  for (int r = 0; r <= P; ++r) c[static_cast<std::size_t>(r)] = P == 4 ? cols[r] : 7 * r / P;
  const CommItemExchange<double> ex(world);
  for (const bool tied : {false, true}) {
    shape.tied = tied;
    seq::GruNet<double> ref(shape), net(shape);
    ref.init(5);
    for (std::int64_t k = ref.layout().out_b; k < ref.layout().size; ++k)
      ref.params()[static_cast<std::size_t>(k)] = 0.3 * std::sin(static_cast<double>(k));
    net.params() = ref.params();
    const auto n = static_cast<std::size_t>(ref.layout().size);
    std::vector<double> g_ref(n, 0.0), g(n, 0.0);
    const double loss_ref = ref.loss_and_grad(batch_of(all), g_ref.data());
    const double loss =
        world.allreduce_value(net.loss_and_grad_split(batch_of(mine), g.data(), ex, c));
    EXPECT_NEAR(loss, loss_ref, 1e-10 * loss_ref);
    // A rank that wrote into another's output rows would count them twice in the sum.
    world.allreduce(std::span<double>(g));
    std::int64_t nonzero = 0;
    for (std::size_t k = 0; k < n; ++k) {
      EXPECT_NEAR(g[k], g_ref[k], 1e-12 + 1e-10 * std::abs(g_ref[k]))
          << "parameter " << k << " at " << P << " ranks, tied " << tied;
      nonzero += g_ref[k] != 0.0;
    }
    EXPECT_GT(nonzero, static_cast<std::int64_t>(n) / 2);
  }
}

// The defaults (tied embeddings, time gaps: the whole gradient allreduced) and a separate
// output embedding without gaps (each rank updates its own output rows, gathered per epoch).
TEST(SequenceMpi, WeightsMatchASingleProcessRun) {
  const Comm world = Comm::world();
  const Dataset g = chain_log(157, 30);
  for (const bool tied : {true, false}) {
    TrainParams p = base_params();
    p.seq_tied = p.seq_time_gap = tied;
    const SeqTrainResult serial = train_sequence(p, g, Comm());
    const SeqTrainResult par = train_sequence(p, block_of(g, world), world);
    ASSERT_EQ(par.epochs.size(), 3u);
    EXPECT_EQ(par.steps_per_epoch, serial.steps_per_epoch);
    EXPECT_EQ(par.targets_per_epoch, serial.targets_per_epoch);
    EXPECT_EQ(par.model.n_train_users, serial.model.n_train_users);
    EXPECT_EQ(par.model.n_val_users, serial.model.n_val_users);
    EXPECT_GT(serial.model.n_val_users, 10);
    EXPECT_LT(rel_diff(par.model.params, serial.model.params), 1e-4)
        << world.size() << " ranks, tied " << tied;
    expect_curves_match(par.epochs, serial.epochs, 3);
    // Training moved the weights.
    seq::GruNet<float> init(par.model.shape);
    init.init(p.seed);
    EXPECT_GT(rel_diff(init.params(), serial.model.params), 1e-2);
    expect_same_on_every_rank(world, par.model.params);
  }
}

TEST(SequenceMpi, ResumeMatchesAnUninterruptedRun) {
  const Comm world = Comm::world();
  const std::string dir = tmp_dir(world);
  const std::string tag = "np" + std::to_string(world.size());
  const Dataset d = block_of(chain_log(157, 30), world);
  TrainParams p = base_params();
  p.seq_tied = false;  // each rank's own output rows: gathered into every checkpoint
  p.epochs = 4;
  p.checkpoint_every = 1;
  p.checkpoint = dir + "/full-" + tag + ".ckpt.h5";
  const SeqTrainResult full = train_sequence(p, d, world);
  const std::int64_t spe = full.steps_per_epoch;
  ASSERT_GE(spe, 4);
  p.checkpoint = dir + "/resumed-" + tag + ".ckpt.h5";
  // Stop in the middle of epoch 1, then exactly at the end of epoch 2, then finish.
  p.stop_after_steps = spe / 2;
  EXPECT_THROW(train_sequence(p, d, world), Interrupted);
  p.resume = true;
  p.stop_after_steps = 2 * spe - spe / 2;
  EXPECT_THROW(train_sequence(p, d, world), Interrupted);
  p.stop_after_steps = 0;
  const SeqTrainResult resumed = train_sequence(p, d, world);
  // Equal up to float rounding (Eigen's reductions peel by the buffers' alignment).
  EXPECT_LE(rel_diff(resumed.model.params, full.model.params), 1e-6);
  ASSERT_EQ(resumed.epochs.size(), full.epochs.size());
  for (std::size_t e = 0; e < full.epochs.size(); ++e) {
    EXPECT_NEAR(resumed.epochs[e].train_loss, full.epochs[e].train_loss,
                1e-6 * full.epochs[e].train_loss);
    EXPECT_NEAR(resumed.epochs[e].val_ndcg, full.epochs[e].val_ndcg, 1e-6);
  }
  EXPECT_EQ(resumed.model.best_epoch, full.model.best_epoch);
  // A checkpoint of other settings is refused.
  p.seq_dim = 9;
  EXPECT_THROW(train_sequence(p, d, world), DataError);
}

}  // namespace
}  // namespace segrec
