// Keyed pseudonyms for user ids (`segrec ingest --pseudonymize`): HMAC-SHA256 of the id under a
// secret key, from OpenSSL's libcrypto. Without the key nobody can recompute a pseudonym from a
// known id (unlike a plain hash, which falls to a dictionary of likely ids); with it, the same id
// always gets the same pseudonym, so runs and files can still be joined.
#pragma once

#include <string>
#include <string_view>

namespace segrec {

class Pseudonymizer {
 public:
  /// The key: at least 16 bytes (UsageError otherwise).
  explicit Pseudonymizer(std::string key);
  /// 32 lower-case hex digits: the first 128 bits of HMAC-SHA256(key, id).
  std::string operator()(std::string_view id) const;

 private:
  std::string key_;
};

/// Full HMAC-SHA256(key, data) as 64 hex digits (for tests against RFC 4231).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

/// The key named by an --pseudonymize value: "env:NAME" (the environment variable), "file:PATH"
/// (the file's first line), else the value itself. Throws UsageError when it is missing.
std::string resolve_secret(const std::string& value, const std::string& option);

}  // namespace segrec
