// The sequence model's training loop (see sequence/train.hpp).
#include "segrec/personalisation/sequence/train.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <span>
#include <sstream>
#include <tuple>

#include "segrec/core/error.hpp"
#include "segrec/core/random.hpp"
#include "segrec/core/watchdog.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"
#include "segrec/personalisation/sequence/gru.hpp"
#include "segrec/personalisation/train/batches.hpp"
#include "segrec/personalisation/train/item_exchange.hpp"
#include "segrec/personalisation/train/optimiser.hpp"

namespace segrec {

namespace {

using rng::hash_keys;
using Ranges = std::vector<std::pair<std::int64_t, std::int64_t>>;
using rng::unit_uniform;

constexpr std::uint64_t kTagSeqVal = 0x7365712d76616cULL;     // validation users
constexpr std::uint64_t kTagSeqPerm = 0x7365712d7065726dULL;  // batch permutation
constexpr std::uint64_t kTagSeqDrop = 0x7365712d64726f70ULL;  // dropout masks
constexpr std::int64_t kEvalBlock = 512;                      // validation windows per pass
// Validation users: at least this many (all users when fewer), whatever --val-users says;
// they lose only their last event to validation, and fewer make early stopping a coin toss.
constexpr double kMinValUsers = 1000;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string hex64(std::uint64_t h) {
  static const char* const kHex = "0123456789abcdef";
  std::string s(16, '0');
  for (int k = 15; k >= 0; --k, h >>= 4) s[static_cast<std::size_t>(k)] = kHex[h & 15];
  return s;
}

class SeqTrainer {
 public:
  SeqTrainer(const TrainParams& p, const TrainModes& modes, const Dataset& ds, const Comm& comm)
      : p_(p),
        ds_(ds),
        comm_(comm),
        opt_(OptimiserParams::from(p, modes)),
        net_(shape(p, ds)),
        exchange_(comm) {
    opt_.lr = p.seq_lr;
    P_ = net_.layout().size;
    decayed_ = net_.layout().decayed();
    split_ = modes.grad_sync == TrainModes::GradSync::kItems && comm.size() > 1;
    own_rows_ = split_ && !p.seq_tied;
    gaps_ = p.seq_time_gap;
    if (split_) {  // even item ranges: rank r owns output rows [cols_[r], cols_[r + 1])
      const std::int64_t n = net_.shape().n_items;
      for (int r = 0; r <= comm.size(); ++r) cols_.push_back(n * r / comm.size());
    }
  }

  SeqTrainResult run(const EpochCallback& on_epoch);

 private:
  static seq::Shape shape(const TrainParams& p, const Dataset& ds) {
    seq::Shape s;
    s.n_items = ds.n_items();
    s.n_types = std::max<std::int64_t>(1, ds.n_types());
    s.dim = p.seq_dim;
    s.tied = p.seq_tied;
    s.n_gaps = p.seq_time_gap ? seq::kGapBuckets : 0;
    return s;
  }
  // A training window: events [begin, end) of the log (at most L + 1) of the user whose log
  // starts at `first`.
  struct Window {
    std::int64_t begin = 0, end = 0, first = 0;
  };
  void assign_roles();
  void add_window(const Window& w);
  void set_dropout(seq::Batch& bt, const std::vector<std::uint64_t>& keys) const;
  void update(double count, double lr);
  void gather_item_rows();
  std::pair<double, double> validation_quality();
  std::string config_text() const;
  void write_checkpoint(const std::string& path);
  void read_checkpoint(const std::string& path);
  SeqModel make_model() const;
  std::int64_t out_w() const { return net_.layout().out_w; }

  const TrainParams& p_;
  const Dataset& ds_;
  const Comm& comm_;
  OptimiserParams opt_;
  seq::GruNet<float> net_;
  std::int64_t P_ = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> decayed_;
  // --grad-sync items on several ranks: the output layer split by items (cols_: ranks + 1
  // offsets); each rank updates its own output rows unless they are the (replicated) input
  // embedding. Else the whole gradient is allreduced.
  bool split_ = false, own_rows_ = false;
  bool gaps_ = false;  // the model reads time gaps
  std::vector<std::int64_t> cols_;
  CommItemExchange<float> exchange_;
  std::vector<Window> train_local_;  ///< in user order, each user's from its last event back
  std::vector<std::int64_t> val_local_;
  std::int64_t n_train_users_ = 0;
  std::int64_t n_train_ = 0, train_offset_ = 0, batch_ = 0, epochs_ = 0, steps_per_epoch_ = 0;
  std::int64_t n_val_ = 0, targets_local_ = 0;
  std::vector<float> m_, v_, grad_, best_params_;
  // Progress (checkpointed).
  std::int64_t epoch_ = 0, step_in_epoch_ = 0, global_step_ = 0, best_epoch_ = -1, since_best_ = 0;
  double epoch_loss_ = 0, epoch_targets_ = 0, best_ndcg_ = -1;
  std::vector<EpochStats> history_;
  // Window scratch.
  std::vector<std::vector<std::int32_t>> win_items_;
  std::vector<std::vector<std::uint8_t>> win_types_;
  std::vector<std::vector<double>> win_times_;  ///< with gaps_: see seq::Batch::from
  std::vector<std::uint64_t> win_keys_;         ///< global training-window indices
};

void SeqTrainer::assign_roles() {
  std::int64_t users = 0;
  const double val_share =
      p_.val_users > 0
          ? std::max(p_.val_users,
                     kMinValUsers / static_cast<double>(std::max<std::int64_t>(1, ds_.n_users)))
          : 0.0;
  for (std::int64_t i = 0; i < ds_.n_local(); ++i) {
    const std::int64_t b = ds_.log_ptr[i];
    std::int64_t e = ds_.log_ptr[i + 1];
    if (e - b < 2) continue;  // nothing to predict
    const auto g = static_cast<std::uint64_t>(ds_.user_begin + i);
    if (unit_uniform(hash_keys(p_.seed, kTagSeqVal, g)) < val_share) {
      val_local_.push_back(i);
      --e;  // the last event is the validation target; the ones before it still train
    }
    users += e - b >= 2;
    // Windows of at most L + 1 events from the last one back; consecutive windows share
    // one event, so every event but the user's first is a target exactly once.
    for (std::int64_t end = e; end - b >= 2; end -= p_.max_len) {
      const std::int64_t begin = std::max(b, end - p_.max_len - 1);
      train_local_.push_back({begin, end, b});
      targets_local_ += end - begin - 1;
    }
  }
  n_train_ = comm_.allreduce_value(static_cast<std::int64_t>(train_local_.size()));
  n_train_users_ = comm_.allreduce_value(users);
  train_offset_ = comm_.exscan_sum(static_cast<std::int64_t>(train_local_.size()));
  if (n_train_ == 0)
    throw DataError("train: no training users with two or more events (--model-kind sequence)",
                    true);
  batch_ = p_.checked_batch(n_train_, "windows");
  epochs_ = p_.effective_epochs(n_train_);
  steps_per_epoch_ = (n_train_ + batch_ - 1) / batch_;
}

void SeqTrainer::add_window(const Window& w) {
  win_items_.emplace_back(ds_.log_item.begin() + w.begin, ds_.log_item.begin() + w.end);
  win_types_.emplace_back(ds_.log_type.begin() + w.begin, ds_.log_type.begin() + w.end);
  if (!gaps_) return;
  // The time of the event before the window (NaN: the user's first), then the window's.
  win_times_.emplace_back(1, w.begin > w.first ? ds_.log_time[static_cast<std::size_t>(w.begin - 1)]
                                               : std::numeric_limits<double>::quiet_NaN());
  win_times_.back().insert(win_times_.back().end(), ds_.log_time.begin() + w.begin,
                           ds_.log_time.begin() + w.end);
}

// Inverted dropout masks keyed by the seed, the epoch, the window's global index, the
// position and the feature: the same at any rank count.
void SeqTrainer::set_dropout(seq::Batch& bt, const std::vector<std::uint64_t>& keys) const {
  if (p_.seq_dropout <= 0) return;
  const std::int64_t D = p_.seq_dim;
  const auto keep = static_cast<float>(1.0 / (1.0 - p_.seq_dropout));
  bt.drop_in.assign(static_cast<std::size_t>(bt.B * bt.T * D), 0.0f);
  bt.drop_out.assign(bt.drop_in.size(), 0.0f);
  for (std::int64_t w = 0; w < bt.B; ++w) {
    const std::uint64_t key =
        rng::fold_keys(p_.seed, kTagSeqDrop, static_cast<std::uint64_t>(epoch_),
                       keys[static_cast<std::size_t>(w)]);
    for (std::int64_t t = 0; t < bt.len[static_cast<std::size_t>(w)]; ++t)
      for (std::int64_t d = 0; d < D; ++d) {
        const auto at = static_cast<std::size_t>((t * bt.B + w) * D + d);
        const auto f = static_cast<std::uint64_t>(t * D + d);
        bt.drop_in[at] = unit_uniform(hash_keys(key, 2 * f)) < p_.seq_dropout ? 0.0f : keep;
        bt.drop_out[at] = unit_uniform(hash_keys(key, 2 * f + 1)) < p_.seq_dropout ? 0.0f : keep;
      }
  }
}

// The optimiser step on the summed gradient (divided by the batch's `count` targets). Split:
// every rank steps the replicated blocks alike and its own output rows; the clipping norm is
// the global one.
void SeqTrainer::update(double count, double lr) {
  const double t = static_cast<double>(global_step_ + 1);
  float* g = grad_.data();
  float* w = net_.params().data();
  const auto step = [&](std::int64_t a, std::int64_t n, const Ranges& decayed, const double* ss) {
    optimiser_update(opt_, g + a, w + a, m_.data() + a, v_.empty() ? nullptr : v_.data() + a, n,
                     decayed, t, 1.0 / count, lr, ss);
  };
  if (!own_rows_) {
    step(0, P_, decayed_, nullptr);
    return;
  }
  const seq::Layout& lay = net_.layout();
  const std::int64_t D = net_.shape().dim, c0 = cols_[static_cast<std::size_t>(comm_.rank())];
  const std::int64_t nc = cols_[static_cast<std::size_t>(comm_.rank()) + 1] - c0;
  const std::int64_t wa = lay.out_w + c0 * D, ba = lay.out_b + c0;
  double ss = 0;
  if (opt_.clip > 0) {
    const auto sumsq = [&](std::int64_t a, std::int64_t n) {
      double x = 0;
      for (std::int64_t k = a; k < a + n; ++k) x += static_cast<double>(g[k]) * g[k];
      return x;
    };
    ss = comm_.allreduce_value(sumsq(wa, nc * D) + sumsq(ba, nc)) + sumsq(0, lay.out_w);
  }
  step(0, lay.out_w, {{lay.item_emb, lay.bx}}, &ss);
  step(wa, nc * D, {{0, nc * D}}, &ss);
  step(ba, nc, {}, &ss);
}

// Split: every rank gets the output rows (weights, biases, optimiser moments) the others
// updated; collective. Before validation, a checkpoint and the model.
void SeqTrainer::gather_item_rows() {
  if (!own_rows_) return;
  const seq::Layout& lay = net_.layout();
  const std::int64_t D = net_.shape().dim;
  std::vector<std::int64_t> rows_off(cols_);
  for (auto& x : rows_off) x *= D;
  for (std::vector<float>* a : {&net_.params(), &m_, &v_}) {
    if (a->empty()) continue;
    comm_.allgather_blocks(
        std::span<float>(a->data() + lay.out_w, static_cast<std::size_t>(lay.out_b - lay.out_w)),
        std::span<const std::int64_t>(rows_off));
    comm_.allgather_blocks(
        std::span<float>(a->data() + lay.out_b, static_cast<std::size_t>(lay.size - lay.out_b)),
        std::span<const std::int64_t>(cols_));
  }
}

std::pair<double, double> SeqTrainer::validation_quality() {
  double sums[3] = {0, 0, 0};  // NDCG, HR, users
  const std::int64_t nv = static_cast<std::int64_t>(val_local_.size());
  for (std::int64_t r0 = 0; r0 < nv; r0 += kEvalBlock) {
    const std::int64_t r1 = std::min(nv, r0 + kEvalBlock);
    win_items_.clear();
    win_types_.clear();
    win_times_.clear();
    std::vector<std::int32_t> target;
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t i = val_local_[static_cast<std::size_t>(r)];
      const std::int64_t last = ds_.log_ptr[i + 1] - 1;
      const auto [b, e] = last_window(ds_.log_ptr[i], last, p_.max_len);
      add_window({b, e, ds_.log_ptr[i]});
      target.push_back(ds_.log_item[static_cast<std::size_t>(last)]);
    }
    const seq::Batch bt = seq::Batch::from(win_items_, win_types_, false, win_times_);
    const auto S = net_.scores(net_.final_states(bt));
    for (std::int64_t w = 0; w < bt.B; ++w) {
      const std::int32_t y = target[static_cast<std::size_t>(w)];
      const float sy = S(w, y);
      std::int64_t rank = 0;  // items ahead of the target (ties: the smaller index first)
      for (std::int64_t j = 0; j < S.cols(); ++j) rank += S(w, j) > sy || (S(w, j) == sy && j < y);
      if (rank < p_.ndcg_k) sums[0] += 1.0 / std::log2(static_cast<double>(rank) + 2);
      if (rank < p_.recall_k) sums[1] += 1;
      sums[2] += 1;
    }
  }
  comm_.allreduce(std::span<double>(sums, 3));
  n_val_ = static_cast<std::int64_t>(sums[2]);
  if (sums[2] == 0) return {std::numeric_limits<double>::quiet_NaN(), 0.0};
  return {sums[0] / sums[2], sums[1] / sums[2]};
}

std::string SeqTrainer::config_text() const {
  std::ostringstream os;
  os << p_.checkpoint_config();
  os << "n_users=" << ds_.n_users << "\nn_items=" << ds_.n_items() << "\nn_types=" << ds_.n_types()
     << "\n";
  return os.str();
}

void SeqTrainer::write_checkpoint(const std::string& path) {
  if (path.empty()) return;
  h5::File f = h5::File::create(path, comm_, kSeqCheckpointFormat);
  f.create_group("/opt");
  const std::string cfg = config_text();
  f.set_attr("/", "config", cfg);
  f.set_attr("/", "config_hash", hex64(rng::fnv1a(cfg)));
  f.set_attr("/", "epoch", epoch_);
  f.set_attr("/", "step_in_epoch", step_in_epoch_);
  f.set_attr("/", "global_step", global_step_);
  f.set_attr("/", "epoch_loss_sum", epoch_loss_);
  f.set_attr("/", "epoch_targets", epoch_targets_);
  f.set_attr("/", "best_ndcg", best_ndcg_);
  f.set_attr("/", "best_epoch", best_epoch_);
  f.set_attr("/", "since_best", since_best_);
  f.write_replicated<float>("/params", std::span<const float>(net_.params()));
  f.write_replicated<float>("/opt/m", std::span<const float>(m_));
  if (!v_.empty()) f.write_replicated<float>("/opt/v", std::span<const float>(v_));
  if (!best_params_.empty())
    f.write_replicated<float>("/best_params", std::span<const float>(best_params_));
  constexpr int kCols = 10;
  std::vector<double> rows;
  for (const auto& e : history_) {
    const double row[kCols] = {static_cast<double>(e.epoch),
                               e.train_loss,
                               e.val_ndcg,
                               e.val_recall,
                               e.lr,
                               e.seconds,
                               e.step_seconds,
                               e.comm_seconds,
                               static_cast<double>(e.samples),
                               e.improved ? 1.0 : 0.0};
    rows.insert(rows.end(), row, row + kCols);
  }
  f.set_attr("/", "n_epochs_done", static_cast<std::int64_t>(history_.size()));
  f.write_replicated<double>("/history", std::span<const double>(rows), kCols);
  f.commit();
}

void SeqTrainer::read_checkpoint(const std::string& path) {
  const h5::File f = h5::File::open(path, comm_, kSeqCheckpointFormat);
  const std::string cfg = config_text();
  if (f.attr_string("/", "config_hash") != hex64(rng::fnv1a(cfg)))
    throw DataError("--resume: the checkpoint '" + path +
                        "' was written with other settings or data; the run's settings are:\n" +
                        cfg + "the checkpoint's:\n" + f.attr_string("/", "config"),
                    true);
  epoch_ = f.attr_int("/", "epoch");
  step_in_epoch_ = f.attr_int("/", "step_in_epoch");
  global_step_ = f.attr_int("/", "global_step");
  epoch_loss_ = f.attr_double("/", "epoch_loss_sum");
  epoch_targets_ = f.attr_double("/", "epoch_targets");
  best_ndcg_ = f.attr_double("/", "best_ndcg");
  best_epoch_ = f.attr_int("/", "best_epoch");
  since_best_ = f.attr_int("/", "since_best");
  net_.params() = f.read_all<float>("/params");
  m_ = f.read_all<float>("/opt/m");
  if (f.exists("/opt/v")) v_ = f.read_all<float>("/opt/v");
  if (f.exists("/best_params")) best_params_ = f.read_all<float>("/best_params");
  const auto rows = f.read_all<double>("/history");
  constexpr std::size_t kCols = 10;
  history_.clear();
  for (std::size_t r = 0; r + kCols <= rows.size(); r += kCols) {
    EpochStats e;
    e.epoch = static_cast<std::int64_t>(rows[r]);
    e.train_loss = rows[r + 1];
    e.val_ndcg = rows[r + 2];
    e.val_recall = rows[r + 3];
    e.lr = rows[r + 4];
    e.seconds = rows[r + 5];
    e.step_seconds = rows[r + 6];
    e.comm_seconds = rows[r + 7];
    e.samples = static_cast<std::int64_t>(rows[r + 8]);
    e.improved = rows[r + 9] > 0;
    history_.push_back(e);
  }
}

SeqTrainResult SeqTrainer::run(const EpochCallback& on_epoch) {
  assign_roles();
  net_.init(p_.seed);
  m_.assign(static_cast<std::size_t>(P_), 0.0f);
  if (opt_.kind == TrainModes::Optimizer::kAdam) v_.assign(static_cast<std::size_t>(P_), 0.0f);
  const std::string ckpt = p_.checkpoint_path();
  if (p_.resume) read_checkpoint(ckpt);
  grad_.assign(static_cast<std::size_t>(P_ + 3), 0.0f);  // gradient, loss, targets, stop flag
  const bool validate = comm_.allreduce_value(static_cast<std::int64_t>(val_local_.size())) > 0;
  SeqTrainResult res;
  res.steps_per_epoch = steps_per_epoch_;
  res.batch_size = batch_;
  res.planned_epochs = epochs_;
  res.targets_per_epoch = comm_.allreduce_value(targets_local_);
  std::int64_t steps_this_run = 0;
  bool finished = epoch_ >= epochs_;
  if (!history_.empty() && p_.patience > 0 && since_best_ >= p_.patience) finished = true;
  const auto N = static_cast<std::uint64_t>(n_train_);
  std::vector<std::pair<std::uint64_t, std::int64_t>> order;
  while (!finished) {
    const auto t_epoch = std::chrono::steady_clock::now();
    EpochStats st;
    st.epoch = epoch_ + 1;
    const detail::EpochBatches batches(
        N, static_cast<std::uint64_t>(steps_per_epoch_),
        hash_keys(p_.seed, kTagSeqPerm, static_cast<std::uint64_t>(epoch_)));
    order.clear();
    for (std::size_t j = 0; j < train_local_.size(); ++j) {
      const std::uint64_t t = static_cast<std::uint64_t>(train_offset_) + j;
      order.emplace_back(batches.batch(t) * N + t, static_cast<std::int64_t>(j));
    }
    std::sort(order.begin(), order.end());
    const auto counts = batches.counts();
    watchdog::set_stage("train epoch " + std::to_string(epoch_ + 1));
    std::size_t cursor = 0;
    while (cursor < order.size() &&
           order[cursor].first < static_cast<std::uint64_t>(step_in_epoch_) * N)
      ++cursor;
    bool stop = false;
    double lr = p_.seq_lr;
    for (std::int64_t s = step_in_epoch_; s < steps_per_epoch_; ++s) {
      watchdog::set_step("step", s + 1);
      const auto t_step = std::chrono::steady_clock::now();
      const std::uint64_t end = (static_cast<std::uint64_t>(s) + 1) * N;
      win_items_.clear();
      win_types_.clear();
      win_times_.clear();
      win_keys_.clear();
      for (; cursor < order.size() && order[cursor].first < end; ++cursor) {
        add_window(train_local_[static_cast<std::size_t>(order[cursor].second)]);
        win_keys_.push_back(order[cursor].first % N);
      }
      seq::Batch bt = seq::Batch::from(win_items_, win_types_, true, win_times_);
      set_dropout(bt, win_keys_);
      std::fill(grad_.begin(), grad_.end(), 0.0f);
      const double loss = split_ ? net_.loss_and_grad_split(bt, grad_.data(), exchange_, cols_)
                                 : net_.loss_and_grad(bt, grad_.data());
      grad_[static_cast<std::size_t>(P_)] = static_cast<float>(loss);
      grad_[static_cast<std::size_t>(P_ + 1)] = static_cast<float>(bt.n_targets());
      grad_[static_cast<std::size_t>(P_ + 2)] = training_stop_requested() ? 1.0f : 0.0f;
      const double compute = seconds_since(t_step);
      const auto t_comm = std::chrono::steady_clock::now();
      if (own_rows_) {  // the blocks before the output layer, then the three scalars
        comm_.allreduce(std::span<float>(grad_.data(), static_cast<std::size_t>(out_w())));
        comm_.allreduce(std::span<float>(grad_.data() + P_, 3));
      } else {
        comm_.allreduce(grad_);
      }
      st.comm_seconds += seconds_since(t_comm);
      st.compute_seconds += compute;
      const double count = grad_[static_cast<std::size_t>(P_ + 1)];
      if (!std::isfinite(grad_[static_cast<std::size_t>(P_)]))
        throw DataError("train: the loss is not finite at epoch " + std::to_string(epoch_ + 1) +
                            " step " + std::to_string(s + 1) + "; lower --lr or set --clip",
                        true);
      lr = learning_rate(opt_, global_step_, epoch_, epochs_ * steps_per_epoch_);
      const auto t_opt = std::chrono::steady_clock::now();
      if (count > 0) update(count, lr);
      st.optimiser_seconds += seconds_since(t_opt);
      epoch_loss_ += grad_[static_cast<std::size_t>(P_)];
      epoch_targets_ += count;
      ++global_step_;
      ++steps_this_run;
      st.samples += counts[static_cast<std::size_t>(s)];
      st.step_seconds += seconds_since(t_step);
      stop = grad_[static_cast<std::size_t>(P_ + 2)] > 0 ||
             (p_.stop_after_steps > 0 && steps_this_run >= p_.stop_after_steps);
      if (stop) clear_training_stop();  // the request is served
      if (stop && s + 1 < steps_per_epoch_) {
        step_in_epoch_ = s + 1;
        gather_item_rows();
        write_checkpoint(ckpt);
        throw Interrupted("train: stopped at epoch " + std::to_string(epoch_ + 1) + " step " +
                          std::to_string(s + 1) + "; " +
                          (ckpt.empty()
                               ? std::string("no checkpoint file")
                               : "checkpoint written to '" + ckpt + "' (rerun with --resume)"));
      }
    }
    st.train_loss = epoch_targets_ > 0 ? epoch_loss_ / epoch_targets_ : 0;
    st.lr = lr;
    gather_item_rows();
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
    ++epoch_;
    step_in_epoch_ = 0;
    epoch_loss_ = 0;
    epoch_targets_ = 0;
    const bool early = validate && p_.patience > 0 && since_best_ >= p_.patience;
    finished = epoch_ >= epochs_ || early;
    res.stopped_early = early && epoch_ < epochs_;
    st.seconds = seconds_since(t_epoch);
    history_.push_back(st);
    if ((p_.checkpoint_every > 0 && (epoch_ % p_.checkpoint_every == 0 || finished)) ||
        (stop && !finished))
      write_checkpoint(ckpt);
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
  return res;
}

SeqModel SeqTrainer::make_model() const {
  SeqModel m;
  m.shape = net_.shape();
  m.max_len = p_.max_len;
  m.item_ids = ds_.item_ids;
  m.event_types = ds_.event_types;
  if (m.event_types.empty()) m.event_types.push_back("event");
  m.params = best_params_.empty() ? net_.params() : best_params_;
  m.config = p_.config();
  set_training_record(m, history_, !best_params_.empty(), best_epoch_, best_ndcg_, p_, n_val_,
                      n_train_users_);
  return m;
}

}  // namespace

SeqTrainResult train_sequence(const TrainParams& p, const Dataset& ds, const Comm& comm,
                              const EpochCallback& on_epoch) {
  const TrainModes modes = p.validate();
  if (static_cast<std::int64_t>(ds.log_ptr.size()) != ds.n_local() + 1)
    throw DataError("train --model-kind sequence: the dataset holds no event log (/log)", true);
  SeqTrainer t(p, modes, ds, comm);
  return t.run(on_epoch);
}

}  // namespace segrec
