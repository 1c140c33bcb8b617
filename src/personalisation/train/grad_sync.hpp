// How the ranks' gradients travel (--grad-sync, private to train/): the flat
// gradient buffer, the backward pass where the mode shapes it, the exchange,
// the parameter ranges this rank's optimiser updates and the gathers after.
// One strategy per file: grad_sync_{allreduce,buckets,sharded,items}.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/mlp.hpp"
#include "segrec/personalisation/train/params.hpp"

namespace segrec::train_impl {

using Ranges = std::vector<std::pair<std::int64_t, std::int64_t>>;

// Bytes this rank has sent in the collectives that exchange gradients and parameters.
inline std::uint64_t sync_bytes(const CommStats& s) {
  return s.allreduce_bytes + s.reduce_scatter_bytes + s.gather_bytes;
}

// Even parts of [lo, hi) in whole 64-byte lines (so that every rank's loops vectorise alike):
// parts + 1 offsets.
std::vector<std::int64_t> line_partition(std::int64_t lo, std::int64_t hi, int parts);

// A parameter range this rank updates, with its gradient. Replicated ranges are updated
// alike on every rank.
struct Owned {
  std::int64_t param = 0, n = 0;
  float* grad = nullptr;
  bool replicated = false;
  Ranges decayed;  // relative to param
};

class GradSync {
 public:
  virtual ~GradSync() = default;
  GradSync(const GradSync&) = delete;
  GradSync& operator=(const GradSync&) = delete;

  // The gradient (P floats, flat layout) and the loss sum and stop flag (2 floats).
  float* grad() const { return grad_; }
  float* scalars() const { return scalars_; }
  // Forward and backward pass of this rank's batch slice into grad(): the loss share.
  virtual double loss_and_grad(mlp::Network<float>& net, const mlp::Batch<float>& bt,
                               float dropout);
  // Combines the ranks' gradients (with the loss and stop flag): afterwards scalars() hold
  // the sums and the owned ranges the gradient sum. Returns the global sum of squares of the
  // gradient sum when sharded and clipping, else 0.
  virtual double exchange() = 0;
  // True when each rank updates its owned ranges (then gather_parameters() after the step);
  // false: every rank updates all P parameters from the whole gradient.
  virtual bool shares_update() const { return false; }
  // The ranges this rank updates; the optimiser's moments hold them back to back.
  const std::vector<Owned>& owned() const { return own_; }
  // Sharded: every rank gets the parameters that the other ranks updated.
  virtual void gather_parameters(mlp::Network<float>& /*net*/) {}
  // Items: every rank gets the output columns (and sparse input rows) the others updated.
  virtual void gather_item_parts(mlp::Network<float>& /*net*/) {}
  // All the moments of one kind (P), in parameter order, from every rank's ranges
  // (collective where the update is shared).
  virtual std::vector<float> all_moments(const std::vector<float>& share) const { return share; }
  // This rank's part of full (P) moments: its owned ranges, concatenated.
  std::vector<float> own_moments(const std::vector<float>& all) const;
  // Bytes this rank has sent in the gradient and parameter exchange, over all communicators.
  virtual std::uint64_t sent_bytes() const { return sync_bytes(comm_.stats()); }
  // TrainResult::sync_layout, e.g. "sharded over 1 node(s) x 2 ranks (shared memory ...)".
  virtual std::string layout() const = 0;

 protected:
  GradSync(const Comm& comm, std::int64_t P, const Ranges& decayed)
      : comm_(comm), P_(P), decayed_(decayed) {}
  // Sets flat_, grad_ and scalars_: the gradient (unless `shared_grad`), then the scalars.
  void init_buffer(float* shared_grad);
  void add_owned(std::int64_t param, std::int64_t n, float* g, bool replicated);

  const Comm& comm_;
  std::int64_t P_ = 0;
  Ranges decayed_;
  std::vector<float> flat_;  // [gradient (P) | loss sum | stop flag], or the scalars only
  float* grad_ = nullptr;
  float* scalars_ = nullptr;
  std::vector<Owned> own_;
};

// The strategy of modes.grad_sync, with its fallbacks (items without a hidden layer or on one
// rank runs as sharded). Collective over comm. name: the --grad-sync text; decayed: the
// weight-decay ranges of the whole parameter vector.
std::unique_ptr<GradSync> make_grad_sync(const TrainModes& modes, const std::string& name,
                                         double bucket_mb, double clip,
                                         const mlp::Network<float>& net, const Ranges& decayed,
                                         const Comm& comm);

// The factories of the strategy files.
std::unique_ptr<GradSync> make_allreduce_sync(const std::string& name, const Comm& comm,
                                              std::int64_t P, const Ranges& decayed);
std::unique_ptr<GradSync> make_buckets_sync(const std::string& name, double bucket_mb,
                                            const Comm& comm, std::int64_t P,
                                            const Ranges& decayed);
std::unique_ptr<GradSync> make_sharded_sync(double clip, const mlp::Network<float>& net,
                                            const Ranges& decayed, const Comm& comm);
std::unique_ptr<GradSync> make_items_sync(double clip, const mlp::Network<float>& net,
                                          const Ranges& decayed, const Comm& comm);

}  // namespace segrec::train_impl
