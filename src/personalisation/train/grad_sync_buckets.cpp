// --grad-sync buckets: the backward pass starts a nonblocking allreduce per finished
// gradient range (--bucket-mb, see mlp::GradReady); the exchange adds the loss and stop flag
// and waits for them all. Every rank updates all the parameters.
#include <algorithm>
#include <cmath>

#include "grad_sync.hpp"

namespace segrec::train_impl {

namespace {

class BucketsSync final : public GradSync {
 public:
  BucketsSync(const std::string& name, double bucket_mb, const Comm& comm, std::int64_t P,
              const Ranges& decayed)
      : GradSync(comm, P, decayed), name_(name) {
    buckets_.bucket_elems =
        std::max<std::int64_t>(1024, std::llround(bucket_mb * 1048576.0 / sizeof(float)));
    buckets_.ready = [this](std::int64_t a, std::int64_t b) {
      pending_.push_back(comm_.iallreduce(std::span<float>(grad_ + a, b - a)));
      for (auto& r : pending_) r.test();  // progress the earlier buckets
    };
    init_buffer(nullptr);
    add_owned(0, P_, grad_, true);
  }

  double loss_and_grad(mlp::Network<float>& net, const mlp::Batch<float>& bt,
                       float dropout) override {
    return net.loss_and_grad(bt, dropout, grad_, 0, &buckets_);
  }

  double exchange() override {
    comm_.allreduce(std::span<float>(scalars_, 2));
    for (auto& r : pending_) r.wait();
    pending_.clear();
    return 0;
  }

  std::string layout() const override {
    return name_ + " over " + std::to_string(comm_.size()) + " rank(s)";
  }

 private:
  std::string name_;
  mlp::GradReady buckets_;        // starts an Iallreduce per finished range
  std::vector<Request> pending_;  // the step's allreduces in flight
};

}  // namespace

std::unique_ptr<GradSync> make_buckets_sync(const std::string& name, double bucket_mb,
                                            const Comm& comm, std::int64_t P,
                                            const Ranges& decayed) {
  return std::make_unique<BucketsSync>(name, bucket_mb, comm, P, decayed);
}

}  // namespace segrec::train_impl
