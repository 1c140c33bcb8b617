// --grad-sync allreduce: one allreduce of [gradient | loss | stop flag] per step; every rank
// updates all the parameters.
#include "grad_sync.hpp"

namespace segrec::train_impl {

namespace {

class AllreduceSync final : public GradSync {
 public:
  AllreduceSync(const std::string& name, const Comm& comm, std::int64_t P, const Ranges& decayed)
      : GradSync(comm, P, decayed), name_(name) {
    init_buffer(nullptr);
    add_owned(0, P_, grad_, true);
  }

  double exchange() override {
    comm_.allreduce(flat_);
    return 0;
  }

  std::string layout() const override {
    return name_ + " over " + std::to_string(comm_.size()) + " rank(s)";
  }

 private:
  std::string name_;
};

}  // namespace

std::unique_ptr<GradSync> make_allreduce_sync(const std::string& name, const Comm& comm,
                                              std::int64_t P, const Ranges& decayed) {
  return std::make_unique<AllreduceSync>(name, comm, P, decayed);
}

}  // namespace segrec::train_impl
