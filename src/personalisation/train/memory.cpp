#include "memory.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "trainer_impl.hpp"

namespace segrec::train_impl {

MemoryNeed train_memory(const TrainParams& p, const TrainModes& modes, const TrainData& d,
                        int ranks) {
  const mlp::Shape s = make_shape(p, modes, d);
  const auto P = static_cast<long double>(mlp::Layout(s).size);
  const auto R = static_cast<long double>(std::max(ranks, 1));
  // --grad-sync items splits the output layer's columns (and the history rows of W0) over
  // the ranks and scores the whole global batch on them; sharded and items keep 1/R of the
  // moments; allreduce and buckets update all P parameters on every rank.
  const bool items =
      modes.grad_sync == TrainModes::GradSync::kItems && ranks > 1 && s.n_layers() >= 2;
  const bool shared = ranks > 1 && (items || modes.grad_sync == TrainModes::GradSync::kSharded);
  const long double owned = shared ? P / R : P;
  const long double kinds = modes.optimizer == TrainModes::Optimizer::kAdam ? 2 : 1;
  const auto B = static_cast<long double>(p.effective_batch(std::max<std::int64_t>(d.n_users, 1)));
  const long double rows = items ? B : B / R + 1;  // rows this rank's forward pass holds
  const long double out_cols =
      items ? static_cast<long double>(s.n_out) / R + 1 : static_cast<long double>(s.n_out);
  long double hidden = 0;
  for (const std::int64_t h : s.hidden) hidden += static_cast<long double>(h);
  const auto nnz = static_cast<long double>(d.indices.size());
  const auto n = static_cast<long double>(d.n_local());

  MemoryNeed need;
  need.add("training data", n * 48 + nnz * 8 + static_cast<long double>(d.dense.size()) * 4)
      // The training and validation users' indices and the epoch's batch order.
      .add("user lists and batch order", n * 24)
      .add("parameters (weights, best and validation copies)", 3 * P, sizeof(float))
      .add("gradient", P, sizeof(float))
      .add(kinds == 2 ? "Adam moments" : "momentum", kinds * owned, sizeof(float))
      .add("moments gathered for a checkpoint", p.checkpoint_every > 0 ? kinds * P : 0,
           sizeof(float))
      // Logits and their gradient: rows x output columns, twice.
      .add(items ? "output block (global batch x items/ranks)" : "output block (batch x items)",
           2 * rows * out_cols, sizeof(float))
      // Pre-activations, activations and their gradients of the hidden layers.
      .add("batch activations", 3 * rows * (hidden + static_cast<long double>(s.dense_in)),
           sizeof(float));
  return need;
}

TrainParams resolve_width(const TrainParams& p, const TrainModes& modes, const TrainData& d,
                          const Comm& comm) {
  if (p.hidden != "auto") return p;
  std::vector<std::int64_t> widths{TrainParams::kAutoHidden};
  for (std::int64_t w = (TrainParams::kAutoHidden - 1) / TrainParams::kAutoHiddenStep *
                        TrainParams::kAutoHiddenStep;
       w >= TrainParams::kAutoHiddenStep; w -= TrainParams::kAutoHiddenStep)
    widths.push_back(w);
  TrainParams q = p;
  std::vector<double> need(widths.size());  // bytes per rank at each width, the largest rank's
  for (std::size_t i = 0; i < widths.size(); ++i) {
    q.hidden = std::to_string(widths[i]);
    need[i] = static_cast<double>(train_memory(q, modes, d, comm.size()).bytes());
  }
  comm.allreduce(need, Op::kMax);
  std::size_t pick = 0;
  const auto budget = static_cast<double>(memory_per_rank());
  while (pick + 1 < widths.size() && need[pick] > budget) ++pick;
  q.hidden = std::to_string(widths[pick]);
  q.width_rule = pick == 0
                     ? "auto"
                     : "auto: the widest of " + std::to_string(TrainParams::kAutoHidden) +
                           " or a multiple of " + std::to_string(TrainParams::kAutoHiddenStep) +
                           " within --max-memory-per-rank";
  return q;
}

void check_train_memory(const TrainParams& p, const TrainModes& modes, const TrainData& d,
                        const Comm& comm) {
  check_memory(comm, "train", train_memory(p, modes, d, comm.size()),
               "use more ranks (--grad-sync items or sharded keeps 1/ranks of the moments and "
               "output block), a smaller --hidden or --batch-size, or raise "
               "--max-memory-per-rank");
}

}  // namespace segrec::train_impl
