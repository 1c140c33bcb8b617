// Item attributes: a file of item ids with a display name, a category, a price and a
// brand (any of them), used to name items in explanations.
//
// Formats:
//  - csv: a delimited text file with a header (delimiter detected as for event logs:
//    ",", "\t", ";", "|"; RFC-4180 quotes). Columns, matched case-insensitively:
//      id: item_id, item, itemid, movie_id, movieid, id     name: name, title
//      category: category, genre                            price: price
//      brand: brand
//    The id column is required; other columns are ignored.
//  - movielens: MovieLens 100K's u.item, '|' separated, no header, latin-1:
//    id|title|release date|video release date|IMDb URL|19 genre flags (0/1, in u.genre's
//    order); name = title (converted to UTF-8), category = the first genre flagged.
// Strict: a row with the wrong number of fields, an empty or repeated id, a price that is
// not a number or a genre flag other than 0/1 is a DataError naming the file and line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec {

enum class ItemsFormat { kCsv, kMovieLens };

/// "csv" | "movielens"; throws UsageError naming --item-info-format otherwise.
ItemsFormat parse_items_format(const std::string& text);

/// Attributes per item, in file order; absent text fields are "", absent prices NaN.
struct ItemAttributes {
  std::vector<std::string> ids, names, categories, brands;
  std::vector<double> prices;
  std::int64_t size() const { return static_cast<std::int64_t>(ids.size()); }
};

/// Local. Parses the text of an item file; `path` names it in errors.
ItemAttributes parse_items(const std::string& text, ItemsFormat format, const std::string& path);

/// Collective. Rank 0 reads the file, every rank parses it (so every rank raises the
/// same error).
ItemAttributes read_items(const std::string& path, ItemsFormat format, const Comm& comm);

/// Latin-1 bytes to UTF-8.
std::string latin1_to_utf8(const std::string& s);

}  // namespace segrec
