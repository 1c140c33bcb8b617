// The item-parallel step's collectives (mlp::ItemExchange) over a Comm: the
// exchange that --grad-sync items passes to Network::loss_and_grad_split.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/personalisation/mlp.hpp"

namespace segrec {

/// Each call is the one Comm collective of the same name (T: float or double).
template <class T>
class CommItemExchange final : public mlp::ItemExchange<T> {
 public:
  explicit CommItemExchange(const Comm& comm) : comm_(comm) {}
  int size() const override;
  int rank() const override;
  std::vector<std::int64_t> allgatherv(std::span<const std::int64_t> local) const override;
  std::vector<std::int32_t> allgatherv(std::span<const std::int32_t> local) const override;
  std::vector<T> allgatherv(std::span<const T> local) const override;
  void reduce_scatter(std::span<T> data, std::span<const std::int64_t> off) const override;
  void allgather_blocks(std::span<T> data, std::span<const std::int64_t> off) const override;
  void allreduce_max(std::span<T> data) const override;
  void allreduce_sum(std::span<double> data) const override;

 private:
  const Comm& comm_;
};

extern template class CommItemExchange<float>;
extern template class CommItemExchange<double>;

}  // namespace segrec
