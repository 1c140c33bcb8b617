#include "segrec/serving/memory.hpp"

#include <algorithm>

namespace segrec {

MemoryNeed score_memory(const Model& m, std::int64_t n_local, std::int64_t block_users,
                        long double bytes_per_user) {
  const auto rows = static_cast<long double>(
      std::clamp<std::int64_t>(block_users, 1, std::max<std::int64_t>(n_local, 1)));
  const auto items = static_cast<long double>(m.shape.n_out);
  long double hidden = static_cast<long double>(m.shape.dense_in);
  for (const std::int64_t h : m.shape.hidden) hidden += static_cast<long double>(h);
  MemoryNeed need;
  need.add("model", static_cast<long double>(m.params.size() + m.heads.size()), sizeof(float))
      // Logits and their ranking (score, index) per user of the block, and the activations.
      .add("score block (block users x items)", rows * items * 3, sizeof(float))
      .add("block activations", rows * hidden * 2, sizeof(float))
      .add("kept per user", static_cast<long double>(n_local) * bytes_per_user);
  return need;
}

void check_score_memory(const std::string& stage, const Model& m, std::int64_t n_local,
                        std::int64_t block_users, long double bytes_per_user, const Comm& comm) {
  check_memory(comm, stage, score_memory(m, n_local, block_users, bytes_per_user),
               "use a smaller --block-users or more ranks, or raise --max-memory-per-rank");
}

}  // namespace segrec
