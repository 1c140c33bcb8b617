#pragma once
// Keyed random numbers: every hash segrec draws randomness or identities from.
//
// Randomness is keyed by the seed and global user or item indices, never by the rank. Each
// variant below is kept bit-exact under its own name: files, splits, initial centroids and
// models written by earlier runs depend on the exact values.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace segrec::rng {

inline constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15ULL;  // 2^64 / golden ratio
inline constexpr std::uint64_t kFnvOffset = 1469598103934665603ULL;
inline constexpr std::uint64_t kFnvPrime = 1099511628211ULL;

/// Stafford's Mix13: SplitMix64's finaliser without its increment.
constexpr std::uint64_t mix13(std::uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// SplitMix64's output for state x: the golden-ratio step, then Mix13.
constexpr std::uint64_t splitmix64(std::uint64_t x) { return mix13(x + kGolden); }

/// One step of a SplitMix64 stream: advances `state` and returns its next output.
constexpr std::uint64_t splitmix64_next(std::uint64_t& state) {
  state += kGolden;
  return mix13(state);
}

/// MurmurHash3's 64-bit finaliser (fmix64).
constexpr std::uint64_t fmix64(std::uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

/// Key of a pair: splitmix64(splitmix64(a) ^ b); the triple nests the pair's key.
constexpr std::uint64_t hash_keys(std::uint64_t a, std::uint64_t b) {
  return splitmix64(splitmix64(a) ^ b);
}
constexpr std::uint64_t hash_keys(std::uint64_t a, std::uint64_t b, std::uint64_t c) {
  return hash_keys(hash_keys(a, b), c);
}

/// Key of up to four words folded left: splitmix64(...splitmix64(splitmix64(a) ^ b) ^ c) ^ d).
constexpr std::uint64_t fold_keys(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0,
                                  std::uint64_t d = 0) {
  return splitmix64(splitmix64(splitmix64(splitmix64(a) ^ b) ^ c) ^ d);
}

/// Uniform in [0, 1) from the top 53 bits of a hash.
constexpr double unit_uniform(std::uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

/// FNV-1a, 64 bits, over bytes; `h` continues an earlier hash.
inline std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * kFnvPrime;
  return h;
}
inline std::uint64_t fnv1a(std::string_view s, std::uint64_t h = kFnvOffset) {
  return fnv1a(s.data(), s.size(), h);
}

/// Stable 64-bit hash of a string, eight bytes at a time through fmix64 (ingest's user and
/// item ids: the same on every platform and run).
inline std::uint64_t string_hash64(std::string_view s) {
  std::uint64_t h = kGolden ^ (s.size() * 0xbf58476d1ce4e5b9ULL);
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ fmix64(w)) * kGolden;
    h = (h << 29) | (h >> 35);
  }
  std::uint64_t t = 0;
  std::memcpy(&t, s.data() + i, s.size() - i);
  return fmix64(h ^ fmix64(t + s.size()));
}

}  // namespace segrec::rng
