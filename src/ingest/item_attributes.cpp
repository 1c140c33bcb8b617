// Per-item attribute decisions. Each rank counts its (item, key) pairs, sends the counts to
// the item's owner (an even block of item indices per rank), the owner decides its items,
// and the decisions (n_items long) are gathered. Memory per rank: its own events' pairs
// plus the counts of its item block, never the whole log.
#include "item_attributes.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace segrec::ingest_items {
namespace {

/// Wire record: how many events of `item` carry `key`.
struct Count {
  std::int32_t item;
  std::uint32_t key;
  std::uint64_t n;
};
static_assert(sizeof(Count) == 16);

// Sorted, merged counts of the items of this rank's block, from every rank.
std::vector<Count> owner_counts(std::vector<ItemKey> local, std::int64_t n_items,
                                const Comm& comm) {
  // (item, key) packed into one integer sorts faster than the pairs.
  std::vector<std::uint64_t> packed(local.size());
  for (std::size_t i = 0; i < local.size(); ++i)
    packed[i] =
        static_cast<std::uint64_t>(static_cast<std::uint32_t>(local[i].item)) << 32 | local[i].key;
  std::vector<ItemKey>().swap(local);
  std::sort(packed.begin(), packed.end());
  std::vector<Count> send;
  for (std::size_t i = 0; i < packed.size();) {
    std::size_t j = i + 1;
    while (j < packed.size() && packed[j] == packed[i]) ++j;
    send.push_back({static_cast<std::int32_t>(packed[i] >> 32),
                    static_cast<std::uint32_t>(packed[i] & 0xffffffffu), j - i});
    i = j;
  }
  std::vector<std::uint64_t>().swap(packed);
  // Items ascend, and so do their owners' blocks: the records are grouped by owner.
  const int P = comm.size();
  std::vector<std::int64_t> counts(static_cast<std::size_t>(P), 0), recv_counts;
  int owner = 0;
  for (const auto& c : send) {
    while (c.item >= block_partition(n_items, P, owner).end) ++owner;
    ++counts[static_cast<std::size_t>(owner)];
  }
  std::vector<Count> recv = comm.alltoallv_flat(send, counts, recv_counts);
  std::vector<Count>().swap(send);
  std::sort(recv.begin(), recv.end(), [](const Count& a, const Count& b) {
    return a.item != b.item ? a.item < b.item : a.key < b.key;
  });
  std::size_t out = 0;
  for (std::size_t i = 0; i < recv.size(); ++i) {
    if (out > 0 && recv[out - 1].item == recv[i].item && recv[out - 1].key == recv[i].key)
      recv[out - 1].n += recv[i].n;
    else
      recv[out++] = recv[i];
  }
  recv.resize(out);
  return recv;
}

float as_float(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Calls decide(item, first, last) for each item of this rank's block holding counts,
// [first, last) its records (ascending key).
template <class F>
void for_each_item(const std::vector<Count>& c, F&& decide) {
  for (std::size_t b = 0; b < c.size();) {
    std::size_t e = b;
    while (e < c.size() && c[e].item == c[b].item) ++e;
    decide(c[b].item, b, e);
    b = e;
  }
}

}  // namespace

std::vector<double> median_price(std::vector<ItemKey> local, std::int64_t n_items,
                                 const Comm& comm) {
  const Block blk = block_partition(n_items, comm.size(), comm.rank());
  const std::vector<Count> c = owner_counts(std::move(local), n_items, comm);
  std::vector<double> mine(static_cast<std::size_t>(blk.size()),
                           std::numeric_limits<double>::quiet_NaN());
  for_each_item(c, [&](std::int32_t item, std::size_t b, std::size_t e) {
    std::uint64_t total = 0;
    for (std::size_t i = b; i < e; ++i) total += c[i].n;
    // The values at 0-based sorted positions lo and hi (equal for an odd count).
    const std::uint64_t hi = total / 2, lo = (total - 1) / 2;
    double v_lo = 0, v_hi = 0;
    std::uint64_t seen = 0;
    for (std::size_t i = b; i < e; ++i) {
      const std::uint64_t next = seen + c[i].n;
      if (lo >= seen && lo < next) v_lo = as_float(c[i].key);
      if (hi >= seen && hi < next) {
        v_hi = as_float(c[i].key);
        break;
      }
      seen = next;
    }
    mine[static_cast<std::size_t>(item - blk.begin)] = lo == hi ? v_lo : (v_lo + v_hi) / 2;
  });
  return comm.allgatherv(mine);
}

std::vector<std::int32_t> most_frequent(std::vector<ItemKey> local, std::int64_t n_items,
                                        const Comm& comm) {
  const Block blk = block_partition(n_items, comm.size(), comm.rank());
  const std::vector<Count> c = owner_counts(std::move(local), n_items, comm);
  std::vector<std::int32_t> mine(static_cast<std::size_t>(blk.size()), -1);
  for_each_item(c, [&](std::int32_t item, std::size_t b, std::size_t e) {
    // Keys ascend and max_element returns the first maximum: ties go to the smallest key.
    const auto best = std::max_element(c.begin() + static_cast<std::ptrdiff_t>(b),
                                       c.begin() + static_cast<std::ptrdiff_t>(e),
                                       [](const Count& x, const Count& y) { return x.n < y.n; });
    mine[static_cast<std::size_t>(item - blk.begin)] = static_cast<std::int32_t>(best->key);
  });
  return comm.allgatherv(mine);
}

}  // namespace segrec::ingest_items
