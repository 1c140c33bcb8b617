// Shared pieces of every stage's parameter struct: the checks that turn a bad
// value into a one-line UsageError naming the option and the value.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
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

/// A mode's spellings: {{"adam", Optimizer::kAdam}, {"sgd", Optimizer::kSgd}}.
template <class E>
using ModeNames = std::initializer_list<std::pair<std::string_view, E>>;

/// Parses a mode option (an `enum class`), once, in a params struct's validate(). Throws
/// UsageError "invalid value 'V' for --OPTION: RULE" unless `text` is one of `names`.
template <class E>
E parse_mode(const std::string& text, ModeNames<E> names, const std::string& option,
             const std::string& rule) {
  for (const auto& [name, mode] : names)
    if (text == name) return mode;
  require(false, option, text, rule);
  return names.begin()->second;
}

/// The spelling of a mode (the inverse of parse_mode).
template <class E>
std::string_view mode_name(E mode, ModeNames<E> names) {
  for (const auto& [name, m] : names)
    if (m == mode) return name;
  return "?";
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
