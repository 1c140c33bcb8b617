#include "segrec/core/memory_budget.hpp"

#include <unistd.h>

#include <climits>

#include "segrec/core/comm.hpp"
#include "segrec/core/error.hpp"
#include "segrec/core/progress.hpp"

namespace segrec {

namespace {

std::int64_t g_memory_per_rank = [] {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::int64_t>(pages) * page : INT64_MAX;
}();

std::string human(long double bytes) { return progress::format_bytes(static_cast<double>(bytes)); }

}  // namespace

void set_memory_per_rank(std::int64_t bytes) { g_memory_per_rank = bytes > 0 ? bytes : INT64_MAX; }
std::int64_t memory_per_rank() { return g_memory_per_rank; }

MemoryNeed& MemoryNeed::add(const std::string& what, long double count, std::size_t elem_bytes) {
  const long double b = count > 0 ? count * static_cast<long double>(elem_bytes) : 0;
  items_.emplace_back(what, b);
  total_ += b;
  return *this;
}

std::string MemoryNeed::detail() const {
  std::string out;
  for (const auto& [what, b] : items_) {
    if (what.empty() || b <= 0 || b < total_ / 100) continue;
    if (!out.empty()) out += ", ";
    out += what + " " + human(b);
  }
  return out;
}

void check_memory(const Comm& comm, const std::string& stage, const MemoryNeed& need,
                  const std::string& hint) {
  std::string err;
  if (need.bytes() > static_cast<long double>(g_memory_per_rank)) {
    const std::string detail = need.detail();
    err = stage + ": needs " + human(need.bytes()) + " per rank" +
          (detail.empty() ? "" : " (" + detail + ")") + ", over the " +
          human(static_cast<long double>(g_memory_per_rank)) +
          " allowed by --max-memory-per-rank; " + hint;
  }
  comm.check_all(err, kExitUsage);
}

void check_memory(const Comm& comm, const std::string& stage, long double bytes,
                  const std::string& hint) {
  check_memory(comm, stage, MemoryNeed().add("", bytes), hint);
}

}  // namespace segrec
