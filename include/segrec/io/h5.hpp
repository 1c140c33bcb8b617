// A small RAII layer over the HDF5 C API with collective parallel I/O.
//
// Every handle closes itself, every return code is checked, and failures throw
// IoError (or DataError for a file of the wrong kind) carrying HDF5's own error
// text. Matrices are row-partitioned: each rank reads or writes its own slab of
// rows, and ranks with zero rows still take part in every collective call.
// Outputs are written to a temporary name and renamed by `commit()`.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "segrec/core/comm.hpp"
#include "segrec/core/error.hpp"

namespace segrec::h5 {

/// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer, const char* what);  // throws IoError when id < 0
  /// An object of `file`, shared by the ranks of `comm`: its close may wait for the
  /// other ranks, so the stall watchdog watches it (when comm has several ranks).
  Handle(hid_t id, Closer closer, const char* what, const Comm& comm, const std::string& file);
  Handle(Handle&& o) noexcept
      : id_(std::exchange(o.id_, H5I_INVALID_HID)),
        closer_(o.closer_),
        comm_(o.comm_),
        file_(std::move(o.file_)) {}
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  hid_t id() const { return id_; }
  /// Closes now and returns the closer's return code.
  herr_t close();
  void reset();  // closes, ignoring failures

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
  const Comm* comm_ = nullptr;  ///< set when the close is collective (several ranks)
  std::string file_;
};

/// Throws IoError("<what>: <HDF5 error stack>") when rc < 0.
void check(herr_t rc, const std::string& what);
/// The current HDF5 error stack, innermost first, as one line.
std::string error_text();

/// HDF5 native type for T.
template <class T>
hid_t native_type() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, float>)
    return H5T_NATIVE_FLOAT;
  else if constexpr (std::is_same_v<U, double>)
    return H5T_NATIVE_DOUBLE;
  else if constexpr (std::is_same_v<U, std::int32_t>)
    return H5T_NATIVE_INT32;
  else if constexpr (std::is_same_v<U, std::int64_t>)
    return H5T_NATIVE_INT64;
  else if constexpr (std::is_same_v<U, std::uint32_t>)
    return H5T_NATIVE_UINT32;
  else if constexpr (std::is_same_v<U, std::uint64_t>)
    return H5T_NATIVE_UINT64;
  else if constexpr (std::is_same_v<U, std::uint8_t>)
    return H5T_NATIVE_UINT8;
  else if constexpr (std::is_same_v<U, std::uint16_t>)
    return H5T_NATIVE_UINT16;
  else if constexpr (std::is_same_v<U, std::int8_t>)
    return H5T_NATIVE_INT8;
  else
    static_assert(sizeof(T) == 0, "unsupported HDF5 element type");
}

/// Identity of a segrec file kind, stored as root attributes.
struct Format {
  std::string name;  ///< e.g. "segrec-dataset"
  int version;       ///< bumped on incompatible schema changes
};

/// Bytes one rank may allocate for one array read from a file: --max-memory-per-rank,
/// the same limit as segrec::memory_per_rank() (core/memory_budget.hpp, which the stages'
/// estimates are checked against; default: the machine's physical memory). A read whose
/// shape needs more is refused before anything is allocated: a damaged or hostile file
/// cannot claim absurd shapes.
void set_memory_budget(std::int64_t bytes);
std::int64_t memory_budget();

/// Sets the command line recorded in every file written by this process.
void set_command_line(const std::string& cmd);
const std::string& command_line();

/// Sets the "made_by" attribute recorded in every file created from now on: a hash
/// of the inputs and options that produced it ("" = none). `segrec run` uses it to
/// skip stages whose outputs are up to date.
void set_made_by(const std::string& hash);

/// A segrec HDF5 file. Every member function is collective: all ranks of the
/// file's communicator call it in the same order (metadata I/O is collective).
class File {
 public:
  /// Collective. Creates `path`'s temporary sibling and stamps the provenance
  /// attributes (format, format_version, segrec_version, command_line, ranks).
  static File create(const std::string& path, const Comm& comm, const Format& format);
  /// Collective. Opens for reading and checks the format name and version;
  /// a missing, non-HDF5, truncated or other-kind file is a clear DataError/IoError.
  static File open(const std::string& path, const Comm& comm, const Format& format);
  /// Opens any segrec file (format not checked; `format()` tells which it is).
  static File open_any(const std::string& path, const Comm& comm);

  File(File&&) noexcept;
  File& operator=(File&&) noexcept;
  ~File();  // an uncommitted created file is closed and removed

  /// Collective. Closes the file and renames the temporary to its final name.
  void commit();

  const std::string& path() const { return path_; }
  const Comm& comm() const { return *comm_; }
  hid_t id() const { return file_.id(); }
  Format format() const;

  bool exists(const std::string& name) const;
  bool is_dataset(const std::string& name) const;
  void create_group(const std::string& name);
  /// Names of the members of a group ("/" for the root).
  std::vector<std::string> list(const std::string& group) const;

  // ---- attributes (collective writes, identical values on every rank) ----------
  void set_attr(const std::string& obj, const std::string& name, const std::string& value);
  void set_attr(const std::string& obj, const std::string& name, std::int64_t value);
  void set_attr(const std::string& obj, const std::string& name, double value);
  std::string attr_string(const std::string& obj, const std::string& name) const;
  std::int64_t attr_int(const std::string& obj, const std::string& name) const;
  double attr_double(const std::string& obj, const std::string& name) const;
  bool has_attr(const std::string& obj, const std::string& name) const;

  // ---- datasets ----------------------------------------------------------------
  /// Shape of a dataset (1 or 2 dims).
  std::vector<std::int64_t> shape(const std::string& name) const;

  /// Replicated data (identical on every rank), written once. cols = 0 makes a 1-D dataset.
  template <class T>
  void write_replicated(const std::string& name, std::span<const T> data, std::int64_t cols = 0) {
    write_impl(name, native_type<T>(), data.data(), static_cast<std::int64_t>(data.size()), cols,
               /*partitioned=*/false);
  }
  /// Row-partitioned: `local` holds this rank's rows (n_local x cols, row-major);
  /// rows land in rank order. Returns this rank's first global row.
  template <class T>
  std::int64_t write_rows(const std::string& name, std::span<const T> local,
                          std::int64_t cols = 0) {
    return write_impl(name, native_type<T>(), local.data(), static_cast<std::int64_t>(local.size()),
                      cols, /*partitioned=*/true);
  }
  /// Rows [row_begin, row_begin + row_count) of a 1-D or 2-D dataset, row-major.
  template <class T>
  std::vector<T> read_rows(const std::string& name, std::int64_t row_begin,
                           std::int64_t row_count) const {
    const auto s = shape(name);
    const std::int64_t cols = s.size() == 2 ? s[1] : 1;
    check_read_size(name, row_count, cols, sizeof(T));
    std::vector<T> out(static_cast<std::size_t>(row_count * cols));
    read_impl(name, native_type<T>(), out.data(), row_begin, row_count);
    return out;
  }
  /// The whole dataset on every rank.
  template <class T>
  std::vector<T> read_all(const std::string& name) const {
    return read_rows<T>(name, 0, shape(name)[0]);
  }

  /// The whole dataset's raw bytes in its native in-memory type (for digests).
  std::vector<char> read_bytes(const std::string& name) const;

  /// Fixed-length strings, row-partitioned (one per local row) or replicated.
  void write_strings(const std::string& name, const std::vector<std::string>& local,
                     bool partitioned);
  std::vector<std::string> read_strings(const std::string& name, std::int64_t row_begin,
                                        std::int64_t row_count) const;

 private:
  File() = default;
  void discard() noexcept;  // closes and removes an uncommitted output
  std::int64_t write_impl(const std::string& name, hid_t type, const void* data,
                          std::int64_t n_local, std::int64_t cols, bool partitioned);
  void read_impl(const std::string& name, hid_t type, void* data, std::int64_t row_begin,
                 std::int64_t row_count) const;
  Handle dxpl() const;
  /// Collective. Throws DataError when row_count x cols elements of elem_bytes exceed the
  /// memory budget on any rank (checked before the buffer is allocated).
  void check_read_size(const std::string& name, std::int64_t row_count, std::int64_t cols,
                       std::size_t elem_bytes) const;

  const Comm* comm_ = nullptr;
  std::string path_, tmp_path_;
  Handle file_;
  bool writable_ = false;
};

}  // namespace segrec::h5
