// The parts of GradSync that every strategy shares, and the factory.
#include "grad_sync.hpp"

#include <algorithm>

namespace segrec::train_impl {

std::vector<std::int64_t> line_partition(std::int64_t lo, std::int64_t hi, int parts) {
  std::vector<std::int64_t> off(static_cast<std::size_t>(parts) + 1, hi);
  for (int r = 0; r < parts; ++r) off[r] = std::min(hi, lo + ((hi - lo) * r / parts) / 16 * 16);
  return off;
}

double GradSync::loss_and_grad(mlp::Network<float>& net, const mlp::Batch<float>& bt,
                               float dropout) {
  return net.loss_and_grad(bt, dropout, grad_, 0, nullptr);
}

std::vector<float> GradSync::own_moments(const std::vector<float>& all) const {
  if (all.empty()) return all;
  std::vector<float> mine;
  for (const auto& o : own_)
    mine.insert(mine.end(), all.begin() + o.param, all.begin() + o.param + o.n);
  return mine;
}

void GradSync::init_buffer(float* shared_grad) {
  flat_.assign(static_cast<std::size_t>(shared_grad ? 0 : P_) + 2, 0.0f);
  grad_ = shared_grad ? shared_grad : flat_.data();
  scalars_ = flat_.data() + (shared_grad ? 0 : P_);
}

void GradSync::add_owned(std::int64_t param, std::int64_t n, float* g, bool replicated) {
  Owned o{param, n, g, replicated, {}};
  for (const auto& [lo, hi] : decayed_)
    if (std::max(lo, param) < std::min(hi, param + n))
      o.decayed.emplace_back(std::max(lo, param) - param, std::min(hi, param + n) - param);
  own_.push_back(std::move(o));
}

std::unique_ptr<GradSync> make_grad_sync(const TrainModes& modes, const std::string& name,
                                         double bucket_mb, double clip,
                                         const mlp::Network<float>& net, const Ranges& decayed,
                                         const Comm& comm) {
  const std::int64_t P = net.layout().size;
  switch (modes.grad_sync) {
    case TrainModes::GradSync::kAllreduce:
      return make_allreduce_sync(name, comm, P, decayed);
    case TrainModes::GradSync::kBuckets:
      return make_buckets_sync(name, bucket_mb, comm, P, decayed);
    case TrainModes::GradSync::kSharded:
      break;
    case TrainModes::GradSync::kItems:
      // Item columns need a hidden layer (the split exchanges its rows) and several ranks;
      // otherwise items behaves as sharded.
      if (comm.size() > 1 && net.shape().n_layers() >= 2)
        return make_items_sync(clip, net, decayed, comm);
      break;
  }
  return make_sharded_sync(clip, net, decayed, comm);
}

}  // namespace segrec::train_impl
