// Training throughput of `segrec train` on synthetic data, the same shape as
// the PyTorch peer (/work/shared/anchors/mlp_peer.py): users with random dense
// inputs (--input projected) or sparse histories (--input history) and random
// item sets as targets, trained through segrec::train (the code `segrec train`
// runs). Prints one JSON object (rank 0) for the last epoch.
//   [mpirun -n P] segrec_mlp_bench [--users 50000] [--input projected|history] [--d 64]
//       [--hidden 256,256] [--items 3706] [--batch 256] [--loss softmax|bce]
//       [--density 0.01] [--epochs 2] [--grad-sync allreduce|buckets|sharded|items] [--bucket-mb 4]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <numbers>
#include <string>

#include "segrec/core/comm.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/random.hpp"
#include "segrec/personalisation/train.hpp"

using namespace segrec;

int main(int argc, char** argv) {
  MpiEnvironment env(&argc, &argv);
  const Comm comm = Comm::world();
  std::map<std::string, std::string> a = {
      {"users", "50000"},     {"input", "projected"}, {"d", "64"},
      {"hidden", "256,256"},  {"items", "3706"},      {"batch", "256"},
      {"loss", "softmax"},    {"density", "0.01"},    {"epochs", "2"},
      {"activation", "relu"}, {"grad-sync", "items"}, {"bucket-mb", "4"}};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || !a.count(k.substr(2))) {
      if (comm.is_root()) std::fprintf(stderr, "mlp_bench: unknown option %s\n", argv[i]);
      return 2;
    }
    a[k.substr(2)] = argv[i + 1];
  }
  try {
    const std::int64_t n_users = std::stoll(a["users"]), n_items = std::stoll(a["items"]);
    const std::int64_t d = std::stoll(a["d"]);
    const double density = std::stod(a["density"]);
    TrainParams p;
    p.input = a["input"];
    p.grad_sync = a["grad-sync"];
    p.bucket_mb = std::stod(a["bucket-mb"]);
    p.hidden = a["hidden"];
    p.activation = a["activation"];
    p.loss = a["loss"];
    p.batch_size = std::stoll(a["batch"]);
    p.epochs = std::stoll(a["epochs"]);
    p.input_dropout = 0;
    p.dropout = 0;
    p.lr_schedule = "constant";
    p.val_users = 0;
    p.patience = 0;
    p.checkpoint_every = 0;

    // This rank's block of synthetic users (keyed by the global user index).
    TrainData data;
    data.n_users = n_users;
    const Block b = block_partition(n_users, comm.size(), comm.rank());
    data.user_begin = b.begin;
    for (std::int64_t i = 0; i < n_items; ++i) data.item_ids.push_back(std::to_string(i));
    const auto per_user =
        std::max<std::int64_t>(1, std::llround(density * static_cast<double>(n_items)));
    std::vector<std::int32_t> row;
    for (std::int64_t u = b.begin; u < b.end; ++u) {
      row.clear();
      for (std::int64_t j = 0; j < per_user; ++j)
        row.push_back(static_cast<std::int32_t>(
            mlp::hash_keys(7, static_cast<std::uint64_t>(u), static_cast<std::uint64_t>(j)) %
            static_cast<std::uint64_t>(n_items)));
      std::sort(row.begin(), row.end());
      row.erase(std::unique(row.begin(), row.end()), row.end());
      for (auto it : row) {
        data.indices.push_back(it);
        data.weights.push_back(1.0f);
      }
      data.indptr.push_back(static_cast<std::int64_t>(data.indices.size()));
    }
    if (p.validate().uses_projection()) {
      data.dense_dim = d;
      data.dense.resize(static_cast<std::size_t>(b.size() * d));
      for (std::size_t k = 0; k < data.dense.size(); ++k) {
        const auto h = mlp::hash_keys(11, static_cast<std::uint64_t>(b.begin * d) + k);
        const double u1 = 1.0 - mlp::unit_uniform(h), u2 = mlp::unit_uniform(rng::splitmix64(h));
        data.dense[k] =
            static_cast<float>(std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2));
      }
    }
    const TrainResult r = train(p, data, comm);
    const EpochStats& e = r.epochs.back();
    const double step_s = comm.allreduce_value(e.step_seconds, Op::kMax);
    const double comm_s = comm.allreduce_value(e.comm_seconds, Op::kSum) / comm.size();
    const double compute_s = comm.allreduce_value(e.compute_seconds, Op::kSum) / comm.size();
    const double opt_s = comm.allreduce_value(e.optimiser_seconds, Op::kSum) / comm.size();
    const auto& s = r.model.shape;
    double mults = 0;
    for (int l = 0; l < s.n_layers(); ++l)
      mults += static_cast<double>(s.fan_in(l)) * static_cast<double>(s.fan_out(l));
    if (comm.is_root())
      std::printf(
          "{\"ranks\": %d, \"input\": \"%s\", \"in_dim\": %lld, \"hidden\": \"%s\", \"items\": "
          "%lld, "
          "\"batch\": %lld, \"loss\": \"%s\", \"samples_per_s\": %.0f, \"gflops\": %.1f, "
          "\"step_ms\": %.3f, \"comm_share\": %.4f, \"compute_share\": %.4f, "
          "\"optimiser_share\": %.4f, \"grad_sync\": \"%s\", \"sync_bytes_per_step\": %llu, "
          "\"params\": %zu, \"final_loss\": %.4f}\n",
          comm.size(), p.input.c_str(), static_cast<long long>(s.in_dim()), p.hidden.c_str(),
          static_cast<long long>(n_items), static_cast<long long>(p.batch_size), p.loss.c_str(),
          static_cast<double>(e.samples) / step_s,
          6.0 * static_cast<double>(e.samples) * mults / step_s / 1e9,
          1e3 * step_s / static_cast<double>(r.steps_per_epoch), comm_s / step_s,
          compute_s / step_s, opt_s / step_s, p.grad_sync.c_str(),
          static_cast<unsigned long long>(r.sync_bytes_per_step), r.model.params.size(),
          e.train_loss);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "mlp_bench: %s\n", ex.what());
    return 1;
  }
  return 0;
}
