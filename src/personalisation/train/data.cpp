#include "segrec/personalisation/train/data.hpp"

#include <cmath>
#include <utility>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/io/companion.hpp"
#include "segrec/io/formats.hpp"
#include "segrec/io/h5.hpp"

namespace segrec {

namespace {

// Without a segment-aware model (an input or heads) the segments only group the validation
// figures, and a user in no segment (-1, DBSCAN noise) is counted in the whole only.
bool unsegmented_allowed(const TrainParams& p, const TrainModes& modes) {
  return modes.personalize == TrainModes::Personalize::kNone && !p.compare_personalize;
}

}  // namespace

void check_data(const TrainParams& p, const TrainModes& modes, const TrainData& d,
                const Comm& comm) {
  std::string err;
  const std::int64_t n = d.n_local();
  const auto n_items = d.n_items();
  if (n < 0 || d.indptr.empty() || d.indptr[0] != 0 ||
      static_cast<std::int64_t>(d.indices.size()) != d.indptr.back() ||
      d.weights.size() != d.indices.size())
    err = "malformed interaction matrix";
  for (std::int64_t i = 0; err.empty() && i < n; ++i)
    if (d.indptr[i + 1] < d.indptr[i]) err = "malformed interaction matrix (row pointer)";
  for (std::size_t k = 0; err.empty() && k < d.indices.size(); ++k)
    if (d.indices[k] < 0 || d.indices[k] >= n_items)
      err = "item index " + std::to_string(d.indices[k]) + " out of range";
  if (err.empty() && modes.uses_projection()) {
    if (d.dense_dim <= 0 || static_cast<std::int64_t>(d.dense.size()) != n * d.dense_dim)
      err = "--input " + p.input + " needs the projection rows of every user";
    for (std::size_t k = 0; err.empty() && k < d.dense.size(); ++k)
      if (!std::isfinite(d.dense[k])) err = "the projection holds a non-finite value";
  }
  const bool noise_ok = unsegmented_allowed(p, modes);
  if (err.empty() && (!noise_ok || !d.segments.empty())) {
    if (d.n_segments <= 0 || static_cast<std::int64_t>(d.segments.size()) != n)
      err = "--personalize " + p.personalize + " needs a segment label for every user";
    for (std::size_t k = 0; err.empty() && k < d.segments.size(); ++k)
      if ((d.segments[k] < 0 && !(noise_ok && d.segments[k] == -1)) ||
          d.segments[k] >= d.n_segments)
        err = "segment label " + std::to_string(d.segments[k]) + " outside [0, " +
              std::to_string(d.n_segments) + ")";
  }
  comm.check_all(err, kExitData);
  const std::int64_t total = comm.allreduce_value(n);
  const std::int64_t begin = comm.exscan_sum(n);
  const std::int64_t items_min = comm.allreduce_value(n_items, Op::kMin);
  const std::int64_t items_max = comm.allreduce_value(n_items, Op::kMax);
  if (total != d.n_users || items_min != items_max)
    throw DataError("training data: ranks disagree on the users or items", true);
  comm.check_all(begin == d.user_begin ? "" : "training data: user blocks are not in rank order",
                 kExitData);
  if (n_items == 0) throw DataError("training data: no items", true);
}

TrainData load_train_data(const TrainParams& p, const Comm& comm) {
  require(!p.data.empty(), "data", p.data, "give the dataset.h5 to train on");
  const TrainModes modes = p.validate();
  if (modes.uses_projection())
    require(!p.projection.empty(), "projection", p.projection,
            "--input " + p.input + " needs --projection FILE");
  if (modes.personalize != TrainModes::Personalize::kNone)
    require(!p.segments.empty(), "segments", p.segments,
            "--personalize " + p.personalize + " needs --segments FILE");
  Dataset ds = read_dataset(p.data, comm, /*with_log=*/false);
  TrainData d;
  d.n_users = ds.n_users;
  d.user_begin = ds.user_begin;
  d.item_ids = std::move(ds.item_ids);
  d.indptr = std::move(ds.indptr);
  d.indices = std::move(ds.indices);
  d.weights = std::move(ds.weights);
  d.user_ids = ds.user_ids;
  const Block b = block_partition(ds.n_users, comm.size(), comm.rank());

  // Per-user files must list the dataset's users in the dataset's order.
  if (modes.uses_projection()) {
    const h5::File f = h5::File::open(p.projection, comm, kProjectionFormat);
    const UserRowsSpec spec{p.projection, "/H", ds.n_users, -1, p.data, &ds.user_ids};
    d.dense_dim = user_rows_shape(f, spec)[1];
    d.dense = read_user_rows<float>(f, spec, b, comm);
  }
  if (modes.reads_segments) {
    const h5::File f = h5::File::open(p.segments, comm, kSegmentsFormat);
    const UserRowsSpec spec{p.segments, "/labels", ds.n_users, 0, p.data, &ds.user_ids};
    d.segments = read_user_labels(f, spec, b, comm, d.n_segments, unsegmented_allowed(p, modes));
    if (d.n_segments <= 0)
      throw DataError("'" + p.segments + "': attribute k must be positive", true);
  }
  return d;
}

}  // namespace segrec
