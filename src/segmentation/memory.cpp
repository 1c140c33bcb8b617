#include "segrec/segmentation/memory.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace segrec {

namespace {

// A user id as std::string: the object plus a heap copy of longer ids.
constexpr long double kIdBytes = 48;

long double ld(std::int64_t v) { return static_cast<long double>(v); }

}  // namespace

MemoryNeed profile_memory(const Dataset& ds, std::int64_t n_categories) {
  const long double n = ld(ds.n_local());
  const auto pairs = static_cast<long double>(ds.indices.size());
  const auto events = static_cast<long double>(ds.log_item.size());
  // The widest layout (with the price columns): an upper bound of the model's d.
  const std::vector<std::string> cats(
      static_cast<std::size_t>(std::max<std::int64_t>(n_categories, 0)));
  const auto d = static_cast<long double>(
      dense_statistic_names(ds.event_types, cats, nullptr, /*prices=*/true).size());
  MemoryNeed need;
  need.add("data set block", n * (kIdBytes + 8 + 16 + 8) +
                                 pairs * (16 + 4 * static_cast<long double>(ds.n_types())) +
                                 events * 21)
      // RawRows: interactions (item, weight) and the n x d dense statistics in double.
      .add("raw rows", pairs * 12 + n * 8 + n * d * 8)
      // ProfileBlock: ids, interactions (index, value), dense raw and standardised in float.
      .add("profile rows", n * (kIdBytes + 8) + pairs * 8 + n * d * 8);
  return need;
}

void check_profile_memory(const Dataset& ds, std::int64_t n_categories, const Comm& comm) {
  check_memory(comm, "profile", profile_memory(ds, n_categories),
               "use more ranks (the users' rows are split over the ranks), or raise "
               "--max-memory-per-rank");
}

MemoryNeed project_memory(const Profiles& prof, const ProjectParams& p) {
  const ProfileBlock& b = prof.rows;
  const long double n = ld(b.n_local());
  const long double D = ld(prof.model.n_items()) + ld(prof.model.n_dense());
  const bool dbl = p.precision == "double";
  const long double elem = dbl ? 8 : 4, simd = 64 / elem;
  const long double want = static_cast<long double>(std::max<std::int64_t>(p.dims, 1)) +
                           static_cast<long double>(std::max<std::int64_t>(p.oversampling, 0));
  const long double k = std::min(D, std::ceil(want / simd) * simd);
  MemoryNeed need;
  need.add("profile rows", n * (kIdBytes + 8) + static_cast<long double>(b.indices.size()) * 8 +
                               static_cast<long double>(b.dense_values.size()) * 4)
      // Y (n x k) and the next product, in the scalar of --precision.
      .add("range-finder blocks (users x k)", 2 * n * k, static_cast<std::size_t>(elem))
      // The test matrix, X^T Y and its orthonormal basis (D x k), the components (D x dims).
      .add("feature blocks (features x k)", 4 * D * k, sizeof(double))
      .add("projected rows", n * want, sizeof(float));
  return need;
}

void check_project_memory(const Profiles& prof, const ProjectParams& p, const Comm& comm) {
  check_memory(comm, "project", project_memory(prof, p),
               "use more ranks (the users' rows are split over the ranks), fewer --dims or "
               "--oversampling, or raise --max-memory-per-rank");
}

MemoryNeed cluster_memory(std::int64_t n_local, std::int64_t dims, const KMeansParams& p) {
  const long double n = ld(n_local), h = ld(dims);
  // DBSCAN runs without a k.
  const auto ks = p.k.empty() ? std::vector<std::int64_t>{1} : p.k_values();
  const long double k = ks.empty() ? 1 : ld(*std::max_element(ks.begin(), ks.end()));
  const long double threads = std::max(1, p.resolved_threads());
  MemoryNeed need;
  // The rows as read, the working block, and a normalised or view copy (float).
  need.add("projection block (users x dims, 3 copies)", 3 * n * h, sizeof(float))
      .add("user ids", n * kIdBytes)
      // Labels (current and best), distance, Hamerly's bounds and norms.
      .add("per-user labels, distances and bounds",
           n * (8 + 4 + 24) + n * 4 * static_cast<long double>(ks.size()))
      // Centroids in double and float, per-thread partial sums (k x (h + 1)).
      .add("centroids", k * (h + 1) * (threads + 3), sizeof(double));
  // Tied segments (--shape tied, or auto on the value view): the whitened rows.
  if (p.shape != "spherical") need.add("whitened rows (users x dims)", n * h, sizeof(float));
  return need;
}

void check_cluster_memory(std::int64_t n_local, std::int64_t dims, const KMeansParams& p,
                          const Comm& comm) {
  check_memory(comm, "cluster", cluster_memory(n_local, dims, p),
               "use more ranks (the users' rows are split over the ranks), a smaller k or "
               "fewer --threads, or raise --max-memory-per-rank");
}

}  // namespace segrec
