// The sampled softmax (--loss sampled-softmax) in one process: finite-difference gradient
// checks in double for fixed negatives; with every item a negative at offset 0 it is the full
// softmax exactly; the negative sampler's draws (keyed, sorted, their weights an unbiased
// estimate of a sum over all items); the auto loss rule and bad values.
// GCC 12 reports false "may be used uninitialized" warnings inside Eigen's AVX-512 kernels.
#if defined(__GNUC__) && !defined(__clang__)  // a GCC-only warning
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "mlp_fixture.hpp"
#include "segrec/core/error.hpp"
#include "segrec/personalisation/mlp.hpp"
#include "segrec/personalisation/train/negatives.hpp"
#include "segrec/personalisation/train/params.hpp"

namespace segrec {
namespace {

using mlp::Activation;
using mlp::Batch;
using mlp::Loss;
using mlp::Network;
using mlp::Shape;
using testing_mlp::GradCase;

Network<double> perturbed(const Shape& s, std::uint64_t seed) {
  Network<double> net(s);
  net.init(3);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> U(-0.3, 0.3);
  for (auto& w : net.params()) w += U(rng);  // non-zero biases, larger weights
  return net;
}

class SampledGradientCheck : public testing::TestWithParam<GradCase> {};

TEST_P(SampledGradientCheck, MatchesFiniteDifferences) {
  const GradCase& c = GetParam();
  const Shape s = c.shape(9);
  Network<double> net = perturbed(s, 11);
  std::mt19937_64 rng(13);
  const Batch<double> b = testing_mlp::random_batch(s, 8, rng);
  ASSERT_FALSE(b.neg_idx.empty());
  // Some negative is also a target of some row (the row leaves it out of its sum).
  bool hit = false;
  for (auto t : b.tgt_idx) hit = hit || std::binary_search(b.neg_idx.begin(), b.neg_idx.end(), t);
  ASSERT_TRUE(hit);

  std::vector<double> grad(net.params().size());
  const double loss = net.loss_and_grad(b, c.dropout, grad.data());
  EXPECT_TRUE(std::isfinite(loss));
  const double h = 1e-6;
  for (std::size_t k = 0; k < grad.size(); ++k) {
    const double w = net.params()[k];
    net.params()[k] = w + h;
    const double up = net.loss_and_grad(b, c.dropout, nullptr);
    net.params()[k] = w - h;
    const double down = net.loss_and_grad(b, c.dropout, nullptr);
    net.params()[k] = w;
    const double num = (up - down) / (2 * h);
    const double err = std::abs(num - grad[k]) / std::max(1.0, std::abs(num));
    EXPECT_LT(err, 1e-6) << c.name << ": parameter " << k << " analytic " << grad[k] << " numeric "
                         << num;
  }
  // Every layer gets a gradient; the output columns of items that are neither a negative nor a
  // target are exactly zero, the others not.
  const auto& lay = net.layout();
  const int L = s.n_layers();
  for (int l = 0; l < L; ++l) {
    double sum = 0;
    for (std::int64_t k = lay.w[l]; k < lay.b[l] + s.fan_out(l); ++k) sum += std::abs(grad[k]);
    EXPECT_GT(sum, 0) << c.name << " layer " << l;
  }
  for (std::int32_t i = 0; i < s.n_out; ++i) {
    const bool cand = std::binary_search(b.neg_idx.begin(), b.neg_idx.end(), i) ||
                      std::find(b.tgt_idx.begin(), b.tgt_idx.end(), i) != b.tgt_idx.end();
    double col = std::abs(grad[lay.b[L - 1] + i]);
    for (std::int64_t r = 0; r < s.fan_in(L - 1); ++r)
      col += std::abs(grad[lay.w[L - 1] + r * s.n_out + i]);
    if (cand) {
      EXPECT_GT(col, 0) << c.name << " item " << i;
    } else {
      EXPECT_EQ(col, 0) << c.name << " item " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layers, SampledGradientCheck,
    testing::Values(
        GradCase{"sparse_relu", 9, 0, 0, 0, {5}, Activation::kRelu, Loss::kSampledSoftmax, 0},
        GradCase{
            "sparse_tanh_deep", 9, 0, 0, 0, {4, 3}, Activation::kTanh, Loss::kSampledSoftmax, 0},
        GradCase{"both_embedding_tanh_dropout",
                 8,
                 3,
                 4,
                 2,
                 {5},
                 Activation::kTanh,
                 Loss::kSampledSoftmax,
                 0.3}),
    [](const testing::TestParamInfo<GradCase>& i) { return std::string(i.param.name); });

// Every item a negative drawn once with offset 0: the estimate is the partition sum itself,
// so loss and gradient are the full softmax's (to rounding).
TEST(SampledSoftmax, AllItemsAtOffsetZeroIsTheFullSoftmax) {
  GradCase c{"x", 9, 2, 0, 0, {6}, Activation::kTanh, Loss::kSoftmax, 0.2};
  const Shape full = c.shape(11);
  Shape sampled = full;
  sampled.loss = Loss::kSampledSoftmax;
  Network<double> a = perturbed(full, 5);
  Network<double> b(sampled);
  b.params() = a.params();
  std::mt19937_64 rng(7);
  Batch<double> bt = testing_mlp::random_batch(full, 12, rng);
  for (std::int32_t i = 0; i < full.n_out; ++i) {
    bt.neg_idx.push_back(i);
    bt.neg_corr.push_back(0.0);
  }
  std::vector<double> ga(a.params().size()), gb(ga.size());
  const double la = a.loss_and_grad(bt, 0.2, ga.data());
  const double lb = b.loss_and_grad(bt, 0.2, gb.data());
  EXPECT_NEAR(lb, la, 1e-12 * std::abs(la));
  for (std::size_t k = 0; k < ga.size(); ++k)
    EXPECT_NEAR(gb[k], ga[k], 1e-12 * std::max(1.0, std::abs(ga[k]))) << k;
  // Fewer negatives: a different (estimated) loss.
  bt.neg_idx.resize(3);
  bt.neg_corr.resize(3);
  EXPECT_GT(std::abs(b.loss_and_grad(bt, 0.2, nullptr) - la), 1e-3);
}

TEST(SampledSoftmax, NeedsAHiddenLayer) {
  Shape s;
  s.sparse_in = 4;
  s.n_out = 4;
  s.loss = Loss::kSampledSoftmax;
  EXPECT_THROW(s.check(), UsageError);
  s.hidden = {3};
  EXPECT_NO_THROW(s.check());
}

// The draws: keyed (the same key, the same set), ascending and distinct, the draw counts
// recovered from the offsets add up to n; over many keys the weighted sum over the draws
// averages to the sum over all items (importance weights exp(-offset)).
TEST(NegativeSampler, DrawsAreKeyedAndUnbiased) {
  std::vector<std::int64_t> counts(50);
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = static_cast<std::int64_t>(i * i % 37);
  for (const double alpha : {0.0, 0.5, 1.0}) {
    const train_impl::NegativeSampler s(counts, alpha, 20);
    double qsum = 0;
    for (std::int32_t i = 0; i < 50; ++i) qsum += s.q(i);
    EXPECT_NEAR(qsum, 1.0, 1e-12);
    if (alpha == 0.0) {
      EXPECT_NEAR(s.q(3), 1.0 / 50, 1e-15);
    }
    Batch<double> a, b;
    s.draw(99, a);
    s.draw(99, b);
    EXPECT_EQ(a.neg_idx, b.neg_idx);
    EXPECT_EQ(a.neg_corr, b.neg_corr);
    s.draw(100, b);
    EXPECT_NE(a.neg_idx, b.neg_idx);
    double drawn = 0;
    for (std::size_t j = 0; j < a.neg_idx.size(); ++j) {
      if (j > 0) {
        EXPECT_LT(a.neg_idx[j - 1], a.neg_idx[j]);
      }
      drawn += 20 * s.q(a.neg_idx[j]) / std::exp(a.neg_corr[j]);
    }
    EXPECT_NEAR(drawn, 20.0, 1e-9);
    const auto f = [](std::int32_t i) { return 1.0 + std::sin(0.3 * i) + 0.05 * i; };
    double exact = 0;
    for (std::int32_t i = 0; i < 50; ++i) exact += f(i);
    double mean = 0;
    const int trials = 4000;
    for (int t = 0; t < trials; ++t) {
      s.draw(static_cast<std::uint64_t>(t), a);
      for (std::size_t j = 0; j < a.neg_idx.size(); ++j)
        mean += f(a.neg_idx[j]) * std::exp(-a.neg_corr[j]) / trials;
    }
    EXPECT_NEAR(mean, exact, 0.02 * exact) << "alpha " << alpha;
  }
}

TEST(SampledSoftmax, AutoRuleAndBadValues) {
  TrainParams p;
  TrainModes m = p.validate();
  EXPECT_TRUE(m.auto_loss);
  EXPECT_EQ(p.effective_negatives(20000), 2000);
  EXPECT_EQ(p.effective_negatives(1682), 256);
  EXPECT_EQ(p.effective_negatives(100000), 2048);
  // ml-100k: full softmax; 1M users x 20k items: sampled; few items: full at any user count.
  EXPECT_EQ(p.effective_loss(m, 943, 1682), Loss::kSoftmax);
  EXPECT_EQ(p.effective_loss(m, 1000000, 20000), Loss::kSampledSoftmax);
  EXPECT_EQ(p.effective_loss(m, 100000000, 1000), Loss::kSoftmax);
  p.hidden = "none";
  EXPECT_EQ(p.effective_loss(m, 1000000, 20000), Loss::kSoftmax);
  p.hidden = "1000";
  p.loss = "softmax";
  m = p.validate();
  EXPECT_EQ(p.effective_loss(m, 1000000, 20000), Loss::kSoftmax);
  p.loss = "sampled-softmax";
  p.negatives = 500;
  m = p.validate();
  EXPECT_EQ(p.effective_loss(m, 10, 10), Loss::kSampledSoftmax);
  EXPECT_EQ(p.effective_negatives(20000), 500);

  struct Bad {
    std::function<void(TrainParams&)> set;
    const char* message;
  };
  const std::vector<Bad> bad = {
      {[](TrainParams& q) { q.loss = "sampled"; }, "--loss"},
      {[](TrainParams& q) { q.negatives = -1; }, "invalid value '-1' for --negatives"},
      {[](TrainParams& q) {
         q.loss = "softmax";
         q.negatives = 100;
       },
       "invalid value '100' for --negatives: needs --loss sampled-softmax (or auto)"},
      {[](TrainParams& q) { q.negative_alpha = -0.5; },
       "invalid value '-0.5' for --negative-alpha"},
  };
  for (const auto& b : bad) {
    TrainParams q;
    b.set(q);
    try {
      q.validate();
      ADD_FAILURE() << b.message;
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(b.message), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace segrec
