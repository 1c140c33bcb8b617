// Data-parallel training at the world size against a single-process run of
// the same data (rank invariance), checkpoint/resume against an uninterrupted
// run, and reading the inputs (dataset, projection, segments) from files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

#include "mlp_fixture.hpp"
#include "rank_checks.hpp"
#include "scratch_dir.hpp"
#include "segrec/core/error.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/personalisation/mlp.hpp"
#include "segrec/personalisation/train.hpp"
#include "segrec/personalisation/train/item_exchange.hpp"

namespace segrec {
namespace {

using testing_ranks::expect_curves_match;
using testing_ranks::expect_same_on_every_rank;
using testing_ranks::rel_diff;

namespace fs = std::filesystem;

std::string tmp_dir(const Comm& c) { return testing_tmp::scratch_dir("train_mpi", c); }

// Synthetic users with planted tastes: user u prefers a block of items by u % 3,
// plus noise; weights 1..5; a 4-wide projection and a segment label u % 3.
TrainData global_data(std::int64_t n_users, std::int64_t n_items) {
  TrainData d;
  d.n_users = n_users;
  for (std::int64_t i = 0; i < n_items; ++i) {
    std::string id = "i";
    id += std::to_string(i);
    d.item_ids.push_back(id);
  }
  d.dense_dim = 4;
  d.n_segments = 3;
  for (std::int64_t u = 0; u < n_users; ++u) {
    std::set<std::int32_t> items;
    const auto h = [&](std::uint64_t j) {
      return mlp::hash_keys(17, static_cast<std::uint64_t>(u), j);
    };
    const std::int64_t base = (u % 3) * (n_items / 3);
    const auto k = 3 + static_cast<int>(h(999) % 8);
    for (int j = 0; j < k; ++j)
      items.insert(
          static_cast<std::int32_t>(base + static_cast<std::int64_t>(h(j) % (n_items / 3))));
    if (u % 11 != 5) items.insert(static_cast<std::int32_t>(h(1000) % n_items));
    if (u % 37 == 3) items.clear();  // a few users without history
    for (auto i : items) {
      d.indices.push_back(i);
      d.weights.push_back(static_cast<float>(1 + h(2000 + i) % 5));
    }
    d.indptr.push_back(static_cast<std::int64_t>(d.indices.size()));
    for (int j = 0; j < 4; ++j)
      d.dense.push_back(static_cast<float>((u % 3 == j ? 1.0 : 0.0) +
                                           0.1 * (mlp::unit_uniform(h(3000 + j)) - 0.5)));
    d.segments.push_back(static_cast<std::int32_t>(u % 3));
  }
  return d;
}

TrainData block_of(const TrainData& g, const Comm& c) {
  const Block b = block_partition(g.n_users, c.size(), c.rank());
  TrainData d;
  d.n_users = g.n_users;
  d.user_begin = b.begin;
  d.item_ids = g.item_ids;
  d.dense_dim = g.dense_dim;
  d.n_segments = g.n_segments;
  const auto lo = g.indptr[b.begin], hi = g.indptr[b.end];
  for (std::int64_t u = b.begin; u < b.end; ++u) d.indptr.push_back(g.indptr[u + 1] - lo);
  d.indices.assign(g.indices.begin() + lo, g.indices.begin() + hi);
  d.weights.assign(g.weights.begin() + lo, g.weights.begin() + hi);
  d.dense.assign(g.dense.begin() + b.begin * g.dense_dim, g.dense.begin() + b.end * g.dense_dim);
  d.segments.assign(g.segments.begin() + b.begin, g.segments.begin() + b.end);
  return d;
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, scale = 0;
  for (std::size_t k = 0; k < std::min(a.size(), b.size()); ++k) {
    worst = std::max(worst, std::abs(static_cast<double>(a[k]) - b[k]));
    scale = std::max(scale, std::abs(static_cast<double>(b[k])));
  }
  return worst / scale;
}

TrainParams base_params() {
  TrainParams p;
  p.hidden = "32";
  p.activation = "tanh";
  p.batch_size = 40;
  p.epochs = 3;
  p.val_users = 0.15;
  p.patience = 0;
  p.checkpoint_every = 0;
  p.ndcg_k = 20;
  p.lr = 3e-3;
  p.seed = 5;
  return p;
}

struct Config {
  const char* name;
  void (*set)(TrainParams&);
};

// Projection + history input with a 3-wide segment embedding, two hidden layers of 16.
void both_inputs_with_segments(TrainParams& p) {
  p.input = "both";
  p.personalize = "segment-input";
  p.segment_embedding = 3;
  p.hidden = "16,16";
}

class TrainRankInvariance : public testing::TestWithParam<Config> {};

TEST_P(TrainRankInvariance, WeightsMatchASingleProcessRunAfterThreeEpochs) {
  const Comm world = Comm::world();
  TrainParams p = base_params();
  GetParam().set(p);
  const TrainData g = global_data(301, 60);
  const TrainResult serial = train(p, g, Comm());
  const TrainResult par = train(p, block_of(g, world), world);
  ASSERT_EQ(par.epochs.size(), 3u);
  ASSERT_EQ(serial.epochs.size(), 3u);
  EXPECT_EQ(par.steps_per_epoch, serial.steps_per_epoch);
  EXPECT_EQ(par.model.n_train_users, serial.model.n_train_users);
  EXPECT_EQ(par.model.n_val_users, serial.model.n_val_users);
  const double rel = rel_diff(par.model.params, serial.model.params);
  const double mx = max_rel_diff(par.model.params, serial.model.params);
  if (std::getenv("SEGREC_TEST_VERBOSE") && world.is_root())
    std::printf("%s: rel %.3g max %.3g\n", GetParam().name, rel, mx);
  EXPECT_LT(rel, 1e-4) << GetParam().name << " on " << world.size() << " ranks";
  EXPECT_LT(mx, 1e-4) << GetParam().name << " on " << world.size() << " ranks";
  expect_curves_match(par.epochs, serial.epochs, 3, p.val_users > 0);
  // Training moved the weights: the comparison is not between two initialisations.
  mlp::Network<float> init(par.model.shape);
  init.init(p.seed);
  EXPECT_GT(rel_diff(init.params(), serial.model.params), 1e-2);
  expect_same_on_every_rank(world, par.model.params);
}

INSTANTIATE_TEST_SUITE_P(
    Configs, TrainRankInvariance,
    testing::Values(
        // Mult-DAE: history input, tanh, input dropout, hidden dropout, Adam, cosine.
        Config{"dae", [](TrainParams& p) { p.dropout = 0.2; }},
        // Projection + history + segment embedding, ReLU, BCE, SGD with momentum,
        // weight decay, clipping, warmup and step decay, log weights.
        Config{"both_segments_bce_sgd",
               [](TrainParams& p) {
                 both_inputs_with_segments(p);
                 p.activation = "relu";
                 p.loss = "bce";
                 p.optimizer = "sgd";
                 p.lr = 0.05;
                 p.weight_decay = 1e-3;
                 p.clip = 1.0;
                 p.warmup_steps = 3;
                 p.lr_schedule = "step";
                 p.lr_step_epochs = 2;
                 p.history_weight = "log";
               }},
        // Projection only, no validation, Adam with decoupled weight decay.
        Config{"projected_adamw",
               [](TrainParams& p) {
                 p.input = "projected";
                 p.input_dropout = 0;
                 p.val_users = 0;
                 p.weight_decay = 0.01;
                 p.lr_schedule = "constant";
               }},
        // The other gradient exchanges (the cases above use the default, items): one
        // blocking allreduce; sharded, with dropout, and with BCE, SGD, clipping and weight
        // decay; nonblocking buckets of 1024 floats (many per layer), with clipping and
        // weight decay.
        Config{"dae_allreduce",
               [](TrainParams& p) {
                 p.dropout = 0.2;
                 p.grad_sync = "allreduce";
               }},
        Config{"dae_sharded",
               [](TrainParams& p) {
                 p.dropout = 0.2;
                 p.grad_sync = "sharded";
               }},
        Config{"both_segments_sharded_bce_sgd_clip",
               [](TrainParams& p) {
                 both_inputs_with_segments(p);
                 p.loss = "bce";
                 p.optimizer = "sgd";
                 p.lr = 0.05;
                 p.clip = 0.5;
                 p.weight_decay = 1e-3;
                 p.grad_sync = "sharded";
               }},
        // The sampled softmax (shared negatives keyed by the seed and the global step): over
        // the item-parallel step, sharded, and with segment heads' inputs and dropout.
        Config{"dae_sampled",
               [](TrainParams& p) {
                 p.dropout = 0.2;
                 p.loss = "sampled-softmax";
                 p.negatives = 12;
               }},
        Config{"both_segments_sampled_sharded",
               [](TrainParams& p) {
                 both_inputs_with_segments(p);
                 p.loss = "sampled-softmax";
                 p.negatives = 20;
                 p.negative_alpha = 0;
                 p.grad_sync = "sharded";
               }},
        Config{"both_segments_buckets_clip",
               [](TrainParams& p) {
                 both_inputs_with_segments(p);
                 p.clip = 0.5;
                 p.weight_decay = 1e-3;
                 p.grad_sync = "buckets";
                 p.bucket_mb = 0.001;
               }}),
    [](const testing::TestParamInfo<Config>& i) { return std::string(i.param.name); });

// The item-parallel step (--grad-sync items) against the whole batch in one process, in
// double: the ranks' loss shares sum to the loss, their gradients of the layers below the
// output layer (and of the embedding) sum to its gradient, and each rank's columns of the
// output layer are its gradient there; with the sparse input split too, each rank's rows of
// W0 are their gradient and it leaves the other rows untouched. Uneven row slices and column
// ranges (at 4 ranks one rank has no rows and another no columns); every layer type, both
// losses and activations.
TEST(MlpSplit, MatchesTheWholeBatchGradient) {
  const Comm world = Comm::world();
  const int P = world.size(), me = world.rank();
  using mlp::Activation, mlp::Loss;
  const testing_mlp::GradCase cases[] = {
      {"sparse_tanh_softmax", 9, 0, 0, 0, {6}, Activation::kTanh, Loss::kSoftmax, 0.0},
      {"all_relu_softmax_dropout", 9, 2, 3, 2, {6, 5}, Activation::kRelu, Loss::kSoftmax, 0.3},
      {"dense_embedding_tanh_bce_dropout", 0, 3, 3, 2, {4, 5}, Activation::kTanh, Loss::kBce, 0.2},
      {"sparse_dense_relu_bce", 9, 2, 0, 0, {5}, Activation::kRelu, Loss::kBce, 0.0},
      {"sparse_tanh_sampled", 9, 0, 0, 0, {6}, Activation::kTanh, Loss::kSampledSoftmax, 0.0},
      {"all_relu_sampled_dropout",
       9,
       2,
       3,
       2,
       {6, 5},
       Activation::kRelu,
       Loss::kSampledSoftmax,
       0.3}};
  for (std::size_t c = 0; c < std::size(cases); ++c) {
    const testing_mlp::GradCase& k = cases[c];
    const mlp::Shape s = k.shape(13);
    mlp::Network<double> net(s);
    net.init(3);
    std::mt19937_64 rng(11 + c);
    std::uniform_real_distribution<double> U(-0.3, 0.3);
    for (auto& w : net.params()) w += U(rng);
    const std::int64_t N = 10;
    const mlp::Batch<double> all = testing_mlp::random_batch(s, N, rng);
    std::vector<double> ref(net.params().size());
    const double ref_loss = net.loss_and_grad(all, k.dropout, ref.data());

    std::vector<std::int64_t> rows(static_cast<std::size_t>(P) + 1), cols(rows), in_rows(rows);
    for (int r = 0; r <= P; ++r) {
      rows[r] = N * r * r / (P * P);
      cols[r] = s.n_out * r * r / (P * P);
      in_rows[r] = s.sparse_in * r / P;
    }
    const bool split_in = s.sparse_in > 0 && c % 2 == 1;
    if (!split_in) in_rows.clear();
    const mlp::Batch<double> mine = testing_mlp::slice_rows(all, rows[me], rows[me + 1]);
    const std::int64_t h = s.hidden.back(), c0 = cols[me], nc = cols[me + 1] - c0;
    std::vector<double> grad(ref.size(), 0.0), gout(static_cast<std::size_t>((h + 1) * nc));
    const double loss = net.loss_and_grad_split(mine, k.dropout, grad.data(), gout.data(),
                                                CommItemExchange<double>(world), cols, in_rows);
    EXPECT_NEAR(world.allreduce_value(loss), ref_loss, 1e-10 * std::abs(ref_loss)) << k.name;
    const mlp::Layout& lay = net.layout();
    const int L = s.n_layers();
    if (split_in) {
      const std::int64_t h0 = s.fan_out(0);
      for (std::int64_t i = 0; i < s.sparse_in * h0; ++i) {
        const std::int64_t row = i / h0;
        if (row >= in_rows[me] && row < in_rows[me + 1])
          EXPECT_NEAR(grad[i], ref[i], 1e-10 * std::max(1.0, std::abs(ref[i])))
              << k.name << " " << i;
        else
          EXPECT_EQ(grad[i], 0.0) << k.name << ": W0 row " << row << " of another rank was written";
      }
    }
    world.allreduce(grad);
    for (std::int64_t i = 0; i < lay.size; ++i) {
      if (i >= lay.w[L - 1] && i < lay.emb) continue;  // the output layer: below
      EXPECT_NEAR(grad[i], ref[i], 1e-10 * std::max(1.0, std::abs(ref[i]))) << k.name << " " << i;
    }
    for (std::int64_t i = 0; i <= h; ++i)
      for (std::int64_t j = 0; j < nc; ++j) {
        const std::int64_t at = i < h ? lay.w[L - 1] + i * s.n_out + c0 + j : lay.b[L - 1] + c0 + j;
        EXPECT_NEAR(gout[i * nc + j], ref[at], 1e-10 * std::max(1.0, std::abs(ref[at])))
            << k.name << " output " << i << "," << c0 + j;
      }
  }
}

// Segment heads (two layers each), fine-tuned one segment after another by all ranks: the same
// heads as a single process, and the same quality table.
TEST(TrainMpi, SegmentHeadsMatchASingleProcessRun) {
  const Comm world = Comm::world();
  TrainParams p = base_params();
  p.personalize = "segment-heads";
  p.head_layers = 2;
  p.head_epochs = 3;
  p.min_segment_users = 60;
  p.val_users = 0;  // every head is kept: no validation decides
  const TrainData g = global_data(301, 60);
  const TrainResult serial = train(p, g, Comm());
  const TrainResult par = train(p, block_of(g, world), world);
  ASSERT_EQ(serial.model.head_segments, (std::vector<std::int32_t>{0, 1, 2}));
  EXPECT_EQ(par.model.head_segments, serial.model.head_segments);
  EXPECT_LT(rel_diff(par.model.params, serial.model.params), 1e-4);
  EXPECT_LT(rel_diff(par.model.heads, serial.model.heads), 1e-4);
  EXPECT_LT(max_rel_diff(par.model.heads, serial.model.heads), 1e-4);
  // The heads moved away from the global layers they started from.
  const std::int64_t hs = serial.model.head_size();
  const auto L = serial.model.shape.n_layers();
  const std::int64_t from = mlp::Layout(serial.model.shape).w[L - 2];
  const std::vector<float> global(serial.model.params.begin() + from,
                                  serial.model.params.begin() + from + hs);
  const std::vector<float> head0(serial.model.heads.begin(), serial.model.heads.begin() + hs);
  EXPECT_GT(rel_diff(head0, global), 1e-3);
  // A segment below --min-segment-users keeps the global layers.
  p.min_segment_users = 101;
  const TrainResult few = train(p, block_of(g, world), world);
  EXPECT_LT(few.model.head_segments.size(), 3u);
}

// Segment heads fine-tuned with the sampled softmax (negatives keyed by the segment, epoch and
// step): the same heads as a single process.
TEST(TrainMpi, SampledSegmentHeadsMatchASingleProcessRun) {
  const Comm world = Comm::world();
  TrainParams p = base_params();
  p.personalize = "segment-heads";
  p.loss = "sampled-softmax";
  p.negatives = 15;
  p.head_layers = 2;
  p.head_epochs = 2;
  p.min_segment_users = 60;
  p.val_users = 0;
  const TrainData g = global_data(301, 60);
  const TrainResult serial = train(p, g, Comm());
  const TrainResult par = train(p, block_of(g, world), world);
  EXPECT_EQ(serial.model.shape.loss, mlp::Loss::kSampledSoftmax);
  ASSERT_EQ(par.model.head_segments, serial.model.head_segments);
  EXPECT_FALSE(serial.model.heads.empty());
  EXPECT_LT(rel_diff(par.model.params, serial.model.params), 1e-4);
  EXPECT_LT(max_rel_diff(par.model.heads, serial.model.heads), 1e-4);
}

// The comparison trains the variants on the same split at any rank count.
TEST(TrainMpi, CompareTableMatchesASingleProcessRun) {
  const Comm world = Comm::world();
  TrainParams p = base_params();
  p.compare_personalize = true;
  p.segments = "in-memory";
  p.head_epochs = 2;
  p.epochs = 2;
  p.min_segment_users = 10;
  const TrainData g = global_data(301, 60);
  const TrainResult serial = train(p, g, Comm());
  const TrainResult par = train(p, block_of(g, world), world);
  ASSERT_EQ(par.model.quality.size(), serial.model.quality.size());
  std::set<std::string> modes;
  for (std::size_t k = 0; k < serial.model.quality.size(); ++k) {
    const auto &a = par.model.quality[k], &b = serial.model.quality[k];
    modes.insert(b.mode);
    EXPECT_EQ(a.mode, b.mode);
    EXPECT_EQ(a.segment, b.segment);
    EXPECT_EQ(a.n_users, b.n_users);
    EXPECT_NEAR(a.ndcg, b.ndcg, 1e-3) << a.mode << " " << a.segment;
  }
  EXPECT_EQ(modes, (std::set<std::string>{"none", "segment-input", "segment-heads"}));
  EXPECT_TRUE(serial.model.head_segments.empty());  // --personalize none is written
}

TEST(TrainMpi, ResumeMatchesAnUninterruptedRun) {
  const Comm world = Comm::world();
  const std::string dir = tmp_dir(world);
  const std::string tag = "np" + std::to_string(world.size());
  const TrainData d = block_of(global_data(301, 60), world);
  TrainParams p = base_params();
  p.epochs = 4;
  p.dropout = 0.1;
  p.checkpoint_every = 1;
  p.checkpoint = dir + "/full-" + tag + ".ckpt.h5";
  const TrainResult full = train(p, d, world);
  const std::int64_t spe = full.steps_per_epoch;
  ASSERT_GE(spe, 4);

  p.checkpoint = dir + "/resumed-" + tag + ".ckpt.h5";
  // Stop in the middle of epoch 1, then exactly at the end of epoch 2, then finish.
  p.stop_after_steps = spe / 2;
  EXPECT_THROW(train(p, d, world), Interrupted);
  p.resume = true;
  p.stop_after_steps = 2 * spe - spe / 2;
  EXPECT_THROW(train(p, d, world), Interrupted);
  p.stop_after_steps = 0;
  const TrainResult resumed = train(p, d, world);

  EXPECT_LE(rel_diff(resumed.model.params, full.model.params), 1e-6);
  EXPECT_LE(max_rel_diff(resumed.model.params, full.model.params), 1e-6);
  ASSERT_EQ(resumed.epochs.size(), full.epochs.size());
  for (std::size_t e = 0; e < full.epochs.size(); ++e) {
    EXPECT_NEAR(resumed.epochs[e].train_loss, full.epochs[e].train_loss,
                1e-6 * std::abs(full.epochs[e].train_loss));
    EXPECT_NEAR(resumed.epochs[e].val_ndcg, full.epochs[e].val_ndcg, 1e-9);
  }
  EXPECT_EQ(resumed.model.best_epoch, full.model.best_epoch);
  // Resuming a finished run gives the same model again.
  const TrainResult again = train(p, d, world);
  EXPECT_EQ(again.model.params, resumed.model.params);
}

// A checkpoint holds every parameter's optimiser moments whatever the exchange: a run stopped
// on this many ranks with --grad-sync sharded or items (each rank updating its share, or its
// columns of the output layer) resumes in one process, under every exchange, to the model of
// an uninterrupted run; and at this rank count under the other layout.
TEST(TrainMpi, ShardedCheckpointResumesAtAnotherRankCount) {
  const Comm world = Comm::world();
  const std::string dir = tmp_dir(world);
  const TrainData g = global_data(301, 60);
  for (const std::string written : {"sharded", "items"}) {
    TrainParams p = base_params();
    p.epochs = 4;
    p.grad_sync = written;
    p.checkpoint_every = 1;
    const std::string tag = written + "-np" + std::to_string(world.size());
    p.checkpoint = dir + "/full-" + tag + ".ckpt.h5";
    const TrainResult full = train(p, block_of(g, world), world);
    p.checkpoint = dir + "/stopped-" + tag + ".ckpt.h5";
    p.stop_after_steps = 2 * full.steps_per_epoch + 1;  // stop inside epoch 3
    EXPECT_THROW(train(p, block_of(g, world), world), Interrupted);
    p.stop_after_steps = 0;
    p.resume = true;
    for (const char* sync : {"sharded", "allreduce", "items"}) {
      // Every rank resumes on its own copy of the file, in one process.
      const std::string own = p.checkpoint + ".r" + std::to_string(world.rank()) + "." + sync;
      fs::copy_file(p.checkpoint, own, fs::copy_options::overwrite_existing);
      TrainParams q = p;
      q.checkpoint = own;
      q.grad_sync = sync;
      const TrainResult resumed = train(q, g, Comm());
      EXPECT_LT(rel_diff(resumed.model.params, full.model.params), 1e-4) << written << sync;
      EXPECT_LT(max_rel_diff(resumed.model.params, full.model.params), 1e-4) << written << sync;
      fs::remove(own);
    }
    // All ranks together, under the other layout.
    TrainParams q = p;
    q.grad_sync = written == "items" ? "sharded" : "items";
    const TrainResult resumed = train(q, block_of(g, world), world);
    EXPECT_LT(max_rel_diff(resumed.model.params, full.model.params), 1e-4) << written;
  }
}

TEST(TrainMpi, StopRequestWritesACheckpointOnEveryRank) {
  const Comm world = Comm::world();
  const std::string dir = tmp_dir(world);
  const TrainData d = block_of(global_data(120, 30), world);
  TrainParams p = base_params();
  p.batch_size = 20;
  p.checkpoint = dir + "/stop-np" + std::to_string(world.size()) + ".ckpt.h5";
  // Only rank 0 sees the request; the allreduced flag stops every rank at the same step.
  if (world.is_root()) request_training_stop();
  try {
    (void)train(p, d, world);
    ADD_FAILURE() << "training did not stop";
  } catch (const Interrupted& e) {
    EXPECT_NE(std::string(e.what()).find("step 1"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(p.checkpoint));
  p.resume = true;
  const TrainResult r = train(p, d, world);
  EXPECT_EQ(r.epochs.size(), 3u);
}

TEST(TrainMpi, ParametersThatDifferAcrossRanksAreACollectiveError) {
  const Comm world = Comm::world();
  if (world.size() < 2) GTEST_SKIP() << "needs two ranks";
  const TrainData d = block_of(global_data(60, 30), world);
  TrainParams p = base_params();
  p.batch_size = 10;
  if (world.rank() == 1) setenv("SEGREC_FAULT", "train.init_params:1", 1);
  try {
    (void)train(p, d, world);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(e.collective());
    EXPECT_NE(std::string(e.what()).find("differ across ranks"), std::string::npos) << e.what();
  }
  unsetenv("SEGREC_FAULT");
}

TEST(TrainMpi, ModelFileRoundTripAtWorldSize) {
  const Comm world = Comm::world();
  const std::string dir = tmp_dir(world);
  const TrainData d = block_of(global_data(90, 30), world);
  TrainParams p = base_params();
  p.epochs = 1;
  p.batch_size = 16;
  const TrainResult r = train(p, d, world);
  const std::string path = dir + "/model-np" + std::to_string(world.size()) + ".h5";
  write_model(path, r.model, world);
  const Model m = read_model(path, world);
  EXPECT_EQ(m.params, r.model.params);
  EXPECT_EQ(m.item_ids, d.item_ids);
  EXPECT_EQ(m.val_ndcg.size(), 1u);
}

// Writes the global data as dataset.h5 / projection.h5 / segments.h5 and reads it back.
TEST(TrainMpi, LoadsDatasetProjectionAndSegments) {
  const Comm world = Comm::world();
  const std::string dir = tmp_dir(world);
  const std::string tag = "-np" + std::to_string(world.size());
  const TrainData g = global_data(70, 30);
  const TrainData mine = block_of(g, world);
  const Block b = block_partition(g.n_users, world.size(), world.rank());
  Dataset ds;
  ds.n_users = g.n_users;
  ds.user_begin = b.begin;
  for (std::int64_t u = b.begin; u < b.end; ++u) {
    std::string id = "u";
    id += std::to_string(u);
    ds.user_ids.push_back(id);
  }
  ds.item_ids = g.item_ids;
  ds.item_users.assign(g.item_ids.size(), 1);
  ds.event_types = {"view"};
  ds.event_weights = {1};
  ds.event_fill = {0};
  ds.indptr = mine.indptr;
  ds.indices = mine.indices;
  ds.weights = mine.weights;
  ds.counts.assign(mine.indices.size(), 1);
  ds.log_ptr.assign(static_cast<std::size_t>(b.size() + 1), 0);
  ds.first_time.assign(static_cast<std::size_t>(b.size()), 0.0);
  ds.last_time.assign(static_cast<std::size_t>(b.size()), 0.0);
  const std::string data = dir + "/dataset" + tag + ".h5";
  write_dataset(data, ds, world);
  const std::string proj = dir + "/projection" + tag + ".h5";
  {
    h5::File f = h5::File::create(proj, world, kProjectionFormat);
    f.create_group("/users");
    f.write_strings("/users/ids", ds.user_ids, true);
    f.write_rows<float>("/H", std::span<const float>(mine.dense), mine.dense_dim);
    f.commit();
  }
  const std::string seg = dir + "/segments" + tag + ".h5";
  {
    h5::File f = h5::File::create(seg, world, kSegmentsFormat);
    f.set_attr("/", "k", std::int64_t{3});
    f.write_rows<std::int32_t>("/labels", std::span<const std::int32_t>(mine.segments));
    f.commit();
  }
  TrainParams p = base_params();
  p.data = data;
  p.projection = proj;
  p.segments = seg;
  p.input = "both";
  p.personalize = "segment-input";
  p.segment_embedding = 2;
  const TrainData got = load_train_data(p, world);
  EXPECT_EQ(got.n_users, g.n_users);
  EXPECT_EQ(got.user_begin, b.begin);
  EXPECT_EQ(got.item_ids, g.item_ids);
  EXPECT_EQ(got.indptr, mine.indptr);
  EXPECT_EQ(got.indices, mine.indices);
  EXPECT_EQ(got.weights, mine.weights);
  EXPECT_EQ(got.dense_dim, 4);
  EXPECT_EQ(got.dense, mine.dense);
  EXPECT_EQ(got.n_segments, 3);
  EXPECT_EQ(got.segments, mine.segments);

  // A projection of another user count is a DataError on every rank.
  const std::string short_proj = dir + "/projection-short" + tag + ".h5";
  {
    h5::File f = h5::File::create(short_proj, world, kProjectionFormat);
    const std::vector<float> one(world.is_root() ? 4 : 0, 1.0f);
    f.write_rows<float>("/H", std::span<const float>(one), 4);
    f.commit();
  }
  p.projection = short_proj;
  EXPECT_THROW(load_train_data(p, world), DataError);
  // Missing files for the chosen input are usage errors.
  p.projection.clear();
  EXPECT_THROW(load_train_data(p, world), UsageError);
}

}  // namespace
}  // namespace segrec
