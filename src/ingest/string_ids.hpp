// Ingest's string ids: interning, the wire format of id lists, their global order and the
// owner rank of a user hash. Private to src/ingest/.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "segrec/core/random.hpp"

namespace segrec::ingest_ids {

using rng::string_hash64;

/// Dense ids for distinct strings: open addressing over stable arena storage.
class Interner {
 public:
  std::uint32_t intern(std::string_view s) { return intern(s, string_hash64(s)); }
  std::uint32_t intern(std::string_view s, std::uint64_t h) {
    if ((strs_.size() + 1) * 2 > table_.size()) grow();
    std::size_t mask = table_.size() - 1, i = h & mask;
    for (;; i = (i + 1) & mask) {
      const std::uint32_t id = table_[i];
      if (id == kEmpty) break;
      if (hashes_[id] == h && strs_[id] == s) return id;
    }
    const auto id = static_cast<std::uint32_t>(strs_.size());
    table_[i] = id;
    strs_.push_back(store(s));
    hashes_.push_back(h);
    return id;
  }
  /// Id of s, or kEmpty.
  std::uint32_t find(std::string_view s) const {
    if (table_.empty()) return kEmpty;
    const std::uint64_t h = string_hash64(s);
    const std::size_t mask = table_.size() - 1;
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      const std::uint32_t id = table_[i];
      if (id == kEmpty) return kEmpty;
      if (hashes_[id] == h && strs_[id] == s) return id;
    }
  }
  std::size_t size() const { return strs_.size(); }
  std::string_view str(std::uint32_t id) const { return strs_[id]; }
  std::uint64_t hash(std::uint32_t id) const { return hashes_[id]; }
  void clear() { *this = Interner(); }

  static constexpr std::uint32_t kEmpty = 0xffffffffu;

 private:
  std::string_view store(std::string_view s) {
    if (s.size() > block_cap_ - block_used_) {
      block_cap_ = std::max<std::size_t>(1 << 20, s.size());
      blocks_.push_back(std::make_unique<char[]>(block_cap_));
      block_used_ = 0;
    }
    char* p = blocks_.back().get() + block_used_;
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    block_used_ += s.size();
    return {p, s.size()};
  }
  void grow() {
    std::vector<std::uint32_t> t(std::max<std::size_t>(64, table_.size() * 2), kEmpty);
    const std::size_t mask = t.size() - 1;
    for (std::uint32_t id = 0; id < strs_.size(); ++id) {
      std::size_t i = hashes_[id] & mask;
      while (t[i] != kEmpty) i = (i + 1) & mask;
      t[i] = id;
    }
    table_.swap(t);
  }
  std::vector<std::uint32_t> table_;
  std::vector<std::string_view> strs_;
  std::vector<std::uint64_t> hashes_;
  std::vector<std::unique_ptr<char[]>> blocks_;
  std::size_t block_used_ = 0, block_cap_ = 0;
};

/// Strings as [u32 length][bytes]... for the wire.
inline void pack(std::vector<char>& buf, std::string_view s) {
  const auto n = static_cast<std::uint32_t>(s.size());
  const std::size_t at = buf.size();
  buf.resize(at + 4 + n);
  std::memcpy(buf.data() + at, &n, 4);
  if (n) std::memcpy(buf.data() + at + 4, s.data(), n);
}

template <class F>
inline void unpack(const char* p, std::size_t bytes, F&& f) {
  std::size_t off = 0;
  while (off < bytes) {
    std::uint32_t n;
    std::memcpy(&n, p + off, 4);
    f(std::string_view(p + off + 4, n));
    off += 4 + n;
  }
}

/// Sorts ids numerically when all are canonical non-negative integers, else by bytes.
inline void sort_ids(std::vector<std::string>& ids) {
  const bool numeric = std::all_of(ids.begin(), ids.end(), [](const std::string& s) {
    return !s.empty() && s.size() <= 18 && (s == "0" || s[0] != '0') &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  });
  if (numeric)
    std::sort(ids.begin(), ids.end(), [](const std::string& a, const std::string& b) {
      return a.size() != b.size() ? a.size() < b.size() : a < b;
    });
  else
    std::sort(ids.begin(), ids.end());
}

/// Owner rank of a user hash: contiguous hash ranges, so concatenating the
/// ranks' users sorted by (hash, id) gives one global order for any rank count.
inline int owner_of(std::uint64_t h, int parts) {
  __extension__ using u128 = unsigned __int128;
  return static_cast<int>((static_cast<u128>(h) * static_cast<unsigned>(parts)) >> 64);
}

}  // namespace segrec::ingest_ids
