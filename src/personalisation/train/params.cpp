#include "segrec/personalisation/train/params.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <sstream>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/personalisation/ease.hpp"

namespace segrec {

namespace {

std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

}  // namespace

std::string join_sizes(const std::vector<std::int64_t>& v) {
  if (v.empty()) return "none";
  std::ostringstream os;
  for (std::size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
  return os.str();
}

std::vector<std::int64_t> TrainParams::hidden_sizes() const {
  std::vector<std::int64_t> out;
  if (hidden == "none") return out;
  if (hidden == "auto") return {kAutoHidden};
  const auto parts = split_list(hidden);
  require(!parts.empty(), "hidden", hidden,
          "give layer widths such as 600 or 256,256 (or none, or auto)");
  for (const auto& s : parts) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used == s.size() && v > 0, "hidden", hidden,
            "layer widths must be positive integers, e.g. 600 or 256,256");
    out.push_back(v);
  }
  return out;
}

std::vector<double> TrainParams::l2_values() const {
  if (l2 == "auto") return ease::default_grid();
  std::vector<double> out;
  const auto parts = split_list(l2);
  require(!parts.empty(), "l2", l2, "give a lambda > 0, a list such as 100,500 or auto");
  for (const auto& s : parts) {
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    require(used == s.size() && std::isfinite(v) && v > 0, "l2", l2, "lambda must be > 0");
    out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::int64_t TrainParams::checked_batch(std::int64_t n_train, const char* unit) const {
  if (batch_size > n_train)
    throw DataError("invalid value '" + std::to_string(batch_size) +
                        "' for --batch-size: larger than the " + std::to_string(n_train) +
                        " training " + unit,
                    true);
  return effective_batch(n_train);
}

std::int64_t TrainParams::effective_batch(std::int64_t n_train) const {
  if (batch_size > 0) return batch_size;
  const std::int64_t b = (n_train + kAutoBatchesPerEpoch - 1) / kAutoBatchesPerEpoch;
  return std::max<std::int64_t>(1, std::min(n_train, std::clamp(b, kAutoMinBatch, kAutoMaxBatch)));
}

std::int64_t TrainParams::effective_epochs(std::int64_t n_train) const {
  if (epochs > 0) return epochs;
  const std::int64_t b = effective_batch(n_train);
  const std::int64_t steps = std::max<std::int64_t>(1, (n_train + b - 1) / b);
  return std::clamp((kAutoSteps + steps - 1) / steps, kAutoMinEpochs, kAutoMaxEpochs);
}

std::int64_t TrainParams::effective_negatives(std::int64_t n_items) const {
  if (negatives > 0) return negatives;
  return std::clamp(n_items / kAutoNegativesDiv, kAutoMinNegatives, kAutoMaxNegatives);
}

std::string TrainParams::resolved_summary(const TrainModes& m, std::int64_t n_users,
                                          std::int64_t n_items, std::int64_t n_train) const {
  std::ostringstream os;
  const mlp::Loss loss = effective_loss(m, n_users, n_items);
  os << "loss " << mlp::to_string(loss);
  if (m.auto_loss && loss == mlp::Loss::kSampledSoftmax) {
    const int e = static_cast<int>(std::floor(std::log10(kAutoSampledWork)));  // "2e9"
    os << " (auto: users x items >= " << kAutoSampledWork / std::pow(10.0, e) << 'e' << e << ')';
  } else if (m.auto_loss) {
    os << " (auto)";
  }
  if (loss == mlp::Loss::kSampledSoftmax)
    os << ", " << effective_negatives(n_items) << " negatives" << (negatives > 0 ? "" : " (auto)");
  os << ", hidden " << join_sizes(hidden_sizes());
  if (!width_rule.empty()) os << " (" << width_rule << ")";
  const std::int64_t b = effective_batch(n_train);
  os << ", batch " << b << (batch_size > 0 ? "" : " (auto)");
  const std::int64_t e = effective_epochs(n_train);
  os << ", up to " << e << " epochs";
  if (epochs <= 0)
    os << " (auto: >= " << kAutoSteps << " steps at " << (n_train + b - 1) / b
       << " per epoch, within [" << kAutoMinEpochs << ", " << kAutoMaxEpochs << "])";
  return os.str();
}

mlp::Loss TrainParams::effective_loss(const TrainModes& m, std::int64_t n_users,
                                      std::int64_t n_items) const {
  if (!m.auto_loss) return m.loss;
  const bool big = static_cast<double>(n_users) * static_cast<double>(n_items) >= kAutoSampledWork;
  const bool many = n_items >= kAutoSampledRatio * effective_negatives(n_items);
  return big && many && !hidden_sizes().empty() ? mlp::Loss::kSampledSoftmax : mlp::Loss::kSoftmax;
}

std::string TrainParams::checkpoint_path() const {
  if (!checkpoint.empty()) return checkpoint;
  return out.empty() ? std::string() : out + ".ckpt.h5";
}

TrainModes TrainParams::validate() const {
  using M = TrainModes;
  M m;
  m.model_kind = parse_model_kind(model_kind);
  require(max_len >= 1, "max-len", max_len, "must be >= 1 (events per user window)");
  require(seq_dim >= 1, "seq-dim", seq_dim, "must be >= 1");
  require(seq_dropout >= 0 && seq_dropout < 1, "seq-dropout", seq_dropout, "must be in [0, 1)");
  require(std::isfinite(seq_lr) && seq_lr > 0, "seq-lr", seq_lr, "the learning rate must be > 0");
  if (m.model_kind == ModelKind::kSequence) {
    require(input == "history", "input", input, "--model-kind sequence reads the event log only");
    require(personalize == "none", "personalize", personalize,
            "--model-kind sequence has no segment personalisation");
    require(!compare_personalize, "compare-personalize", "true",
            "--model-kind sequence has no segment personalisation");
    require(test_items.empty(), "test-items", test_items, "not with --model-kind sequence");
  } else if (m.model_kind != ModelKind::kMlp) {
    const std::string rule = "--model-kind " + model_kind + " reads the item history only";
    require(input == "history", "input", input, rule);
    require(personalize == "none", "personalize", personalize, rule);
    require(!compare_personalize, "compare-personalize", "true", rule);
    require(!resume, "resume", "true", "--model-kind " + model_kind + " is not checkpointed");
    require(test_items.empty(), "test-items", test_items,
            "not with --model-kind " + model_kind + " (score held-out users with segrec evaluate)");
  }
  const auto lambdas = l2_values();
  if (m.model_kind == ModelKind::kEase)
    require(val_users > 0 || lambdas.size() == 1, "l2", l2,
            "choosing lambda needs validation users (--val-users > 0); or give one lambda");
  m.input = parse_mode<M::Input>(input,
                                 {{"history", M::Input::kHistory},
                                  {"projected", M::Input::kProjected},
                                  {"both", M::Input::kBoth}},
                                 "input", "use history, projected or both");
  m.history_weight = parse_mode<M::HistoryWeight>(
      history_weight, {{"binary", M::HistoryWeight::kBinary}, {"log", M::HistoryWeight::kLog}},
      "history-weight", "use binary or log");
  m.personalize =
      parse_mode<M::Personalize>(personalize,
                                 {{"none", M::Personalize::kNone},
                                  {"segment-input", M::Personalize::kSegmentInput},
                                  {"segment-heads", M::Personalize::kSegmentHeads}},
                                 "personalize", "use none, segment-input or segment-heads");
  m.reads_segments =
      m.personalize != M::Personalize::kNone || compare_personalize || !segments.empty();
  require(head_layers >= 1, "head-layers", head_layers, "must be >= 1");
  require(head_layers <= std::ssize(hidden_sizes()) + 1, "head-layers", head_layers,
          "at most the number of layers (hidden layers + 1)");
  require(head_epochs >= 1, "head-epochs", head_epochs, "must be >= 1");
  require(std::isfinite(head_lr) && head_lr > 0, "head-lr", head_lr, "must be > 0");
  require(min_segment_users >= 1, "min-segment-users", min_segment_users, "must be >= 1");
  if (compare_personalize) {
    require(!resume, "resume", "true", "--compare-personalize runs are not checkpointed");
    require(!segments.empty(), "segments", segments, "--compare-personalize needs --segments FILE");
  }
  require(segment_embedding >= 0, "segment-embedding", segment_embedding, "must be >= 0");
  if (m.uses_segments())
    require(segment_embedding > 0, "segment-embedding", segment_embedding,
            "--personalize segment-input needs an embedding width > 0");
  else
    require(segment_embedding == 0, "segment-embedding", segment_embedding,
            "an embedding needs --personalize segment-input");
  (void)hidden_sizes();
  m.activation = mlp::parse_activation(activation);
  m.auto_loss = loss == "auto";
  if (!m.auto_loss) m.loss = mlp::parse_loss(loss);
  require(negatives >= 0, "negatives", negatives, "must be >= 0 (0 = auto)");
  require(negatives == 0 || m.auto_loss || m.loss == mlp::Loss::kSampledSoftmax, "negatives",
          negatives, "needs --loss sampled-softmax (or auto)");
  require(std::isfinite(negative_alpha) && negative_alpha >= 0, "negative-alpha", negative_alpha,
          "must be >= 0 (0 = uniform)");
  require(input_dropout >= 0 && input_dropout < 1, "input-dropout", input_dropout,
          "must be in [0, 1)");
  require(dropout >= 0 && dropout < 1, "dropout", dropout, "must be in [0, 1)");
  m.optimizer = parse_mode<M::Optimizer>(
      optimizer, {{"adam", M::Optimizer::kAdam}, {"sgd", M::Optimizer::kSgd}}, "optimizer",
      "use adam or sgd");
  require(std::isfinite(lr) && lr > 0, "lr", lr, "the learning rate must be > 0");
  require(momentum >= 0 && momentum < 1, "momentum", momentum, "must be in [0, 1)");
  require(beta1 >= 0 && beta1 < 1, "beta1", beta1, "must be in [0, 1)");
  require(beta2 >= 0 && beta2 < 1, "beta2", beta2, "must be in [0, 1)");
  require(adam_eps > 0, "adam-eps", adam_eps, "must be > 0");
  require(weight_decay >= 0 && std::isfinite(weight_decay), "weight-decay", weight_decay,
          "must be >= 0");
  require(clip >= 0 && std::isfinite(clip), "clip", clip, "must be >= 0 (0 = off)");
  m.grad_sync = parse_mode<M::GradSync>(grad_sync,
                                        {{"allreduce", M::GradSync::kAllreduce},
                                         {"buckets", M::GradSync::kBuckets},
                                         {"sharded", M::GradSync::kSharded},
                                         {"items", M::GradSync::kItems}},
                                        "grad-sync", "use allreduce, buckets, sharded or items");
  require(std::isfinite(bucket_mb) && bucket_mb > 0, "bucket-mb", bucket_mb, "must be > 0");
  m.lr_schedule = parse_mode<M::LrSchedule>(lr_schedule,
                                            {{"constant", M::LrSchedule::kConstant},
                                             {"cosine", M::LrSchedule::kCosine},
                                             {"step", M::LrSchedule::kStep}},
                                            "lr-schedule", "use constant, cosine or step");
  require(warmup_steps >= 0, "warmup-steps", warmup_steps, "must be >= 0");
  require(lr_step_epochs >= 1, "lr-step-epochs", lr_step_epochs, "must be >= 1");
  require(lr_gamma > 0 && lr_gamma <= 1, "lr-gamma", lr_gamma, "must be in (0, 1]");
  require(epochs >= 1 || epochs == -1, "epochs", epochs,
          "train for at least one epoch (-1 = auto: sized from the users)");
  require(batch_size >= 0, "batch-size", batch_size, "must be >= 1 (0 = auto)");
  require(val_users >= 0 && val_users < 1, "val-users", val_users, "must be in [0, 1)");
  require(val_holdout > 0 && val_holdout < 1, "val-holdout", val_holdout, "must be in (0, 1)");
  require(ndcg_k >= 1, "ndcg-k", ndcg_k, "must be >= 1");
  require(recall_k >= 1, "recall-k", recall_k, "must be >= 1");
  require(patience >= 0, "patience", patience, "must be >= 0 (0 = off)");
  require(checkpoint_every >= 0, "checkpoint-every", checkpoint_every, "must be >= 0 (0 = never)");
  require(stop_after_steps >= 0, "stop-after-steps", stop_after_steps, "must be >= 0 (0 = off)");
  if (resume)
    require(!checkpoint_path().empty(), "resume", "true", "needs --checkpoint FILE or --out FILE");
  return m;
}

std::vector<std::pair<std::string, std::string>> TrainParams::config() const {
  const auto d = [](double v) { return fmt_double(v); };
  const auto i = [](std::int64_t v) { return std::to_string(v); };
  return {{"model-kind", model_kind},
          {"l2", l2},
          {"data", data},
          {"projection", projection},
          {"segments", segments},
          {"out", out},
          {"checkpoint", checkpoint_path()},
          {"resume", resume ? "true" : "false"},
          {"max-len", i(max_len)},
          {"seq-dim", i(seq_dim)},
          {"seq-dropout", d(seq_dropout)},
          {"seq-tied", seq_tied ? "true" : "false"},
          {"seq-time-gap", seq_time_gap ? "true" : "false"},
          {"seq-lr", d(seq_lr)},
          {"input", input},
          {"history-weight", history_weight},
          {"personalize", personalize},
          {"segment-embedding", i(segment_embedding)},
          {"head-layers", i(head_layers)},
          {"head-epochs", i(head_epochs)},
          {"head-lr", d(head_lr)},
          {"min-segment-users", i(min_segment_users)},
          {"compare-personalize", compare_personalize ? "true" : "false"},
          {"test-items", test_items},
          {"hidden", join_sizes(hidden_sizes())},
          {"activation", activation},
          {"input-dropout", d(input_dropout)},
          {"dropout", d(dropout)},
          {"loss", loss},
          {"negatives", i(negatives)},
          {"negative-alpha", d(negative_alpha)},
          {"optimizer", optimizer},
          {"lr", d(lr)},
          {"momentum", d(momentum)},
          {"beta1", d(beta1)},
          {"beta2", d(beta2)},
          {"adam-eps", d(adam_eps)},
          {"weight-decay", d(weight_decay)},
          {"clip", d(clip)},
          {"grad-sync", grad_sync},
          {"bucket-mb", d(bucket_mb)},
          {"lr-schedule", lr_schedule},
          {"warmup-steps", i(warmup_steps)},
          {"lr-step-epochs", i(lr_step_epochs)},
          {"lr-gamma", d(lr_gamma)},
          {"epochs", i(epochs)},
          {"batch-size", i(batch_size)},
          {"val-users", d(val_users)},
          {"val-holdout", d(val_holdout)},
          {"ndcg-k", i(ndcg_k)},
          {"recall-k", i(recall_k)},
          {"patience", i(patience)},
          {"checkpoint-every", i(checkpoint_every)},
          {"stop-after-steps", i(stop_after_steps)},
          {"seed", std::to_string(seed)}};
}

std::string TrainParams::checkpoint_config() const {
  static const char* const kNotHashed[] = {
      "data",   "projection",       "segments",         "out",       "checkpoint",
      "resume", "stop-after-steps", "checkpoint-every", "grad-sync", "bucket-mb"};
  std::string out;
  for (const auto& [k, v] : config()) {
    if (std::find(std::begin(kNotHashed), std::end(kNotHashed), k) != std::end(kNotHashed))
      continue;
    out += k + "=" + v + "\n";
  }
  return out;
}

}  // namespace segrec
