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

ByteRange line_aligned_range(const std::string& path, int parts, int part) {
  const int fd = open_input(path);
  const std::int64_t size = file_size(fd);
  const auto raw = [&](int p) { return size / parts * p + size % parts * p / parts; };
  ByteRange r{next_line_start(fd, raw(part), size), next_line_start(fd, raw(part + 1), size)};
  ::close(fd);
  if (r.end < r.begin) r.end = r.begin;
  return r;
}

LineReader::LineReader(const std::string& path, ByteRange range, std::size_t max_line,
                       std::size_t buffer_bytes)
    : path_(path), range_(range), max_line_(max_line) {
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

bool LineReader::next(std::string_view& line, bool& too_long) {
  too_long = false;
  for (;;) {
    const char* b = buf_.data() + lo_;
    const void* nl = std::memchr(b, '\n', hi_ - lo_);
    if (nl) {
      const auto len = static_cast<std::size_t>(static_cast<const char*>(nl) - b);
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
