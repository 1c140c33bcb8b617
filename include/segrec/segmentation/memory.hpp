// The segmentation stages' memory estimates per rank, checked against
// --max-memory-per-rank (core/memory_budget.hpp) before their large allocations.
#pragma once

#include <cstdint>

#include "segrec/core/comm.hpp"
#include "segrec/core/memory_budget.hpp"
#include "segrec/ingest/dataset.hpp"
#include "segrec/segmentation/kmeans/params.hpp"
#include "segrec/segmentation/profile.hpp"
#include "segrec/segmentation/project.hpp"

namespace segrec {

/// profile: the data set block read (with its event log) plus the raw and finished rows
/// (interactions and n_local x d dense statistics, d from the event types and categories).
MemoryNeed profile_memory(const Dataset& ds, std::int64_t n_categories);
void check_profile_memory(const Dataset& ds, std::int64_t n_categories, const Comm& comm);

/// project (PCA): the profile rows read plus the n_local x k blocks of the range finder
/// (k = dims + oversampling, whole SIMD vectors), the D x k products and the output rows.
MemoryNeed project_memory(const Profiles& prof, const ProjectParams& p);
void check_project_memory(const Profiles& prof, const ProjectParams& p, const Comm& comm);

/// cluster (K-means): this rank's n_local x dims block of /H (read and working copies),
/// per-user labels, distances and bounds, and the centroids (largest k) per thread.
MemoryNeed cluster_memory(std::int64_t n_local, std::int64_t dims, const KMeansParams& p);
void check_cluster_memory(std::int64_t n_local, std::int64_t dims, const KMeansParams& p,
                          const Comm& comm);

}  // namespace segrec
