// The sequence model's network: the gradient of every parameter block (item and type
// embeddings, the GRU cell's input and recurrent weights and biases, the output
// embedding and bias) against central finite differences, in double; padding that
// changes nothing; windows that read only their own past.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "segrec/personalisation/sequence/gru.hpp"

namespace segrec::seq {
namespace {

// Three windows of lengths 5, 2 and 4 (padded to 4 inputs), two event types.
Batch small_batch() {
  return Batch::from({{0, 3, 5, 1, 6}, {2, 4}, {6, 6, 1, 0}},
                     {{0, 1, 0, 0, 1}, {1, 0}, {0, 0, 1, 1}}, true);
}

TEST(SequenceGru, GradientMatchesFiniteDifferencesForEveryBlock) {
  const Shape s{7, 2, 3};
  GruNet<double> net(s);
  net.init(11);
  // Non-zero biases so that their paths are exercised too.
  const Layout& L = net.layout();
  for (std::int64_t k = L.bx; k < L.out_w; ++k)
    net.params()[static_cast<std::size_t>(k)] = 0.1 * std::sin(static_cast<double>(k));
  for (std::int64_t k = L.out_b; k < L.size; ++k)
    net.params()[static_cast<std::size_t>(k)] = 0.2 * std::cos(static_cast<double>(k));
  const Batch b = small_batch();
  ASSERT_EQ(b.T, 4);
  ASSERT_EQ(b.n_targets(), 4 + 1 + 3);
  std::vector<double> grad(static_cast<std::size_t>(L.size), 0.0), dummy(grad.size());
  const double loss = net.loss_and_grad(b, grad.data());
  EXPECT_GT(loss, 0);
  const struct {
    const char* name;
    std::int64_t begin, end;
  } blocks[] = {{"item embedding", L.item_emb, L.type_emb}, {"type embedding", L.type_emb, L.wx},
                {"GRU Wx", L.wx, L.wh},   {"GRU Wh", L.wh, L.bx},
                {"GRU bx", L.bx, L.bh},   {"GRU bh", L.bh, L.out_w},
                {"output embedding", L.out_w, L.out_b}, {"output bias", L.out_b, L.size}};
  const double h = 1e-6;
  for (const auto& blk : blocks) {
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

// Padding a window (a longer window in the batch) changes neither its loss nor its
// states, and a window's state at position t reads only its events up to t.
TEST(SequenceGru, PaddingAndCausality) {
  const Shape s{7, 2, 4};
  GruNet<double> net(s);
  net.init(3);
  std::vector<double> g(static_cast<std::size_t>(net.layout().size));
  const double alone = net.loss_and_grad(Batch::from({{2, 4, 1}}, {{1, 0, 0}}, true), g.data());
  const double both =
      net.loss_and_grad(Batch::from({{2, 4, 1}, {0, 1, 2, 3, 4, 5}}, {{1, 0, 0}, {0, 0, 0, 0, 0, 0}}, true),
                        g.data());
  const double other =
      net.loss_and_grad(Batch::from({{0, 1, 2, 3, 4, 5}}, {{0, 0, 0, 0, 0, 0}}, true), g.data());
  EXPECT_NEAR(both, alone + other, 1e-12);
  const auto h1 = net.final_states(Batch::from({{2, 4}}, {{1, 0}}, false));
  const auto h2 = net.final_states(Batch::from({{2, 4}, {5, 5, 5, 5}}, {{1, 0}, {0, 0, 0, 0}}, false));
  EXPECT_LT((h1.row(0) - h2.row(0)).norm(), 1e-14);
  // Scores are h . E_out^T + b_out.
  const auto S = net.scores(h1);
  const Layout& L = net.layout();
  double s3 = net.params()[static_cast<std::size_t>(L.out_b + 3)];
  for (std::int64_t d = 0; d < 4; ++d)
    s3 += h1(0, d) * net.params()[static_cast<std::size_t>(L.out_w + 3 * 4 + d)];
  EXPECT_NEAR(S(0, 3), s3, 1e-12);
}

}  // namespace
}  // namespace segrec::seq
