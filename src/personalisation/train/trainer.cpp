#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <tuple>
#include <unordered_map>

#include "memory.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/core/progress.hpp"
#include "segrec/core/random.hpp"
#include "segrec/core/watchdog.hpp"
#include "segrec/personalisation/train/linear.hpp"
#include "trainer_impl.hpp"

namespace segrec {

namespace train_impl {

namespace {

using rng::fnv1a;

std::atomic<int> g_stop_requested{0};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

mlp::Shape make_shape(const TrainParams& p, const TrainModes& modes, const TrainData& d) {
  mlp::Shape s;
  s.sparse_in = modes.uses_history() ? d.n_items() : 0;
  s.dense_in = modes.uses_projection() ? d.dense_dim : 0;
  s.n_segments = modes.uses_segments() ? d.n_segments : 0;
  s.embed_dim = modes.uses_segments() ? p.segment_embedding : 0;
  s.hidden = p.hidden_sizes();
  s.n_out = d.n_items();
  s.activation = modes.activation;
  s.loss = p.effective_loss(modes, d.n_users, d.n_items());
  return s;
}

// Order-sensitive hash of the parameter bits: four interleaved lanes of 64-bit words.
std::uint64_t params_hash(const std::vector<float>& v) {
  std::uint64_t h[4] = {v.size(), 1, 2, 3};
  const std::size_t words = v.size() * sizeof(float) / 8;
  const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t w = 0; w < words; ++w) {
    std::uint64_t word;
    std::memcpy(&word, bytes + 8 * w, sizeof word);
    h[w & 3] = splitmix64(h[w & 3] ^ word);
  }
  const std::size_t tail = v.size() * sizeof(float) - 8 * words;
  return fnv1a(bytes + 8 * words, tail,
               splitmix64(h[0] ^ splitmix64(h[1] ^ splitmix64(h[2] ^ h[3]))));
}

void check_same_params(const std::vector<float>& v, const Comm& comm, const char* when) {
  const std::uint64_t h = params_hash(v);
  const auto hi = comm.allreduce_value(h, Op::kMax);
  const auto lo = comm.allreduce_value(h, Op::kMin);
  if (hi - lo != 0)
    throw Error(std::string("train: the network parameters differ across ranks ") + when +
                    " (parameter hash spread " + std::to_string(hi - lo) + ")",
                kExitOther, true);
}

void Trainer::assign_roles() {
  const std::int64_t n = d_.n_local();
  for (std::int64_t i = 0; i < n; ++i) {
    if (d_.indptr[i + 1] == d_.indptr[i]) continue;  // no history: nothing to learn or rank
    if (!is_test_.empty() && is_test_[static_cast<std::size_t>(i)]) continue;
    const auto g = static_cast<std::uint64_t>(d_.user_begin + i);
    const bool val =
        p_.val_users > 0 && unit_uniform(hash_keys(p_.seed, kTagValUser, g)) < p_.val_users;
    (val ? val_local_ : train_local_).push_back(i);
  }
  n_train_ = comm_.allreduce_value(static_cast<std::int64_t>(train_local_.size()));
  train_offset_ = comm_.exscan_sum(static_cast<std::int64_t>(train_local_.size()));
  if (n_train_ == 0)
    throw DataError("train: no training users (every user is empty or held out)", true);
  batch_ = p_.checked_batch(n_train_);
  epochs_ = p_.effective_epochs(n_train_);
  steps_per_epoch_ = (n_train_ + batch_ - 1) / batch_;
}

// The epoch's batches. The global training users t in [0, N) are cut into
// strata of n_b = steps_per_epoch consecutive indices; a seeded permutation of
// [0, n_b) per (epoch, stratum) sends each user of a stratum to its own batch.
// So every batch draws one user from each stratum: its contents depend only on
// the seed, the epoch and the global indices, and a rank (a contiguous range of
// t) holds an even share of every batch, which keeps the ranks in step.
// order_ holds (batch * N + t, local index), ascending; batch_count_ the sizes.
void Trainer::build_order(std::int64_t epoch) {
  const detail::EpochBatches batches(
      static_cast<std::uint64_t>(n_train_), static_cast<std::uint64_t>(steps_per_epoch_),
      hash_keys(p_.seed, kTagPerm, static_cast<std::uint64_t>(epoch)));
  const auto N = static_cast<std::uint64_t>(n_train_);
  order_.clear();
  for (std::size_t j = 0; j < train_local_.size(); ++j) {
    const std::uint64_t t = static_cast<std::uint64_t>(train_offset_) + j;
    order_.emplace_back(batches.batch(t) * N + t, train_local_[j]);
  }
  std::sort(order_.begin(), order_.end());
  batch_count_ = batches.counts();
}

void Trainer::add_train_user(mlp::Batch<float>& bt, std::int64_t i, std::int64_t epoch) const {
  static thread_local std::vector<std::pair<std::int32_t, float>> items;
  items.clear();
  const auto g = static_cast<std::uint64_t>(d_.user_begin + i);
  for (std::int64_t k = d_.indptr[i]; k < d_.indptr[i + 1]; ++k) {
    const float v = history_value(d_.weights[k], spec_.log_weight);
    items.emplace_back(d_.indices[k], v);
    bt.tgt_idx.push_back(d_.indices[k]);
    bt.tgt_val.push_back(spec_.bce ? 1.0f : v);
  }
  close_targets(bt);
  const auto e = static_cast<std::uint64_t>(epoch);
  add_input_row(bt, spec_, items, p_.input_dropout, hash_keys(p_.seed ^ kTagInDrop, e, g),
                spec_.dense_dim ? d_.dense.data() + i * spec_.dense_dim : nullptr,
                spec_.segments ? d_.segments[i] : 0, hash_keys(p_.seed ^ kTagHiddenDrop, e, g));
}

// One identical update on every rank from the gradient sum (sharded: each rank updates its
// share; gather_parameters() then completes every rank's copy).
void Trainer::optimiser_step(float inv_count, double lr, double sumsq) {
  const auto t = static_cast<double>(global_step_ + 1);
  if (!sync_->shares_update()) {
    optimiser_update(opt_, sync_->grad(), net_.params().data(), m_.data(), v_.data(), P_, decayed_,
                     t, inv_count, lr);
    return;
  }
  std::int64_t off = 0;
  for (const auto& o : sync_->owned()) {
    optimiser_update(opt_, o.grad, net_.params().data() + o.param, m_.data() + off,
                     v_.empty() ? nullptr : v_.data() + off, o.n, o.decayed, t, inv_count, lr,
                     &sumsq);
    off += o.n;
  }
}

// Reads --test-items: the listed users of this rank's block leave training and are scored
// after it, with their data as the fold-in history.
void Trainer::load_test_items() {
  if (p_.test_items.empty()) return;
  std::ifstream in(p_.test_items);
  if (!in) throw IoError("cannot read --test-items '" + p_.test_items + "'", true);
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const auto head = split_list(line);
  std::size_t cu = 0, ci = 1;
  for (std::size_t c = 0; c < head.size(); ++c) {
    if (head[c] == "user_id") cu = c;
    if (head[c] == "item_id") ci = c;
  }
  std::map<std::string, std::vector<std::string>> listed;  // user -> items
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto f = split_list(line);
    if (f.size() <= std::max(cu, ci))
      throw DataError("--test-items '" + p_.test_items + "': short line '" + line + "'", true);
    listed[f[cu]].push_back(f[ci]);
  }
  std::unordered_map<std::string, std::int64_t> local;
  for (std::size_t i = 0; i < d_.user_ids.size(); ++i)
    local.emplace(d_.user_ids[i], static_cast<std::int64_t>(i));
  std::unordered_map<std::string, std::int32_t> item_index;
  for (std::size_t i = 0; i < d_.item_ids.size(); ++i)
    item_index.emplace(d_.item_ids[i], static_cast<std::int32_t>(i));
  is_test_.assign(static_cast<std::size_t>(d_.n_local()), 0);
  std::vector<std::pair<std::int32_t, float>> fold_in;
  std::vector<std::int32_t> rel;
  for (auto& [user, items] : listed) {
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    const auto it = local.find(user);
    if (it == local.end()) continue;
    const std::int64_t i = it->second;
    is_test_[static_cast<std::size_t>(i)] = 1;
    rel.clear();
    for (const auto& id : items)
      if (const auto j = item_index.find(id); j != item_index.end()) rel.push_back(j->second);
    std::sort(rel.begin(), rel.end());
    fold_in.clear();
    for (std::int64_t k = d_.indptr[i]; k < d_.indptr[i + 1]; ++k)
      fold_in.emplace_back(d_.indices[k], d_.weights[k]);
    add_eval_user(test_eval_, d_, shape_.dense_in > 0, i, fold_in, rel, std::ssize(items));
  }
  const std::int64_t found = comm_.allreduce_value(test_eval_.rows());
  test_eval_.missing = std::ssize(listed) - found;
}

// The validation users' fold-in histories and held-out items (both keyed by the seed and the
// global user and item indices).
void Trainer::build_validation() {
  std::vector<std::pair<std::int32_t, float>> fold_in;
  std::vector<std::int32_t> held;
  for (const std::int64_t i : val_local_) {
    const auto g = static_cast<std::uint64_t>(d_.user_begin + i);
    fold_in.clear();
    held.clear();
    for (std::int64_t k = d_.indptr[i]; k < d_.indptr[i + 1]; ++k) {
      const std::int32_t item = d_.indices[k];
      if (unit_uniform(hash_keys(p_.seed ^ kTagHoldout, g, static_cast<std::uint64_t>(item))) <
          p_.val_holdout)
        held.push_back(item);
      else
        fold_in.emplace_back(item, d_.weights[k]);
    }
    if (held.empty()) continue;
    std::sort(held.begin(), held.end());
    add_eval_user(val_eval_, d_, shape_.dense_in > 0, i, fold_in, held, std::ssize(held));
  }
  probe_.shape = shape_;
  probe_.input = p_.input;
  probe_.history_weight = p_.history_weight;
  probe_.item_ids = d_.item_ids;
}

std::pair<double, double> Trainer::validation_quality() {
  probe_.params = net_.params();
  const auto s = quality_sums(probe_, val_eval_, p_.ndcg_k, p_.recall_k, 0, false, comm_);
  n_val_ = static_cast<std::int64_t>(s[2]);
  if (s[2] == 0) return {std::numeric_limits<double>::quiet_NaN(), 0.0};
  return {s[0] / s[2], s[1] / s[2]};
}

void Trainer::add_quality(Model& m, const std::string& mode, bool heads) const {
  const std::pair<const char*, const EvalUsers*> sets[] = {{"validation", &val_eval_},
                                                           {"test", &test_eval_}};
  const std::int64_t k = d_.n_segments;
  for (const auto& [name, e] : sets) {
    if (comm_.allreduce_value(e->rows()) + e->missing == 0) continue;
    const auto s = quality_sums(m, *e, p_.ndcg_k, p_.recall_k, k, heads, comm_);
    for (std::int64_t row = 0; row <= k; ++row) {
      const double n = s[static_cast<std::size_t>(3 * row + 2)];
      if (n == 0) continue;
      QualityRow q;
      q.mode = mode;
      q.users = name;
      q.segment = static_cast<std::int32_t>(row - 1);
      q.n_users = static_cast<std::int64_t>(n);
      q.ndcg = s[static_cast<std::size_t>(3 * row)] / n;
      q.recall = s[static_cast<std::size_t>(3 * row + 1)] / n;
      m.quality.push_back(q);
    }
  }
}

TrainResult Trainer::run(const EpochCallback& on_epoch) {
  load_test_items();
  assign_roles();
  build_validation();
  build_sampler();
  net_.init(p_.seed);
  // The optimiser's moments: of the ranges this rank updates, back to back.
  std::int64_t n_moments = 0;
  for (const auto& o : sync_->owned()) n_moments += o.n;
  m_.assign(static_cast<std::size_t>(n_moments), 0.0f);
  if (opt_.kind == TrainModes::Optimizer::kAdam)
    v_.assign(static_cast<std::size_t>(n_moments), 0.0f);
  const std::string ckpt = p_.checkpoint_path();
  if (p_.resume) read_checkpoint(ckpt);
  // Fault injection for the test of the check below: SEGREC_FAULT=train.init_params:<rank>.
  if (const char* f = std::getenv("SEGREC_FAULT");
      f && std::string(f) == "train.init_params:" + std::to_string(comm_.rank()))
    net_.params()[0] += 1.0f;
  check_same_params(net_.params(), comm_, "at the start");

  TrainResult res;
  res.steps_per_epoch = steps_per_epoch_;
  res.sync_layout = sync_->layout();
  res.batch_size = batch_;
  res.planned_epochs = epochs_;
  res.resolved = p_.resolved_summary(modes_, d_.n_users, d_.n_items(), n_train_);
  progress::note("train", res.resolved);
  const bool validate = comm_.allreduce_value(static_cast<std::int64_t>(val_local_.size())) > 0;
  std::int64_t steps_this_run = 0;
  bool finished = epoch_ >= epochs_;
  if (!history_.empty() && p_.patience > 0 && since_best_ >= p_.patience) finished = true;
  mlp::Batch<float> bt;
  const auto dropout = static_cast<float>(p_.dropout);
  // Progress in epochs (fractional within one: the ETA counts the steps of every epoch).
  const auto S = static_cast<double>(steps_per_epoch_);
  progress::Task task("train", "", static_cast<double>(epochs_), "epoch");
  task.start_at(static_cast<double>(epoch_) + static_cast<double>(step_in_epoch_) / S);
  const std::string ndcg_name = "val_ndcg@" + std::to_string(p_.ndcg_k);
  const std::string recall_name = "val_recall@" + std::to_string(p_.recall_k);
  const auto per = [](double a, double b) {  // NaN (not available) when b is 0
    return b > 0 ? a / b : std::numeric_limits<double>::quiet_NaN();
  };

  while (!finished) {
    const auto t_epoch = std::chrono::steady_clock::now();
    EpochStats st;
    st.epoch = epoch_ + 1;
    build_order(epoch_);
    watchdog::set_stage("train epoch " + std::to_string(epoch_ + 1));
    // Skip the batches done before a resume.
    std::size_t cursor = 0;
    const auto N = static_cast<std::uint64_t>(n_train_);
    while (cursor < order_.size() &&
           order_[cursor].first < static_cast<std::uint64_t>(step_in_epoch_) * N)
      ++cursor;
    bool stop = false;
    double lr = p_.lr;
    for (std::int64_t s = step_in_epoch_; s < steps_per_epoch_; ++s) {
      watchdog::set_step("step", s + 1);
      const auto t_step = std::chrono::steady_clock::now();
      const std::uint64_t end = (static_cast<std::uint64_t>(s) + 1) * N;
      bt.clear();
      for (; cursor < order_.size() && order_[cursor].first < end; ++cursor)
        add_train_user(bt, order_[cursor].second, epoch_);
      if (sampler_)
        sampler_->draw(hash_keys(p_.seed ^ kTagNegatives, static_cast<std::uint64_t>(global_step_)),
                       bt);
      const auto t_compute = std::chrono::steady_clock::now();
      const auto bytes0 = sync_->sent_bytes();
      const double split_comm0 = net_.comm_seconds();
      const double loss = sync_->loss_and_grad(net_, bt, dropout);
      // The item-parallel step's own collectives count as communication.
      const double split_comm = net_.comm_seconds() - split_comm0;
      st.compute_seconds += seconds_since(t_compute) - split_comm;
      st.comm_seconds += split_comm;
      float* scalars = sync_->scalars();  // loss sum, stop flag
      scalars[0] = static_cast<float>(loss);
      scalars[1] = g_stop_requested.load() ? 1.0f : 0.0f;
      const auto t_comm = std::chrono::steady_clock::now();
      const double sumsq = sync_->exchange();
      st.comm_seconds += seconds_since(t_comm);
      const std::int64_t count = batch_count_[static_cast<std::size_t>(s)];
      if (!std::isfinite(scalars[0]))
        throw DataError("train: the loss is not finite at epoch " + std::to_string(epoch_ + 1) +
                            " step " + std::to_string(s + 1) + "; lower --lr or set --clip",
                        true);
      lr = learning_rate(opt_, global_step_, epoch_, epochs_ * steps_per_epoch_);
      const auto t_opt = std::chrono::steady_clock::now();
      optimiser_step(1.0f / static_cast<float>(count), lr, sumsq);
      st.optimiser_seconds += seconds_since(t_opt);
      if (sync_->shares_update()) {
        const auto t_gather = std::chrono::steady_clock::now();
        sync_->gather_parameters(net_);
        st.comm_seconds += seconds_since(t_gather);
      }
      res.sync_bytes_per_step = sync_->sent_bytes() - bytes0;
      epoch_loss_ += scalars[0];
      ++global_step_;
      ++steps_this_run;
      st.samples += count;
      st.step_seconds += seconds_since(t_step);
      task.update_part(
          static_cast<double>(epoch_) + static_cast<double>(s + 1) / S,
          {static_cast<double>(epoch_ + 1), "step", static_cast<double>(s + 1), S},
          {{"samples/s", std::round(per(static_cast<double>(st.samples), st.step_seconds))}});
      stop = scalars[1] > 0 || (p_.stop_after_steps > 0 && steps_this_run >= p_.stop_after_steps);
      if (stop) g_stop_requested.store(0);  // the request is served
      if (stop && s + 1 < steps_per_epoch_) {
        step_in_epoch_ = s + 1;
        sync_->gather_item_parts(net_);
        write_checkpoint(ckpt);
        throw Interrupted("train: stopped at epoch " + std::to_string(epoch_ + 1) + " step " +
                          std::to_string(s + 1) + "; " +
                          (ckpt.empty()
                               ? std::string("no checkpoint file")
                               : "checkpoint written to '" + ckpt + "' (rerun with --resume)"));
      }
    }
    // End of the epoch: validation, early stopping, checkpoint.
    sync_->gather_item_parts(net_);
    st.train_loss = epoch_loss_ / static_cast<double>(n_train_);
    st.lr = lr;
    if (validate) {
      std::tie(st.val_ndcg, st.val_recall) = validation_quality();
      if (std::isfinite(st.val_ndcg) && st.val_ndcg > best_ndcg_) {
        best_ndcg_ = st.val_ndcg;
        best_epoch_ = epoch_ + 1;
        best_params_ = net_.params();
        since_best_ = 0;
        st.improved = true;
      } else if (std::isfinite(st.val_ndcg)) {
        ++since_best_;
      }
    }
    check_same_params(net_.params(), comm_, "after an epoch");
    ++epoch_;
    step_in_epoch_ = 0;
    epoch_loss_ = 0;
    const bool early = validate && p_.patience > 0 && since_best_ >= p_.patience;
    finished = epoch_ >= epochs_ || early;
    res.stopped_early = early && epoch_ < epochs_;
    st.seconds = seconds_since(t_epoch);
    history_.push_back(st);
    if ((p_.checkpoint_every > 0 && (epoch_ % p_.checkpoint_every == 0 || finished)) ||
        (stop && !finished))
      write_checkpoint(ckpt);
    task.update(static_cast<double>(epoch_),
                {{"loss", st.train_loss},
                 {ndcg_name, st.val_ndcg},
                 {recall_name, st.val_recall},
                 {"lr", st.lr},
                 {"samples/s", std::round(per(static_cast<double>(st.samples), st.step_seconds))},
                 {"comm%", std::round(per(100 * st.comm_seconds, st.step_seconds))}},
                true);
    if (on_epoch) on_epoch(st);
    if (stop && !finished)
      throw Interrupted("train: stopped after epoch " + std::to_string(epoch_) + "; " +
                        (ckpt.empty()
                             ? std::string("no checkpoint file")
                             : "checkpoint written to '" + ckpt + "' (rerun with --resume)"));
  }
  if (validate && n_val_ == 0) validation_quality();  // counts the validation users after a resume
  res.epochs = history_;
  res.model = make_model();
  res.n_test_users = comm_.allreduce_value(test_eval_.rows()) + test_eval_.missing;
  if (modes_.uses_heads()) {
    train_heads(res.model);
    add_quality(res.model, "none", false);
  }
  add_quality(res.model, p_.personalize, true);
  return res;
}

Model Trainer::make_model() const {
  Model m;
  m.shape = shape_;
  m.input = p_.input;
  m.history_weight = p_.history_weight;
  m.item_ids = d_.item_ids;
  m.params = best_params_.empty() ? net_.params() : best_params_;
  m.config = p_.config();
  set_training_record(m, history_, !best_params_.empty(), best_epoch_, best_ndcg_, p_, n_val_,
                      n_train_);
  return m;
}

}  // namespace train_impl

using train_impl::Trainer;

void request_training_stop() { train_impl::g_stop_requested.store(1); }
bool training_stop_requested() { return train_impl::g_stop_requested.load() != 0; }
void clear_training_stop() { train_impl::g_stop_requested.store(0); }

TrainResult train(const TrainParams& given, const TrainData& data, const Comm& comm,
                  const EpochCallback& on_epoch) {
  const TrainModes modes = given.validate();
  check_data(given, modes, data, comm);
  if (modes.model_kind != ModelKind::kMlp) return train_linear(given, modes, data, comm);
  const TrainParams p = train_impl::resolve_width(given, modes, data, comm);
  train_impl::check_train_memory(p, modes, data, comm);
  if (!p.compare_personalize) {
    Trainer t(p, modes, data, comm);
    return t.run(on_epoch);
  }
  // The comparison: a global model with segment heads (scored with and without them) and a
  // model with a segment embedding, on the same split; neither run is checkpointed.
  TrainParams g = p;
  g.compare_personalize = false;
  g.out.clear();
  g.checkpoint.clear();
  g.personalize = "segment-heads";
  g.segment_embedding = 0;
  TrainParams e = g;
  e.personalize = "segment-input";
  e.segment_embedding = p.segment_embedding > 0 ? p.segment_embedding : 16;
  TrainModes mg = modes, me = modes;
  mg.personalize = TrainModes::Personalize::kSegmentHeads;
  me.personalize = TrainModes::Personalize::kSegmentInput;
  TrainResult rg = Trainer(g, mg, data, comm).run(on_epoch);
  TrainResult re = Trainer(e, me, data, comm).run(on_epoch);
  std::vector<QualityRow> table = rg.model.quality;
  table.insert(table.end(), re.model.quality.begin(), re.model.quality.end());
  TrainResult& r = modes.personalize == TrainModes::Personalize::kSegmentInput ? re : rg;
  if (modes.personalize == TrainModes::Personalize::kNone) {
    r.model.head_layers = 0;
    r.model.heads.clear();
    r.model.head_segments.clear();
  }
  r.model.quality = std::move(table);
  r.model.config = p.config();
  return std::move(r);
}

}  // namespace segrec
