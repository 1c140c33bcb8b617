// The sequence model trained data-parallel: the same model at any rank count as in a
// single process (rank invariance), and a run stopped and resumed from its checkpoint
// against an uninterrupted one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>

#include "segrec/core/error.hpp"
#include "segrec/personalisation/sequence/train.hpp"
#include "sequence_fixture.hpp"

namespace segrec {
namespace {

namespace fs = std::filesystem;
using testing_seq::block_of;
using testing_seq::chain_log;

std::string tmp_dir(const Comm& c) {
  const char* env = std::getenv("SEGREC_TEST_TMP");
  const std::string d = std::string(env ? env : "/tmp/segrec-tests") + "/sequence_mpi";
  if (c.is_root()) fs::create_directories(d);
  c.barrier();
  return d;
}

double rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (std::size_t k = 0; k < std::min(a.size(), b.size()); ++k) {
    num += (static_cast<double>(a[k]) - b[k]) * (static_cast<double>(a[k]) - b[k]);
    den += static_cast<double>(b[k]) * b[k];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

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

TEST(SequenceMpi, WeightsMatchASingleProcessRun) {
  const Comm world = Comm::world();
  const TrainParams p = base_params();
  const Dataset g = chain_log(157, 30);
  const SeqTrainResult serial = train_sequence(p, g, Comm());
  const SeqTrainResult par = train_sequence(p, block_of(g, world), world);
  ASSERT_EQ(par.epochs.size(), 3u);
  EXPECT_EQ(par.steps_per_epoch, serial.steps_per_epoch);
  EXPECT_EQ(par.targets_per_epoch, serial.targets_per_epoch);
  EXPECT_EQ(par.model.n_train_users, serial.model.n_train_users);
  EXPECT_EQ(par.model.n_val_users, serial.model.n_val_users);
  EXPECT_GT(serial.model.n_val_users, 10);
  EXPECT_LT(rel_diff(par.model.params, serial.model.params), 1e-4) << world.size() << " ranks";
  for (std::size_t e = 0; e < 3; ++e) {
    EXPECT_NEAR(par.epochs[e].train_loss, serial.epochs[e].train_loss,
                1e-4 * serial.epochs[e].train_loss);
    EXPECT_NEAR(par.epochs[e].val_ndcg, serial.epochs[e].val_ndcg, 1e-3);
  }
  // Training moved the weights.
  seq::GruNet<float> init(par.model.shape);
  init.init(p.seed);
  EXPECT_GT(rel_diff(init.params(), serial.model.params), 1e-2);
  // Every rank holds the same model.
  const auto h = static_cast<std::uint64_t>(
      std::hash<std::string>{}(std::string(reinterpret_cast<const char*>(par.model.params.data()),
                                           par.model.params.size() * sizeof(float))));
  EXPECT_EQ(world.allreduce_value(h, Op::kMax), world.allreduce_value(h, Op::kMin));
}

TEST(SequenceMpi, ResumeMatchesAnUninterruptedRun) {
  const Comm world = Comm::world();
  const std::string dir = tmp_dir(world);
  const std::string tag = "np" + std::to_string(world.size());
  const Dataset d = block_of(chain_log(157, 30), world);
  TrainParams p = base_params();
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
