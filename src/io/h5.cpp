#include "segrec/io/h5.hpp"

#include "segrec/core/tempfile.hpp"

#include <fcntl.h>
#include <mpi.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <set>

namespace segrec::h5 {

namespace {

// HDF5 prints its error stack to stderr by default; we read it ourselves.
// Whatever is still open when MPI finalizes (handles leaked while an error
// unwound) is closed first, while MPI-IO can still run.
struct SilenceHdf5 {
  SilenceHdf5() {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    MpiEnvironment::at_finalize([] { H5close(); });
  }
};
const SilenceHdf5 silence_hdf5;

std::string g_command_line;
std::int64_t g_memory_budget = [] {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::int64_t>(pages) * page : INT64_MAX;
}();
std::string g_made_by;
bool g_parallel_io = false;  // set once any file is opened on more than one rank

herr_t walk_cb(unsigned n, const H5E_error2_t* e, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n < 3 && e->desc && *e->desc) {  // the innermost entries say what went wrong
    if (!out->empty()) *out += "; ";
    *out += e->desc;
  }
  return 0;
}

const MPI_Comm* mpi_comm(const Comm& c) { return static_cast<const MPI_Comm*>(c.native()); }

}  // namespace

std::string error_text() {
  std::string out;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_cb, &out);
  H5Eclear2(H5E_DEFAULT);
  return out.empty() ? "unknown HDF5 error" : out;
}

void check(herr_t rc, const std::string& what) {
  if (rc < 0) throw IoError(what + ": " + error_text());
}

Handle::Handle(hid_t id, Closer closer, const char* what) : id_(id), closer_(closer) {
  if (id < 0) throw IoError(std::string(what) + ": " + error_text());
}

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = std::exchange(o.id_, H5I_INVALID_HID);
    closer_ = o.closer_;
  }
  return *this;
}

void Handle::reset() {
  // While a local error unwinds a parallel job, other ranks may never reach the
  // matching collective close: leak the handle, the job is being aborted anyway.
  // A collective error unwinds every rank alike, so closing stays matched.
  const bool local_unwind =
      g_parallel_io && std::uncaught_exceptions() > 0 && !detail::last_error_collective;
  if (id_ >= 0 && closer_ && !local_unwind) closer_(id_);
  id_ = H5I_INVALID_HID;
}

void set_memory_budget(std::int64_t bytes) { g_memory_budget = bytes > 0 ? bytes : INT64_MAX; }
std::int64_t memory_budget() { return g_memory_budget; }

void set_command_line(const std::string& cmd) { g_command_line = cmd; }
const std::string& command_line() { return g_command_line; }
void set_made_by(const std::string& hash) { g_made_by = hash; }

// ---- File ---------------------------------------------------------------------------

namespace {

Handle make_fapl(const Comm& comm) {
  if (comm.size() > 1) g_parallel_io = true;
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose, "H5Pcreate(file access)");
  if (comm.is_mpi()) {
    check(H5Pset_fapl_mpio(fapl.id(), *mpi_comm(comm), MPI_INFO_NULL), "H5Pset_fapl_mpio");
    check(H5Pset_all_coll_metadata_ops(fapl.id(), true), "H5Pset_all_coll_metadata_ops");
    check(H5Pset_coll_metadata_write(fapl.id(), true), "H5Pset_coll_metadata_write");
  }
  return fapl;
}

// Everything that stops a file from opening is agreed on collectively so that
// no rank enters a collective HDF5 call alone.
void check_readable(const std::string& path, const Comm& comm) {
  std::string err;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    err = "cannot open '" + path + "': no such file";
  else if (std::filesystem::is_directory(path, ec))
    err = "cannot open '" + path + "': is a directory";
  else {
    std::ifstream f(path, std::ios::binary);
    char sig[8] = {};
    f.read(sig, 8);
    if (!f || std::string(sig, 8) != std::string("\x89HDF\r\n\x1a\n", 8))
      err = "'" + path + "' is not an HDF5 file";
  }
  comm.check_all(err, kExitData);
}

}  // namespace

File File::create(const std::string& path, const Comm& comm, const Format& format) {
  File f;
  f.comm_ = &comm;
  f.path_ = path;
  // One temporary name for all ranks, chosen by rank 0.
  std::string tmp;
  if (comm.is_root()) tmp = temporary_name(path);
  comm.broadcast(tmp);
  f.tmp_path_ = tmp;
  std::string err;
  {
    const auto dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::is_directory(dir, ec))
      err = "cannot write '" + path + "': directory '" + dir.string() + "' does not exist";
    else if (::access(dir.empty() ? "." : dir.c_str(), W_OK) != 0)
      err = "cannot write '" + path + "': directory '" + (dir.empty() ? "." : dir.string()) +
            "' is not writable";
  }
  // A probe of the temporary name: a read-only file system or a folder that refuses new
  // files (root passes access() everywhere) gives one clear error on every rank instead of a
  // failure inside the collective create.
  if (err.empty() && comm.is_root()) {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
      err = "cannot write '" + path + "': " + std::strerror(errno);
    else {
      ::close(fd);
      ::unlink(tmp.c_str());
    }
  }
  comm.check_all(err, kExitIo);
  register_temporary(tmp);
  Handle fapl = make_fapl(comm);
  f.file_ = Handle(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()), H5Fclose,
                   ("cannot create '" + path + "'").c_str());
  f.writable_ = true;
  f.set_attr("/", "format", format.name);
  f.set_attr("/", "format_version", static_cast<std::int64_t>(format.version));
  f.set_attr("/", "segrec_version", std::string(SEGREC_VERSION));
  f.set_attr("/", "command_line", g_command_line);
  f.set_attr("/", "ranks", static_cast<std::int64_t>(comm.size()));
  if (!g_made_by.empty()) f.set_attr("/", "made_by", g_made_by);
  return f;
}

File File::open_any(const std::string& path, const Comm& comm) {
  check_readable(path, comm);
  File f;
  f.comm_ = &comm;
  f.path_ = path;
  Handle fapl = make_fapl(comm);
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id());
  std::string err;
  if (id < 0) err = "cannot read '" + path + "' (truncated or damaged?): " + error_text();
  comm.check_all(err, kExitData);
  f.file_ = Handle(id, H5Fclose, "H5Fopen");
  if (!f.has_attr("/", "format") || !f.has_attr("/", "format_version"))
    throw DataError("'" + path + "' is an HDF5 file but not a segrec file (no format attribute)",
                    true);
  return f;
}

File File::open(const std::string& path, const Comm& comm, const Format& format) {
  File f = open_any(path, comm);
  const Format got = f.format();
  if (got.name != format.name)
    throw DataError("'" + path + "' is a " + got.name + " file, expected " + format.name, true);
  if (got.version > format.version || got.version < 1)
    throw DataError("'" + path + "' has " + got.name + " format version " +
                        std::to_string(got.version) + ", this segrec reads up to version " +
                        std::to_string(format.version),
                    true);
  return f;
}

File::File(File&& o) noexcept
    : comm_(o.comm_),
      path_(std::move(o.path_)),
      tmp_path_(std::exchange(o.tmp_path_, {})),
      file_(std::move(o.file_)),
      writable_(std::exchange(o.writable_, false)) {}

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    discard();
    comm_ = o.comm_;
    path_ = std::move(o.path_);
    tmp_path_ = std::exchange(o.tmp_path_, {});
    file_ = std::move(o.file_);
    writable_ = std::exchange(o.writable_, false);
  }
  return *this;
}

File::~File() { discard(); }

void File::discard() noexcept {
  if (writable_ && !tmp_path_.empty()) {
    file_.reset();
    ::unlink(tmp_path_.c_str());  // on every rank: the one unwinding may not be rank 0
    unregister_temporary(tmp_path_);
  }
  tmp_path_.clear();
  writable_ = false;
}

void File::commit() {
  SEGREC_ASSERT(writable_, "commit() on a file opened for reading");
  check(H5Fflush(file_.id(), H5F_SCOPE_GLOBAL), "flushing '" + path_ + "'");
  file_.reset();
  std::string err;
  if (comm_->is_root() && std::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    err = "cannot rename '" + tmp_path_ + "' to '" + path_ + "'";
  comm_->check_all(err, kExitIo);
  unregister_temporary(tmp_path_);
  record_output(path_);
  tmp_path_.clear();
  writable_ = false;
}

Format File::format() const {
  return {attr_string("/", "format"), static_cast<int>(attr_int("/", "format_version"))};
}

bool File::exists(const std::string& name) const {
  // Walk the path one link at a time: H5Lexists fails on a missing parent.
  std::string cur;
  std::size_t pos = name[0] == '/' ? 1 : 0;
  while (pos <= name.size()) {
    const auto next = name.find('/', pos);
    cur = name.substr(0, next == std::string::npos ? name.size() : next);
    const htri_t e = H5Lexists(file_.id(), cur.c_str(), H5P_DEFAULT);
    if (e <= 0) return false;
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return true;
}

void File::create_group(const std::string& name) {
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose, "H5Pcreate(link)");
  check(H5Pset_create_intermediate_group(lcpl.id(), 1), "H5Pset_create_intermediate_group");
  Handle g(H5Gcreate2(file_.id(), name.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
           ("cannot create group '" + name + "' in '" + path_ + "'").c_str());
}

std::vector<std::string> File::list(const std::string& group) const {
  std::vector<std::string> names;
  auto cb = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
    return 0;
  };
  check(H5Literate_by_name(file_.id(), group.c_str(), H5_INDEX_NAME, H5_ITER_INC, nullptr, cb,
                           &names, H5P_DEFAULT),
        "listing '" + group + "' in '" + path_ + "'");
  return names;
}

bool File::is_dataset(const std::string& name) const {
  Handle o(H5Oopen(file_.id(), name.c_str(), H5P_DEFAULT), H5Oclose,
           ("cannot open '" + name + "' in '" + path_ + "'").c_str());
  return H5Iget_type(o.id()) == H5I_DATASET;
}

// ---- attributes ----------------------------------------------------------------------

namespace {
Handle open_object(hid_t file, const std::string& obj, const std::string& path) {
  return Handle(H5Oopen(file, obj.c_str(), H5P_DEFAULT), H5Oclose,
                ("cannot open '" + obj + "' in '" + path + "'").c_str());
}

void write_attr(hid_t file, const std::string& path, const std::string& obj,
                const std::string& name, hid_t type, const void* data) {
  Handle o = open_object(file, obj, path);
  if (H5Aexists(o.id(), name.c_str()) > 0) check(H5Adelete(o.id(), name.c_str()), "H5Adelete");
  Handle space(H5Screate(H5S_SCALAR), H5Sclose, "H5Screate");
  Handle a(H5Acreate2(o.id(), name.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
           ("cannot create attribute '" + name + "'").c_str());
  check(H5Awrite(a.id(), type, data), "writing attribute '" + name + "'");
}

Handle open_attr(hid_t file, const std::string& path, const std::string& obj,
                 const std::string& name) {
  Handle o = open_object(file, obj, path);
  const hid_t id = H5Aopen(o.id(), name.c_str(), H5P_DEFAULT);
  if (id < 0) {
    H5Eclear2(H5E_DEFAULT);
    throw DataError("'" + path + "': attribute '" + name + "' missing on '" + obj + "'", true);
  }
  return Handle(id, H5Aclose, "H5Aopen");
}
}  // namespace

void File::set_attr(const std::string& obj, const std::string& name, const std::string& value) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  check(H5Tset_size(type.id(), std::max<std::size_t>(1, value.size())), "H5Tset_size");
  check(H5Tset_strpad(type.id(), H5T_STR_NULLPAD), "H5Tset_strpad");
  std::string padded = value.empty() ? std::string(1, '\0') : value;
  write_attr(file_.id(), path_, obj, name, type.id(), padded.data());
}

void File::set_attr(const std::string& obj, const std::string& name, std::int64_t value) {
  write_attr(file_.id(), path_, obj, name, H5T_NATIVE_INT64, &value);
}

void File::set_attr(const std::string& obj, const std::string& name, double value) {
  write_attr(file_.id(), path_, obj, name, H5T_NATIVE_DOUBLE, &value);
}

bool File::has_attr(const std::string& obj, const std::string& name) const {
  if (obj != "/" && !exists(obj)) return false;
  Handle o = open_object(file_.id(), obj, path_);
  return H5Aexists(o.id(), name.c_str()) > 0;
}

std::string File::attr_string(const std::string& obj, const std::string& name) const {
  Handle a = open_attr(file_.id(), path_, obj, name);
  Handle ftype(H5Aget_type(a.id()), H5Tclose, "H5Aget_type");
  if (H5Tget_class(ftype.id()) != H5T_STRING)
    throw DataError("'" + path_ + "': attribute '" + name + "' is not a string", true);
  if (H5Tis_variable_str(ftype.id()) > 0) {
    Handle mtype(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
    check(H5Tset_size(mtype.id(), H5T_VARIABLE), "H5Tset_size");
    char* s = nullptr;
    check(H5Aread(a.id(), mtype.id(), &s), "reading attribute '" + name + "'");
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  const std::size_t n = H5Tget_size(ftype.id());
  std::string buf(n, '\0');
  check(H5Aread(a.id(), ftype.id(), buf.data()), "reading attribute '" + name + "'");
  buf.resize(std::strlen(buf.c_str()));
  return buf;
}

std::int64_t File::attr_int(const std::string& obj, const std::string& name) const {
  Handle a = open_attr(file_.id(), path_, obj, name);
  std::int64_t v = 0;
  check(H5Aread(a.id(), H5T_NATIVE_INT64, &v), "reading attribute '" + name + "'");
  return v;
}

double File::attr_double(const std::string& obj, const std::string& name) const {
  Handle a = open_attr(file_.id(), path_, obj, name);
  double v = 0;
  check(H5Aread(a.id(), H5T_NATIVE_DOUBLE, &v), "reading attribute '" + name + "'");
  return v;
}

// ---- datasets ------------------------------------------------------------------------

Handle File::dxpl() const {
  Handle p(H5Pcreate(H5P_DATASET_XFER), H5Pclose, "H5Pcreate(xfer)");
  if (comm_->is_mpi()) check(H5Pset_dxpl_mpio(p.id(), H5FD_MPIO_COLLECTIVE), "H5Pset_dxpl_mpio");
  return p;
}

std::vector<std::int64_t> File::shape(const std::string& name) const {
  if (!exists(name)) throw DataError("'" + path_ + "': dataset '" + name + "' is missing", true);
  Handle d(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT), H5Dclose,
           ("cannot open dataset '" + name + "'").c_str());
  Handle s(H5Dget_space(d.id()), H5Sclose, "H5Dget_space");
  const int nd = H5Sget_simple_extent_ndims(s.id());
  if (nd < 1 || nd > 2)
    throw DataError("'" + path_ + "': dataset '" + name + "' has " + std::to_string(nd) + " dims",
                    true);
  hsize_t dims[2] = {0, 0};
  H5Sget_simple_extent_dims(s.id(), dims, nullptr);
  std::vector<std::int64_t> out;
  for (int i = 0; i < nd; ++i) out.push_back(static_cast<std::int64_t>(dims[i]));
  return out;
}

namespace {
// Selects rows [start, start + count) of a file space (none when count is 0, so a
// rank without rows still joins the collective call); returns the memory space.
Handle select_rows(const Handle& fspace, int nd, const hsize_t* start, const hsize_t* count) {
  Handle mspace(H5Screate_simple(nd, count, nullptr), H5Sclose, "H5Screate_simple");
  if (count[0] == 0) {
    check(H5Sselect_none(fspace.id()), "H5Sselect_none");
    check(H5Sselect_none(mspace.id()), "H5Sselect_none");
  } else {
    check(H5Sselect_hyperslab(fspace.id(), H5S_SELECT_SET, start, nullptr, count, nullptr),
          "H5Sselect_hyperslab");
  }
  return mspace;
}
}  // namespace

std::int64_t File::write_impl(const std::string& name, hid_t type, const void* data,
                              std::int64_t n_local, std::int64_t cols, bool partitioned) {
  const std::int64_t width = cols > 0 ? cols : 1;
  SEGREC_ASSERT(n_local % width == 0, "dataset '", name, "': ", n_local,
                " values are not whole rows of ", width);
  const std::int64_t rows_local = n_local / width;
  std::int64_t offset = 0, rows_total = rows_local;
  if (partitioned) {
    offset = comm_->exscan_sum(rows_local);
    rows_total = comm_->allreduce_value(rows_local);
  }
  const int nd = cols > 0 ? 2 : 1;
  hsize_t dims[2] = {static_cast<hsize_t>(rows_total), static_cast<hsize_t>(width)};
  Handle fspace(H5Screate_simple(nd, dims, nullptr), H5Sclose, "H5Screate_simple");
  Handle dset(H5Dcreate2(file_.id(), name.c_str(), type, fspace.id(), H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT),
              H5Dclose, ("cannot create dataset '" + name + "' in '" + path_ + "'").c_str());
  if (rows_total == 0) return offset;  // nothing is allocated for an empty dataset
  // Replicated data is written by rank 0 alone; every rank still joins the call.
  const bool mine = partitioned || comm_->is_root();
  const hsize_t count[2] = {static_cast<hsize_t>(mine ? rows_local : 0),
                            static_cast<hsize_t>(width)};
  const hsize_t start[2] = {static_cast<hsize_t>(offset), 0};
  Handle mspace = select_rows(fspace, nd, start, count);
  Handle xfer = dxpl();
  check(H5Dwrite(dset.id(), type, mspace.id(), fspace.id(), xfer.id(), data),
        "writing dataset '" + name + "' to '" + path_ + "'");
  return offset;
}

void File::read_impl(const std::string& name, hid_t type, void* data, std::int64_t row_begin,
                     std::int64_t row_count) const {
  const auto s = shape(name);
  const std::int64_t width = s.size() == 2 ? s[1] : 1;
  if (row_begin < 0 || row_count < 0 || row_begin + row_count > s[0])
    throw DataError("'" + path_ + "': rows [" + std::to_string(row_begin) + ", " +
                        std::to_string(row_begin + row_count) + ") are outside dataset '" + name +
                        "' of " + std::to_string(s[0]) + " rows",
                    true);
  if (s[0] == 0 || width == 0) return;  // an empty dataset has no storage to read
  Handle dset(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT), H5Dclose,
              ("cannot open dataset '" + name + "'").c_str());
  Handle fspace(H5Dget_space(dset.id()), H5Sclose, "H5Dget_space");
  const hsize_t count[2] = {static_cast<hsize_t>(row_count), static_cast<hsize_t>(width)};
  const hsize_t start[2] = {static_cast<hsize_t>(row_begin), 0};
  Handle mspace = select_rows(fspace, static_cast<int>(s.size()), start, count);
  Handle xfer = dxpl();
  check(H5Dread(dset.id(), type, mspace.id(), fspace.id(), xfer.id(), data),
        "reading dataset '" + name + "' from '" + path_ + "'");
}

void File::check_read_size(const std::string& name, std::int64_t row_count, std::int64_t cols,
                           std::size_t elem_bytes) const {
  std::string err;
  // In long double: a hostile shape must not overflow the product.
  const long double bytes = static_cast<long double>(std::max<std::int64_t>(row_count, 0)) *
                            static_cast<long double>(std::max<std::int64_t>(cols, 0)) *
                            static_cast<long double>(elem_bytes);
  if (bytes > static_cast<long double>(g_memory_budget)) {
    auto human = [](long double b) {
      const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
      int u = 0;
      for (; b >= 1024 && u < 6; ++u) b /= 1024;
      char out[48];
      std::snprintf(out, sizeof out, "%.3Lg %s", b, units[u]);
      return std::string(out);
    };
    err = "'" + path_ + "': dataset '" + name + "' needs " + human(bytes) + " on one rank (" +
          std::to_string(row_count) + " x " + std::to_string(cols) + " x " +
          std::to_string(elem_bytes) + " bytes), over the " +
          human(static_cast<long double>(g_memory_budget)) +
          " allowed per rank (--max-memory-per-rank): a damaged file, or too few ranks";
  }
  comm_->check_all(err, kExitData);
}

std::vector<char> File::read_bytes(const std::string& name) const {
  const auto s = shape(name);
  Handle dset(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT), H5Dclose,
              ("cannot open dataset '" + name + "'").c_str());
  Handle ftype(H5Dget_type(dset.id()), H5Tclose, "H5Dget_type");
  Handle mtype(H5Tget_native_type(ftype.id(), H5T_DIR_ASCEND), H5Tclose, "H5Tget_native_type");
  std::size_t n = H5Tget_size(mtype.id());
  check_read_size(name, s[0], s.size() == 2 ? s[1] : 1, n);
  for (auto d : s) n *= static_cast<std::size_t>(d);
  std::vector<char> out(n);
  read_impl(name, mtype.id(), out.data(), 0, s[0]);
  return out;
}

void File::write_strings(const std::string& name, const std::vector<std::string>& local,
                         bool partitioned) {
  std::int64_t len = 1;
  for (const auto& s : local)
    len = std::max<std::int64_t>(len, static_cast<std::int64_t>(s.size()));
  if (partitioned) len = comm_->allreduce_value(len, Op::kMax);
  std::vector<char> buf(local.size() * static_cast<std::size_t>(len), '\0');
  for (std::size_t i = 0; i < local.size(); ++i)
    std::memcpy(buf.data() + i * static_cast<std::size_t>(len), local[i].data(), local[i].size());
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose, "H5Tcopy");
  check(H5Tset_size(type.id(), static_cast<std::size_t>(len)), "H5Tset_size");
  check(H5Tset_strpad(type.id(), H5T_STR_NULLPAD), "H5Tset_strpad");
  write_impl(name, type.id(), buf.data(), static_cast<std::int64_t>(local.size()), 0, partitioned);
}

std::vector<std::string> File::read_strings(const std::string& name, std::int64_t row_begin,
                                            std::int64_t row_count) const {
  Handle dset(H5Dopen2(file_.id(), name.c_str(), H5P_DEFAULT), H5Dclose,
              ("cannot open dataset '" + name + "' in '" + path_ + "'").c_str());
  Handle ftype(H5Dget_type(dset.id()), H5Tclose, "H5Dget_type");
  if (H5Tget_class(ftype.id()) != H5T_STRING || H5Tis_variable_str(ftype.id()) > 0)
    throw DataError("'" + path_ + "': dataset '" + name + "' is not fixed-length strings", true);
  const std::size_t len = H5Tget_size(ftype.id());
  check_read_size(name, row_count, 1, len + sizeof(std::string));
  std::vector<char> buf(static_cast<std::size_t>(row_count) * len);
  read_impl(name, ftype.id(), buf.data(), row_begin, row_count);
  std::vector<std::string> out(static_cast<std::size_t>(row_count));
  for (std::size_t i = 0; i < out.size(); ++i) {
    const char* p = buf.data() + i * len;
    out[i].assign(p, strnlen(p, len));
  }
  return out;
}

}  // namespace segrec::h5
