// Small JSON text helpers for the reports (no parsing: segrec only writes JSON).
#pragma once

#include <string>

namespace segrec::json {

/// A JSON string literal, escaped.
std::string str(const std::string& s);
/// A JSON number with 10 significant digits; null when not finite.
std::string num(double v);

}  // namespace segrec::json
