// Checkpoints of a training run: the parameters, the optimiser's moments (all
// ranks' shares), the progress counters and the curves, with the settings text
// that a resume must match.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "segrec/core/error.hpp"
#include "segrec/core/fault.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"
#include "trainer_impl.hpp"

namespace segrec::train_impl {

namespace {

using rng::fnv1a;

std::string hex64(std::uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

std::string Trainer::config_text() const {
  std::ostringstream os;
  os << p_.checkpoint_config();
  os << "n_users=" << d_.n_users << "\nn_items=" << d_.n_items()
     << "\ndense_dim=" << shape_.dense_in << "\nn_segments=" << shape_.n_segments << "\n";
  return os.str();
}

void Trainer::write_checkpoint(const std::string& path) {
  if (path.empty()) return;
  fault_point("train.checkpoint", comm_);
  // Sharded: each rank holds the moments of its share; the file holds them all.
  const std::vector<float> m_all = sync_->all_moments(m_);
  const std::vector<float> v_all =
      opt_.kind == TrainModes::Optimizer::kAdam ? sync_->all_moments(v_) : std::vector<float>{};
  h5::File f = h5::File::create(path, comm_, kTrainCheckpointFormat);
  for (const char* g : {"/items", "/opt", "/curves"}) f.create_group(g);
  const std::string cfg = config_text();
  f.set_attr("/", "config", cfg);
  f.set_attr("/", "config_hash", hex64(fnv1a(cfg.data(), cfg.size())));
  f.set_attr("/", "epoch", epoch_);
  f.set_attr("/", "step_in_epoch", step_in_epoch_);
  f.set_attr("/", "global_step", global_step_);
  f.set_attr("/", "epoch_loss_sum", epoch_loss_);
  f.set_attr("/", "best_ndcg", best_ndcg_);
  f.set_attr("/", "best_epoch", best_epoch_);
  f.set_attr("/", "since_best", since_best_);
  f.set_attr("/", "seed", static_cast<std::int64_t>(p_.seed));
  f.set_attr("/", "n_params", P_);
  f.write_strings("/items/ids", d_.item_ids, false);
  f.write_replicated<float>("/params", std::span<const float>(net_.params()));
  f.write_replicated<float>("/opt/m", std::span<const float>(m_all));
  if (!v_all.empty()) f.write_replicated<float>("/opt/v", std::span<const float>(v_all));
  if (!best_params_.empty())
    f.write_replicated<float>("/best_params", std::span<const float>(best_params_));
  std::vector<double> cols[8];
  for (const auto& e : history_) {
    const double row[8] = {static_cast<double>(e.epoch),
                           e.train_loss,
                           e.val_ndcg,
                           e.lr,
                           e.seconds,
                           e.step_seconds,
                           e.comm_seconds,
                           static_cast<double>(e.samples)};
    for (int c = 0; c < 8; ++c) cols[c].push_back(row[c]);
  }
  static const char* const kCols[8] = {"epoch",   "train_loss",   "val_ndcg",     "lr",
                                       "seconds", "step_seconds", "comm_seconds", "samples"};
  std::vector<double> improved, recall;
  for (const auto& e : history_) {
    improved.push_back(e.improved ? 1 : 0);
    recall.push_back(e.val_recall);
  }
  f.write_replicated<double>("/curves/val_recall", std::span<const double>(recall));
  for (int c = 0; c < 8; ++c)
    f.write_replicated<double>(std::string("/curves/") + kCols[c],
                               std::span<const double>(cols[c]));
  f.write_replicated<double>("/curves/improved", std::span<const double>(improved));
  f.commit();
}

void Trainer::read_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw UsageError("--resume: no checkpoint '" + path + "' (see --checkpoint)");
  const h5::File f = h5::File::open(path, comm_, kTrainCheckpointFormat);
  const auto items = f.read_strings("/items/ids", 0, f.shape("/items/ids")[0]);
  if (items != d_.item_ids)
    throw DataError("checkpoint '" + path + "' was written for other items (" +
                        std::to_string(items.size()) + " items; the data has " +
                        std::to_string(d_.item_ids.size()) + " or a different list)",
                    true);
  const std::string mine = config_text();
  const std::string theirs = f.attr_string("/", "config");
  if (mine != theirs) {
    // Name the settings that differ.
    std::istringstream a(mine), b(theirs);
    std::vector<std::string> la, lb, diff;
    for (std::string s; std::getline(a, s);) la.push_back(s);
    for (std::string s; std::getline(b, s);) lb.push_back(s);
    for (const auto& s : la)
      if (std::find(lb.begin(), lb.end(), s) == lb.end()) diff.push_back(s.substr(0, s.find('=')));
    std::string names;
    for (const auto& s : diff) names += (names.empty() ? "" : ", ") + s;
    throw UsageError("--resume: checkpoint '" + path +
                     "' was written with other settings or data (" + names +
                     "); rerun with the same options, or without --resume");
  }
  if (f.attr_int("/", "n_params") != P_)
    throw DataError("checkpoint '" + path + "' holds a network of another size", true);
  net_.params() = f.read_all<float>("/params");
  m_ = f.read_all<float>("/opt/m");
  if (f.exists("/opt/v")) v_ = f.read_all<float>("/opt/v");
  if (f.exists("/best_params")) best_params_ = f.read_all<float>("/best_params");
  if (std::ssize(net_.params()) != P_ || std::ssize(m_) != P_ ||
      (opt_.kind == TrainModes::Optimizer::kAdam && std::ssize(v_) != P_))
    throw DataError("checkpoint '" + path + "': parameter arrays of the wrong size", true);
  for (const auto* a : {&net_.params(), &m_, &v_, &best_params_})
    if (!std::all_of(a->begin(), a->end(), [](float x) { return std::isfinite(x); }))
      throw DataError("checkpoint '" + path + "': non-finite parameters (damaged file?)", true);
  m_ = sync_->own_moments(m_);  // keep this rank's ranges of the moments
  v_ = sync_->own_moments(v_);
  epoch_ = f.attr_int("/", "epoch");
  step_in_epoch_ = f.attr_int("/", "step_in_epoch");
  global_step_ = f.attr_int("/", "global_step");
  epoch_loss_ = f.attr_double("/", "epoch_loss_sum");
  best_ndcg_ = f.attr_double("/", "best_ndcg");
  best_epoch_ = f.attr_int("/", "best_epoch");
  since_best_ = f.attr_int("/", "since_best");
  const auto col = [&](const char* name) {
    return f.read_all<double>(std::string("/curves/") + name);
  };
  const auto ep = col("epoch"), tl = col("train_loss"), vn = col("val_ndcg"), lr = col("lr"),
             sec = col("seconds"), ss = col("step_seconds"), cs = col("comm_seconds"),
             sa = col("samples"), im = col("improved");
  const auto rc = f.exists("/curves/val_recall") ? col("val_recall") : std::vector<double>{};
  history_.clear();
  for (std::size_t e = 0; e < ep.size(); ++e) {
    EpochStats s;
    s.epoch = static_cast<std::int64_t>(ep[e]);
    s.train_loss = tl[e];
    s.val_ndcg = vn[e];
    s.lr = lr[e];
    s.seconds = sec[e];
    s.step_seconds = ss[e];
    s.comm_seconds = cs[e];
    s.samples = static_cast<std::int64_t>(sa[e]);
    s.improved = im[e] != 0;
    if (e < rc.size()) s.val_recall = rc[e];
    history_.push_back(s);
  }
  if (epoch_ < 0 || step_in_epoch_ < 0 || step_in_epoch_ >= steps_per_epoch_ ||
      std::ssize(history_) != epoch_)
    throw DataError("checkpoint '" + path + "': inconsistent progress counters", true);
}

}  // namespace segrec::train_impl
