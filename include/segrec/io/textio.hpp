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

/// Collective-free: this rank's share of `path` (size bytes split evenly over
/// `parts`, each boundary moved to the next line start). The ranges of all
/// parts tile the file exactly. Throws DataError for a missing file or a directory.
ByteRange line_aligned_range(const std::string& path, int parts, int part);

/// Streams the lines of a byte range through a bounded buffer (memory does not
/// grow with the file). Lines exclude '\n'; a line longer than `max_line`
/// bytes is reported with `too_long` set and at most its first 64 bytes
/// (none when it did not fit the buffer).
class LineReader {
 public:
  LineReader(const std::string& path, ByteRange range, std::size_t max_line,
             std::size_t buffer_bytes = std::size_t{16} << 20);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  /// Next line, or false at the end of the range.
  bool next(std::string_view& line, bool& too_long);
  /// Bytes consumed so far.
  std::int64_t consumed() const { return pos_ - range_.begin; }

 private:
  bool fill();
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
