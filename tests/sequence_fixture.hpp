// Synthetic event logs with planted order for the sequence model's tests: item i is
// followed by succ(i) = (7 i + 3) mod n_items (a fixed permutation) nine times in ten,
// else by a random item; users walk 4 to 23 steps from a random start, so longer walks
// revisit items and their bag of items says little about what comes next.
#pragma once

#include <cstdint>
#include <string>

#include "segrec/core/comm.hpp"
#include "segrec/core/random.hpp"
#include "segrec/ingest/dataset.hpp"

namespace segrec::testing_seq {

inline std::int32_t succ(std::int32_t i, std::int64_t n) {
  return static_cast<std::int32_t>((7 * static_cast<std::int64_t>(i) + 3) % n);
}

/// The whole log (one block); `salt` draws another set of users.
inline Dataset chain_log(std::int64_t n_users, std::int64_t n_items, std::uint64_t salt = 0) {
  Dataset d;
  d.n_users = n_users;
  for (std::int64_t i = 0; i < n_items; ++i) {
    std::string id = "i";  // (not "i" + ...: GCC 12 warns falsely on it)
    id += std::to_string(i);
    d.item_ids.push_back(id);
  }
  d.event_types = {"view", "buy"};
  d.log_ptr.push_back(0);
  for (std::int64_t u = 0; u < n_users; ++u) {
    std::string id = "u";
    id += std::to_string(u);
    id += 's';
    id += std::to_string(salt);
    d.user_ids.push_back(id);
    const auto h = [&](std::uint64_t j) {
      return rng::hash_keys(salt + 99, static_cast<std::uint64_t>(u), j);
    };
    const auto len = 4 + static_cast<std::int64_t>(h(0) % 20);
    auto item = static_cast<std::int32_t>(h(1) % static_cast<std::uint64_t>(n_items));
    for (std::int64_t t = 0; t < len; ++t) {
      d.log_item.push_back(item);
      d.log_type.push_back(static_cast<std::uint8_t>(t % 3 == 2));
      d.log_time.push_back(1000.0 * static_cast<double>(t));
      const bool noise = rng::unit_uniform(h(100 + static_cast<std::uint64_t>(t))) < 0.1;
      item = noise ? static_cast<std::int32_t>(h(1000 + static_cast<std::uint64_t>(t)) %
                                               static_cast<std::uint64_t>(n_items))
                   : succ(item, n_items);
    }
    d.log_ptr.push_back(static_cast<std::int64_t>(d.log_item.size()));
  }
  return d;
}

/// This rank's even block of a whole log.
inline Dataset block_of(const Dataset& g, const Comm& c) {
  const Block b = block_partition(g.n_users, c.size(), c.rank());
  Dataset d;
  d.n_users = g.n_users;
  d.user_begin = b.begin;
  d.item_ids = g.item_ids;
  d.event_types = g.event_types;
  d.user_ids.assign(g.user_ids.begin() + b.begin, g.user_ids.begin() + b.end);
  const auto lo = g.log_ptr[b.begin], hi = g.log_ptr[b.end];
  for (std::int64_t u = b.begin; u <= b.end; ++u) d.log_ptr.push_back(g.log_ptr[u] - lo);
  d.log_item.assign(g.log_item.begin() + lo, g.log_item.begin() + hi);
  d.log_type.assign(g.log_type.begin() + lo, g.log_type.begin() + hi);
  d.log_time.assign(g.log_time.begin() + lo, g.log_time.begin() + hi);
  return d;
}

}  // namespace segrec::testing_seq
