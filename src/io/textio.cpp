#include "segrec/io/textio.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "segrec/core/error.hpp"
#include "segrec/core/tempfile.hpp"

namespace segrec {

namespace {

std::string sys_error(const std::string& what, const std::string& path) {
  return what + " '" + path + "': " + std::strerror(errno);
}

int open_input(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw DataError(sys_error("cannot open", path));
  if (S_ISDIR(st.st_mode)) throw DataError("cannot read '" + path + "': is a directory");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DataError(sys_error("cannot open", path));
  return fd;
}

std::int64_t file_size(int fd) {
  struct stat st {};
  ::fstat(fd, &st);
  return static_cast<std::int64_t>(st.st_size);
}

// Offset of the first line start at or after `pos` (a line starts at 0 or after '\n').
std::int64_t next_line_start(int fd, std::int64_t pos, std::int64_t size) {
  if (pos <= 0) return 0;
  if (pos >= size) return size;
  char buf[1 << 16];
  std::int64_t at = pos - 1;  // the byte before pos decides whether pos starts a line
  while (at < size) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, at);
    if (n <= 0) return size;
    const void* nl = std::memchr(buf, '\n', static_cast<std::size_t>(n));
    if (nl) return at + (static_cast<const char*>(nl) - buf) + 1;
    at += n;
  }
  return size;
}

// Quote state of a record being scanned (see Quoting).
enum class QState : std::uint8_t { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted };

// `st` advanced over `text` (one line, no '\n').
QState scan_quotes(std::string_view text, std::string_view delim, QState st) {
  const std::size_t n = text.size(), d = delim.size();
  const auto delim_at = [&](std::size_t i) { return text.compare(i, d, delim) == 0; };
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[i];
    switch (st) {
      case QState::kFieldStart:
        if (c == '"')
          st = QState::kQuoted;
        else if (delim_at(i))
          i += d - 1;
        else if (c != ' ')
          st = QState::kUnquoted;
        break;
      case QState::kUnquoted:
        if (delim_at(i)) {
          i += d - 1;
          st = QState::kFieldStart;
        }
        break;
      case QState::kQuoted:
        if (c == '"') st = QState::kQuoteInQuoted;
        break;
      case QState::kQuoteInQuoted:
        if (c == '"') {
          st = QState::kQuoted;  // "" inside quotes
        } else if (delim_at(i)) {
          i += d - 1;
          st = QState::kFieldStart;
        } else {
          st = QState::kUnquoted;  // text after the closing quote: malformed, read on
        }
        break;
    }
  }
  return st;
}

void write_fully(int fd, const char* p, std::size_t n, std::int64_t off, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw IoError(sys_error("cannot write", path));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    off += w;
  }
}

}  // namespace

namespace {

// First record start at or after `pos`: records are scanned from a line start up to
// kLookback bytes before `pos` (or from 0), which every rank does alike. A wrong guess that
// this line start begins a record is corrected at the first newline the guess sees outside
// quotes, which in practice comes within a line or two.
std::int64_t next_record_start(const std::string& path, int fd, std::int64_t pos, std::int64_t size,
                               const Quoting& quoting, std::size_t max_line) {
  constexpr std::int64_t kLookback = 64 << 10;
  if (pos <= 0) return 0;
  if (pos >= size) return size;
  const std::int64_t from = pos <= kLookback ? 0 : next_line_start(fd, pos - kLookback, size);
  LineReader r(path, {from, size}, max_line, std::size_t{1} << 20, quoting);
  std::string_view line;
  bool too_long = false;
  while (r.position() < pos && r.next(line, too_long)) {
  }
  return std::min(r.position(), size);
}

}  // namespace

ByteRange line_aligned_range(const std::string& path, int parts, int part, const Quoting& quoting,
                             std::size_t max_line) {
  const int fd = open_input(path);
  const std::int64_t size = file_size(fd);
  const auto raw = [&](int p) { return size / parts * p + size % parts * p / parts; };
  const auto start = [&](std::int64_t pos) {
    return quoting.delimiter.empty() ? next_line_start(fd, pos, size)
                                     : next_record_start(path, fd, pos, size, quoting, max_line);
  };
  ByteRange r{start(raw(part)), start(raw(part + 1))};
  ::close(fd);
  if (r.end < r.begin) r.end = r.begin;
  return r;
}

LineReader::LineReader(const std::string& path, ByteRange range, std::size_t max_line,
                       std::size_t buffer_bytes, Quoting quoting)
    : quoting_(std::move(quoting)), path_(path), range_(range), max_line_(max_line) {
  fd_ = open_input(path);
  buf_.resize(std::max({buffer_bytes, std::size_t{1} << 16, max_line + 2}));
  file_pos_ = pos_ = range.begin;
}

LineReader::~LineReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool LineReader::fill() {
  // Move the unread tail to the front, then read as much as fits.
  if (lo_ > 0) {
    std::memmove(buf_.data(), buf_.data() + lo_, hi_ - lo_);
    hi_ -= lo_;
    lo_ = 0;
  }
  if (file_pos_ >= range_.end || hi_ == buf_.size()) return false;
  const auto want = static_cast<std::size_t>(
      std::min<std::int64_t>(static_cast<std::int64_t>(buf_.size() - hi_), range_.end - file_pos_));
  const ssize_t n = ::pread(fd_, buf_.data() + hi_, want, file_pos_);
  if (n < 0) throw IoError(sys_error("cannot read", path_));
  if (n == 0) {  // the file shrank under us
    range_.end = file_pos_;
    return false;
  }
  hi_ += static_cast<std::size_t>(n);
  file_pos_ += n;
  return true;
}

// Length of the record that starts at buf_[lo_] with a first line of `first_len` bytes:
// first_len itself unless that line leaves a quoted field open and a later newline within
// the limits closes the record. May refill (and move) the buffer.
std::size_t LineReader::record_length(std::size_t first_len) {
  const std::string_view delim = quoting_.delimiter;
  const char* b = buf_.data() + lo_;
  if (!std::memchr(b, '"', first_len)) return first_len;
  QState st = scan_quotes(std::string_view(b, first_len), delim, QState::kFieldStart);
  std::size_t end = first_len;  // offset of the newline after the record so far
  int lines = 1;
  for (; st == QState::kQuoted; ++lines) {
    if (lines >= Quoting::kMaxRecordLines) return first_len;
    const void* nl = nullptr;
    for (;;) {
      b = buf_.data() + lo_;
      nl = std::memchr(b + end + 1, '\n', hi_ - lo_ - end - 1);
      if (nl || hi_ - lo_ > max_line_) break;
      if (!fill()) break;  // end of range: the record never closes here
    }
    if (!nl) return first_len;
    const auto next = static_cast<std::size_t>(static_cast<const char*>(nl) - b);
    if (next > max_line_) return first_len;
    st = scan_quotes(std::string_view(b + end + 1, next - end - 1), delim, QState::kQuoted);
    end = next;
  }
  lines_ = lines;
  return end;
}

bool LineReader::next(std::string_view& line, bool& too_long) {
  too_long = false;
  lines_ = 1;
  for (;;) {
    const char* b = buf_.data() + lo_;
    const void* nl = std::memchr(b, '\n', hi_ - lo_);
    if (nl) {
      auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - b);
      if (!skipping_ && len <= max_line_ && !quoting_.delimiter.empty()) {
        len = record_length(len);  // offsets from lo_ survive a refill
        b = buf_.data() + lo_;
      }
      lo_ += len + 1;
      pos_ += static_cast<std::int64_t>(len) + 1;
      if (skipping_) {  // the end of an over-long line
        skipping_ = false;
        too_long = true;
        line = std::string_view();
        return true;
      }
      line = std::string_view(b, len);
      if (len > max_line_) {
        too_long = true;
        line = line.substr(0, 64);
      }
      return true;
    }
    // No newline in the buffer.
    if (!skipping_ && hi_ - lo_ > max_line_) {
      // An over-long line: drop what we have and skip to its end.
      pos_ += static_cast<std::int64_t>(hi_ - lo_);
      lo_ = hi_ = 0;
      skipping_ = true;
    } else if (skipping_) {
      pos_ += static_cast<std::int64_t>(hi_ - lo_);
      lo_ = hi_ = 0;
    }
    if (!fill()) {
      if (hi_ > lo_) {  // last line without '\n'
        line = std::string_view(buf_.data() + lo_, hi_ - lo_);
        pos_ += static_cast<std::int64_t>(hi_ - lo_);
        lo_ = hi_;
        if (skipping_ || line.size() > max_line_) {
          skipping_ = false;
          too_long = true;
          line = line.substr(0, 64);
        }
        return true;
      }
      if (skipping_) {
        skipping_ = false;
        too_long = true;
        line = std::string_view();
        return true;
      }
      return false;
    }
  }
}

std::string read_first_line(const std::string& path, std::size_t max_line, bool* too_long) {
  const int fd = open_input(path);
  const std::int64_t size = file_size(fd);
  ::close(fd);
  LineReader r(path, {0, size}, max_line, std::min<std::size_t>(max_line + 2, 1 << 22));
  std::string_view line;
  bool tl = false;
  std::string out;
  if (r.next(line, tl)) out.assign(line);
  if (too_long) *too_long = tl;
  return out;
}

void append_csv_field(std::string& out, std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

// ---- OrderedWriter ------------------------------------------------------------------

OrderedWriter::OrderedWriter(const std::string& path, const Comm& comm) : comm_(comm), path_(path) {
  std::string err;
  if (comm.is_root()) {
    tmp_ = temporary_name(path);
    const int fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      err = sys_error("cannot write", path);
    else
      ::close(fd);
  }
  comm.check_all(err, kExitIo);
  comm.broadcast(tmp_);
  register_temporary(tmp_);
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CLOEXEC);
  comm.check_all(fd_ < 0 ? sys_error("cannot write", tmp_) : "", kExitIo);
}

OrderedWriter::~OrderedWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!done_) {
    ::unlink(tmp_.c_str());
    unregister_temporary(tmp_);
  }
}

void OrderedWriter::append(std::string_view local) {
  const auto n = static_cast<std::int64_t>(local.size());
  const std::int64_t off = base_ + comm_.exscan_sum(n);
  base_ += comm_.allreduce_value(n);
  write_fully(fd_, local.data(), local.size(), off, tmp_);
}

void OrderedWriter::append_file(std::FILE* local, std::int64_t bytes) {
  const std::int64_t off = base_ + comm_.exscan_sum(bytes);
  base_ += comm_.allreduce_value(bytes);
  std::string err;
  if (bytes > 0 && std::fseek(local, 0, SEEK_SET) != 0) err = "cannot rewind a spool file";
  std::vector<char> buf(std::size_t{4} << 20);
  for (std::int64_t done = 0; done < bytes && err.empty();) {
    const auto want =
        static_cast<std::size_t>(std::min<std::int64_t>(bytes - done, std::ssize(buf)));
    if (std::fread(buf.data(), 1, want, local) != want) {
      err = "cannot read back a spool file";
      break;
    }
    write_fully(fd_, buf.data(), want, off + done, tmp_);
    done += static_cast<std::int64_t>(want);
  }
  if (!err.empty()) throw IoError(err + " for '" + path_ + "'");
}

void OrderedWriter::commit() {
  std::string err;
  if (::fsync(fd_) != 0 && errno != EINVAL) err = sys_error("cannot flush", tmp_);
  ::close(fd_);
  fd_ = -1;
  comm_.check_all(err, kExitIo);
  if (comm_.is_root() && std::rename(tmp_.c_str(), path_.c_str()) != 0)
    err = sys_error("cannot rename to", path_);
  comm_.check_all(err, kExitIo);
  unregister_temporary(tmp_);
  record_output(path_);
  done_ = true;
}

}  // namespace segrec
