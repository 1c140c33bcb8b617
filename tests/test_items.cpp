// The item attribute reader: column aliases, delimiters and quotes, MovieLens u.item
// (latin-1 to UTF-8, first genre), and a table of bad files, each error naming the
// file and the line.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "segrec/core/error.hpp"
#include "segrec/io/items.hpp"

namespace segrec {
namespace {

TEST(Items, CsvAliasesAndOptionalColumns) {
  const auto a = parse_items(
      "movie_id,Title,genre,price,brand,extra\n"
      "1,Toy Story (1995),Animation,9.5,Pixar,x\n"
      "\n"
      "2,\"Heat, the film\",Crime,,,y\r\n",
      ItemsFormat::kCsv, "f.csv");
  ASSERT_EQ(a.size(), 2);
  EXPECT_EQ(a.ids[0], "1");
  EXPECT_EQ(a.names[0], "Toy Story (1995)");
  EXPECT_EQ(a.categories[0], "Animation");
  EXPECT_EQ(a.brands[0], "Pixar");
  EXPECT_DOUBLE_EQ(a.prices[0], 9.5);
  EXPECT_EQ(a.names[1], "Heat, the film");
  EXPECT_TRUE(std::isnan(a.prices[1]));
  EXPECT_EQ(a.brands[1], "");
}

TEST(Items, TsvWithIdOnlyAndNameBeforeTitle) {
  const auto a = parse_items("title\tname\titem_id\nA\tB\tx1\n", ItemsFormat::kCsv, "f.tsv");
  ASSERT_EQ(a.size(), 1);
  EXPECT_EQ(a.ids[0], "x1");
  EXPECT_EQ(a.names[0], "B");  // "name" is the first alias
  const auto b = parse_items("id\nq\n", ItemsFormat::kCsv, "f.csv");
  EXPECT_EQ(b.names[0], "");
}

TEST(Items, MovieLensLatin1AndFirstGenre) {
  // 'Cin\xe9' is latin-1; flags: Comedy (5) and Drama (8).
  std::string flags = "0|0|0|0|0|1|0|0|1|0|0|0|0|0|0|0|0|0|0";
  const auto a = parse_items("7|Cin\xe9ma Paradiso (1988)|01-Jan-1988||http://x|" + flags +
                                 "\n267|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n",
                             ItemsFormat::kMovieLens, "u.item");
  ASSERT_EQ(a.size(), 2);
  EXPECT_EQ(a.ids[0], "7");
  EXPECT_EQ(a.names[0], "Cin\xc3\xa9ma Paradiso (1988)");
  EXPECT_EQ(a.categories[0], "Comedy");
  EXPECT_EQ(a.categories[1], "unknown");
  EXPECT_EQ(latin1_to_utf8("\xff"
                           "a"),
            "\xc3\xbf"
            "a");
}

TEST(Items, BadFilesNameFileAndLine) {
  const std::string g19 = "|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0";
  struct Bad {
    std::string text;
    ItemsFormat format;
    std::string want;  // in the message, after "'bad.txt' line N"
  };
  const std::vector<Bad> table = {
      {"name,genre\nA,B\n", ItemsFormat::kCsv, "line 1: no item id column"},
      {"id,name\n1,A\n2,B,C\n", ItemsFormat::kCsv, "line 3: 3 fields, the header has 2"},
      {"id,name\n1,A\n,B\n", ItemsFormat::kCsv, "line 3: empty item id"},
      {"id,name\n1,A\n1,B\n", ItemsFormat::kCsv, "line 3: item id '1' given twice"},
      {"id,price\n1,cheap\n", ItemsFormat::kCsv, "line 2: price 'cheap' is not a non-negative"},
      {"id,price\n1,-3\n", ItemsFormat::kCsv, "line 2: price '-3'"},
      {"id,name\n1,\"A\n", ItemsFormat::kCsv, "line 2: bad quoting"},
      {"id,name\n1,Cin\xe9\n", ItemsFormat::kCsv, "line 2: not UTF-8"},
      {"1|A|d||u" + g19 + "\n2|B|d||u|0|1\n", ItemsFormat::kMovieLens,
       "line 2: 7 '|'-separated fields"},
      {"1|A|d||u" + g19.substr(0, g19.size() - 1) + "x\n", ItemsFormat::kMovieLens,
       "line 1: genre flag 19 is 'x'"},
      {"1|A|d||u" + g19 + "\n1|B|d||u" + g19 + "\n", ItemsFormat::kMovieLens,
       "line 2: item id '1' given twice"},
  };
  for (const auto& b : table) {
    try {
      parse_items(b.text, b.format, "bad.txt");
      ADD_FAILURE() << "accepted: " << b.text;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("'bad.txt' " + b.want), std::string::npos)
          << e.what() << " (want " << b.want << ")";
    }
  }
  EXPECT_THROW(parse_items("", ItemsFormat::kCsv, "e.csv"), DataError);
  EXPECT_THROW(parse_items("\n", ItemsFormat::kMovieLens, "e.item"), DataError);
  EXPECT_THROW(parse_items_format("tsv"), UsageError);
}

}  // namespace
}  // namespace segrec
