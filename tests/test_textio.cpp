// Parallel text I/O on one process: line-aligned byte ranges, the bounded
// line reader, read_first_line and the ordered writer with a serial Comm.
#include "segrec/io/textio.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "scratch_dir.hpp"
#include "segrec/core/comm.hpp"
#include "segrec/core/error.hpp"

namespace segrec {
namespace {

namespace fs = std::filesystem;

// A scratch directory of this process under $SEGREC_TEST_TMP (or /tmp/segrec-tests).
fs::path scratch_dir() { return testing_tmp::scratch_dir("unit"); }

// A file named after the running test and this process.
fs::path test_file(const std::string& suffix) {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  return scratch_dir() / (std::string(info->test_suite_name()) + "." + info->name() + "-" +
                          std::to_string(::getpid()) + suffix);
}

void write_file(const fs::path& p, const std::string& content) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << content;
  ASSERT_TRUE(f.good()) << p;
}

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

// The lines of `s` as a reader should see them: split at '\n', no empty line
// after a final '\n'.
std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    auto nl = s.find('\n', pos);
    if (nl == std::string::npos) nl = s.size();
    out.push_back(s.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return out;
}

// Deterministic pseudo-random content: `n` lines with lengths from `lengths`.
std::string make_lines(const std::vector<std::size_t>& lengths, bool trailing_newline) {
  std::string s;
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    for (std::size_t j = 0; j < lengths[i]; ++j) s += char('a' + (i * 7 + j) % 26);
    if (i + 1 < lengths.size() || trailing_newline) s += '\n';
  }
  return s;
}

std::vector<std::size_t> lcg_lengths(std::size_t n, std::size_t max_len, std::uint64_t seed) {
  std::vector<std::size_t> out;
  std::uint64_t x = seed;
  for (std::size_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    out.push_back(static_cast<std::size_t>((x >> 33) % (max_len + 1)));
  }
  return out;
}

struct Content {
  std::string name, text;
};

std::vector<Content> contents() {
  std::vector<Content> c;
  c.push_back({"simple", "a\nbb\nccc\n"});
  c.push_back({"no_trailing_newline", "first line\nsecond\n\nfourth without newline"});
  c.push_back({"long_line", "x\n" + std::string(500, 'L') + "\ny\nz\n"});
  c.push_back({"long_first_line", std::string(300, 'F') + "\nq\n"});
  c.push_back({"long_last_line_no_newline", "a\nb\n" + std::string(200, 'T')});
  c.push_back({"empty", ""});
  c.push_back({"only_newlines", "\n\n\n\n"});
  c.push_back({"single_line_no_newline", "abc"});
  c.push_back({"single_newline", "\n"});
  c.push_back({"one_char_lines", "1\n2\n3\n4\n5\n6\n7\n8\n9\n"});
  // Big enough to force several buffer refills (the reader's buffer is >= 64 KiB),
  // with a line longer than a buffer.
  auto lens = lcg_lengths(3000, 200, 12345);
  lens[1500] = 100000;
  lens[10] = 0;
  c.push_back({"large", make_lines(lens, true)});
  c.push_back({"large_no_newline", make_lines(lcg_lengths(2000, 300, 99), false)});
  return c;
}

// Line starts of s: 0, every position after '\n', and s.size() as a sentinel.
std::vector<std::int64_t> line_starts(const std::string& s) {
  std::vector<std::int64_t> out = {0};
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i] == '\n') out.push_back(static_cast<std::int64_t>(i) + 1);
  out.push_back(static_cast<std::int64_t>(s.size()));
  return out;
}

TEST(TextLineAlignedRange, RangesTileAndStartAtLines) {
  for (const auto& c : contents()) {
    const fs::path p = test_file("." + c.name);
    write_file(p, c.text);
    const auto size = static_cast<std::int64_t>(c.text.size());
    const auto starts = line_starts(c.text);
    for (int parts = 1; parts <= 7; ++parts) {
      std::int64_t prev_end = 0;
      for (int part = 0; part < parts; ++part) {
        SCOPED_TRACE(c.name + " parts=" + std::to_string(parts) + " part=" + std::to_string(part));
        const ByteRange r = line_aligned_range(p, parts, part);
        EXPECT_EQ(r.begin, prev_end);
        EXPECT_LE(r.begin, r.end);
        EXPECT_TRUE(r.begin == 0 || r.begin == size || c.text[r.begin - 1] == '\n');
        // The boundary is the first line start at or after floor(size * part / parts).
        const std::int64_t raw = size * part / parts;
        std::int64_t want = size;
        for (auto s : starts)
          if (s >= raw) {
            want = s;
            break;
          }
        EXPECT_EQ(r.begin, want);
        prev_end = r.end;
      }
      EXPECT_EQ(prev_end, size) << c.name << " parts=" << parts;
    }
    fs::remove(p);
  }
}

TEST(TextLineReader, AllRangesYieldAllLines) {
  for (const auto& c : contents()) {
    const fs::path p = test_file("." + c.name);
    write_file(p, c.text);
    const auto want = lines_of(c.text);
    for (int parts = 1; parts <= 7; ++parts) {
      SCOPED_TRACE(c.name + " parts=" + std::to_string(parts));
      std::vector<std::string> got;
      for (int part = 0; part < parts; ++part) {
        const ByteRange r = line_aligned_range(p, parts, part);
        LineReader reader(p, r, /*max_line=*/1 << 20, /*buffer_bytes=*/1);
        std::string_view line;
        bool too_long = true;
        while (reader.next(line, too_long)) {
          EXPECT_FALSE(too_long);
          got.emplace_back(line);
        }
        EXPECT_EQ(reader.consumed(), r.end - r.begin);
        // Still at the end.
        EXPECT_FALSE(reader.next(line, too_long));
      }
      EXPECT_EQ(got, want);
    }
    fs::remove(p);
  }
}

// Reads the whole file with `max_line` and checks that exactly the lines longer
// than max_line are flagged, and every other line is intact.
void check_too_long(const fs::path& p, const std::string& text, std::size_t max_line, int parts) {
  const auto want = lines_of(text);
  std::size_t i = 0;
  for (int part = 0; part < parts; ++part) {
    const ByteRange r = line_aligned_range(p, parts, part);
    LineReader reader(p, r, max_line, /*buffer_bytes=*/1);
    std::string_view line;
    bool too_long = false;
    while (reader.next(line, too_long)) {
      if (i >= want.size()) {
        ADD_FAILURE() << "more lines than in the file";
        return;
      }
      const std::string& w = want[i];
      SCOPED_TRACE("line " + std::to_string(i) + " of length " + std::to_string(w.size()) +
                   ", max_line " + std::to_string(max_line));
      if (w.size() > max_line) {
        EXPECT_TRUE(too_long);
        // Reported text is at most 64 bytes of the line's beginning.
        EXPECT_LE(line.size(), 64u);
        EXPECT_EQ(w.substr(0, line.size()), line);
      } else {
        EXPECT_FALSE(too_long);
        EXPECT_EQ(line, w);
      }
      ++i;
    }
    EXPECT_EQ(reader.consumed(), r.end - r.begin);
  }
  EXPECT_EQ(i, want.size());
}

TEST(TextLineReader, TooLongLinesAreFlaggedExactly) {
  // Short lines around the limit of 10 bytes.
  {
    std::vector<std::size_t> lens = {0, 5, 9, 10, 11, 12, 3, 64, 65, 200, 10, 1, 11};
    const std::string text = make_lines(lens, true);
    const fs::path p = test_file(".short");
    write_file(p, text);
    for (int parts : {1, 2, 3, 5}) check_too_long(p, text, 10, parts);
    fs::remove(p);
  }
  // A last line over the limit without '\n'.
  {
    const std::string text = make_lines({4, 20, 2, 30}, false);
    const fs::path p = test_file(".last");
    write_file(p, text);
    check_too_long(p, text, 10, 1);
    check_too_long(p, text, 10, 2);
    fs::remove(p);
  }
  // Over-long lines that span buffer refills (buffer = max_line + 2 >= 64 KiB).
  {
    auto lens = lcg_lengths(400, 2000, 7);
    const std::size_t max_line = 70000;
    lens[3] = max_line;        // exactly the limit
    lens[4] = max_line + 1;    // one over
    lens[100] = 3 * max_line;  // several buffers
    lens[101] = 0;
    lens[250] = max_line + 2;  // as large as the buffer
    lens[399] = 2 * max_line;  // the last line
    const std::string text = make_lines(lens, true);
    const fs::path p = test_file(".refills");
    write_file(p, text);
    check_too_long(p, text, max_line, 1);
    check_too_long(p, text, max_line, 4);
    check_too_long(p, text, 1500, 1);
    fs::remove(p);
  }
  // The same, without a final newline after an over-long last line.
  {
    auto lens = lcg_lengths(50, 500, 3);
    lens[49] = 200000;
    const std::string text = make_lines(lens, false);
    const fs::path p = test_file(".refills_last");
    write_file(p, text);
    check_too_long(p, text, 65536, 1);
    check_too_long(p, text, 100, 3);
    fs::remove(p);
  }
}

TEST(TextLineReader, SubRange) {
  const std::string text = "alpha\nbeta\ngamma\ndelta\n";
  const fs::path p = test_file("");
  write_file(p, text);
  LineReader r(p, ByteRange{6, 17}, 100);
  std::string_view line;
  bool tl = false;
  ASSERT_TRUE(r.next(line, tl));
  EXPECT_EQ(line, "beta");
  EXPECT_EQ(r.consumed(), 5);
  ASSERT_TRUE(r.next(line, tl));
  EXPECT_EQ(line, "gamma");
  EXPECT_EQ(r.consumed(), 11);
  EXPECT_FALSE(r.next(line, tl));
  // An empty range has no lines.
  LineReader e(p, ByteRange{6, 6}, 100);
  EXPECT_FALSE(e.next(line, tl));
  EXPECT_EQ(e.consumed(), 0);
  fs::remove(p);
}

TEST(TextReadFirstLine, Cases) {
  struct Case {
    std::string text;
    std::size_t max_line;
    std::string want;
    bool too_long;
  };
  const Case cases[] = {
      {"hello\nworld\n", 100, "hello", false},
      {"hello", 100, "hello", false},
      {"", 100, "", false},
      {"\nsecond\n", 100, "", false},
      {"user,item,time\r\n1,2,3\r\n", 100, "user,item,time\r", false},
      {"0123456789\n", 10, "0123456789", false},
      {std::string(11, 'z') + "\nshort\n", 10, "", true},
      {std::string(100000, 'w') + "\nshort\n", 1000, "", true},
  };
  for (const auto& c : cases) {
    const fs::path p = test_file(".txt");
    write_file(p, c.text);
    bool tl = !c.too_long;
    const std::string got = read_first_line(p, c.max_line, &tl);
    EXPECT_EQ(tl, c.too_long) << c.text.substr(0, 20);
    if (c.too_long) {
      EXPECT_LE(got.size(), 64u);
      EXPECT_EQ(c.text.substr(0, got.size()), got);
    } else {
      EXPECT_EQ(got, c.want);
    }
    // The flag is optional.
    EXPECT_NO_THROW(read_first_line(p, c.max_line, nullptr));
    fs::remove(p);
  }
}

TEST(TextErrors, MissingFileAndDirectory) {
  const fs::path missing = test_file(".missing.csv");
  fs::remove(missing);
  const fs::path dir = test_file(".d");
  fs::create_directories(dir);
  for (const fs::path& p : {missing, dir}) {
    EXPECT_THROW(line_aligned_range(p, 2, 0), DataError) << p;
    EXPECT_THROW(LineReader(p, ByteRange{0, 10}, 100), DataError) << p;
    EXPECT_THROW(read_first_line(p, 100, nullptr), DataError) << p;
    try {
      line_aligned_range(p, 1, 0);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kExitData);
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
    }
  }
  fs::remove(dir);
}

// Temporary siblings "<name>.tmp-*" of `p`.
std::vector<fs::path> temporaries_of(const fs::path& p) {
  std::vector<fs::path> out;
  const std::string prefix = p.filename().string() + ".tmp-";
  for (const auto& e : fs::directory_iterator(p.parent_path()))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  return out;
}

TEST(TextOrderedWriter, AppendsInOrderAndCommits) {
  const Comm comm;
  const fs::path p = test_file(".out");
  fs::remove(p);
  {
    OrderedWriter w(p, comm);
    w.append("header\n");
    w.append("");
    w.append("row 1\nrow 2\n");
    w.append(std::string(100000, 'b'));
    w.append("\n");
    EXPECT_EQ(w.bytes_written(), 7 + 12 + 100000 + 1);
    EXPECT_FALSE(fs::exists(p));
    const auto tmps = temporaries_of(p);
    ASSERT_EQ(tmps.size(), 1u);
    w.commit();
    EXPECT_FALSE(fs::exists(tmps[0]));
  }
  EXPECT_EQ(read_file(p), "header\nrow 1\nrow 2\n" + std::string(100000, 'b') + "\n");
  EXPECT_TRUE(temporaries_of(p).empty());

  // A second writer replaces the committed file.
  {
    OrderedWriter w(p, comm);
    w.append("new");
    w.commit();
  }
  EXPECT_EQ(read_file(p), "new");
  EXPECT_TRUE(temporaries_of(p).empty());
  fs::remove(p);
}

TEST(TextOrderedWriter, EmptyOutput) {
  const Comm comm;
  const fs::path p = test_file(".out");
  {
    OrderedWriter w(p, comm);
    w.commit();
    EXPECT_EQ(w.bytes_written(), 0);
  }
  EXPECT_TRUE(fs::exists(p));
  EXPECT_EQ(fs::file_size(p), 0u);
  EXPECT_TRUE(temporaries_of(p).empty());
  fs::remove(p);
}

TEST(TextOrderedWriter, WithoutCommitLeavesNothing) {
  const Comm comm;
  const fs::path p = test_file(".out");
  fs::remove(p);
  {
    OrderedWriter w(p, comm);
    w.append("partial output\n");
    EXPECT_EQ(temporaries_of(p).size(), 1u);
  }
  EXPECT_FALSE(fs::exists(p));
  EXPECT_TRUE(temporaries_of(p).empty());

  // An existing file is left untouched by an abandoned writer.
  { std::ofstream(p) << "old"; }
  {
    OrderedWriter w(p, comm);
    w.append("new");
  }
  EXPECT_EQ(read_file(p), "old");
  EXPECT_TRUE(temporaries_of(p).empty());
  fs::remove(p);
}

TEST(TextOrderedWriter, MissingDirectoryIsIoError) {
  const Comm comm;
  const fs::path p = test_file(".no-such-dir") / "out.txt";
  try {
    OrderedWriter w(p, comm);
    ADD_FAILURE() << "no error for " << p;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), kExitIo);
    EXPECT_NE(std::string(e.what()).find(".no-such-dir"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(p.parent_path()));
}

}  // namespace
}  // namespace segrec

namespace segrec {
namespace {

TEST(TextOrderedWriter, AppendsASpoolFile) {
  const Comm comm;
  const std::string p = test_file(".spool.out").string();
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> spool(std::tmpfile(), &std::fclose);
  ASSERT_TRUE(spool);
  const std::string body = std::string(5 << 20, 'x') + "end\n";  // more than one copy chunk
  ASSERT_EQ(std::fwrite(body.data(), 1, body.size(), spool.get()), body.size());
  std::fflush(spool.get());
  {
    OrderedWriter w(p, comm);
    w.append("head\n");
    w.append_file(spool.get(), static_cast<std::int64_t>(body.size()));
    w.append_file(spool.get(), 0);
    w.append("tail\n");
    w.commit();
  }
  std::ifstream in(p, std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, "head\n" + body + "tail\n");
  fs::remove(p);
}

}  // namespace
}  // namespace segrec

namespace segrec {
namespace {

// ---- quoted records ---------------------------------------------------------------------

// Naive reference of Quoting's record rule: from each record start, a record holds the next
// lines while a quoted field is open, at most 64 lines and max_line bytes; otherwise the
// record is its first line.
std::vector<std::string> naive_records(const std::string& text, std::size_t max_line) {
  const auto ls = lines_of(text);
  // Whether a quoted field is open at the end of line s. States: 0 field start,
  // 1 unquoted, 2 quoted, 3 a quote inside a quoted field.
  const auto open_after = [](const std::string& s, bool in_quotes) {
    int st = in_quotes ? 2 : 0;
    for (char c : s) {
      if (st == 0) {
        st = c == '"' ? 2 : (c == ',' || c == ' ') ? 0 : 1;
      } else if (st == 1) {
        st = c == ',' ? 0 : 1;
      } else if (st == 2) {
        st = c == '"' ? 3 : 2;
      } else {
        st = c == '"' ? 2 : c == ',' ? 0 : 1;
      }
    }
    return st == 2;
  };
  std::vector<std::string> out;
  for (std::size_t i = 0; i < ls.size();) {
    std::string rec = ls[i];
    std::size_t j = i + 1;
    bool whole = !open_after(ls[i], false);
    for (bool open = !whole; open && j < ls.size() && j - i < 64 && rec.size() <= max_line;) {
      rec += "\n" + ls[j];
      open = open_after(ls[j++], true);
      whole = !open && rec.size() <= max_line;
    }
    if (whole && j > i + 1) {
      out.push_back(rec);
      i = j;
    } else {
      out.push_back(ls[i++]);
    }
  }
  return out;
}

TEST(TextLineReader, QuotedNewlinesMakeOneRecordAtEveryRankCount) {
  // Quoted newlines, "" escapes, a stray quote at a field start that never closes, a quote
  // inside an unquoted field (literal), and a quote after spaces at a field start.
  std::string text = "user,item,event\n";
  for (int i = 0; i < 400; ++i) {
    switch (i % 9) {
      case 0:
        text += "\"u" + std::to_string(i) + "\nsecond half\",i,view\n";
        break;
      case 1:
        text += "u" + std::to_string(i) + ",\"a \"\"b\"\"\nc\nd\",cart\n";
        break;
      case 2:
        text += "u" + std::to_string(i) + ",\"stray,view\n";
        break;
      case 3:
        text += "u" + std::to_string(i) + ",5'11\" tall,view\n";
        break;
      case 4:
        text += "u" + std::to_string(i) + ",  \"x\ny\",view\n";
        break;
      default:
        text += "u" + std::to_string(i) + ",i" + std::to_string(i % 7) + ",view\n";
    }
  }
  const fs::path p = test_file(".quoted");
  write_file(p, text);
  const Quoting q{","};
  for (std::size_t max_line : {std::size_t{1} << 20, std::size_t{20}}) {
    const auto want = naive_records(text, max_line);
    // Planted records of 2 and 3 lines are found whole.
    if (max_line > 100) {
      EXPECT_NE(std::find(want.begin(), want.end(), "\"u0\nsecond half\",i,view"), want.end());
      EXPECT_NE(std::find(want.begin(), want.end(), "u1,\"a \"\"b\"\"\nc\nd\",cart"), want.end());
      EXPECT_NE(std::find(want.begin(), want.end(), "u4,  \"x\ny\",view"), want.end());
    }
    for (int parts = 1; parts <= 7; ++parts) {
      SCOPED_TRACE("max_line=" + std::to_string(max_line) + " parts=" + std::to_string(parts));
      std::vector<std::string> got;
      std::int64_t lines = 0, prev_end = 0;
      for (int part = 0; part < parts; ++part) {
        const ByteRange r = line_aligned_range(p, parts, part, q, max_line);
        EXPECT_EQ(r.begin, prev_end);
        prev_end = r.end;
        LineReader reader(p, r, max_line, /*buffer_bytes=*/1, q);
        std::string_view rec;
        bool too_long = false;
        while (reader.next(rec, too_long)) {
          got.emplace_back(too_long ? std::string_view("(too long)") : rec);
          lines += reader.lines();
        }
      }
      EXPECT_EQ(prev_end, static_cast<std::int64_t>(text.size()));
      if (max_line > 100) {
        EXPECT_EQ(got, want);
      } else {
        ASSERT_EQ(got.size(), want.size());
        for (std::size_t i = 0; i < got.size(); ++i) {
          if (want[i].size() <= max_line) {
            EXPECT_EQ(got[i], want[i]) << i;
          }
        }
      }
      EXPECT_EQ(lines, static_cast<std::int64_t>(lines_of(text).size()));
    }
  }
  fs::remove(p);
}

}  // namespace
}  // namespace segrec
