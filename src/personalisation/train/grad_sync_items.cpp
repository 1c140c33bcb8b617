// --grad-sync items (several ranks, a hidden layer): the output layer is split by item
// columns, rank r owning [cols_[r], cols_[r + 1]), and so are the sparse input's rows of W0,
// [in_rows_[r], in_rows_[r + 1]) (see Network::loss_and_grad_split, over CommItemExchange);
// the parameters between are sharded (ShardedSync); the small embedding is allreduced and
// updated by all.
#include "grad_sync_sharded.hpp"
#include "segrec/personalisation/train/item_exchange.hpp"

namespace segrec {

template <class T>
int CommItemExchange<T>::size() const {
  return comm_.size();
}
template <class T>
int CommItemExchange<T>::rank() const {
  return comm_.rank();
}
template <class T>
std::vector<std::int64_t> CommItemExchange<T>::allgatherv(
    std::span<const std::int64_t> local) const {
  return comm_.allgatherv(local);
}
template <class T>
std::vector<std::int32_t> CommItemExchange<T>::allgatherv(
    std::span<const std::int32_t> local) const {
  return comm_.allgatherv(local);
}
template <class T>
std::vector<T> CommItemExchange<T>::allgatherv(std::span<const T> local) const {
  return comm_.allgatherv(local);
}
template <class T>
void CommItemExchange<T>::reduce_scatter(std::span<T> data,
                                         std::span<const std::int64_t> off) const {
  comm_.reduce_scatter(data, off);
}
template <class T>
void CommItemExchange<T>::allgather_blocks(std::span<T> data,
                                           std::span<const std::int64_t> off) const {
  comm_.allgather_blocks(data, off);
}
template <class T>
void CommItemExchange<T>::allreduce_max(std::span<T> data) const {
  comm_.allreduce(data, Op::kMax);
}
template <class T>
void CommItemExchange<T>::allreduce_sum(std::span<double> data) const {
  comm_.allreduce(data);
}

template class CommItemExchange<float>;
template class CommItemExchange<double>;

namespace train_impl {

namespace {

class ItemsSync final : public ShardedSync {
 public:
  ItemsSync(double clip, const mlp::Network<float>& net, const Ranges& decayed, const Comm& comm)
      : ShardedSync(clip, net, decayed, comm, true), shape_(net.shape()), exchange_(comm) {
    const int L_net = shape_.n_layers();
    const mlp::Layout& lay = net.layout();
    cols_ = line_partition(0, shape_.n_out, comm_.size());
    const std::int64_t h = shape_.fan_in(L_net - 1), c0 = cols_[comm_.rank()],
                       nc = cols_[comm_.rank() + 1] - c0;
    grad_out_.assign(static_cast<std::size_t>((h + 1) * nc), 0.0f);
    for (std::int64_t i = 0; i < h; ++i)
      add_owned(lay.w[L_net - 1] + i * shape_.n_out + c0, nc, grad_out_.data() + i * nc, false);
    add_owned(lay.b[L_net - 1] + c0, nc, grad_out_.data() + h * nc, false);
    if (S_ > 0) {
      const std::int64_t h0 = shape_.fan_out(0);
      in_rows_ = line_partition(0, shape_.sparse_in, comm_.size());
      const std::int64_t a = in_rows_[comm_.rank()] * h0, b = in_rows_[comm_.rank() + 1] * h0;
      add_owned(a, b - a, grad_ + a, false);
    }
    if (P_ > lay.emb) add_owned(lay.emb, P_ - lay.emb, grad_ + lay.emb, true);
  }

  double loss_and_grad(mlp::Network<float>& net, const mlp::Batch<float>& bt,
                       float dropout) override {
    return net.loss_and_grad_split(bt, dropout, grad_, grad_out_.data(), exchange_,
                                   std::span<const std::int64_t>(cols_),
                                   std::span<const std::int64_t>(in_rows_));
  }

  void gather_item_parts(mlp::Network<float>& net) override;

 private:
  mlp::Shape shape_;
  CommItemExchange<float> exchange_;
  std::vector<std::int64_t> cols_, in_rows_;  // column and input row offsets
  std::vector<float> grad_out_;               // (h + 1) x nc, this rank's output-layer gradient
};

// The output layer's columns, packed per rank as (h + 1) x nc (weights, then bias), and the
// sparse input's rows of W0.
void ItemsSync::gather_item_parts(mlp::Network<float>& net) {
  if (S_ > 0) {
    std::vector<std::int64_t> off(in_rows_);
    for (auto& x : off) x *= shape_.fan_out(0);
    comm_.allgather_blocks(std::span<float>(net.params().data(), static_cast<std::size_t>(S_)),
                           std::span<const std::int64_t>(off));
  }
  const int L = shape_.n_layers(), P = comm_.size();
  const std::int64_t h = shape_.fan_in(L - 1), n_out = shape_.n_out;
  float* W = net.params().data() + net.layout().w[L - 1];
  float* bias = net.params().data() + net.layout().b[L - 1];
  const auto pack = [&](int r, float* buf, bool out) {
    const std::int64_t c0 = cols_[r], nc = cols_[r + 1] - c0;
    for (std::int64_t i = 0; i <= h; ++i) {
      float* p = i < h ? W + i * n_out + c0 : bias + c0;
      if (out)
        std::copy(p, p + nc, buf + i * nc);
      else
        std::copy(buf + i * nc, buf + (i + 1) * nc, p);
    }
  };
  std::vector<float> mine(
      static_cast<std::size_t>((h + 1) * (cols_[comm_.rank() + 1] - cols_[comm_.rank()])));
  pack(comm_.rank(), mine.data(), true);
  std::vector<float> all = comm_.allgatherv(mine);
  for (int r = 0; r < P; ++r) pack(r, all.data() + (h + 1) * cols_[r], false);
}

}  // namespace

std::unique_ptr<GradSync> make_items_sync(double clip, const mlp::Network<float>& net,
                                          const Ranges& decayed, const Comm& comm) {
  return std::make_unique<ItemsSync>(clip, net, decayed, comm);
}

}  // namespace train_impl

}  // namespace segrec
