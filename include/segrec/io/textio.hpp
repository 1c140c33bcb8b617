// Parallel text I/O: every rank reads its own line-aligned byte range of a
// file, and writes its own chunks of one shared output file in rank order.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "segrec/core/comm.hpp"

namespace segrec {

/// Byte range [begin, end) of a file; begins at a line start.
struct ByteRange {
  std::int64_t begin = 0, end = 0;
};

/// Records of a delimited file with RFC-4180 double quotes. A record ends at a newline
/// outside a quoted field. A quote opens a field only at the field's start (after the line
/// start or `delimiter`, spaces allowed before it); inside it "" is a quote and a lone quote
/// closes it. A record that does not close within kMaxRecordLines lines and `max_line` bytes
/// is its first line alone (an unterminated quote), so one stray quote costs one row.
struct Quoting {
  std::string delimiter;  ///< empty: plain lines, quotes are not special
  static constexpr int kMaxRecordLines = 64;
};

/// Collective-free: this rank's share of `path` (size bytes split evenly over
/// `parts`, each boundary moved to the next line start, or with `quoting` to the next
/// record start found by scanning records from a line start up to 64 KiB before it, the
/// same scan on every rank). The ranges of all parts tile the file exactly. Throws
/// DataError for a missing file or a directory.
ByteRange line_aligned_range(const std::string& path, int parts, int part,
                             const Quoting& quoting = {}, std::size_t max_line = 1 << 20);

/// Streams the lines (with `quoting`: records) of a byte range through a bounded buffer
/// (memory does not grow with the file). Lines exclude their final '\n'; a record spanning
/// lines keeps its inner ones, and lines() says how many it spans. A line longer than
/// `max_line` bytes is reported with `too_long` set and at most its first 64 bytes (none
/// when it did not fit the buffer).
class LineReader {
 public:
  LineReader(const std::string& path, ByteRange range, std::size_t max_line,
             std::size_t buffer_bytes = std::size_t{16} << 20, Quoting quoting = {});
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  /// Next line, or false at the end of the range.
  bool next(std::string_view& line, bool& too_long);
  /// Bytes consumed so far.
  std::int64_t consumed() const { return pos_ - range_.begin; }
  /// File offset of the next line or record.
  std::int64_t position() const { return pos_; }
  /// Physical lines of the last line or record returned.
  int lines() const { return lines_; }

 private:
  bool fill();
  std::size_t record_length(std::size_t first_len);
  Quoting quoting_;
  int lines_ = 1;
  std::string path_;
  int fd_ = -1;
  ByteRange range_;
  std::size_t max_line_;
  std::vector<char> buf_;
  std::size_t lo_ = 0, hi_ = 0;  // unread bytes are buf_[lo_, hi_)
  std::int64_t file_pos_ = 0;    // next byte to read from the file
  std::int64_t pos_ = 0;         // file offset of buf_[lo_]
  bool skipping_ = false;
};

/// The first line of a file (without '\n'), at most `max_line` bytes; empty file -> "".
std::string read_first_line(const std::string& path, std::size_t max_line, bool* too_long);

/// Appends `v` to `out` as one CSV field: RFC-4180 quoted ("" for a quote) when it holds a
/// comma, a quote or a line break, as is otherwise.
void append_csv_field(std::string& out, std::string_view v);

/// One output text file written by all ranks: each `append` call is collective
/// and lays every rank's text down in rank order. Written under a temporary name
/// and renamed by `commit()`; removed if never committed.
class OrderedWriter {
 public:
  OrderedWriter(const std::string& path, const Comm& comm);
  ~OrderedWriter();
  OrderedWriter(const OrderedWriter&) = delete;
  OrderedWriter& operator=(const OrderedWriter&) = delete;
  void append(std::string_view local);  // collective
  /// Collective: like append, with this rank's text read from `bytes` bytes of
  /// `local` (from its start), copied in bounded chunks.
  void append_file(std::FILE* local, std::int64_t bytes);
  void commit();  // collective
  std::int64_t bytes_written() const { return base_; }

 private:
  const Comm& comm_;
  std::string path_, tmp_;
  int fd_ = -1;
  std::int64_t base_ = 0;
  bool done_ = false;
};

}  // namespace segrec
