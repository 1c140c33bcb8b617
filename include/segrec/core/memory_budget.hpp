// The memory one rank may use (--max-memory-per-rank) and the check every stage makes
// before its large allocations: one estimate per stage, refused on all ranks at once.
//
//   MemoryNeed need;
//   need.add("parameters", P, sizeof(float)).add("Adam moments", 2 * owned, sizeof(float));
//   check_memory(comm, "train", need, "use more ranks or a smaller --hidden");
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace segrec {

class Comm;

/// Bytes one rank may use (--max-memory-per-rank; <= 0 = no limit). Default: the
/// machine's physical memory.
void set_memory_per_rank(std::int64_t bytes);
std::int64_t memory_per_rank();

/// A stage's estimate of the bytes one rank needs at its peak, item by item. Products are
/// taken in long double, so an absurd shape cannot overflow.
class MemoryNeed {
 public:
  /// Adds count x elem_bytes bytes under `what` (e.g. "Adam moments"); count < 0 counts 0.
  MemoryNeed& add(const std::string& what, long double count, std::size_t elem_bytes = 1);
  long double bytes() const { return total_; }
  /// "parameters 1.2 GiB, Adam moments 2.4 GiB" (the items over 1% of the total).
  std::string detail() const;

 private:
  std::vector<std::pair<std::string, long double>> items_;
  long double total_ = 0;
};

/// Collective. Refuses the stage on every rank when any rank's need exceeds
/// memory_per_rank(): throws UsageError (exit 2) with the lowest such rank's line
///   "<stage>: needs 3.1 GiB per rank (parameters 1.0 GiB, ...), over the 2.0 GiB allowed
///    by --max-memory-per-rank; <hint>"
/// hint: what to change, e.g. "use more ranks or a smaller --hidden". Call it once per
/// stage, before the allocations it estimates.
void check_memory(const Comm& comm, const std::string& stage, const MemoryNeed& need,
                  const std::string& hint);
/// The same for a single figure.
void check_memory(const Comm& comm, const std::string& stage, long double bytes,
                  const std::string& hint);

}  // namespace segrec
