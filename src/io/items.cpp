// Item attribute files: csv (with a header and column aliases) and MovieLens's u.item.
#include "segrec/io/items.hpp"

#include <array>
#include <cmath>
#include <fstream>
#include <iterator>
#include <limits>
#include <string_view>
#include <unordered_set>

#include "segrec/core/error.hpp"
#include "segrec/core/params.hpp"
#include "segrec/io/parse.hpp"

namespace segrec {
namespace {

enum Col { kId, kName, kCategory, kPrice, kBrand, kCols };

// Aliases per column, the earlier alias winning.
const std::array<std::vector<std::string_view>, kCols> kAliases = {{
    {"item_id", "item", "itemid", "movie_id", "movieid", "id"},
    {"name", "title"},
    {"category", "genre"},
    {"price"},
    {"brand"},
}};

// u.item's genres, in the order of its flags (u.genre).
constexpr std::array<std::string_view, 19> kGenres = {
    "unknown",     "Action", "Adventure", "Animation", "Children's", "Comedy",  "Crime",
    "Documentary", "Drama",  "Fantasy",   "Film-Noir", "Horror",     "Musical", "Mystery",
    "Romance",     "Sci-Fi", "Thriller",  "War",       "Western"};
constexpr std::size_t kMovieLensFields = 5 + kGenres.size();

[[noreturn]] void fail(const std::string& path, std::int64_t line, const std::string& what) {
  throw DataError("'" + path + "' line " + std::to_string(line) + ": " + what, true);
}

std::string trimmed(std::string_view s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

std::string quote(std::string_view s) {
  std::string q(1, '\'');
  q.append(s.substr(0, 40));
  q.append(s.size() > 40 ? "...'" : "'");
  return q;
}

// Calls f(line number, stripped line) for every non-empty line.
template <class F>
void for_lines(const std::string& text, F&& f) {
  std::size_t at = 0;
  std::int64_t no = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    ++no;
    const std::string_view line =
        parse::strip_line(std::string_view(text).substr(at, end - at), no == 1);
    if (!line.empty()) f(no, line);
    at = end + 1;
  }
}

void add_id(ItemAttributes& a, std::unordered_set<std::string>& seen, std::string id,
            const std::string& path, std::int64_t line) {
  if (id.empty()) fail(path, line, "empty item id");
  if (!seen.insert(id).second) fail(path, line, "item id " + quote(id) + " given twice");
  a.ids.push_back(std::move(id));
}

ItemAttributes parse_csv(const std::string& text, const std::string& path) {
  ItemAttributes a;
  std::unordered_set<std::string> seen;
  std::string delim, scratch;
  std::vector<std::string_view> fields;
  std::array<int, kCols> col;
  col.fill(-1);
  std::size_t n_fields = 0;
  for_lines(text, [&](std::int64_t no, std::string_view line) {
    if (!parse::valid_utf8(line))
      fail(path, no, "not UTF-8 (use --item-info-format movielens for latin-1 u.item)");
    if (delim.empty()) {  // the header
      delim = parse::detect_delimiter(line);
      if (!parse::split(line, delim, fields, scratch)) fail(path, no, "bad quoting in the header");
      n_fields = fields.size();
      for (int c = 0; c < kCols; ++c)
        for (std::string_view alias : kAliases[c]) {
          for (std::size_t f = 0; f < fields.size() && col[c] < 0; ++f)
            if (parse::lower(trimmed(fields[f])) == alias) col[c] = static_cast<int>(f);
          if (col[c] >= 0) break;
        }
      if (col[kId] < 0)
        fail(path, no,
             "no item id column in the header (item_id, item, itemid, movie_id, movieid or id)");
      return;
    }
    if (!parse::split(line, delim, fields, scratch)) fail(path, no, "bad quoting");
    if (fields.size() != n_fields)
      fail(path, no,
           std::to_string(fields.size()) + " fields, the header has " + std::to_string(n_fields));
    const auto get = [&](Col c) { return col[c] < 0 ? std::string() : trimmed(fields[col[c]]); };
    add_id(a, seen, get(kId), path, no);
    a.names.push_back(get(kName));
    a.categories.push_back(get(kCategory));
    a.brands.push_back(get(kBrand));
    const std::string price = get(kPrice);
    double v = std::numeric_limits<double>::quiet_NaN();
    if (!price.empty() && (!parse::parse_number(price, v) || v < 0))
      fail(path, no, "price " + quote(price) + " is not a non-negative number");
    a.prices.push_back(v);
  });
  if (delim.empty()) throw DataError("'" + path + "' is empty (want a header line)", true);
  return a;
}

ItemAttributes parse_movielens(const std::string& text, const std::string& path) {
  ItemAttributes a;
  std::unordered_set<std::string> seen;
  std::vector<std::string_view> fields;
  for_lines(text, [&](std::int64_t no, std::string_view line) {
    fields.clear();
    std::size_t at = 0;
    while (true) {
      const std::size_t bar = line.find('|', at);
      fields.push_back(line.substr(at, bar == std::string_view::npos ? bar : bar - at));
      if (bar == std::string_view::npos) break;
      at = bar + 1;
    }
    if (fields.size() != kMovieLensFields)
      fail(path, no,
           std::to_string(fields.size()) + " '|'-separated fields, want " +
               std::to_string(kMovieLensFields) + " (id|title|date|video date|url|19 genre flags)");
    add_id(a, seen, trimmed(fields[0]), path, no);
    a.names.push_back(latin1_to_utf8(trimmed(fields[1])));
    std::string category;
    for (std::size_t g = 0; g < kGenres.size(); ++g) {
      const std::string_view flag = fields[5 + g];
      if (flag != "0" && flag != "1")
        fail(path, no,
             "genre flag " + std::to_string(g + 1) + " is " + quote(flag) + ", want 0 or 1");
      if (flag == "1" && category.empty()) category = kGenres[g];
    }
    a.categories.push_back(std::move(category));
    a.brands.emplace_back();
    a.prices.push_back(std::numeric_limits<double>::quiet_NaN());
  });
  if (a.ids.empty()) throw DataError("'" + path + "' holds no items", true);
  return a;
}

}  // namespace

ItemsFormat parse_items_format(const std::string& text) {
  return parse_mode<ItemsFormat>(
      text, {{"csv", ItemsFormat::kCsv}, {"movielens", ItemsFormat::kMovieLens}},
      "item-info-format", "use csv or movielens");
}

std::string latin1_to_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out += ch;
    } else {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

ItemAttributes parse_items(const std::string& text, ItemsFormat format, const std::string& path) {
  return format == ItemsFormat::kMovieLens ? parse_movielens(text, path) : parse_csv(text, path);
}

ItemAttributes read_items(const std::string& path, ItemsFormat format, const Comm& comm) {
  std::string text, err;
  if (comm.is_root()) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
      err = "cannot open the --item-info file '" + path + "'";
    else
      text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  comm.check_all(err, kExitData);
  comm.broadcast(text);
  return parse_items(text, format, path);
}

}  // namespace segrec
