// Ingest's per-item attributes: one decision per item (median unit price, most frequent name
// or category) from the kept events of all ranks, exact and identical at any rank count.
// Private to src/ingest/.
#pragma once

#include <cstdint>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec::ingest_items {

/// One event's attribute: item index and a key (a dictionary index, or the bits of a
/// non-negative float price, which order like the prices).
struct ItemKey {
  std::int32_t item;
  std::uint32_t key;
};

/// Collective. Per item of [0, n_items): the median of the prices (keys read as float bits)
/// of its events on all ranks, the mean of the two middle ones for an even count, computed
/// in double; NaN for an item without prices. `local` (this rank's events) is consumed.
std::vector<double> median_price(std::vector<ItemKey> local, std::int64_t n_items,
                                 const Comm& comm);

/// Collective. Per item: the key held by most of its events on all ranks (ties: the
/// smallest key), -1 for an item without keys. `local` is consumed.
std::vector<std::int32_t> most_frequent(std::vector<ItemKey> local, std::int64_t n_items,
                                        const Comm& comm);

}  // namespace segrec::ingest_items
