#include "segrec/core/params.hpp"

#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>

namespace segrec {

namespace {
std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}
}  // namespace

void require_not_both(bool a, const std::string& option_a, bool b, const std::string& option_b) {
  if (a && b) throw UsageError("--" + option_a + " and --" + option_b + " cannot be used together");
}

std::vector<std::string> split_list(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    auto next = s.find(sep, pos);
    if (next == std::string::npos) next = s.size();
    auto part = trim(s.substr(pos, next - pos));
    if (!part.empty()) out.push_back(part);
    pos = next + 1;
  }
  return out;
}

std::pair<std::string, double> parse_assignment(const std::string& s, const std::string& option) {
  const auto eq = s.find('=');
  const std::string name = eq == std::string::npos ? "" : trim(s.substr(0, eq));
  const std::string num = eq == std::string::npos ? "" : trim(s.substr(eq + 1));
  double v = 0;
  const auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
  require(!name.empty() && ec == std::errc() && p == num.data() + num.size(), option, s,
          "expected NAME=NUMBER");
  return {name, v};
}

std::int64_t parse_bytes(const std::string& text, const std::string& option) {
  const std::string t = trim(text);
  std::size_t used = 0;
  double v = -1;
  try {
    v = std::stod(t, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = t.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
  double scale = 0;
  if (unit.empty() || unit == "B")
    scale = 1;
  else if (unit == "K")
    scale = 1024.0;
  else if (unit == "M")
    scale = 1024.0 * 1024;
  else if (unit == "G")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "T")
    scale = 1024.0 * 1024 * 1024 * 1024;
  const double bytes = v * scale;
  require(used > 0 && scale > 0 && bytes >= 1 && bytes < 9.2e18, option, text,
          "give a positive size such as 512M, 8G or 1000000");
  return static_cast<std::int64_t>(bytes);
}

std::vector<IniEntry> read_ini(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw UsageError("cannot read config file '" + path + "': is a directory");
  std::ifstream in(path);
  if (!in) throw UsageError("cannot read config file '" + path + "'");
  std::string line;
  std::vector<IniEntry> out;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      if (t.back() != ']')
        throw UsageError(path + ":" + std::to_string(n) + ": malformed section header '" + t + "'");
      continue;
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos || trim(t.substr(0, eq)).empty())
      throw UsageError(path + ":" + std::to_string(n) + ": expected 'key = value', got '" + t +
                       "'");
    std::string value = trim(t.substr(eq + 1));
    // Trailing comments after a value: "k = 4   # comment".
    const auto hash = value.find(" #");
    if (hash != std::string::npos) value = trim(value.substr(0, hash));
    out.push_back({trim(t.substr(0, eq)), value, n});
  }
  return out;
}

}  // namespace segrec
