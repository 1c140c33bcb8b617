#include "segrec/io/parse.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "segrec/core/error.hpp"

namespace segrec::parse {
namespace {

using namespace std::string_view_literals;

std::vector<std::string> split_ok(std::string_view line, std::string_view delim) {
  std::vector<std::string_view> fields;
  std::string scratch;
  EXPECT_TRUE(split(line, delim, fields, scratch)) << line;
  return {fields.begin(), fields.end()};
}

using Strings = std::vector<std::string>;

// ---- strip_line ---------------------------------------------------------------------

TEST(StripLine, RemovesCrLfAndBom) {
  EXPECT_EQ(strip_line("a,b\r", false), "a,b");
  EXPECT_EQ(strip_line("a,b\r\n", false), "a,b");
  EXPECT_EQ(strip_line("a,b\n", false), "a,b");
  EXPECT_EQ(strip_line("a,b", false), "a,b");
  EXPECT_EQ(strip_line("", true), "");
  EXPECT_EQ(strip_line("\r", false), "");
  EXPECT_EQ(strip_line("\xEF\xBB\xBFuser,item\r", true), "user,item");
  // A BOM is only stripped from the first line of a file.
  EXPECT_EQ(strip_line("\xEF\xBB\xBFuser,item", false), "\xEF\xBB\xBFuser,item");
  EXPECT_EQ(strip_line("\xEF\xBB", true), "\xEF\xBB");
  // Only one trailing '\r' is removed; inner ones stay.
  EXPECT_EQ(strip_line("a\rb\r\r", false), "a\rb\r");
}

// ---- detect_delimiter ---------------------------------------------------------------

TEST(DetectDelimiter, Table) {
  struct Case {
    std::string_view line, want;
  };
  const Case cases[] = {
      {"user_id,item_id,event,timestamp", ","},
      {"user_id\titem_id\tevent\ttimestamp", "\t"},
      {"user_id;item_id;event", ";"},
      {"user_id|item_id|event", "|"},
      {"1::1193::5::978300760", "::"},
      {"user::item,with,commas", "::"},  // "::" wins when present
      {"user_id", ","},                  // nothing found
      {"", ","},                         // empty line
      {"a;b;c,d", ";"},                  // most occurrences
      {"\"a,b,c\";d;e", ";"},            // commas inside quotes do not count
      {"\"x::y\",b,c", ","},             // nor does "::" inside quotes
      {"a,b;c", ","},                    // tie: earlier candidate
      {"a\tb,c", "\t"},                  // tie: tab before comma
      {"a|b|c;d", "|"},
      {"12:30,5", ","},  // single colons are not a delimiter
  };
  for (const Case& c : cases) EXPECT_EQ(detect_delimiter(c.line), c.want) << c.line;
}

// ---- split --------------------------------------------------------------------------

TEST(Split, EachDelimiter) {
  struct Case {
    std::string_view line, delim;
    Strings want;
  };
  const std::vector<Case> cases = {
      {"u1,i2,view,1700000000", ",", {"u1", "i2", "view", "1700000000"}},
      {"u1\ti2\tview", "\t", {"u1", "i2", "view"}},
      {"u1;i2;view", ";", {"u1", "i2", "view"}},
      {"u1|i2|view", "|", {"u1", "i2", "view"}},
      {"1::1193::5::978300760", "::", {"1", "1193", "5", "978300760"}},
      {"a:b::c", "::", {"a:b", "c"}},
      {"a,,c", ",", {"a", "", "c"}},
      {"a,b,", ",", {"a", "b", ""}},
      {",", ",", {"", ""}},
      {"", ",", {""}},
      {"a::", "::", {"a", ""}},
      {"a, b ,c", ",", {"a", " b ", "c"}},  // unquoted fields keep spaces
      {"a,b,c", "\t", {"a,b,c"}},
      {"ab\"c,d", ",", {"ab\"c", "d"}},  // quote inside unquoted field is literal
  };
  for (const Case& c : cases) EXPECT_EQ(split_ok(c.line, c.delim), c.want) << c.line;
}

TEST(Split, Quotes) {
  struct Case {
    std::string_view line, delim;
    Strings want;
  };
  const std::vector<Case> cases = {
      {R"("a,b",c)", ",", {"a,b", "c"}},
      {R"(x,"say ""hi""",y)", ",", {"x", "say \"hi\"", "y"}},
      {R"("""")", ",", {"\""}},
      {R"("",b)", ",", {"", "b"}},
      {R"(a,"")", ",", {"a", ""}},
      {R"("a;b";"c""d";e)", ";", {"a;b", "c\"d", "e"}},
      {R"("a::b"::c)", "::", {"a::b", "c"}},
      {"\"a\tb\"\tc", "\t", {"a\tb", "c"}},
      {R"(a, "b,c" ,d)", ",", {"a", "b,c", "d"}},   // spaces around a quoted field
      {R"("x""y","p""q")", ",", {"x\"y", "p\"q"}},  // two unescaped fields in scratch
      {R"("multi
line")",
       ",",
       {"multi\nline"}},
  };
  for (const Case& c : cases) EXPECT_EQ(split_ok(c.line, c.delim), c.want) << c.line;
}

TEST(Split, BadQuotes) {
  std::vector<std::string_view> fields;
  std::string scratch;
  for (std::string_view line : {R"("abc)"sv, R"(a,"b)"sv, R"("a""b)"sv, R"("a"b,c)"sv,
                                R"("a" x,c)"sv, R"(a,"b"c)"sv, "\""sv}) {
    EXPECT_FALSE(split(line, ",", fields, scratch)) << line;
  }
  EXPECT_FALSE(split(R"("a":b)", "::", fields, scratch));
}

TEST(Split, ScratchIsReusedWithoutReallocation) {
  std::vector<std::string_view> fields;
  std::string scratch;
  scratch.reserve(256);
  const char* data = scratch.data();
  ASSERT_TRUE(split(R"("a""b","c""d",e)", ",", fields, scratch));
  EXPECT_EQ(scratch.data(), data);
  ASSERT_EQ(fields.size(), 3u);
  EXPECT_EQ(fields[0], "a\"b");
  EXPECT_EQ(fields[1], "c\"d");
  EXPECT_EQ(fields[2], "e");
  // A second split clears the previous content.
  ASSERT_TRUE(split(R"("x""",y)", ",", fields, scratch));
  EXPECT_EQ(scratch.data(), data);
  ASSERT_EQ(fields.size(), 2u);
  EXPECT_EQ(fields[0], "x\"");
  // Fields without doubled quotes point into the line itself.
  const std::string line = "\"plain\",b";
  ASSERT_TRUE(split(line, ",", fields, scratch));
  EXPECT_EQ(fields[0].data(), line.data() + 1);
}

// ---- layouts ------------------------------------------------------------------------

Layout header_layout(std::string_view line, std::string_view delim, const ColumnNames& names = {}) {
  std::vector<std::string_view> fields;
  std::string scratch;
  EXPECT_TRUE(split(line, delim, fields, scratch));
  return layout_from_header(fields, delim, names);
}

struct Indices {
  int user, item, event, time, value;
};

void expect_indices(const Layout& l, Indices want, std::string_view what) {
  EXPECT_EQ(l.user, want.user) << what;
  EXPECT_EQ(l.item, want.item) << what;
  EXPECT_EQ(l.event, want.event) << what;
  EXPECT_EQ(l.time, want.time) << what;
  EXPECT_EQ(l.value, want.value) << what;
}

TEST(Layout, HeaderAliases) {
  struct Case {
    std::string_view line, delim;
    Indices want;
  };
  const Case cases[] = {
      {"user_id,item_id,event,timestamp,value", ",", {0, 1, 2, 3, 4}},
      {"userId,movieId,rating,timestamp", ",", {0, 1, -1, 3, 2}},
      {"UserID::MovieID::Rating::Timestamp", "::", {0, 1, -1, 3, 2}},
      {"user\titem\tBehavior\tTS", "\t", {0, 1, 2, 3, -1}},
      {" User_Id ; ITEM ; Event_Type ; Time ; Dwell ", ";", {0, 1, 2, 3, 4}},
      {"ts|itemid|userid|type", "|", {2, 1, 3, 0, -1}},
      {"item,category,user,price", ",", {2, 0, -1, -1, -1}},
      // Several matches: the earlier alias wins, regardless of column order.
      {"type,user,event,user_id,item", ",", {3, 4, 2, -1, -1}},
  };
  for (const Case& c : cases) {
    const Layout l = header_layout(c.line, c.delim);
    expect_indices(l, c.want, c.line);
    EXPECT_EQ(l.delimiter, c.delim);
    EXPECT_TRUE(l.header);
  }
}

TEST(Layout, SameChosenNameTwiceIsAnError) {
  try {
    header_layout("user,item,User", ",");
    ADD_FAILURE() << "accepted";
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(),
                 "the header names the user column twice: 'user' (column 1) and 'User' (column 3)");
  }
  // Different aliases of one field are not duplicates: the earlier alias wins.
  EXPECT_EQ(header_layout("user,item,user_id", ",").user, 2);
}

TEST(Layout, HeaderColumnsVector) {
  const Layout l = header_layout("category,user_id,item_id,event,ts,rating,type,country", ",");
  const std::vector<Field> want = {Field::kCategory, Field::kUser,  Field::kItem,   Field::kEvent,
                                   Field::kTime,     Field::kValue, Field::kIgnore, Field::kIgnore};
  EXPECT_EQ(l.columns, want);
}

TEST(Layout, HeaderOverrides) {
  ColumnNames names;
  names.user = "customer";
  names.item = "SKU";
  names.value = "price";
  const Layout l = header_layout("user_id,Customer,sku,event,price,rating", ",", names);
  expect_indices(l, {1, 2, 3, -1, 4}, "override");
  EXPECT_EQ(l.columns[0], Field::kIgnore);  // aliases of an overridden field no longer match
  EXPECT_EQ(l.columns[5], Field::kIgnore);

  // An override claims a column whose name is another field's alias.
  ColumnNames swap;
  swap.user = "item";
  swap.item = "product";
  expect_indices(header_layout("item,product", ",", swap), {0, 1, -1, -1, -1}, "swap");
}

TEST(Layout, HeaderMissingUserOrItem) {
  try {
    header_layout("a;b;c", ",");
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(),
                 "no user column in header 'a;b;c' (delimiter ','); expected one of user_id, "
                 "user, userId or --col-user");
    EXPECT_EQ(e.code(), kExitData);
  }
  try {
    header_layout("userId\tcategory", "\t");
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(),
                 "no item column in header 'userId\\x09category' (delimiter '\\t'); expected one "
                 "of item_id, item, itemId, movieId or --col-item");
  }
  ColumnNames names;
  names.user = "customer";
  try {
    header_layout("user_id,item_id", ",", names);
    FAIL() << "expected DataError";
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(),
                 "no user column in header 'user_id,item_id' (delimiter ','); expected "
                 "'customer' (--col-user)");
  }
}

TEST(Layout, Spec) {
  const Layout l = layout_from_spec("user_id,item_id,category,event,timestamp", "\t", {});
  const std::vector<Field> want = {Field::kUser, Field::kItem, Field::kCategory, Field::kEvent,
                                   Field::kTime};
  EXPECT_EQ(l.columns, want);
  expect_indices(l, {0, 1, 3, 4, -1}, "spec");
  EXPECT_FALSE(l.header);
  EXPECT_EQ(l.delimiter, "\t");

  expect_indices(layout_from_spec(" MovieId , UserID ,Rating,TS", "::", {}), {1, 0, -1, 3, 2},
                 "aliases");
  expect_indices(layout_from_spec("user,,item", ",", {}), {0, 2, -1, -1, -1}, "blank column");
  ColumnNames names;
  names.item = "sku";
  names.event = "action";
  expect_indices(layout_from_spec("user,SKU,action,item", ",", names), {0, 1, 2, -1, -1},
                 "override");
}

TEST(Layout, SpecErrors) {
  struct Case {
    std::string_view spec, message;
  };
  const Case cases[] = {
      {"item_id,event",
       "--columns 'item_id,event' has no user column; expected one of user_id, user, userId or "
       "--col-user"},
      {"user_id,event",
       "--columns 'user_id,event' has no item column; expected one of item_id, item, itemId, "
       "movieId or --col-item"},
      {"", "--columns '' has no user column; expected one of user_id, user, userId or --col-user"},
      {"user,item,user_id",
       "--columns 'user,item,user_id' names the user field twice (columns 1 and 3)"},
      {"user,item,ts,time",
       "--columns 'user,item,ts,time' names the time field twice (columns 3 "
       "and 4)"},
  };
  for (const Case& c : cases) {
    try {
      layout_from_spec(c.spec, ",", {});
      ADD_FAILURE() << "expected UsageError for " << c.spec;
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string_view(e.what()), c.message);
      EXPECT_EQ(e.code(), kExitUsage);
    }
  }
}

// ---- item attributes: price, name, category -------------------------------------------

struct AttrIndices {
  int value, price, name, category;
};

void expect_attrs(const Layout& l, AttrIndices want, std::string_view what) {
  EXPECT_EQ(l.value, want.value) << what;
  EXPECT_EQ(l.price, want.price) << what;
  EXPECT_EQ(l.name, want.name) << what;
  EXPECT_EQ(l.category, want.category) << what;
}

TEST(Layout, ItemAttributeAliases) {
  struct Case {
    std::string_view line;
    AttrIndices want;
  };
  const Case cases[] = {
      {"user,item,price,item_name,category", {-1, 2, 3, 4}},
      {"user,item,UnitPrice,Description,Category_Code", {-1, 2, 3, 4}},
      {"user,item,unit_price,product_name,cat", {-1, 2, 3, 4}},
      {"user,item,Title,category_id", {-1, -1, 2, 3}},
      {"user,item,name,price", {-1, 3, 2, -1}},  // segrec generate's items columns
      // Quantity is a value alias, after value, rating and dwell.
      {"user,item,Quantity,UnitPrice", {2, 3, -1, -1}},
      {"user,item,qty", {2, -1, -1, -1}},
      {"user,item,quantity,rating", {3, -1, -1, -1}},
      // Several matches: the earlier alias wins.
      {"user,item,name,title,description,item_name", {-1, -1, 5, -1}},
      {"user,item,cat,category_code,category_id,category", {-1, -1, -1, 5}},
      {"user,item,unitprice,unit_price,price", {-1, 4, -1, -1}},
      // None of them: absent, as before.
      {"user_id,item_id,event,timestamp,value,country", {4, -1, -1, -1}},
  };
  for (const Case& c : cases) expect_attrs(header_layout(c.line, ","), c.want, c.line);
}

TEST(Layout, OnlineRetailHeader) {
  ColumnNames names;
  names.user = "CustomerID";
  names.item = "StockCode";
  names.time = "InvoiceDate";
  const Layout l = header_layout(
      "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country", ",",
      names);
  expect_indices(l, {6, 1, -1, 4, 3}, "online retail");
  expect_attrs(l, {3, 5, 2, -1}, "online retail");
  const std::vector<Field> want = {Field::kIgnore, Field::kItem,  Field::kName, Field::kValue,
                                   Field::kTime,   Field::kPrice, Field::kUser, Field::kIgnore};
  EXPECT_EQ(l.columns, want);
}

TEST(Layout, ItemAttributeOverrides) {
  ColumnNames names;
  names.price = "Cost";
  names.name = "Label";
  names.category = "Dept";
  // Overridden fields ignore their aliases.
  expect_attrs(header_layout("user,item,price,cost,title,label,category,dept", ",", names),
               {-1, 3, 5, 7}, "override");
  // An override claims another field's alias: price read from the "value" column.
  ColumnNames as_value;
  as_value.price = "value";
  expect_attrs(header_layout("user,item,value", ",", as_value), {-1, 2, -1, -1}, "claim");
  try {
    header_layout("user,item,price,Price", ",");
    ADD_FAILURE() << "accepted";
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(),
                 "the header names the price column twice: 'price' (column 3) and 'Price' "
                 "(column 4)");
  }
  try {
    header_layout("user,item,title,Title", ",");
    ADD_FAILURE() << "accepted";
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(),
                 "the header names the item name column twice: 'title' (column 3) and 'Title' "
                 "(column 4)");
  }
}

TEST(Layout, SpecItemAttributes) {
  const Layout l =
      layout_from_spec("user_id,item_id,price,description,category_code,quantity", ",", {});
  const std::vector<Field> want = {Field::kUser, Field::kItem,     Field::kPrice,
                                   Field::kName, Field::kCategory, Field::kValue};
  EXPECT_EQ(l.columns, want);
  expect_attrs(l, {5, 2, 3, 4}, "spec");
  try {
    layout_from_spec("user,item,cat,category", ",", {});
    ADD_FAILURE() << "accepted";
  } catch (const UsageError& e) {
    EXPECT_STREQ(e.what(),
                 "--columns 'user,item,cat,category' names the category field twice (columns 3 "
                 "and 4)");
  }
}

// ---- parse_time ---------------------------------------------------------------------

TEST(ParseTime, Valid) {
  struct Case {
    std::string_view text;
    double want;
  };
  const Case cases[] = {
      {"1700000000", 1700000000.0},
      {"0", 0.0},
      {"1700000000.25", 1700000000.25},
      {"1700000000.", 1700000000.0},
      {".5", 0.5},
      {" 1700000000 ", 1700000000.0},
      {"7258118400", 7258118400.0},  // 2200-01-01, the last accepted instant
      {"2023-11-14T22:13:20Z", 1700000000.0},
      {"2023-11-14T22:13:20", 1700000000.0},
      {"2023-11-14 22:13:20", 1700000000.0},
      {"2023-11-14t22:13:20z", 1700000000.0},
      {"2023-11-14T22:13:20.5Z", 1700000000.5},
      {"2023-11-14T22:13:20,25", 1700000000.25},
      {"2023-11-14T22:13", 1699999980.0},
      {"1970-01-01T00:00:00Z", 0.0},
      {"1970-01-01", 0.0},
      {"2023-11-14", 1699920000.0},
      {"2000-02-29", 951782400.0},
      {"2024-12-31T23:59:59+01:00", 1735685999.0},
      {"2023-11-15T03:43:20+05:30", 1700000000.0},
      {"2023-11-14T14:13:20-0800", 1700000000.0},
      {"2023-11-14T14:13:20-08", 1700000000.0},
      {"2016-12-31T23:59:60Z", 1483228800.0},  // leap second
      {"2199-12-31T23:59:59Z", 7258118399.0},
      {"2200-01-01T00:00:00Z", 7258118400.0},
      {"1970-01-01T01:00:00+01:00", 0.0},
  };
  for (const Case& c : cases) {
    double t = -1;
    EXPECT_TRUE(parse_time(c.text, t)) << c.text;
    EXPECT_DOUBLE_EQ(t, c.want) << c.text;
  }
}

TEST(ParseTime, Invalid) {
  for (std::string_view text : {
           ""sv,
           " "sv,
           "-5"sv,
           "-1.5"sv,
           "7258118401"sv,            // after 2200
           "1700000000000"sv,         // milliseconds
           "99999999999999999999"sv,  // huge
           "NaN"sv,
           "nan"sv,
           "inf"sv,
           "-inf"sv,
           "Infinity"sv,
           "1e9"sv,
           "abc"sv,
           "17000x"sv,
           "1.2.3"sv,
           "."sv,
           "-"sv,
           "+5"sv,
           "2001-02-29"sv,  // not a leap year
           "1900-02-29"sv,
           "2023-13-01"sv,
           "2023-00-10"sv,
           "2023-04-31"sv,
           "2023-01-00"sv,
           "2023-11-14T24:00:00"sv,
           "2023-11-14T23:60:00"sv,
           "2023-11-14T23:59:61"sv,
           "2023-11-14T22:13:20+25:00"sv,
           "2023-11-14T22:13:20+05:60"sv,
           "2023-11-14T22:13:20+5"sv,
           "2023-11-14T22:13:20+05:"sv,
           "2023-11-14T22:13:20Zjunk"sv,
           "2023-11-14T22:13:20."sv,
           "2023-11-14T22"sv,
           "2023-11-14T"sv,
           "2023-11-14X22:13:20"sv,
           "2023-11-14Z"sv,
           "2023/11/14"sv,
           "2023-1-14"sv,
           "23-11-14 10:00"sv,
           "1969-12-31T23:59:59Z"sv,  // negative
           "2200-01-01T00:00:01Z"sv,  // absurd
           "1970-01-01T00:30:00+01:00"sv,
       }) {
    double t = 123;
    EXPECT_FALSE(parse_time(text, t)) << text;
  }
}

TEST(ParseTime, FractionIsExact) {
  double t = 0;
  ASSERT_TRUE(parse_time("1700000000.123456", t));
  EXPECT_DOUBLE_EQ(t, 1700000000.123456);
  ASSERT_TRUE(parse_time("2023-11-14T22:13:20.125+00:00", t));
  EXPECT_EQ(t, 1700000000.125);
}

// ---- parse_number -------------------------------------------------------------------

TEST(ParseNumber, Table) {
  struct Case {
    std::string_view text;
    double want;
  };
  const Case ok[] = {
      {"12.5", 12.5},  {"-3", -3.0},      {"0", 0.0},
      {"1e3", 1000.0}, {"2.5E-2", 0.025}, {" 7 ", 7.0},
      {"+4", 4.0},     {"+.5", 0.5},      {".25", 0.25},
      {"5.", 5.0},     {"1e-400", 0.0},   {"1.7976931348623157e308", 1.7976931348623157e308},
  };
  for (const Case& c : ok) {
    double v = -99;
    EXPECT_TRUE(parse_number(c.text, v)) << c.text;
    EXPECT_DOUBLE_EQ(v, c.want) << c.text;
  }
  for (std::string_view text :
       {""sv, "  "sv, "nan"sv, "NaN"sv, "-nan"sv, "inf"sv, "-inf"sv, "Infinity"sv, "1e400"sv,
        "abc"sv, "1,5"sv, "12x"sv, "0x10"sv, "+"sv, "++1"sv, "-"sv, "1 2"sv, "e5"sv}) {
    double v = -99;
    EXPECT_FALSE(parse_number(text, v)) << text;
    EXPECT_EQ(v, -99) << text;
  }
}

// ---- valid_utf8 ---------------------------------------------------------------------

TEST(ValidUtf8, Table) {
  struct Case {
    std::string_view text;
    bool want;
  };
  const Case cases[] = {
      {"", true},
      {"plain ascii text longer than eight bytes", true},
      {"caf\xC3\xA9", true},       // é
      {"\xE2\x82\xAC", true},      // €
      {"\xF0\x9F\x98\x80", true},  // 😀
      {"user \xF0\x9F\x98\x80 with emoji, ok", true},
      {"\xF4\x8F\xBF\xBF", true},  // U+10FFFF
      {"\xED\x9F\xBF", true},      // U+D7FF
      {"\xEE\x80\x80", true},      // U+E000
      {"\xff", false},
      {"\xfe", false},
      {"\xc0\xaf", false},  // overlong '/'
      {"\xc1\xbf", false},
      {"\xe0\x80\xaf", false},      // overlong 3-byte
      {"\xf0\x80\x80\xaf", false},  // overlong 4-byte
      {"\xed\xa0\x80", false},      // surrogate U+D800
      {"\xed\xbf\xbf", false},      // surrogate U+DFFF
      {"\xf4\x90\x80\x80", false},  // U+110000
      {"\xf5\x80\x80\x80", false},
      {"\x80", false},     // stray continuation
      {"abc\xC3", false},  // truncated
      {"\xE2\x82", false},
      {"\xF0\x9F\x98", false},
      {"\xC3\x28", false},  // bad continuation
      {"longer ascii prefix here\xC3\xA9 then \xff", false},
  };
  for (const Case& c : cases)
    EXPECT_EQ(valid_utf8(c.text), c.want) << testing::PrintToString(c.text);
}

// ---- to_string / lower --------------------------------------------------------------

TEST(Bad, Names) {
  EXPECT_STREQ(to_string(Bad::kNone), "ok");
  EXPECT_STREQ(to_string(Bad::kFieldCount), "field count");
  EXPECT_STREQ(to_string(Bad::kEmptyUser), "empty user");
  EXPECT_STREQ(to_string(Bad::kEmptyItem), "empty item");
  EXPECT_STREQ(to_string(Bad::kBadTime), "bad time");
  EXPECT_STREQ(to_string(Bad::kBadValue), "bad value");
  EXPECT_STREQ(to_string(Bad::kNonFinite), "non-finite value");
  EXPECT_STREQ(to_string(Bad::kBadUtf8), "invalid UTF-8");
  EXPECT_STREQ(to_string(Bad::kTooLong), "line too long");
  EXPECT_STREQ(to_string(Bad::kBadQuote), "bad quoting");
  EXPECT_STREQ(to_string(Bad::kValueRange), "value out of range");
  EXPECT_STREQ(to_string(Bad::kNulByte), "NUL byte");
  EXPECT_STREQ(to_string(Bad::kBadPrice), "bad price");
  EXPECT_STREQ(to_string(Bad::kNegativePrice), "negative price");
  EXPECT_STREQ(to_string(Bad::kNonFinitePrice), "non-finite price");
  EXPECT_STREQ(to_string(Bad::kPriceRange), "price out of range");
}

TEST(Lower, Ascii) {
  EXPECT_EQ(lower("View"), "view");
  EXPECT_EQ(lower("ADD_TO_CART 2"), "add_to_cart 2");
  EXPECT_EQ(lower("\xC3\x89T\xC3\x89"), "\xC3\x89t\xC3\x89");  // non-ASCII bytes unchanged
  EXPECT_EQ(lower(""), "");
}

// ---- parse_row ----------------------------------------------------------------------

class ParseRow : public testing::Test {
 protected:
  Bad parse(std::string_view line, const Layout& l, std::size_t max = 1 << 20) {
    why = "untouched";
    return parse_row(line, l, max, fields, scratch, row, &why);
  }
  Layout full = layout_from_spec("user_id,item_id,event,timestamp,value", ",", {});
  std::vector<std::string_view> fields;
  std::string scratch;
  Row row;
  std::string why;
};

TEST_F(ParseRow, Good) {
  ASSERT_EQ(parse("u000123,i004567,view,1700000000,12.5", full), Bad::kNone);
  EXPECT_EQ(why, "untouched");
  EXPECT_EQ(row.user, "u000123");
  EXPECT_EQ(row.item, "i004567");
  EXPECT_EQ(row.event, "view");
  EXPECT_TRUE(row.has_time);
  EXPECT_EQ(row.time, 1700000000.0);
  EXPECT_TRUE(row.has_value);
  EXPECT_EQ(row.value, 12.5);

  ASSERT_EQ(parse(R"( u 1 ,"i,""2""", Buy ,2023-11-14T22:13:20Z, 3 )", full), Bad::kNone);
  EXPECT_EQ(row.user, "u 1");
  EXPECT_EQ(row.item, "i,\"2\"");
  EXPECT_EQ(row.event, "Buy");
  EXPECT_EQ(row.time, 1700000000.0);
  EXPECT_EQ(row.value, 3.0);
}

TEST_F(ParseRow, EmptyOptionalFields) {
  ASSERT_EQ(parse("u,i,,,", full), Bad::kNone);
  EXPECT_TRUE(row.event.empty());
  EXPECT_FALSE(row.has_time);
  EXPECT_FALSE(row.has_value);
  ASSERT_EQ(parse("u,i,  ,  ,  ", full), Bad::kNone);
  EXPECT_TRUE(row.event.empty());
  EXPECT_FALSE(row.has_time);
  EXPECT_FALSE(row.has_value);

  // Absent columns leave the optional fields unset, also after a full row.
  const Layout two = layout_from_spec("item,user", "::", {});
  ASSERT_EQ(parse("u,i,view,5,6", full), Bad::kNone);
  ASSERT_EQ(parse("i9::u9", two), Bad::kNone);
  EXPECT_EQ(row.user, "u9");
  EXPECT_EQ(row.item, "i9");
  EXPECT_TRUE(row.event.empty());
  EXPECT_FALSE(row.has_time);
  EXPECT_FALSE(row.has_value);
}

TEST_F(ParseRow, OtherDelimiters) {
  const Layout ml = header_layout("UserID::MovieID::Rating::Timestamp", "::");
  ASSERT_EQ(parse("1::1193::5::978300760", ml), Bad::kNone);
  EXPECT_EQ(row.user, "1");
  EXPECT_EQ(row.item, "1193");
  EXPECT_EQ(row.value, 5.0);
  EXPECT_EQ(row.time, 978300760.0);

  const Layout tsv = header_layout("ts\tuser\titem", "\t");
  ASSERT_EQ(parse(strip_line("2023-11-14 22:13:20\tu\ti\r", false), tsv), Bad::kNone);
  EXPECT_EQ(row.time, 1700000000.0);
  EXPECT_EQ(row.item, "i");
}

TEST_F(ParseRow, Rejections) {
  struct Case {
    std::string_view line;
    Bad want;
    std::string_view why;
  };
  const Case cases[] = {
      {"u,i,view,1", Bad::kFieldCount, "expected 5 fields, found 4"},
      {"u,i,view,1,2,3", Bad::kFieldCount, "expected 5 fields, found 6"},
      {"", Bad::kFieldCount, "expected 5 fields, found 1"},
      {" ,i,view,1,2", Bad::kEmptyUser, "user field is empty"},
      {"\"\",i,view,1,2", Bad::kEmptyUser, "user field is empty"},
      {"u,,view,1,2", Bad::kEmptyItem, "item field is empty"},
      {"u\xff,i,view,1,2", Bad::kBadUtf8, "user 'u\\xff' is not valid UTF-8"},
      {"u,\xc0\xaf,view,1,2", Bad::kBadUtf8, "item '\\xc0\\xaf' is not valid UTF-8"},
      {"u,i,\xed\xa0\x80,1,2", Bad::kBadUtf8, "event '\\xed\\xa0\\x80' is not valid UTF-8"},
      {"u,i,view,-5,2", Bad::kBadTime, "time '-5' is negative or absurd"},
      {"u,i,view,99999999999,2", Bad::kBadTime, "time '99999999999' is negative or absurd"},
      {"u,i,view,NaN,2", Bad::kBadTime, "time 'NaN' is not unix seconds or a valid ISO-8601 date"},
      {"u,i,view,2001-02-29,2", Bad::kBadTime,
       "time '2001-02-29' is not unix seconds or a valid ISO-8601 date"},
      {"u,i,view,1,abc", Bad::kBadValue, "value 'abc' is not a number"},
      {"u,i,view,1,nan", Bad::kNonFinite, "value 'nan' is not finite"},
      {"u,i,view,1,-inf", Bad::kNonFinite, "value '-inf' is not finite"},
      {"u,i,view,1,1e999", Bad::kNonFinite, "value '1e999' is not finite"},
      // Finite in double, infinite once stored as float32.
      {"u,i,view,1,1e39", Bad::kValueRange, "value '1e39' is beyond float32 (3.4e38)"},
      {"u,i,view,1,-1e308", Bad::kValueRange, "value '-1e308' is beyond float32 (3.4e38)"},
      {std::string_view("u\0a,i,view,1,2", 14), Bad::kNulByte, "NUL byte at column 2"},
      {"u,\"line1\nline2\",view,1,2", Bad::kBadQuote,
       "newline inside a quoted field in 'u,\"line1\\x0aline2\",view,1,2'"},
      {"u,\"i,view,1,2", Bad::kBadQuote,
       "unterminated quote or text after closing quote in 'u,\"i,view,1,2'"},
      {"u,\"i\"x,view,1,2", Bad::kBadQuote,
       "unterminated quote or text after closing quote in 'u,\"i\"x,view,1,2'"},
      // The first failing check wins.
      {" ,,view,x,y", Bad::kEmptyUser, "user field is empty"},
      {"u,i,view,x,y", Bad::kBadTime, "time 'x' is not unix seconds or a valid ISO-8601 date"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse(c.line, full), c.want) << c.line;
    EXPECT_EQ(why, c.why) << c.line;
  }
}

TEST_F(ParseRow, LargestFloat32ValueIsAccepted) {
  ASSERT_EQ(parse("u,i,view,1,3.4e38", full), Bad::kNone);
  EXPECT_EQ(row.value, 3.4e38);
}

TEST_F(ParseRow, WhyIsTruncated) {
  const std::string long_time(100, '7');
  ASSERT_EQ(parse("u,i,view," + long_time + ",1", full), Bad::kBadTime);
  EXPECT_EQ(why, "time '" + std::string(40, '7') + "...' is negative or absurd");
  // Truncation does not split a UTF-8 character: 39 ASCII bytes then a 2-byte 'é'.
  const std::string value = std::string(39, 'x') + "\xC3\xA9zz";
  ASSERT_EQ(parse("u,i,view,1," + value, full), Bad::kBadValue);
  EXPECT_EQ(why, "value '" + std::string(39, 'x') + "...' is not a number");
}

// From the fuzzer (tests/fuzz): an unterminated quote followed by binary bytes. The detail
// quotes at most 40 bytes, each escaped as \xNN at worst, so it stays short and printable.
TEST_F(ParseRow, WhyOfBinaryTextIsBoundedAndEscaped) {
  const std::string line = "\"\x02" + std::string(60, '\xff') + "\x01\xbb";
  ASSERT_EQ(parse(line, full), Bad::kBadQuote);
  EXPECT_LE(why.size(), 256u) << why;
  EXPECT_NE(why.find("\\xff"), std::string::npos) << why;
  EXPECT_NE(why.find("..."), std::string::npos) << why;
  for (char c : why) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << why;
}

TEST_F(ParseRow, NullWhy) {
  EXPECT_EQ(parse_row("u,i", full, 0, fields, scratch, row, nullptr), Bad::kFieldCount);
  EXPECT_EQ(parse_row("u,i,v,1,2", full, 0, fields, scratch, row, nullptr), Bad::kNone);
}

TEST_F(ParseRow, TooLongIsCheckedFirstAndFast) {
  std::string huge(10 << 20, 'x');
  huge[0] = '"';  // would otherwise be an unterminated quote
  const auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < 1000; ++k) ASSERT_EQ(parse(huge, full, 1 << 20), Bad::kTooLong);
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(why, "line of 10485760 bytes exceeds limit of 1048576");
  // 1000 rejections of a 10 MB line must not scan it (a scan would take seconds).
  EXPECT_LT(elapsed, std::chrono::milliseconds(200));
  EXPECT_EQ(parse(std::string(1 << 20, 'x'), full, 1 << 20), Bad::kFieldCount);  // at the limit
  EXPECT_EQ(parse("u,i,view,1,2", full, 12), Bad::kNone);
  EXPECT_EQ(parse("u,i,view,1,2", full, 11), Bad::kTooLong);
  EXPECT_EQ(parse("u,i,view,1,2", full, 0), Bad::kNone);  // 0 = unlimited
}

TEST_F(ParseRow, BadPrices) {
  const Layout l = layout_from_spec("user,item,quantity,price,description,category", ",", {});
  struct Case {
    std::string_view line;
    Bad want;
    std::string_view why;
  };
  const Case cases[] = {
      {"u,i,1,abc,n,c", Bad::kBadPrice, "price 'abc' is not a number"},
      {"u,i,1,\"1,5\",n,c", Bad::kBadPrice, "price '1,5' is not a number"},
      {"u,i,1,$3,n,c", Bad::kBadPrice, "price '$3' is not a number"},
      {"u,i,1,12x,n,c", Bad::kBadPrice, "price '12x' is not a number"},
      {"u,i,1,-1,n,c", Bad::kNegativePrice, "price '-1' is negative"},
      {"u,i,1, -0.01 ,n,c", Bad::kNegativePrice, "price '-0.01' is negative"},
      {"u,i,1,inf,n,c", Bad::kNonFinitePrice, "price 'inf' is not finite"},
      {"u,i,1,-inf,n,c", Bad::kNonFinitePrice, "price '-inf' is not finite"},
      {"u,i,1,NaN,n,c", Bad::kNonFinitePrice, "price 'NaN' is not finite"},
      {"u,i,1,1e400,n,c", Bad::kNonFinitePrice, "price '1e400' is not finite"},
      {"u,i,1,1e39,n,c", Bad::kPriceRange, "price '1e39' is beyond float32 (3.4e38)"},
      {"u,i,1,2,\xff,c", Bad::kBadUtf8, "item name '\\xff' is not valid UTF-8"},
      {"u,i,1,2,n,\xc0\xaf", Bad::kBadUtf8, "category '\\xc0\\xaf' is not valid UTF-8"},
      // Value is checked before price.
      {"u,i,x,-1,n,c", Bad::kBadValue, "value 'x' is not a number"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(parse(c.line, l), c.want) << c.line;
    EXPECT_EQ(why, c.why) << c.line;
  }
}

TEST_F(ParseRow, PricesNamesAndCategories) {
  const Layout l = layout_from_spec("user,item,quantity,price,description,category", ",", {});
  ASSERT_EQ(parse(R"(17850,85123A,6, 2.55 ," WHITE HANGING HEART, T-LIGHT ", Home )", l),
            Bad::kNone);
  EXPECT_EQ(row.value, 6.0);
  EXPECT_TRUE(row.has_price);
  EXPECT_EQ(row.price, 2.55);
  EXPECT_EQ(row.name, "WHITE HANGING HEART, T-LIGHT");
  EXPECT_EQ(row.category, "Home");
  // Empty price: unknown, not malformed; empty name and category.
  ASSERT_EQ(parse("u,i,-2,  ,,", l), Bad::kNone);
  EXPECT_FALSE(row.has_price);
  EXPECT_TRUE(row.name.empty());
  EXPECT_TRUE(row.category.empty());
  EXPECT_EQ(row.value, -2.0);  // a negative quantity (a return) is a valid value
  // "-0" and an underflow are a price of +0.
  for (std::string_view zero : {"u,i,1,-0,n,c"sv, "u,i,1,-1e-400,n,c"sv, "u,i,1,0,n,c"sv}) {
    ASSERT_EQ(parse(zero, l), Bad::kNone) << zero;
    EXPECT_TRUE(row.has_price);
    EXPECT_EQ(row.price, 0.0);
    EXPECT_FALSE(std::signbit(row.price)) << zero;
  }
  ASSERT_EQ(parse("u,i,1,3.4e38,n,c", l), Bad::kNone);
  EXPECT_EQ(row.price, 3.4e38);
  // Absent columns leave them unset, also after a row that had them.
  ASSERT_EQ(parse("u,i,view,1,2", full), Bad::kNone);
  EXPECT_FALSE(row.has_price);
  EXPECT_TRUE(row.name.empty());
  EXPECT_TRUE(row.category.empty());
}

}  // namespace
}  // namespace segrec::parse
