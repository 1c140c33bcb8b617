// segrec train: the personalisation model, trained data-parallel.
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <optional>
#include <sstream>

#include "command.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/personalisation/bundle.hpp"
#include "segrec/personalisation/sequence/train.hpp"
#include "segrec/personalisation/train.hpp"

namespace segrec::cli {
namespace {

void on_stop_signal(int) { request_training_stop(); }

class TrainCommand final : public Command {
 public:
  std::string name() const override { return "train"; }
  std::string summary() const override {
    return "train the personalisation model (Mult-DAE style MLP), data-parallel";
  }
  std::string usage() const override {
    return "examples:\n"
           "  segrec train --data dataset.h5 --out model.h5\n"
           "  mpirun -n 4 segrec train --data dataset.h5 --hidden 256,256 --activation relu \\\n"
           "                           --epochs 50 --out model.h5\n"
           "  segrec train --data dataset.h5 --projection projection.h5 --input both \\\n"
           "               --segments segments.h5 --personalize segment-input \\\n"
           "               --segment-embedding 16 --out model.h5\n"
           "  segrec train --data dataset.h5 --segments segments.h5 --personalize segment-heads "
           "\\\n"
           "               --compare-personalize --out model.h5\n"
           "  segrec train --data dataset.h5 --test-items test.csv --out model.h5\n"
           "               (held-out users: Recall@20 and NDCG@100 after training)\n"
           "  segrec train ... --resume        (continue from OUT.ckpt.h5)\n"
           "SIGUSR1 or SIGTERM: write a checkpoint at the next step and stop (exit 5).";
  }
  void add_options(po::options_description& d) override {
    TrainParams& p = p_;
    d.add_options()("data", po::value(&p.data), "dataset.h5 to train on")(
        "model-kind", po::value(&p.model_kind)->default_value(p.model_kind),
        "mlp (alias bag: the network over the bag of the user's items) | sequence (a GRU over "
        "the user's last --max-len events, predicting each next item) | ease (closed-form "
        "item-item model, Steck 2019) | popularity (training counts)")(
        "l2", po::value(&p.l2)->default_value(p.l2),
        "ease: L2 weight lambda > 0, a list such as 100,500 or auto (a "
        "geometric grid); the best on the validation users is kept")(
        "projection", po::value(&p.projection), "projection.h5 (/H) for --input projected|both")(
        "segments", po::value(&p.segments),
        "segments.h5 (/labels) for --personalize segment-input")(
        "profiles", po::value(&p.profiles),
        "profiles.h5: with --projection and --segments, store the serving bundle in model.h5")(
        "out", po::value(&p.out), "model.h5 to write")("checkpoint", po::value(&p.checkpoint),
                                                       "checkpoint file (default: OUT.ckpt.h5)")(
        "resume", po::bool_switch(&p.resume), "continue from the checkpoint")(
        "max-len", po::value(&p.max_len)->default_value(p.max_len),
        "sequence: events per user window (L)")("seq-dim",
                                                po::value(&p.seq_dim)->default_value(p.seq_dim),
                                                "sequence: item embedding and GRU state width")(
        "seq-tied", po::value<bool>(&p.seq_tied)->default_value(p.seq_tied),
        "sequence: score the next item with the input item embedding (true | false; false: a "
        "separate output embedding)")(
        "seq-time-gap", po::value<bool>(&p.seq_time_gap)->default_value(p.seq_time_gap),
        "sequence: add an embedding of the time since the previous event (log2 buckets of the "
        "log's time unit) to each event's input (true | false)")(
        "seq-dropout", po::value(&p.seq_dropout)->default_value(p.seq_dropout),
        "sequence: dropout rate on the GRU's input (item + type embedding) and on the state "
        "that scores the next item")(
        "seq-lr", po::value(&p.seq_lr)->default_value(p.seq_lr),
        "sequence: peak learning rate (the sequence model's --lr; --lr is the bag models')")(
        "input", po::value(&p.input)->default_value(p.input),
        "first-layer input: history (sparse items) | projected (h_u) | both")(
        "history-weight", po::value(&p.history_weight)->default_value(p.history_weight),
        "history values: binary | log (log1p of the summed event weight)")(
        "personalize", po::value(&p.personalize)->default_value(p.personalize),
        "none | segment-input (the segment's embedding joins the first layer's input) | "
        "segment-heads (every segment fine-tunes its own copy of the top layers)")(
        "segment-embedding", po::value(&p.segment_embedding)->default_value(p.segment_embedding),
        "width of the learned segment embedding (0 = off)")(
        "head-layers", po::value(&p.head_layers)->default_value(p.head_layers),
        "segment-heads: layers per head (1 = the output layer, 2 = the last hidden layer too)")(
        "head-epochs", po::value(&p.head_epochs)->default_value(p.head_epochs),
        "segment-heads: fine-tuning epochs per segment (the best on its validation users is kept)")(
        "head-lr", po::value(&p.head_lr)->default_value(p.head_lr),
        "segment-heads: fine-tuning learning rate")(
        "min-segment-users", po::value(&p.min_segment_users)->default_value(p.min_segment_users),
        "segment-heads: smaller segments keep the global layers")(
        "compare-personalize", po::bool_switch(&p.compare_personalize),
        "train none, segment-input and segment-heads on the same split and print their quality "
        "(the --personalize one is written)")(
        "test-items", po::value(&p.test_items),
        "CSV user_id,item_id of held-out items of users in the data: they are left out of "
        "training and scored after it")(
        "hidden", po::value(&p.hidden)->default_value(p.hidden),
        "hidden layer widths, e.g. 600 or 256,256; none = linear model; auto = one layer of "
        "1000, narrowed in steps of 64 until training fits --max-memory-per-rank")(
        "activation", po::value(&p.activation)->default_value(p.activation), "relu | tanh")(
        "input-dropout", po::value(&p.input_dropout)->default_value(p.input_dropout),
        "share of each user's history dropped from the input (denoising)")(
        "dropout", po::value(&p.dropout)->default_value(p.dropout), "hidden-layer dropout rate")(
        "loss", po::value(&p.loss)->default_value(p.loss),
        "softmax (multinomial likelihood) | sampled-softmax (its partition sum estimated from "
        "the user's items and --negatives items shared by the batch) | bce (sigmoid + binary "
        "cross-entropy) | auto (sampled-softmax for large data, see docs/personalisation.md)")(
        "negatives", po::value(&p.negatives)->default_value(p.negatives),
        "sampled-softmax: items drawn per step (0 = auto: items/10 within [256, 2048])")(
        "negative-alpha", po::value(&p.negative_alpha)->default_value(p.negative_alpha),
        "sampled-softmax: draw item i with probability ~ (its count + 1)^alpha (0 = uniform)")(
        "optimizer", po::value(&p.optimizer)->default_value(p.optimizer), "adam | sgd (momentum)")(
        "lr", po::value(&p.lr)->default_value(p.lr),
        "peak learning rate (bag models; the sequence model's is --seq-lr)")(
        "momentum", po::value(&p.momentum)->default_value(p.momentum), "SGD momentum")(
        "beta1", po::value(&p.beta1)->default_value(p.beta1), "Adam beta1")(
        "beta2", po::value(&p.beta2)->default_value(p.beta2), "Adam beta2")(
        "adam-eps", po::value(&p.adam_eps)->default_value(p.adam_eps), "Adam epsilon")(
        "weight-decay", po::value(&p.weight_decay)->default_value(p.weight_decay),
        "weight decay (decoupled for Adam, L2 for SGD; biases excluded)")(
        "clip", po::value(&p.clip)->default_value(p.clip),
        "clip the gradient to this global L2 norm (0 = off)")(
        "grad-sync", po::value(&p.grad_sync)->default_value(p.grad_sync),
        "gradient exchange: allreduce (one per step) | buckets (nonblocking, overlapping the "
        "backward pass) | sharded (reduce-scatter, sharded update, allgather; shared memory "
        "within a node) | items (the output layer split by item columns over the ranks, the "
        "layers below sharded; the sequence model: its output layer split, the rest allreduced)")(
        "bucket-mb", po::value(&p.bucket_mb)->default_value(p.bucket_mb),
        "--grad-sync buckets: MiB of gradient per nonblocking allreduce")(
        "lr-schedule", po::value(&p.lr_schedule)->default_value(p.lr_schedule),
        "after the warmup: constant | cosine | step")(
        "warmup-steps", po::value(&p.warmup_steps)->default_value(p.warmup_steps),
        "linear learning-rate warmup steps")(
        "lr-step-epochs", po::value(&p.lr_step_epochs)->default_value(p.lr_step_epochs),
        "step schedule: decay every this many epochs")(
        "lr-gamma", po::value(&p.lr_gamma)->default_value(p.lr_gamma),
        "step schedule: decay factor")("epochs", po::value(&p.epochs)->default_value(p.epochs),
                                       "passes over the training users (-1 = auto: the fewest "
                                       "that take 4000 steps, 1 to 200; early stopping ends "
                                       "most runs)")(
        "batch-size", po::value(&p.batch_size)->default_value(p.batch_size),
        "global batch (users per step, whatever the rank count; 0 = auto: 1/16 of the "
        "training users, 32 to 500)")("val-users",
                                      po::value(&p.val_users)->default_value(p.val_users),
                                      "share of users held out for validation (0 = none)")(
        "val-holdout", po::value(&p.val_holdout)->default_value(p.val_holdout),
        "share of a validation user's items held out and ranked")(
        "ndcg-k", po::value(&p.ndcg_k)->default_value(p.ndcg_k), "K of the validation NDCG@K")(
        "recall-k", po::value(&p.recall_k)->default_value(p.recall_k),
        "K of the reported Recall@K")(
        "patience", po::value(&p.patience)->default_value(p.patience),
        "stop after this many epochs without a better validation NDCG (0 = off)")(
        "checkpoint-every", po::value(&p.checkpoint_every)->default_value(p.checkpoint_every),
        "epochs between checkpoints (0 = none)")(
        "stop-after-steps", po::value(&p.stop_after_steps)->default_value(p.stop_after_steps),
        "write a checkpoint and stop after this many steps (0 = off; for time-limited jobs)");
  }

  void check(const Context& ctx) override {
    p_.seed = ctx.common.seed;
    require(!p_.out.empty(), "out", p_.out, "give the model.h5 to write");
    p_.validate();
  }

  int run(const Context& ctx) override {
    check(ctx);
    if (p_.validate().model_kind == ModelKind::kSequence) return run_sequence(ctx);
    // A stop request that arrives while the data loads is served at the first step.
    std::signal(SIGUSR1, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    const TrainData data = load_train_data(p_, ctx.comm);
    if (p_.validate().model_kind != ModelKind::kMlp) return run_linear(ctx, data);
    std::optional<ServingParts> serving;
    if (!p_.profiles.empty()) {
      require(!p_.projection.empty() && !p_.segments.empty(), "profiles", p_.profiles,
              "the serving bundle needs --projection and --segments too");
      serving = load_serving_parts(p_.profiles, p_.projection, p_.segments, p_.data, ctx.comm);
    }
    // Progress (every step and epoch) is reported by train() itself.
    TrainResult r = train(p_, data, ctx.comm);
    std::signal(SIGUSR1, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    r.model.serving = std::move(serving);
    write_model(p_.out, r.model, ctx.comm);
    const auto& m = r.model;
    std::ostringstream os;
    os << "wrote " << p_.out << ": " << m.shape.in_dim();
    for (auto h : m.shape.hidden) os << "-" << h;
    os << "-" << m.shape.n_out << " (" << m.params.size() << " parameters), " << r.epochs.size()
       << " epochs of " << r.steps_per_epoch << " steps over " << m.n_train_users << " users";
    if (r.stopped_early) os << " (stopped early)";
    if (m.best_epoch > 0)
      os << "; kept epoch " << m.best_epoch << ": validation NDCG@" << m.ndcg_k << " "
         << m.best_ndcg << " on " << m.n_val_users << " users";
    os << "; " << r.resolved;
    if (!m.head_segments.empty()) os << "; " << m.head_segments.size() << " segment heads";
    os << "; gradients " << r.sync_layout << ", " << r.sync_bytes_per_step
       << " bytes/step/rank sent";
    ctx.say(os.str());
    const std::string table = quality_table(m);
    if (!table.empty()) ctx.say(table.substr(0, table.size() - 1));
    return 0;
  }

 private:
  // --model-kind sequence.
  int run_sequence(const Context& ctx) {
    std::signal(SIGUSR1, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    const Dataset ds = read_dataset(p_.data, ctx.comm, /*with_log=*/true);
    const auto max_epochs = p_.epochs > 0 ? p_.epochs : p_.effective_epochs(ds.n_users);
    progress::Task task("train", "", static_cast<double>(max_epochs), "epoch");
    SeqTrainResult r = train_sequence(p_, ds, ctx.comm, [&](const EpochStats& e) {
      const double sps = e.step_seconds > 0 ? static_cast<double>(e.samples) / e.step_seconds : 0;
      task.update(static_cast<double>(e.epoch),
                  {{"loss", e.train_loss},
                   {"val_ndcg@" + std::to_string(p_.ndcg_k), e.val_ndcg},
                   {"val_hr@" + std::to_string(p_.recall_k), e.val_recall},
                   {"lr", e.lr},
                   {"samples/s", std::round(sps)}},
                  true);
    });
    std::signal(SIGUSR1, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    write_sequence_model(p_.out, r.model, ctx.comm);
    const auto& m = r.model;
    double step_s = 0;
    for (const auto& e : r.epochs) step_s += e.step_seconds;
    std::ostringstream os;
    os << "wrote " << p_.out << ": sequence model (GRU, dim " << m.shape.dim << ", max-len "
       << m.max_len << ", " << m.params.size() << " parameters), " << r.epochs.size()
       << " epochs of " << r.steps_per_epoch << " steps over " << m.n_train_users << " users ("
       << r.targets_per_epoch << " predicted events per epoch";
    if (step_s > 0)
      os << ", "
         << std::round(static_cast<double>(r.targets_per_epoch) *
                       static_cast<double>(r.epochs.size()) / step_s)
         << " events/s";
    os << ")";
    if (r.stopped_early) os << " (stopped early)";
    if (m.best_epoch > 0)
      os << "; kept epoch " << m.best_epoch << ": validation NDCG@" << m.ndcg_k << " "
         << m.best_ndcg << " on " << m.n_val_users << " users";
    os << "; batch " << r.batch_size << "; gradients allreduce over " << ctx.comm.size()
       << " ranks";
    ctx.say(os.str());
    return 0;
  }

  // --model-kind ease | popularity: fit, write, and one line on what was kept.
  int run_linear(const Context& ctx, const TrainData& data) {
    std::signal(SIGUSR1, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();  // process CPU time, all threads
    TrainResult r = train(p_, data, ctx.comm);
    const double fit = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double cpu = ctx.comm.allreduce_value(static_cast<double>(std::clock() - c0) /
                                                static_cast<double>(CLOCKS_PER_SEC));
    write_model(p_.out, r.model, ctx.comm);
    const Model& m = r.model;
    std::ostringstream os;
    os << "wrote " << p_.out << ": " << to_string(m.kind) << " over " << m.item_ids.size()
       << " items from " << m.n_train_users << " users";
    if (m.kind == ModelKind::kEase) {
      os << "; lambda " << m.l2;
      if (m.l2_grid.size() > 1) os << " (best of " << m.l2_grid.size() << ")";
    }
    if (std::isfinite(m.best_ndcg))
      os << "; validation NDCG@" << m.ndcg_k << " " << m.best_ndcg << " on " << m.n_val_users
         << " users";
    os << "; fit " << fit << " s on " << ctx.comm.size() << " rank(s), " << cpu
       << " CPU s (all ranks)";
    if (m.kind == ModelKind::kEase && !m.seconds.empty())
      os << " (first lambda " << m.seconds.front() << " s with the Gram matrix)";
    ctx.say(os.str());
    if (m.l2_grid.size() > 1)
      for (std::size_t g = 0; g < m.l2_grid.size(); ++g) {
        std::ostringstream line;
        line << "  lambda " << m.l2_grid[g] << ": validation NDCG@" << m.ndcg_k << " "
             << m.l2_ndcg[g];
        ctx.say(line.str());
      }
    return 0;
  }

  TrainParams p_;
};

}  // namespace

std::unique_ptr<Command> make_train() { return std::make_unique<TrainCommand>(); }

}  // namespace segrec::cli
