#include "segrec/ingest/pseudonym.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdlib>
#include <fstream>

#include "segrec/core/error.hpp"

namespace segrec {

namespace {

std::string hmac_hex(std::string_view key, std::string_view data, std::size_t bytes) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len))
    throw Error("HMAC-SHA256 failed (OpenSSL)", kExitOther);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * bytes);
  for (std::size_t i = 0; i < bytes && i < len; ++i) {
    out += kHex[mac[i] >> 4];
    out += kHex[mac[i] & 15];
  }
  return out;
}

}  // namespace

Pseudonymizer::Pseudonymizer(std::string key) : key_(std::move(key)) {
  if (key_.size() < 16)
    throw UsageError("invalid key for --pseudonymize: " + std::to_string(key_.size()) +
                     " bytes; use at least 16 random bytes (e.g. env:NAME or file:PATH holding "
                     "`openssl rand -hex 32`)");
}

std::string Pseudonymizer::operator()(std::string_view id) const { return hmac_hex(key_, id, 16); }

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  return hmac_hex(key, data, 32);
}

std::string resolve_secret(const std::string& value, const std::string& option) {
  if (value.rfind("env:", 0) == 0) {
    const char* v = std::getenv(value.substr(4).c_str());
    if (!v || !*v)
      throw UsageError("--" + option + " " + value + ": environment variable '" + value.substr(4) +
                       "' is not set");
    return v;
  }
  if (value.rfind("file:", 0) == 0) {
    std::ifstream in(value.substr(5));
    std::string line;
    if (!in || !std::getline(in, line))
      throw UsageError("--" + option + " " + value + ": cannot read '" + value.substr(5) + "'");
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    return line;
  }
  return value;
}

}  // namespace segrec
