// Shared pieces of every stage's parameter struct: the checks that turn a bad
// value into a one-line UsageError naming the option and the value.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "segrec/core/error.hpp"

namespace segrec {

/// Throws UsageError "invalid value 'V' for --OPTION: RULE" unless ok.
template <class T>
void require(bool ok, const std::string& option, const T& value, const std::string& rule) {
  if (ok) return;
  std::ostringstream os;
  os << "invalid value '" << value << "' for --" << option << ": " << rule;
  throw UsageError(os.str());
}

/// Throws UsageError "--A and --B cannot be used together" when both are set.
void require_not_both(bool a, const std::string& option_a, bool b, const std::string& option_b);

/// Splits "a,b,c" (spaces trimmed, empty parts dropped).
std::vector<std::string> split_list(const std::string& s, char sep = ',');

/// Parses "NAME=NUMBER" (as in --event-weight view=1); throws UsageError naming `option`.
std::pair<std::string, double> parse_assignment(const std::string& s, const std::string& option);

/// Parses a byte count: "1000000", "512M", "8G", "1.5T" (powers of 1024; K, M, G, T, with or
/// without a trailing "B" or "iB"). Throws UsageError naming `option` unless it is positive.
std::int64_t parse_bytes(const std::string& text, const std::string& option);

/// One "key = value" line of an INI file.
struct IniEntry {
  std::string key, value;
  int line;
};

/// Reads an INI file. Section headers are accepted and ignored (keys are the
/// long option names), '#' and ';' start comments. Throws UsageError naming
/// file:line on a malformed line.
std::vector<IniEntry> read_ini(const std::string& path);

}  // namespace segrec
